package wire

import (
	"bytes"
	"encoding/binary"
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

// errSpecCorrupt is specDecode's only error.
var errSpecCorrupt = errors.New("specDecode: corrupt block")

// specDecode decodes a Snappy block following PROTOCOL.md's "Snappy block
// format" and nothing else, as a client author would from the document
// alone; the tests hold it to golang/snappy, so the document cannot drift
// from Snappy. It also counts the elements of each kind (index tag&3:
// literal, copy with a 1-, 2- and 4-byte offset). It rejects a declared
// length over limit before decoding.
func specDecode(block []byte, limit int) (out []byte, kinds [4]int, err error) {
	n, k := binary.Uvarint(block)
	if k <= 0 || k > 5 || n > 1<<32-1 || n > uint64(limit) {
		return nil, kinds, errSpecCorrupt
	}
	out = make([]byte, 0, n)
	b := block[k:]
	for len(b) > 0 {
		tag := b[0]
		kinds[tag&3]++
		var length, offset int
		switch tag & 3 {
		case 0: // literal
			length, b = int(tag>>2)+1, b[1:]
			if extra := length - 60; extra > 0 { // 1 to 4 length bytes
				if len(b) < extra {
					return nil, kinds, errSpecCorrupt
				}
				var l uint64
				for i := range extra {
					l |= uint64(b[i]) << (8 * i)
				}
				length, b = int(l)+1, b[extra:]
			}
			if length > len(b) || length > int(n)-len(out) {
				return nil, kinds, errSpecCorrupt
			}
			out, b = append(out, b[:length]...), b[length:]
			continue
		case 1: // copy, 1-byte offset
			if len(b) < 2 {
				return nil, kinds, errSpecCorrupt
			}
			length, offset, b = 4+int(tag>>2&7), int(tag>>5)<<8|int(b[1]), b[2:]
		case 2: // copy, 2-byte offset
			if len(b) < 3 {
				return nil, kinds, errSpecCorrupt
			}
			length, offset, b = int(tag>>2)+1, int(binary.LittleEndian.Uint16(b[1:])), b[3:]
		case 3: // copy, 4-byte offset
			if len(b) < 5 {
				return nil, kinds, errSpecCorrupt
			}
			length, offset, b = int(tag>>2)+1, int(binary.LittleEndian.Uint32(b[1:])), b[5:]
		}
		if offset == 0 || offset > len(out) || length > int(n)-len(out) {
			return nil, kinds, errSpecCorrupt
		}
		for range length { // byte by byte: the source may overlap
			out = append(out, out[len(out)-offset])
		}
	}
	if len(out) != int(n) {
		return nil, kinds, errSpecCorrupt
	}
	return out, kinds, nil
}

// TestSnappyBlockVectors checks PROTOCOL.md's Snappy block examples
// against golang/snappy, specDecode, Config.Decompress and the Decoder;
// every strict prefix of a valid block is corrupt to all of them.
func TestSnappyBlockVectors(t *testing.T) {
	c := DefaultConfig()
	decompress := func(block []byte) ([]byte, error) {
		return c.Decompress(nil, Frame{Header: Header{Flags: FlagCompressed}, Payload: block})
	}
	for _, v := range blockVectors {
		t.Run(v.name, func(t *testing.T) {
			block := unhex(t, v.hex)
			ref, rerr := snappy.Decode(nil, block)
			spec, kinds, serr := specDecode(block, DefaultMaxPayload)
			ours, oerr := decompress(block)
			d := NewDecoder(c)
			d.Write(AppendFrame(nil, Header{Cmd: CmdBroadcast, Flags: FlagCompressed}, block))
			f, derr := d.Next()
			if v.decoded == nil {
				if rerr == nil || serr == nil || !errors.Is(oerr, ErrCorrupt) || !errors.Is(derr, ErrCorrupt) {
					t.Fatalf("corrupt block accepted: golang/snappy %v, specDecode %v, Decompress %v, Decoder %v",
						rerr, serr, oerr, derr)
				}
				return
			}
			for _, got := range []struct {
				who string
				out []byte
				err error
			}{{"golang/snappy", ref, rerr}, {"specDecode", spec, serr}, {"Decompress", ours, oerr}, {"Decoder", f.Payload, derr}} {
				if got.err != nil || !bytes.Equal(got.out, v.decoded) {
					t.Errorf("%s = %q, %v; want %q", got.who, got.out, got.err, v.decoded)
				}
			}
			if kinds != v.kinds {
				t.Errorf("elements by kind = %v, want %v", kinds, v.kinds)
			}
			for i := range len(block) {
				p := block[:i]
				if _, err := snappy.Decode(nil, p); err == nil {
					t.Errorf("golang/snappy accepted prefix %x", p)
				}
				if _, _, err := specDecode(p, DefaultMaxPayload); err == nil {
					t.Errorf("specDecode accepted prefix %x", p)
				}
				if _, err := decompress(p); !errors.Is(err, ErrCorrupt) {
					t.Errorf("Decompress(prefix %x) = %v, want ErrCorrupt", p, err)
				}
			}
		})
	}
}

// TestDecompressAcceptsS2 pins the leniency PROTOCOL.md states: the Go
// decoder also reads S2's extensions (here a copy with a 1-byte offset of
// 0, S2's "repeat the last offset"), which Snappy decoders reject. If the
// decoder becomes strict, change the document with this test.
func TestDecompressAcceptsS2(t *testing.T) {
	block := unhex(t, "09 00 61 0101 0100") // "a", copy 4 at offset 1, repeat 4
	if _, err := snappy.Decode(nil, block); err == nil {
		t.Error("golang/snappy accepted an S2 repeat")
	}
	got, err := DefaultConfig().Decompress(nil, Frame{Header: Header{Flags: FlagCompressed}, Payload: block})
	if err != nil || string(got) != "aaaaaaaaa" {
		t.Errorf("Decompress = %q, %v", got, err)
	}
}

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
	var seen [4]int // elements of each kind over all blocks
	t.Cleanup(func() {
		// The blocks exercised all of the format, 4-byte offsets (far
		// repeats past 64 KiB) included, so golang/snappy checked them all.
		for kind, n := range seen {
			if n == 0 && !t.Failed() {
				t.Errorf("no element of kind %d in any block (elements by kind %v)", kind, seen)
			}
		}
	})
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
				spec, kinds, err := specDecode(f.Payload, MaxMaxPayload)
				if err != nil || !bytes.Equal(spec, payload) {
					t.Fatalf("specDecode: %v", err)
				}
				for i := range kinds {
					seen[i] += kinds[i]
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

// snappyFuzzMaxInput is the most of an input FuzzSnappy uses: each run
// builds and decodes a payload of up to 2 KiB, so a minimization of a
// longer input took 15 s at 256.
const snappyFuzzMaxInput = 128

// FuzzSnappy checks the codec against golang/snappy both ways: every block
// golang/snappy decodes, Decompress decodes to the same bytes (S2 is a
// superset of Snappy), and every block Config.AppendFrame sends, golang/snappy
// decodes to the payload. specDecode, PROTOCOL.md's description, must agree
// with golang/snappy on every input.
func FuzzSnappy(f *testing.F) {
	for _, v := range blockVectors {
		f.Add(unhex(f, v.hex))
	}
	f.Add(snappy.Encode(nil, repetitive))
	f.Add(snappy.Encode(nil, benchStatePayload(2000)))
	f.Add(repetitive)
	f.Fuzz(func(t *testing.T, data []byte) {
		// Cut, not skipped: a branch on the length would be coverage of
		// its own, and the fuzzer's minimization of every long input
		// (n*n/2 runs) stalled this target (17 of 17 3-s intervals
		// without an exec in its first 10-minute run).
		data = data[:min(len(data), snappyFuzzMaxInput)]
		c := fuzzConfig
		// The protocol's preamble is at most 5 bytes (as s2's): golang/snappy
		// also takes a longer, non-minimal one, which the protocol calls
		// corrupt, so the comparison covers the rest.
		if _, k := binary.Uvarint(data); k > 5 {
			if _, err := c.Decompress(nil, Frame{Header: Header{Flags: FlagCompressed}, Payload: data}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decompress(%x), a %d-byte preamble: %v, want ErrCorrupt", data, k, err)
			}
			if _, _, err := specDecode(data, int(c.maxPayload())); err == nil {
				t.Fatalf("specDecode(%x) took a %d-byte preamble", data, k)
			}
		} else if n, err := snappy.DecodedLen(data); err == nil && n <= int(c.maxPayload()) {
			want, werr := snappy.Decode(nil, data)
			if spec, _, serr := specDecode(data, int(c.maxPayload())); (serr == nil) != (werr == nil) || !bytes.Equal(spec, want) {
				t.Fatalf("specDecode(%x) = %x, %v; golang/snappy %x, %v", data, spec, serr, want, werr)
			}
			got, gerr := c.Decompress(nil, Frame{Header: Header{Flags: FlagCompressed}, Payload: data})
			switch {
			case werr == nil && (gerr != nil || !bytes.Equal(got, want)):
				t.Fatalf("golang/snappy decodes %x to %x, Decompress to %x, %v", data, want, got, gerr)
			case gerr != nil && !errors.Is(gerr, ErrCorrupt):
				t.Fatalf("Decompress(%x) = %v, want ErrCorrupt", data, gerr)
			}
		}
		// A payload the encoder compresses: the input repeated up to the
		// compression threshold and beyond (repeats make copies).
		payload := append([]byte(nil), data...) // not into the input's spare capacity
		for len(data) > 0 && len(payload) < 2*DefaultCompressThreshold {
			payload = append(payload, data...)
		}
		data = payload
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
