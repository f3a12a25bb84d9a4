package wire

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// feeder checks what a Decoder returns against the frames splitAll found,
// comparing frame by frame instead of collecting them, and reuses one
// Decoder's buffers: FuzzDecodeFrame decodes each input hundreds of times,
// so a pass must cost little more than the bytes it copies.
type feeder struct {
	d       *Decoder
	buf     []byte // the decoder's buffers, kept when a fatal error drops them
	scratch []byte
	want    []decoded
	wantErr error
	k       int   // frames returned so far
	err     error // the error other than ErrNeedMore that ended decoding
}

// feed writes each piece to a fresh decoder, draining after every write
// as a connection does, and returns what is wrong ("" if nothing): the
// decoder must return the wanted frames, then the wanted error (nil if the
// input ends on a frame boundary, ErrNeedMore if it ends inside a frame).
func (fd *feeder) feed(pieces ...[]byte) string {
	fd.start()
	for _, p := range pieces {
		if msg := fd.write(p); msg != "" {
			return msg
		}
	}
	return fd.end()
}

// start resets the decoder to the state NewDecoder returns, keeping its
// buffers.
func (fd *feeder) start() {
	*fd.d = Decoder{cfg: fd.d.cfg, buf: fd.buf[:0], scratch: fd.scratch[:0]}
	fd.k, fd.err = 0, nil
}

// write writes p and drains the decoder, checking each frame. After a fatal
// error it writes nothing more.
func (fd *feeder) write(p []byte) string {
	if fd.err != nil {
		return ""
	}
	fd.d.Write(p)
	if cap(fd.d.buf) > cap(fd.buf) {
		fd.buf = fd.d.buf
	}
	for {
		f, err := fd.d.Next()
		if cap(fd.d.scratch) > cap(fd.scratch) {
			fd.scratch = fd.d.scratch
		}
		if err != nil {
			if err != ErrNeedMore {
				fd.err = err
			}
			return ""
		}
		if fd.k == len(fd.want) {
			return fmt.Sprintf("frame %d %+v; want %d frames, %v", fd.k, f.Header, len(fd.want), fd.wantErr)
		}
		if w := fd.want[fd.k]; f.Header != w.Header || string(f.Payload) != w.Payload {
			return fmt.Sprintf("frame %d = %+v, want %+v", fd.k, decoded{f.Header, string(f.Payload)}, w)
		}
		fd.k++
	}
}

// end checks the state at the end of the input.
func (fd *feeder) end() string {
	err := fd.err
	if err == nil && fd.d.Buffered() != 0 {
		err = ErrNeedMore
	}
	if err != fd.wantErr || fd.k != len(fd.want) {
		return fmt.Sprintf("%d frames, %v; want %d frames, %v", fd.k, err, len(fd.want), fd.wantErr)
	}
	return ""
}

// Bounds on the work of one fuzz input. Go's fuzzer minimizes every input
// that adds coverage, and reports no progress until that is done (for up
// to a minute). An input whose n bytes are all needed is tried with every
// range of bytes removed: about n*n/2 runs of the target. Without a bound,
// FuzzDecodeFrame stalled ~21 s for each 513-byte input it found (131k
// runs; 513 bytes took the path for inputs over 512), and FuzzPayload for
// the whole minute on a 2411-byte input none of whose bytes could go. At
// 256 bytes the worst case is 33k runs, under a second.
const (
	// fuzzMaxInput is the longest input FuzzDecodeFrame and FuzzPayload
	// check; they skip longer ones. Every frame and message shape fits in
	// far less.
	fuzzMaxInput = 256

	// fuzzSplitWork bounds the cost of FuzzDecodeFrame's two-write passes
	// over one input, in the units of splitOffsets (about 0.25 ns each).
	fuzzSplitWork = 32 << 10
)

// splitOffsets returns the offsets at which FuzzDecodeFrame splits data in
// two, as many as fuzzSplitWork allows. Each split decodes the whole input
// again: in units of about one byte copied, a pass costs 128, plus the
// input's length, 64 per frame and 4 per byte a compressed frame claims to
// decompress to. That allows every offset for inputs of up to about a
// hundred bytes in a few uncompressed frames. Otherwise it takes first the
// offsets where a Decoder's state differs, frame by frame: each length of
// a partial header, the first payload byte and the frame but its last
// byte; then offsets evenly spaced.
func splitOffsets(data []byte) []int {
	cost := 128 + len(data)
	for b := 0; ; {
		f, n, err := fuzzConfig.Split(data[b:])
		if err != nil || n == 0 {
			break
		}
		cost += 64
		if f.Flags&FlagCompressed != 0 {
			l, err := s2.DecodedLen(f.Payload)
			if err != nil || l > int(fuzzConfig.maxPayload()) {
				break // decoding stops here
			}
			cost += 4 * l
		}
		b += n
	}
	n := max(2*HeaderSize, fuzzSplitWork/cost)
	offs := make([]int, 0, n+2*HeaderSize)
	if n > len(data) {
		for i := 0; i <= len(data); i++ {
			offs = append(offs, i)
		}
		return offs
	}
	for b := 0; b < len(data) && len(offs) < n; {
		for i := b; i <= min(b+HeaderSize+1, len(data)); i++ {
			offs = append(offs, i)
		}
		h, err := ConsumeHeader(data[b:])
		if err != nil || b+h.FrameSize() > len(data) {
			break
		}
		b += h.FrameSize()
		offs = append(offs, b-1)
	}
	if left := n - len(offs); left > 0 {
		step := max(1, len(data)/left)
		for i := step / 2; i < len(data); i += step {
			offs = append(offs, i)
		}
	}
	return append(offs, len(data))
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
		if len(data) > fuzzMaxInput {
			return
		}
		c := fuzzConfig
		wantF, wantErr := splitAll(c, data)
		switch wantErr {
		case nil, ErrNeedMore, ErrTooLarge, ErrBadFlags, ErrCorrupt:
		default:
			t.Fatalf("unexpected error %v", wantErr)
		}

		fd := feeder{d: NewDecoder(c), want: wantF, wantErr: wantErr}
		if msg := fd.feed(data); msg != "" {
			t.Fatalf("one write: %s", msg)
		}
		for _, i := range splitOffsets(data) {
			if msg := fd.feed(data[:i], data[i:]); msg != "" {
				t.Fatalf("two writes at %d: %s", i, msg)
			}
		}
		fd.start()
		for i := range data {
			if msg := fd.write(data[i : i+1]); msg != "" {
				t.Fatalf("byte by byte: %s", msg)
			}
		}
		if msg := fd.end(); msg != "" {
			t.Fatalf("byte by byte: %s", msg)
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
		if len(data) > fuzzMaxInput {
			return
		}
		for _, m := range allMessages() {
			err := m.Consume(data)
			if err != nil {
				if !isCodecError(err) {
					t.Fatalf("%T.Consume: unexpected error %v", m, err)
				}
				if !reflect.ValueOf(m).Elem().IsZero() {
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

// FuzzMesh decodes its input, but the first byte, as the mesh message that
// byte picks (its index in meshMessages, modulo their number): a failed
// Consume must return a codec error and leave the message zero; a
// successful one must re-encode to Size bytes that decode to the same
// message and encode again to the same bytes. On every input,
// ConsumeFanout must agree with Fanout.Consume.
func FuzzMesh(f *testing.F) {
	// The golden vectors are in testdata/fuzz/FuzzMesh, each after its
	// message's index. Add edge cases they do not cover.
	f.Add(append([]byte{1}, (&PeerHello{Nonce: make([]byte, 31)}).Append(nil)...))
	f.Add(append([]byte{2}, (&PeerHelloReply{Hello: PeerHello{Nonce: make([]byte, 32)}, Proof: make([]byte, 33)}).Append(nil)...))
	f.Add([]byte{6, 0x00, 0, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 0x00})
	f.Add([]byte{6, 0x00, 0, 0, 0, 0, 0x02, 0x01, 'a', 0x01, 0xff, 0x00})
	f.Add([]byte{15, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || len(data) > fuzzMaxInput {
			return
		}
		msgs := meshMessages()
		m, payload := msgs[int(data[0])%len(msgs)], data[1:]

		var fo Fanout
		ferr := fo.Consume(payload)
		v, verr := ConsumeFanout(payload)
		if verr != ferr {
			t.Fatalf("ConsumeFanout = %v, Fanout.Consume = %v", verr, ferr)
		}
		if ferr == nil {
			if string(v.SessionID) != fo.SessionID || v.Epoch != fo.Epoch || !bytes.Equal(v.Frame, fo.Frame) ||
				v.Targets.Len() != len(fo.Targets) {
				t.Fatalf("ConsumeFanout = %+v, Fanout.Consume = %+v", v, fo)
			}
			for i := 0; ; i++ {
				uid, ok := v.Targets.Next()
				if !ok {
					break
				}
				if string(uid) != fo.Targets[i] {
					t.Fatalf("target %d = %q, want %q", i, uid, fo.Targets[i])
				}
			}
		}

		var ex Exec
		xerr := ex.Consume(payload)
		if xv, ok := ConsumeExecView(payload); ok {
			if xerr != nil || len(ex.Caller.Data) != 0 || string(xv.SessionID) != ex.SessionID || xv.Epoch != ex.Epoch ||
				string(xv.UID) != ex.Caller.UID || string(xv.SID) != ex.Caller.SID || xv.Gen != ex.Caller.Gen ||
				xv.Op != ex.Op || !bytes.Equal(xv.Payload, ex.Payload) {
				t.Fatalf("ConsumeExecView = %+v, Exec.Consume = %+v, %v", xv, ex, xerr)
			}
		} else if xerr == nil && len(ex.Caller.Data) == 0 && ex.Caller.Size()+SizeString(ex.SessionID)+6+SizeBytes(ex.Payload) == len(payload) {
			t.Fatalf("ConsumeExecView refused %x, which Exec.Consume took as %+v", payload, ex)
		}

		if err := m.Consume(payload); err != nil {
			if !isCodecError(err) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%T.Consume: unexpected error %v", m, err)
			}
			if !reflect.ValueOf(m).Elem().IsZero() {
				t.Fatalf("%T.Consume failed but modified the message", m)
			}
			return
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
	})
}

// TestMeshFuzzSeedCorpus checks that every mesh vector is a FuzzMesh seed,
// prefixed by its message's index in meshMessages; run with
// -update-corpus to write them.
func TestMeshFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzMesh")
	for _, v := range meshVectors {
		b := append([]byte{byte(meshIndex(t, v.msg))}, unhex(t, v.hex)...)
		path := filepath.Join(dir, seedName(v.name))
		want := seedFile(b)
		if *updateCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v (run go test ./wire/ -run TestMeshFuzzSeedCorpus -args -update-corpus)", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale (run go test ./wire/ -run TestMeshFuzzSeedCorpus -args -update-corpus)", path)
		}
	}
}
