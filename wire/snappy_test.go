package wire

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/golang/snappy"
)

// The protocol's compressed payload is a Snappy block (PROTOCOL.md,
// "Compression"). These tests check Covey's codec against
// github.com/golang/snappy, an implementation independent of the
// klauspost/compress/s2 code the codec uses, and the one closest to what
// clients in other languages run: what Covey sends must decode with it, and
// what it encodes must be accepted.

// snappyPayload is one kind of payload for the compatibility tests.
type snappyPayload struct {
	name string
	gen  func(n int) []byte
	// compressible payloads must be sent compressed, so that a test over
	// them cannot pass by sending everything raw.
	compressible bool
}

var snappyPayloads = []snappyPayload{
	{"random", randomPayload, false},
	{"zeros", func(n int) []byte { return make([]byte, n) }, true},
	{"repeated text", func(n int) []byte { return bytes.Repeat([]byte("covey "), n/6+1)[:n] }, true},
	{"repeated row", benchPayload, true},
	{"game state", benchStatePayload, true},
	{"random with far repeats", farRepeatsPayload, true},
}

// randomPayload returns n pseudorandom bytes, the same for the same n.
func randomPayload(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// farRepeatsPayload returns n random bytes in which every other 1 KiB
// chunk repeats the one 100 KiB before it, so that an encoder finds matches
// at offsets past 64 KiB (Snappy's copy with a 4-byte offset), and every
// 512 bytes 128 bytes repeat the 128 before them, for near matches.
func farRepeatsPayload(n int) []byte {
	const chunk, far = 1 << 10, 100 << 10
	b := randomPayload(n)
	for i := far; i+chunk <= n; i += 2 * chunk {
		copy(b[i:i+chunk], b[i-far:])
	}
	for i := 0; i+256 <= n; i += 512 {
		copy(b[i+128:i+256], b[i:])
	}
	return b
}

// snappySizes are the payload sizes tested: the threshold, both sides of
// 64 KiB (Snappy's own encoder's fragment size, past which copies need
// 4-byte offsets), and the largest payload a Config may allow.
var snappySizes = []int{
	DefaultCompressThreshold, DefaultCompressThreshold + 1, 1000, 4 << 10, 16 << 10,
	64<<10 - 1, 64 << 10, 64<<10 + 1, 256 << 10, 1 << 20, MaxMaxPayload,
}

// maxConfig compresses from the default threshold and accepts the largest
// payloads.
var maxConfig = Config{MaxPayload: MaxMaxPayload, CompressThreshold: DefaultCompressThreshold}

func TestCompressedFramesAreSnappy(t *testing.T) {
	h := Header{Ver: 1, Cmd: 7, Flags: FlagPush}
	for _, kind := range snappyPayloads {
		for _, n := range snappySizes {
			if n > 1<<20 && (kind.name == "repeated row" || kind.name == "repeated text") {
				continue // as zeros, for the encoder; keeps the test quick
			}
			t.Run(fmt.Sprintf("%s/%d", kind.name, n), func(t *testing.T) {
				payload := kind.gen(n)
				frame := maxConfig.AppendFrame(nil, h, payload)
				f, m, err := maxConfig.Split(frame)
				if err != nil || m != len(frame) {
					t.Fatalf("Split = %d, %v", m, err)
				}
				if f.Flags&FlagCompressed == 0 {
					if kind.compressible {
						t.Fatalf("%d compressible bytes sent uncompressed", n)
					}
					return
				}
				if dl, err := snappy.DecodedLen(f.Payload); err != nil || dl != n {
					t.Fatalf("snappy.DecodedLen = %d, %v; want %d", dl, err, n)
				}
				got, err := snappy.Decode(nil, f.Payload)
				if err != nil {
					t.Fatalf("golang/snappy cannot decode the block Config.AppendFrame sent: %v", err)
				}
				if !bytes.Equal(got, payload) {
					t.Fatal("golang/snappy decoded the block to something else than the payload")
				}
			})
		}
	}
}

// TestCompressedVectorIsSnappy checks the compressed golden vectors of
// PROTOCOL.md with golang/snappy.
func TestCompressedVectorIsSnappy(t *testing.T) {
	for _, v := range frameVectors {
		if v.header.Flags&FlagCompressed == 0 {
			continue
		}
		got, err := snappy.Decode(nil, unhex(t, v.hex)[HeaderSize:])
		if err != nil || !bytes.Equal(got, v.payload) {
			t.Errorf("%s: golang/snappy.Decode = %q, %v", v.name, got, err)
		}
	}
}

// TestDecompressAcceptsSnappyBlocks sends blocks from golang/snappy's
// encoder, as a client in another language would, through both decoders.
func TestDecompressAcceptsSnappyBlocks(t *testing.T) {
	for _, kind := range snappyPayloads {
		for _, n := range []int{1, 100, DefaultCompressThreshold, 64 << 10, 1 << 20} {
			payload := kind.gen(n)
			frame := AppendFrame(nil, Header{Cmd: CmdBroadcast, Seq: 3, Flags: FlagCompressed}, snappy.Encode(nil, payload))
			f, _, err := maxConfig.Split(frame)
			if err != nil {
				t.Fatal(err)
			}
			if p, err := maxConfig.Decompress(nil, f); err != nil || !bytes.Equal(p, payload) {
				t.Errorf("%s/%d: Decompress: %v", kind.name, n, err)
			}
			d := NewDecoder(maxConfig)
			d.Write(frame)
			if g, err := d.Next(); err != nil || !bytes.Equal(g.Payload, payload) || g.Flags != 0 || g.Length != uint32(n) {
				t.Errorf("%s/%d: Decoder.Next = %+v, %v", kind.name, n, g.Header, err)
			}
		}
	}
}

// FuzzSnappy checks the codec against golang/snappy both ways: every block
// golang/snappy decodes, Decompress decodes to the same bytes (S2 is a
// superset of Snappy), and every block Config.AppendFrame sends, golang/snappy
// decodes to the payload.
func FuzzSnappy(f *testing.F) {
	f.Add(snappy.Encode(nil, repetitive))
	f.Add(snappy.Encode(nil, benchStatePayload(2000)))
	f.Add(repetitive)
	f.Fuzz(func(t *testing.T, data []byte) {
		c := fuzzConfig
		if n, err := snappy.DecodedLen(data); err == nil && n <= int(c.maxPayload()) {
			want, werr := snappy.Decode(nil, data)
			got, gerr := c.Decompress(nil, Frame{Header: Header{Flags: FlagCompressed}, Payload: data})
			switch {
			case werr == nil && (gerr != nil || !bytes.Equal(got, want)):
				t.Fatalf("golang/snappy decodes %x to %x, Decompress to %x, %v", data, want, got, gerr)
			case gerr != nil && !errors.Is(gerr, ErrCorrupt):
				t.Fatalf("Decompress(%x) = %v, want ErrCorrupt", data, gerr)
			}
		}
		if len(data) > int(c.maxPayload()) {
			data = data[:c.maxPayload()]
		}
		frame := c.AppendFrame(nil, Header{Cmd: CmdBroadcast}, data)
		if fr, _, err := c.Split(frame); err != nil {
			t.Fatal(err)
		} else if fr.Flags&FlagCompressed != 0 {
			if got, err := snappy.Decode(nil, fr.Payload); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Config.AppendFrame sent %x for %x; golang/snappy: %x, %v", fr.Payload, data, got, err)
			}
		}
	})
}
