package wire

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/s2"
)

func TestFrameVectors(t *testing.T) {
	c := DefaultConfig()
	for _, v := range frameVectors {
		t.Run(v.name, func(t *testing.T) {
			wire := unhex(t, v.hex)

			// Encode. A compressed vector shows one valid Snappy block, the
			// one s2.EncodeSnappy's amd64 assembly produces; its pure-Go
			// version (-tags noasm, other architectures) produces another,
			// so ours must decode to the same frame rather than match byte
			// for byte.
			if v.header.Flags&FlagCompressed != 0 {
				h := v.header
				h.Flags &^= FlagCompressed
				got := c.AppendFrame(nil, h, v.payload)
				f, n, err := c.Split(got)
				if err != nil || n != len(got) || f.Flags != v.header.Flags || f.Seq != h.Seq || f.Cmd != h.Cmd || f.Ver != h.Ver {
					t.Fatalf("Config.AppendFrame = %x: %+v, %v", got, f.Header, err)
				}
				if p, err := c.Decompress(nil, f); err != nil || !bytes.Equal(p, v.payload) {
					t.Fatalf("Config.AppendFrame = %x does not decode to the payload: %v", got, err)
				}
				if !bytes.Equal(got, wire) {
					t.Logf("this encoder produced %x, a different valid encoding", got)
				}
				// The vector with the compressed payload as is.
				if again := AppendFrame(nil, v.header, wire[HeaderSize:]); !bytes.Equal(again, wire) {
					t.Errorf("AppendFrame = %x, want %x", again, wire)
				}
			} else {
				got := AppendFrame(nil, v.header, v.payload)
				if !bytes.Equal(got, wire) {
					t.Fatalf("encoded %x\nwant    %x", got, wire)
				}
				if again := c.AppendFrame(nil, v.header, v.payload); !bytes.Equal(again, got) {
					t.Errorf("Config.AppendFrame = %x, want %x (small payloads are not compressed)", again, got)
				}
			}
			if h := AppendHeader(nil, v.header); !bytes.Equal(h, wire[:HeaderSize]) {
				t.Errorf("AppendHeader = %x, want %x", h, wire[:HeaderSize])
			}

			// Decode.
			h, err := ConsumeHeader(wire)
			if err != nil || h != v.header {
				t.Fatalf("ConsumeHeader = %+v, %v; want %+v", h, err, v.header)
			}
			f, n, err := c.Split(wire)
			if err != nil || n != len(wire) || f.Header != v.header {
				t.Fatalf("Split = %+v, %d, %v", f.Header, n, err)
			}
			if len(f.Payload) > 0 && &f.Payload[0] != &wire[HeaderSize] {
				t.Error("Split copied the payload")
			}
			p, err := c.Decompress(nil, f)
			if err != nil || !bytes.Equal(p, v.payload) {
				t.Fatalf("Decompress = %q, %v; want %q", p, err, v.payload)
			}
			if v.msg != nil {
				m := newLike(v.msg)
				if err := m.Consume(p); err != nil || !reflect.DeepEqual(m, v.msg) {
					t.Errorf("payload = %+v, %v; want %+v", m, err, v.msg)
				}
			}

			// Every strict prefix is incomplete, not an error.
			for i := range len(wire) {
				if f, n, err := c.Split(wire[:i]); n != 0 || err != nil || f.Payload != nil {
					t.Fatalf("Split(prefix %d) = %d, %v", i, n, err)
				}
				if _, err := ConsumeHeader(wire[:min(i, HeaderSize-1)]); !errors.Is(err, ErrShort) {
					t.Fatalf("ConsumeHeader(prefix %d) = %v, want ErrShort", i, err)
				}
			}
		})
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	h := Header{Length: 0xDEADBEEF, Ver: 0xFE, Cmd: 0xF00D, Flags: FlagReply | FlagCompressed, Seq: 0xCAFEBABE, Status: 0xBEEF}
	b := AppendHeader(nil, h)
	if len(b) != HeaderSize {
		t.Fatalf("len = %d", len(b))
	}
	if want := unhex(t, "deadbeef fe f00d 05 cafebabe beef"); !bytes.Equal(b, want) {
		t.Errorf("AppendHeader = %x, want %x", b, want)
	}
	got, err := ConsumeHeader(b)
	if err != nil || got != h {
		t.Errorf("ConsumeHeader = %+v, %v", got, err)
	}
	if h.FrameSize() != HeaderSize+0xDEADBEEF {
		t.Errorf("FrameSize = %d", h.FrameSize())
	}
}

func TestBadFlags(t *testing.T) {
	for f := 0; f < 256; f++ {
		b := AppendHeader(nil, Header{Cmd: CmdPing, Flags: Flags(f)})
		_, err := ConsumeHeader(b)
		valid := f&^0x07 == 0 && f&0x03 != 0x03
		if valid != (err == nil) {
			t.Errorf("flags %#02x: err = %v, valid = %v", f, err, valid)
		}
		if err != nil && !errors.Is(err, ErrBadFlags) {
			t.Errorf("flags %#02x: err = %v, want ErrBadFlags", f, err)
		}
		if _, _, err2 := DefaultConfig().Split(b); err2 != err {
			t.Errorf("flags %#02x: Split err = %v, want %v", f, err2, err)
		}
	}
}

func TestSplitTooLargeWithHeaderOnly(t *testing.T) {
	for _, tc := range []struct {
		cfg   Config
		limit uint32
	}{
		{DefaultConfig(), DefaultMaxPayload},
		{Config{}, DefaultMaxPayload},
		{Config{MaxPayload: 100}, 100},
		{Config{MaxPayload: 1 << 30}, MaxMaxPayload},
	} {
		ok := AppendHeader(nil, Header{Length: tc.limit, Cmd: CmdBroadcast})
		if f, n, err := tc.cfg.Split(ok); err != nil || n != 0 || f.Payload != nil {
			t.Errorf("%+v: Split(Length = limit) = %d, %v; want incomplete", tc.cfg, n, err)
		}
		big := AppendHeader(nil, Header{Length: tc.limit + 1, Cmd: CmdBroadcast})
		if _, n, err := tc.cfg.Split(big); !errors.Is(err, ErrTooLarge) || n != 0 {
			t.Errorf("%+v: Split(Length = limit+1) = %d, %v; want ErrTooLarge", tc.cfg, n, err)
		}
		d := NewDecoder(tc.cfg)
		d.Write(big)
		if _, err := d.Next(); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%+v: Decoder.Next = %v, want ErrTooLarge", tc.cfg, err)
		}
	}
	// The maximum itself is accepted.
	c := Config{MaxPayload: 100}
	frame := AppendFrame(nil, Header{Cmd: CmdBroadcast}, make([]byte, 100))
	if _, n, err := c.Split(frame); err != nil || n != len(frame) {
		t.Errorf("Split(100-byte payload) = %d, %v", n, err)
	}
}

func TestSplitClipsPayload(t *testing.T) {
	two := AppendFrame(nil, Header{Cmd: CmdPing}, []byte("ab"))
	two = AppendFrame(two, Header{Cmd: CmdPing}, []byte("cd"))
	f, n, err := DefaultConfig().Split(two)
	if err != nil || string(f.Payload) != "ab" {
		t.Fatalf("Split = %q, %v", f.Payload, err)
	}
	_ = append(f.Payload, 'X')
	if g, _, _ := DefaultConfig().Split(two[n:]); g.Length != 2 || string(g.Payload) != "cd" {
		t.Errorf("appending to a payload overwrote the next frame: %x", two)
	}
}

func TestCompression(t *testing.T) {
	text := bytes.Repeat([]byte(`{"player":"alice","x":12,"y":-4,"hp":100},`), 40) // ~1.7 KB of JSON
	random := make([]byte, 4096)
	rand.Read(random)
	h := Header{Ver: 1, Cmd: 7, Flags: FlagPush}

	for _, tc := range []struct {
		name       string
		cfg        Config
		payload    []byte
		compressed bool
	}{
		{"json", DefaultConfig(), text, true},
		{"threshold exactly", Config{CompressThreshold: 600}, repetitive, true},
		{"below threshold", Config{CompressThreshold: 601}, repetitive, false},
		{"below minimum threshold", Config{CompressThreshold: 1}, repetitive[:511], false},
		{"minimum threshold enforced", Config{CompressThreshold: 1}, repetitive[:512], true},
		{"disabled", Config{}, text, false},
		{"negative threshold", Config{CompressThreshold: -1}, text, false},
		{"incompressible", DefaultConfig(), random, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.cfg.AppendFrame([]byte("prefix"), h, tc.payload)
			if string(b[:6]) != "prefix" {
				t.Fatal("AppendFrame clobbered dst")
			}
			b = b[6:]
			f, n, err := tc.cfg.Split(b)
			if err != nil || n != len(b) {
				t.Fatalf("Split = %d, %v (len %d)", n, err, len(b))
			}
			if got := f.Flags&FlagCompressed != 0; got != tc.compressed {
				t.Fatalf("compressed = %v, want %v", got, tc.compressed)
			}
			if tc.compressed && len(f.Payload) >= len(tc.payload) {
				t.Errorf("compressed %d bytes to %d", len(tc.payload), len(f.Payload))
			}
			if !tc.compressed && !bytes.Equal(f.Payload, tc.payload) {
				t.Error("uncompressed payload differs")
			}
			if f.Flags&^FlagCompressed != h.Flags || f.Ver != h.Ver || f.Cmd != h.Cmd {
				t.Errorf("header = %+v", f.Header)
			}
			p, err := tc.cfg.Decompress(nil, f)
			if err != nil || !bytes.Equal(p, tc.payload) {
				t.Fatalf("Decompress: %v", err)
			}
		})
	}
}

func TestCompressPrecompressed(t *testing.T) {
	// A payload sent with FlagCompressed already set is written as is.
	block := snappy.Encode(nil, repetitive)
	h := Header{Ver: 1, Cmd: 9, Flags: FlagPush | FlagCompressed}
	got := DefaultConfig().AppendFrame(nil, h, block)
	if want := AppendFrame(nil, h, block); !bytes.Equal(got, want) {
		t.Errorf("precompressed payload re-encoded: %x", got)
	}
}

// TestCompressAppendsInPlace checks that Config.FrameReserve is enough
// spare capacity for Config.AppendFrame not to allocate, whether the
// block is much smaller than the payload, about as large, or not smaller
// (random: sent raw), and that Decompress fills a large enough dst.
func TestCompressAppendsInPlace(t *testing.T) {
	c := maxConfig
	for _, p := range []struct {
		name    string
		payload []byte
	}{
		{"repetitive", repetitive},
		{"state 4 KiB", benchStatePayload(4 << 10)},
		{"snapshot 1 KiB", benchSnapshotPayload(1 << 10)},
		{"random 4 KiB", randomPayload(4 << 10)},
		{"far repeats 256 KiB", farRepeatsPayload(256 << 10)},
	} {
		t.Run(p.name, func(t *testing.T) {
			dst := make([]byte, 0, c.FrameReserve(len(p.payload)))
			allocs := testing.AllocsPerRun(20, func() {
				dst = c.AppendFrame(dst[:0], Header{Cmd: CmdBroadcast}, p.payload)
			})
			if allocs != 0 {
				t.Errorf("Config.AppendFrame into a large enough dst allocated %v times", allocs)
			}
			scratch := make([]byte, 0, len(p.payload))
			f, _, _ := c.Split(dst)
			allocs = testing.AllocsPerRun(20, func() {
				out, err := c.Decompress(scratch, f)
				if err != nil || !bytes.Equal(out, p.payload) {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("Decompress into a large enough dst allocated %v times", allocs)
			}
		})
	}
}

func TestFrameReserve(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		n    int
		want int
	}{
		{"no compression", Config{}, 4096, HeaderSize + 4096},
		{"below the threshold", DefaultConfig(), DefaultCompressThreshold - 1, HeaderSize + DefaultCompressThreshold - 1},
		{"below a raised threshold", Config{CompressThreshold: 1000}, 999, HeaderSize + 999},
		{"compressed", DefaultConfig(), 4096, HeaderSize + s2.MaxEncodedLen(4096)},
		{"empty", DefaultConfig(), 0, HeaderSize},
	} {
		if got := tc.cfg.FrameReserve(tc.n); got != tc.want {
			t.Errorf("%s: FrameReserve(%d) = %d, want %d", tc.name, tc.n, got, tc.want)
		}
	}
}

func TestDecompressErrors(t *testing.T) {
	c := Config{MaxPayload: 1000}
	bomb := snappy.Encode(nil, make([]byte, 1001)) // 1001 zero bytes: a few bytes on the wire
	for _, tc := range []struct {
		name    string
		payload []byte
		want    error
	}{
		{"bomb", bomb, ErrTooLarge},
		{"huge declared length", binary.AppendUvarint(nil, 1<<31), ErrTooLarge},
		{"empty", nil, ErrCorrupt},
		{"bad length varint", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ErrCorrupt},
		{"truncated block", snappy.Encode(nil, repetitive)[:8], ErrCorrupt},
		{"literal longer than declared", []byte{0x02, 0x08, 'a', 'b', 'c'}, ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame := AppendFrame(nil, Header{Cmd: CmdBroadcast, Flags: FlagCompressed}, tc.payload)
			f, n, err := c.Split(frame)
			if err != nil || n == 0 {
				t.Fatalf("Split = %d, %v", n, err)
			}
			if _, err := c.Decompress(nil, f); !errors.Is(err, tc.want) {
				t.Errorf("Decompress = %v, want %v", err, tc.want)
			}
			d := NewDecoder(c)
			d.Write(frame)
			if _, err := d.Next(); !errors.Is(err, tc.want) {
				t.Errorf("Decoder.Next = %v, want %v", err, tc.want)
			}
		})
	}
	if len(bomb) > 100 {
		t.Errorf("bomb is %d bytes", len(bomb))
	}
}

func TestFrameAllocs(t *testing.T) {
	c := DefaultConfig()
	payload := make([]byte, 64)
	h := Header{Cmd: CmdBroadcast, Seq: 42}
	buf := make([]byte, 0, 1024)
	frame := AppendFrame(nil, h, payload)
	for name, fn := range map[string]func(){
		"AppendFrame":        func() { buf = AppendFrame(buf[:0], h, payload) },
		"Config.AppendFrame": func() { buf = c.AppendFrame(buf[:0], h, payload) },
		"AppendHeader":       func() { buf = AppendHeader(buf[:0], h) },
		"ConsumeHeader": func() {
			if _, err := ConsumeHeader(frame); err != nil {
				t.Fatal(err)
			}
		},
		"Split": func() {
			if _, n, err := c.Split(frame); err != nil || n == 0 {
				t.Fatal(err)
			}
		},
		"Split error": func() {
			if _, _, err := c.Split([]byte("\xff\xff\xff\xff\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00")); err == nil {
				t.Fatal("no error")
			}
		},
	} {
		if allocs := testing.AllocsPerRun(1000, fn); allocs != 0 {
			t.Errorf("%s allocated %v times", name, allocs)
		}
	}
}
