package wire

import (
	"bytes"
	"fmt"
	"testing"
)

// benchPayload returns n bytes of JSON-like text, compressible as real
// game payloads are.
func benchPayload(n int) []byte {
	row := []byte(`{"id":"p1","x":120,"y":-42,"hp":97,"state":"run"},`)
	return bytes.Repeat(row, n/len(row)+1)[:n]
}

// BenchmarkFrameEncode appends one request frame with a 64-byte payload
// into a reused buffer. Sub-benchmarks: other sizes, with and without
// compression, and the broadcast push frame.
func BenchmarkFrameEncode(b *testing.B) {
	h := Header{Cmd: CmdBroadcast, Seq: 42}
	run := func(b *testing.B, c Config, payload []byte) {
		buf := make([]byte, 0, 2*len(payload)+64)
		b.ReportAllocs()
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			buf = c.AppendFrame(buf[:0], h, payload)
		}
	}
	run(b, Config{}, benchPayload(64))
	for _, size := range []int{64, 1024, 16 << 10} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) { run(b, Config{}, benchPayload(size)) })
		b.Run(fmt.Sprintf("size=%d/s2", size), func(b *testing.B) { run(b, DefaultConfig(), benchPayload(size)) })
	}
	b.Run("push", func(b *testing.B) {
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

// BenchmarkFrameDecode decodes one frame with a 64-byte payload: the
// top-level benchmark with Split (the gnet path), sub-benchmarks with a
// Decoder (the KCP path) and, for larger sizes, compressed frames.
func BenchmarkFrameDecode(b *testing.B) {
	h := Header{Cmd: CmdBroadcast, Seq: 42}
	split := func(b *testing.B, c Config, frame []byte, size int) {
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
	decoder := func(b *testing.B, c Config, frame []byte, size int) {
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
	c := DefaultConfig()
	split(b, c, AppendFrame(nil, h, benchPayload(64)), 64)
	for _, size := range []int{64, 1024, 16 << 10} {
		plain := AppendFrame(nil, h, benchPayload(size))
		b.Run(fmt.Sprintf("split/size=%d", size), func(b *testing.B) { split(b, c, plain, size) })
		b.Run(fmt.Sprintf("decoder/size=%d", size), func(b *testing.B) { decoder(b, c, plain, size) })
		if size >= DefaultCompressThreshold {
			packed := c.AppendFrame(nil, h, benchPayload(size))
			b.Run(fmt.Sprintf("split/size=%d/s2", size), func(b *testing.B) { split(b, c, packed, size) })
			b.Run(fmt.Sprintf("decoder/size=%d/s2", size), func(b *testing.B) { decoder(b, c, packed, size) })
		}
	}
}
