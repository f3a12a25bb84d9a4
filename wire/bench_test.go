package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchPayload returns n bytes of JSON-like text, one row repeated: the
// best case for compression.
func benchPayload(n int) []byte {
	row := []byte(`{"id":"p1","x":120,"y":-42,"hp":97,"state":"run"},`)
	return bytes.Repeat(row, n/len(row)+1)[:n]
}

// benchStatePayload returns n bytes of JSON game state whose rows differ in
// their numbers, as a snapshot of many players does: repeated keys,
// varying values.
func benchStatePayload(n int) []byte {
	r := rand.New(rand.NewPCG(7, 7))
	states := []string{"idle", "run", "jump", "dead"}
	var b []byte
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, `{"id":"p%d","x":%d,"y":%d,"hp":%d,"state":%q},`,
			i, r.IntN(2000)-1000, r.IntN(2000)-1000, r.IntN(101), states[r.IntN(len(states))])
	}
	return b[:n]
}

// benchSnapshotPayload returns n bytes of a binary entity snapshot, the
// compact encoding a game would send: per entity a big-endian u32 ID, two
// i16 coordinates, a u8 health and a u8 state.
func benchSnapshotPayload(n int) []byte {
	r := rand.New(rand.NewPCG(7, 7))
	var b []byte
	for i := uint32(1000); len(b) < n; i++ {
		b = binary.BigEndian.AppendUint32(b, i)
		b = binary.BigEndian.AppendUint16(b, uint16(r.IntN(2000)-1000))
		b = binary.BigEndian.AppendUint16(b, uint16(r.IntN(2000)-1000))
		b = append(b, byte(r.IntN(101)), byte(r.IntN(4)))
	}
	return b[:n]
}

// Frame benchmarks. BenchmarkFrameEncode and BenchmarkFrameDecode are the
// headline numbers for a 64-byte payload; the Sizes variants cover larger
// payloads, compression, the Decoder and the broadcast push.

var benchHeader = Header{Cmd: CmdBroadcast, Seq: 42}

// benchEncode appends one frame to a reused buffer and reports the
// frame's size on the wire as frame-B, so that compression ratio and
// speed are read off the same run.
func benchEncode(b *testing.B, c Config, payload []byte) {
	buf := make([]byte, 0, 2*len(payload)+64)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		buf = c.AppendFrame(buf[:0], benchHeader, payload)
	}
	b.ReportMetric(float64(len(buf)), "frame-B")
}

// benchSplit decodes frame with Split and Decompress, the gnet path.
func benchSplit(b *testing.B, c Config, frame []byte, size int) {
	var scratch []byte
	b.ReportAllocs()
	b.SetBytes(int64(size))
	for b.Loop() {
		f, n, err := c.Split(frame)
		if err != nil || n != len(frame) {
			b.Fatal(n, err)
		}
		p, err := c.Decompress(scratch, f)
		if err != nil || len(p) != size {
			b.Fatal(err)
		}
		if cap(p) > cap(scratch) {
			scratch = p[:0]
		}
	}
}

// benchDecoder writes frame to a Decoder and reads it back, the KCP path.
func benchDecoder(b *testing.B, c Config, frame []byte, size int) {
	d := NewDecoder(c)
	b.ReportAllocs()
	b.SetBytes(int64(size))
	for b.Loop() {
		d.Write(frame)
		if f, err := d.Next(); err != nil || len(f.Payload) != size {
			b.Fatal(err)
		}
	}
}

// BenchmarkFrameEncode appends one frame with a 64-byte payload to a
// reused buffer.
func BenchmarkFrameEncode(b *testing.B) {
	benchEncode(b, DefaultConfig(), benchPayload(64))
}

// BenchmarkFrameDecode splits one frame with a 64-byte payload out of a
// buffer and gets its payload, as the gnet front end does.
func BenchmarkFrameDecode(b *testing.B) {
	benchSplit(b, DefaultConfig(), AppendFrame(nil, benchHeader, benchPayload(64)), 64)
}

func BenchmarkFrameEncodeSizes(b *testing.B) {
	for _, size := range []int{64, 1024, 16 << 10} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) { benchEncode(b, Config{}, benchPayload(size)) })
		if size >= DefaultCompressThreshold {
			b.Run(fmt.Sprintf("size=%d/compressed", size), func(b *testing.B) { benchEncode(b, DefaultConfig(), benchPayload(size)) })
			b.Run(fmt.Sprintf("size=%d/compressed/state", size), func(b *testing.B) {
				benchEncode(b, DefaultConfig(), benchStatePayload(size))
			})
			b.Run(fmt.Sprintf("size=%d/compressed/snapshot", size), func(b *testing.B) {
				benchEncode(b, DefaultConfig(), benchSnapshotPayload(size))
			})
		}
	}
	b.Run("push/size=64", func(b *testing.B) {
		msg := benchPayload(64)
		buf := make([]byte, 0, 256)
		sid := "0b7a3c2e-6f1d-4d8a-9c43-1f2e3d4c5b6a@node-1"
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			buf = AppendMessagePushFrame(buf[:0], CmdBroadcastReceived, 1, sid, "alice", msg)
		}
	})
}

func BenchmarkFrameDecodeSizes(b *testing.B) {
	c := DefaultConfig()
	for _, size := range []int{64, 1024, 16 << 10} {
		plain := AppendFrame(nil, benchHeader, benchPayload(size))
		b.Run(fmt.Sprintf("split/size=%d", size), func(b *testing.B) { benchSplit(b, c, plain, size) })
		b.Run(fmt.Sprintf("decoder/size=%d", size), func(b *testing.B) { benchDecoder(b, c, plain, size) })
		if size >= DefaultCompressThreshold {
			packed := c.AppendFrame(nil, benchHeader, benchPayload(size))
			b.Run(fmt.Sprintf("split/size=%d/compressed", size), func(b *testing.B) { benchSplit(b, c, packed, size) })
			b.Run(fmt.Sprintf("decoder/size=%d/compressed", size), func(b *testing.B) { benchDecoder(b, c, packed, size) })
			state := c.AppendFrame(nil, benchHeader, benchStatePayload(size))
			b.Run(fmt.Sprintf("split/size=%d/compressed/state", size), func(b *testing.B) { benchSplit(b, c, state, size) })
		}
	}
}
