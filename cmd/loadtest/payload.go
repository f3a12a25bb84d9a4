package main

import (
	"encoding/binary"
	"math/rand/v2"

	"github.com/coveyhq/covey/wire"
)

// The payload of the driver's broadcast messages, all big-endian:
//
//	offset 0  u64  send time, nanoseconds since the driver started (monotonic)
//	offset 8  u32  sender index (the player's index in the run)
//	offset 12 u32  per-sender sequence number, from 0
//	offset 16      padding up to -size bytes
const (
	minPayloadSize = 16
	// maxPayloadSize keeps a message within the server's default frame
	// limit with room for the BroadcastRequest's own fields.
	maxPayloadSize = wire.DefaultMaxPayload - 16
)

// sessionType is the session type every scenario uses.
const sessionType uint8 = 1

// padding is the source of the bytes after the header: pseudorandom, so
// that the server's compression of large messages gains nothing, as on
// already compact game state, and the test measures the raw payload size.
var padding = func() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, maxPayloadSize)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}()

// broadcastFrameSize returns the size of the whole Broadcast request frame
// that carries a payload of size bytes.
func broadcastFrameSize(size int) int {
	return wire.HeaderSize + 1 + wire.SizeUvarint(uint64(size)) + size
}

// appendBroadcastFrame appends a fire-and-forget (seq 0) Broadcast request
// to the caller's session of sessionType whose Msg is the driver's payload
// of size bytes (at least minPayloadSize), in one pass. It allocates only to
// grow dst.
func appendBroadcastFrame(dst []byte, ts int64, sender, seq uint32, size int) []byte {
	dst = wire.AppendHeader(dst, wire.Header{
		Length: uint32(broadcastFrameSize(size) - wire.HeaderSize),
		Cmd:    wire.CmdBroadcast,
	})
	dst = wire.AppendU8(dst, sessionType)
	dst = wire.AppendUvarint(dst, uint64(size))
	dst = wire.AppendU64(dst, uint64(ts))
	dst = wire.AppendU32(dst, sender)
	dst = wire.AppendU32(dst, seq)
	return append(dst, padding[:size-minPayloadSize]...)
}

// parsePayload decodes the header of a driver payload.
func parsePayload(msg []byte) (ts int64, sender, seq uint32, ok bool) {
	if len(msg) < minPayloadSize {
		return 0, 0, 0, false
	}
	return int64(binary.BigEndian.Uint64(msg)), binary.BigEndian.Uint32(msg[8:]),
		binary.BigEndian.Uint32(msg[12:]), true
}

// consumeMessagePush returns the Msg of a MessagePush payload without
// decoding (and so copying) its session and sender IDs: the driver's
// payload names the sender. msg aliases p.
func consumeMessagePush(p []byte) (msg []byte, ok bool) {
	if len(p) < 1 {
		return nil, false
	}
	p = p[1:]     // Type
	for range 2 { // SessionID, SenderID
		_, n, err := wire.ConsumeBytes(p)
		if err != nil {
			return nil, false
		}
		p = p[n:]
	}
	msg, n, err := wire.ConsumeBytes(p)
	if err != nil || n != len(p) {
		return nil, false
	}
	return msg, true
}
