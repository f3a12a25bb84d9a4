package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/klauspost/compress/s2"
)

// fuzzConfig has a small limit so that fuzzing reaches ErrTooLarge.
var fuzzConfig = Config{MaxPayload: 4096, CompressThreshold: DefaultCompressThreshold}

// splitAll decodes data with Split and Decompress, the reference for the
// Decoder: it returns the frames (normalised as Decoder.Next returns them)
// and nil if data ends on a frame boundary, ErrNeedMore if it ends inside
// a frame, or the first fatal error.
func splitAll(c Config, data []byte) ([]decoded, error) {
	var out []decoded
	for len(data) > 0 {
		f, n, err := c.Split(data)
		if err != nil {
			return out, err
		}
		if n == 0 {
			return out, ErrNeedMore
		}
		p, err := c.Decompress(nil, f)
		if err != nil {
			return out, err
		}
		if f.Flags&FlagCompressed != 0 {
			f.Flags &^= FlagCompressed
			f.Length = uint32(len(p))
		}
		out = append(out, decoded{f.Header, string(p)})
		data = data[n:]
	}
	return out, nil
}

// decodeAll feeds the pieces to a fresh Decoder, draining after each, and
// returns what splitAll would.
func decodeAll(c Config, pieces ...[]byte) ([]decoded, error) {
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
		return out, ErrNeedMore
	}
	return out, nil
}

// splitOffsets returns the offsets at which FuzzDecodeFrame splits data in
// two: all of them for inputs up to 512 bytes. For larger ones, since each
// split decodes the whole input again, 128 evenly spaced offsets plus every
// offset within a header's length of the first 16 frame boundaries, where
// the interesting cases are.
func splitOffsets(data []byte, frames []decoded) []int {
	const all, spaced, boundaries = 512, 128, 16
	var offs []int
	if len(data) <= all {
		for i := 0; i <= len(data); i++ {
			offs = append(offs, i)
		}
		return offs
	}
	for i := 0; i <= len(data); i += len(data) / spaced {
		offs = append(offs, i)
	}
	boundary := 0
	for range min(len(frames)+1, boundaries) {
		for i := max(0, boundary-HeaderSize); i <= min(len(data), boundary+HeaderSize); i++ {
			offs = append(offs, i)
		}
		h, err := ConsumeHeader(data[boundary:])
		if err != nil || boundary+h.FrameSize() > len(data) {
			break
		}
		boundary += h.FrameSize()
	}
	return append(offs, len(data))
}

func sameDecoding(t *testing.T, how string, wantF []decoded, wantErr error, gotF []decoded, gotErr error) {
	t.Helper()
	if gotErr != wantErr || len(gotF) != len(wantF) {
		t.Fatalf("%s: %d frames, %v; want %d frames, %v", how, len(gotF), gotErr, len(wantF), wantErr)
	}
	for i := range wantF {
		if gotF[i] != wantF[i] {
			t.Fatalf("%s: frame %d = %+v, want %+v", how, i, gotF[i], wantF[i])
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	// The golden vectors are in testdata/fuzz/FuzzDecodeFrame. Add edge
	// cases the vectors do not cover.
	f.Add(AppendHeader(nil, Header{Length: 1 << 31, Cmd: CmdBroadcast}))
	f.Add(AppendHeader(nil, Header{Cmd: CmdPing, Flags: 0x03}))
	// An S2 block (repeat codes): not Snappy, but the decoder accepts it.
	f.Add(AppendFrame(nil, Header{Cmd: CmdBroadcast, Flags: FlagCompressed}, s2.Encode(nil, make([]byte, 5000))))
	f.Add(AppendFrame(nil, Header{Cmd: CmdBroadcast, Flags: FlagCompressed}, []byte{0x02, 0x08, 'a', 'b', 'c'}))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := fuzzConfig
		wantF, wantErr := splitAll(c, data)
		switch wantErr {
		case nil, ErrNeedMore, ErrTooLarge, ErrBadFlags, ErrCorrupt:
		default:
			t.Fatalf("unexpected error %v", wantErr)
		}

		gotF, gotErr := decodeAll(c, data)
		sameDecoding(t, "one write", wantF, wantErr, gotF, gotErr)
		for _, i := range splitOffsets(data, wantF) {
			gotF, gotErr := decodeAll(c, data[:i], data[i:])
			sameDecoding(t, "two writes", wantF, wantErr, gotF, gotErr)
		}
		if len(data) <= 512 {
			pieces := make([][]byte, len(data))
			for i := range data {
				pieces[i] = data[i : i+1]
			}
			gotF, gotErr := decodeAll(c, pieces...)
			sameDecoding(t, "byte by byte", wantF, wantErr, gotF, gotErr)
		}

		// Every decoded frame re-encodes to a frame that decodes the same,
		// and an uncompressed one to the same bytes.
		off := 0
		for _, fr := range wantF {
			h, _ := ConsumeHeader(data[off:])
			n := h.FrameSize()
			enc := c.AppendFrame(nil, fr.Header, []byte(fr.Payload))
			back, err := splitAll(c, enc)
			if err != nil || len(back) != 1 || back[0] != fr {
				t.Fatalf("re-encoded %+v as %x: %+v, %v", fr, enc, back, err)
			}
			if h.Flags&FlagCompressed == 0 {
				if plain := AppendFrame(nil, fr.Header, []byte(fr.Payload)); !bytes.Equal(plain, data[off:off+n]) {
					t.Fatalf("AppendFrame = %x, want %x", plain, data[off:off+n])
				}
			}
			off += n
		}
	})
}

func FuzzPayload(f *testing.F) {
	// The golden vectors are in testdata/fuzz/FuzzPayload.
	f.Add(AppendUvarint(nil, 1<<60))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range allMessages() {
			err := m.Consume(data)
			if err != nil {
				if !isCodecError(err) {
					t.Fatalf("%T.Consume: unexpected error %v", m, err)
				}
				if !reflect.DeepEqual(m, newLike(m)) {
					t.Fatalf("%T.Consume failed but modified the message", m)
				}
				continue
			}
			enc := m.Append(nil)
			if len(enc) != m.Size() {
				t.Fatalf("%T: Size %d, Append %d bytes", m, m.Size(), len(enc))
			}
			back := newLike(m)
			if err := back.Consume(enc); err != nil {
				t.Fatalf("%T: Consume(Append(%+v)) = %v", m, m, err)
			}
			if !reflect.DeepEqual(back, m) {
				t.Fatalf("%T: round trip %+v -> %+v", m, m, back)
			}
			if again := back.Append(nil); !bytes.Equal(again, enc) {
				t.Fatalf("%T: encoding not stable: %x then %x", m, enc, again)
			}
		}

		if v, n, err := ConsumeValue(data); err == nil {
			enc := AppendValue(nil, v)
			if len(enc) != SizeValue(v) || n < len(enc) {
				t.Fatalf("value %+v: Size %d, Append %d, consumed %d", v, SizeValue(v), len(enc), n)
			}
			if back, m, err := ConsumeValue(enc); err != nil || m != len(enc) || back != v {
				t.Fatalf("value %+v round trip: %+v, %v", v, back, err)
			}
			if _, err := ValueOf(v.Any()); err != nil {
				t.Fatalf("ValueOf(%+v.Any()) = %v", v, err)
			}
		} else if !isCodecError(err) {
			t.Fatalf("ConsumeValue: unexpected error %v", err)
		}

		if props, n, err := ConsumeProps(data); err == nil {
			enc := AppendProps(nil, props)
			if len(enc) != SizeProps(props) || n < len(enc) {
				t.Fatalf("props: Size %d, Append %d, consumed %d", SizeProps(props), len(enc), n)
			}
			if back, m, err := ConsumeProps(enc); err != nil || m != len(enc) || !reflect.DeepEqual(back, props) {
				t.Fatalf("props round trip: %+v, %v", back, err)
			}
		} else if !isCodecError(err) {
			t.Fatalf("ConsumeProps: unexpected error %v", err)
		}

		if l, n, err := ConsumeStringList(data); err == nil {
			enc := AppendStringList(nil, l)
			if len(enc) != SizeStringList(l) || n < len(enc) {
				t.Fatalf("string list: Size %d, Append %d, consumed %d", SizeStringList(l), len(enc), n)
			}
			if back, _, err := ConsumeStringList(enc); err != nil || !reflect.DeepEqual(back, l) {
				t.Fatalf("string list round trip: %q, %v", back, err)
			}
		} else if !isCodecError(err) {
			t.Fatalf("ConsumeStringList: unexpected error %v", err)
		}
	})
}

// isCodecError reports whether err is one of the payload codec's
// sentinels.
func isCodecError(err error) bool {
	for _, e := range []error{ErrShort, ErrTrailing, ErrBadValue, ErrCorrupt, ErrBadUTF8} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
