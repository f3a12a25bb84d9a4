package wire

import (
	"bytes"
	"errors"
	"testing"
)

// decoded is a frame as Decoder.Next returns it, with its payload copied.
type decoded struct {
	Header
	Payload string
}

// drain calls Next until it returns an error and returns the frames and
// that error.
func drain(d *Decoder) ([]decoded, error) {
	var out []decoded
	for {
		f, err := d.Next()
		if err != nil {
			return out, err
		}
		out = append(out, decoded{f.Header, string(f.Payload)})
	}
}

// feed writes each piece to a fresh decoder, draining after every write,
// and returns the frames and the first error other than ErrNeedMore.
func feed(c Config, pieces ...[]byte) ([]decoded, error) {
	d := NewDecoder(c)
	var out []decoded
	for _, p := range pieces {
		d.Write(p)
		fs, err := drain(d)
		out = append(out, fs...)
		if err != ErrNeedMore {
			return out, err
		}
	}
	if d.Buffered() != 0 {
		return out, ErrShort // leftover partial frame
	}
	return out, nil
}

// wantDecoded is what a Decoder must return for vector v.
func wantDecoded(v frameVector) decoded {
	h := v.header
	h.Flags &^= FlagCompressed
	h.Length = uint32(len(v.payload))
	return decoded{h, string(v.payload)}
}

func TestDecoderVectors(t *testing.T) {
	c := DefaultConfig()
	for _, v := range frameVectors {
		t.Run(v.name, func(t *testing.T) {
			b := unhex(t, v.hex)
			want := []decoded{wantDecoded(v)}
			check := func(how string, got []decoded, err error) {
				t.Helper()
				if err != nil || len(got) != 1 || got[0] != want[0] {
					t.Fatalf("%s: got %+v, %v; want %+v", how, got, err, want)
				}
			}
			got, err := feed(c, b)
			check("whole", got, err)
			for i := 0; i <= len(b); i++ {
				got, err := feed(c, b[:i], b[i:])
				check("split", got, err)
			}
			pieces := make([][]byte, len(b))
			for i := range b {
				pieces[i] = b[i : i+1]
			}
			got, err = feed(c, pieces...)
			check("byte by byte", got, err)
		})
	}
}

func TestDecoderCoalesced(t *testing.T) {
	c := DefaultConfig()
	var stream []byte
	var want []decoded
	for _, v := range frameVectors {
		stream = append(stream, unhex(t, v.hex)...)
		want = append(want, wantDecoded(v))
	}
	check := func(how string, got []decoded, err error) {
		t.Helper()
		if err != nil || len(got) != len(want) {
			t.Fatalf("%s: %d frames, %v; want %d", how, len(got), err, len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: frame %d = %+v, want %+v", how, i, got[i], want[i])
			}
		}
	}
	got, err := feed(c, stream)
	check("one write", got, err)
	for i := 0; i <= len(stream); i++ {
		got, err := feed(c, stream[:i], stream[i:])
		check("two writes", got, err)
	}
	for size := 1; size <= 37; size++ {
		var pieces [][]byte
		for b := stream; len(b) > 0; {
			n := min(size, len(b))
			pieces = append(pieces, b[:n])
			b = b[n:]
		}
		got, err := feed(c, pieces...)
		check("pieces", got, err)
	}

	// Split over the same stream finds the same frames.
	var split []decoded
	for b := stream; len(b) > 0; {
		f, n, err := c.Split(b)
		if err != nil || n == 0 {
			t.Fatalf("Split: %d, %v", n, err)
		}
		p, err := c.Decompress(nil, f)
		if err != nil {
			t.Fatal(err)
		}
		if f.Flags&FlagCompressed != 0 {
			f.Flags &^= FlagCompressed
			f.Length = uint32(len(p))
		}
		split = append(split, decoded{f.Header, string(p)})
		b = b[n:]
	}
	check("Split", split, nil)
}

func TestDecoderStickyError(t *testing.T) {
	d := NewDecoder(DefaultConfig())
	good := AppendFrame(nil, Header{Cmd: CmdPing, Seq: 1}, nil)
	bad := AppendHeader(nil, Header{Cmd: CmdPing, Flags: 0x80})
	d.Write(append(good, bad...))
	if f, err := d.Next(); err != nil || f.Seq != 1 {
		t.Fatalf("first Next = %+v, %v", f, err)
	}
	for range 3 {
		if _, err := d.Next(); !errors.Is(err, ErrBadFlags) {
			t.Fatalf("Next = %v, want ErrBadFlags", err)
		}
	}
	d.Write(good)
	if _, err := d.Next(); !errors.Is(err, ErrBadFlags) {
		t.Fatalf("Next after Write = %v, want ErrBadFlags", err)
	}
	if d.Buffered() != 0 {
		t.Errorf("Buffered = %d after a fatal error", d.Buffered())
	}
}

func TestDecoderBufferBound(t *testing.T) {
	c := Config{MaxPayload: 1000}
	d := NewDecoder(c)
	frame := AppendFrame(nil, Header{Cmd: CmdBroadcast}, make([]byte, 1000))
	const read = 333
	stream := bytes.Repeat(frame, 20)
	for len(stream) > 0 {
		n := min(read, len(stream))
		d.Write(stream[:n])
		stream = stream[n:]
		if _, err := drain(d); err != ErrNeedMore {
			t.Fatal(err)
		}
		if limit := HeaderSize + 1000 + read; cap(d.buf) > 2*limit || len(d.buf) > limit {
			t.Fatalf("buffer len %d cap %d, limit %d", len(d.buf), cap(d.buf), limit)
		}
	}
	if d.Buffered() != 0 {
		t.Errorf("Buffered = %d", d.Buffered())
	}
}

func TestDecoderBuffered(t *testing.T) {
	d := NewDecoder(DefaultConfig())
	frame := AppendFrame(nil, Header{Cmd: CmdPing}, []byte("abc"))
	d.Write(frame[:5])
	if d.Buffered() != 5 {
		t.Errorf("Buffered = %d, want 5", d.Buffered())
	}
	if _, err := d.Next(); err != ErrNeedMore {
		t.Errorf("Next = %v, want ErrNeedMore", err)
	}
	d.Write(frame[5:])
	d.Write(frame)
	if d.Buffered() != 2*len(frame) {
		t.Errorf("Buffered = %d, want %d", d.Buffered(), 2*len(frame))
	}
	if _, err := d.Next(); err != nil {
		t.Fatal(err)
	}
	if d.Buffered() != len(frame) {
		t.Errorf("Buffered = %d, want %d", d.Buffered(), len(frame))
	}
}

func TestDecoderAllocs(t *testing.T) {
	c := DefaultConfig()
	plain := AppendFrame(nil, Header{Cmd: CmdBroadcast, Seq: 1}, make([]byte, 64))
	compressed := c.AppendFrame(nil, Header{Cmd: CmdBroadcast, Seq: 2}, repetitive)
	stream := append(append(plain, compressed...), plain...)
	d := NewDecoder(c)
	// Warm up: grow the buffer and the decompression scratch.
	d.Write(stream)
	if fs, err := drain(d); err != ErrNeedMore || len(fs) != 3 {
		t.Fatal(len(fs), err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		d.Write(stream)
		for range 3 {
			if _, err := d.Next(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := d.Next(); err != ErrNeedMore {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("warmed Decoder allocated %v times", allocs)
	}
}

// TestDecoderSetConfig: a new limit applies from the next frame on, to
// bytes already buffered too: raised between two frames of one write,
// the second (over the old limit) is returned; lowered, a buffered frame
// over the new limit is ErrTooLarge.
func TestDecoderSetConfig(t *testing.T) {
	small, large := Config{MaxPayload: 16}, Config{MaxPayload: 64}
	first := AppendFrame(nil, Header{Cmd: 1, Seq: 1}, []byte("sign in"))
	second := AppendFrame(nil, Header{Cmd: 2, Seq: 2}, bytes.Repeat([]byte("x"), 40))

	d := NewDecoder(small)
	d.Write(append(append([]byte(nil), first...), second...))
	if f, err := d.Next(); err != nil || f.Seq != 1 {
		t.Fatalf("first frame: %+v, %v", f.Header, err)
	}
	d.SetConfig(large)
	if f, err := d.Next(); err != nil || f.Seq != 2 || len(f.Payload) != 40 {
		t.Fatalf("second frame after raising the limit: %+v, %v", f.Header, err)
	}

	d = NewDecoder(large)
	d.Write(second[:HeaderSize])
	d.SetConfig(small)
	if _, err := d.Next(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a buffered header over the lowered limit: %v, want ErrTooLarge", err)
	}
}

func TestConfigPayloadLimit(t *testing.T) {
	for _, c := range []struct{ set, want uint32 }{
		{0, DefaultMaxPayload}, {1, 1}, {4096, 4096}, {MaxMaxPayload, MaxMaxPayload}, {MaxMaxPayload + 1, MaxMaxPayload},
	} {
		if got := (Config{MaxPayload: c.set}).PayloadLimit(); got != c.want {
			t.Errorf("MaxPayload %d: PayloadLimit() = %d, want %d", c.set, got, c.want)
		}
	}
}
