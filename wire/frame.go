package wire

import (
	"encoding/binary"
	"slices"

	"github.com/klauspost/compress/s2"
)

// Frame sizes and limits.
const (
	// HeaderSize is the size in bytes of the fixed frame header.
	HeaderSize = 14

	// DefaultMaxPayload is the default limit on a frame's payload, both as
	// sent on the wire and after decompression.
	DefaultMaxPayload = 64 << 10

	// MaxMaxPayload is the largest MaxPayload a [Config] may set.
	MaxMaxPayload = 16 << 20

	// DefaultCompressThreshold is the smallest payload that
	// [Config.AppendFrame] compresses by default, and the smallest threshold
	// it accepts. Below it, compression made binary game payloads larger,
	// not smaller.
	DefaultCompressThreshold = 512
)

// Flags is the flags byte of a frame header.
type Flags uint8

// Frame flags. Values are part of the protocol: only append.
const (
	// FlagReply marks a reply to the request with the same Seq.
	FlagReply Flags = 0x01
	// FlagPush marks a frame the server sent on its own initiative; its Seq
	// is 0. FlagReply and FlagPush are never both set.
	FlagPush Flags = 0x02
	// FlagCompressed marks a payload that is a Snappy block (the block
	// format of github.com/google/snappy's format_description.txt, not the
	// framed stream format) of the real payload. See PROTOCOL.md,
	// "Compression".
	FlagCompressed Flags = 0x04

	flagsDefined = FlagReply | FlagPush | FlagCompressed
)

// valid reports whether f sets only defined bits and not both FlagReply and
// FlagPush.
func (f Flags) valid() bool {
	return f&^flagsDefined == 0 && f&(FlagReply|FlagPush) != FlagReply|FlagPush
}

// Header is the fixed 14-byte header that starts every frame. All fields are
// big-endian on the wire, in this order.
type Header struct {
	// Length is the number of payload bytes that follow the header on the
	// wire (after compression).
	Length uint32
	// Ver is the command namespace: 0 for Covey's built-in commands
	// (see [Cmd]), 1 to 255 for application-defined commands.
	Ver uint8
	// Cmd is the command within the namespace.
	Cmd Cmd
	// Flags is a combination of FlagReply, FlagPush and FlagCompressed.
	Flags Flags
	// Seq is the request sequence number chosen by the client. A reply
	// echoes it; pushes carry 0.
	Seq uint32
	// Status is 0 on requests and pushes and the result code on replies.
	Status Status
}

// FrameSize returns the number of bytes of the whole frame h heads: the
// header plus h.Length. A stream reader that has seen only the header uses
// it to know how many bytes to wait for.
func (h Header) FrameSize() int { return HeaderSize + int(h.Length) }

// AppendHeader appends the encoding of h to dst, with h.Length as given,
// and returns the extended slice. It allocates only to grow dst.
func AppendHeader(dst []byte, h Header) []byte {
	var b [HeaderSize]byte
	binary.BigEndian.PutUint32(b[0:], h.Length)
	b[4] = h.Ver
	binary.BigEndian.PutUint16(b[5:], uint16(h.Cmd))
	b[7] = byte(h.Flags)
	binary.BigEndian.PutUint32(b[8:], h.Seq)
	binary.BigEndian.PutUint16(b[12:], uint16(h.Status))
	return append(dst, b[:]...)
}

// ConsumeHeader decodes the header at the start of b. It returns ErrShort
// if len(b) < HeaderSize and ErrBadFlags if the flags are invalid. It does
// not check h.Length against any limit: [Config.Split] does.
func ConsumeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrShort
	}
	h := Header{
		Length: binary.BigEndian.Uint32(b[0:]),
		Ver:    b[4],
		Cmd:    Cmd(binary.BigEndian.Uint16(b[5:])),
		Flags:  Flags(b[7]),
		Seq:    binary.BigEndian.Uint32(b[8:]),
		Status: Status(binary.BigEndian.Uint16(b[12:])),
	}
	if !h.Flags.valid() {
		return Header{}, ErrBadFlags
	}
	return h, nil
}

// AppendFrame appends a frame with header h and the given payload to dst
// and returns the extended slice. It sets the Length field from
// len(payload), ignoring h.Length, and never compresses: flags are written
// as given, so a payload that is already a Snappy block may be sent with
// FlagCompressed set. It allocates only to grow dst. The payload must be at
// most MaxMaxPayload bytes; enforcing the peer's limit is the caller's job.
func AppendFrame(dst []byte, h Header, payload []byte) []byte {
	h.Length = uint32(len(payload))
	dst = AppendHeader(dst, h)
	return append(dst, payload...)
}

// Frame is one decoded frame.
type Frame struct {
	Header
	// Payload is the frame's payload. From [Config.Split] it aliases the
	// input buffer and is still compressed if FlagCompressed is set; from
	// [Decoder.Next] it is decompressed. See each for its lifetime.
	Payload []byte
}

// Config holds the limits and compression policy of one end of a
// connection. The zero Config is usable: it means DefaultMaxPayload and no
// compression. A Config is a small value; its methods are safe for
// concurrent use.
type Config struct {
	// MaxPayload is the largest payload accepted, both as sent (Length)
	// and after decompression. 0 means DefaultMaxPayload; values above
	// MaxMaxPayload are treated as MaxMaxPayload.
	MaxPayload uint32

	// CompressThreshold is the payload size from which
	// [Config.AppendFrame] compresses: 0 (or negative) never compresses;
	// otherwise payloads of at least max(CompressThreshold,
	// DefaultCompressThreshold) bytes are compressed when that makes them
	// smaller. Decoding handles compressed frames whatever this is.
	CompressThreshold int
}

// DefaultConfig returns the default configuration: DefaultMaxPayload and
// compression from DefaultCompressThreshold bytes.
func DefaultConfig() Config {
	return Config{MaxPayload: DefaultMaxPayload, CompressThreshold: DefaultCompressThreshold}
}

// PayloadLimit returns the largest payload c accepts: MaxPayload,
// DefaultMaxPayload if that is 0, at most MaxMaxPayload.
func (c Config) PayloadLimit() uint32 { return c.maxPayload() }

// maxPayload returns the effective payload limit.
func (c Config) maxPayload() uint32 {
	switch {
	case c.MaxPayload == 0:
		return DefaultMaxPayload
	case c.MaxPayload > MaxMaxPayload:
		return MaxMaxPayload
	}
	return c.MaxPayload
}

// compressFrom returns the effective threshold, or 0 for never.
func (c Config) compressFrom() int {
	if c.CompressThreshold <= 0 {
		return 0
	}
	return max(c.CompressThreshold, DefaultCompressThreshold)
}

// FrameReserve returns the spare capacity dst needs for c.AppendFrame to
// append a frame with an n-byte payload without allocating:
// HeaderSize+n if c does not compress payloads of that size, else
// HeaderSize plus the worst case of the block built in place. The frame
// appended is never longer than HeaderSize+n; only the capacity differs.
func (c Config) FrameReserve(n int) int {
	if from := c.compressFrom(); from != 0 && n >= from {
		if maxLen := s2.MaxEncodedLen(n); maxLen >= 0 {
			return HeaderSize + maxLen
		}
	}
	return HeaderSize + n
}

// AppendFrame is like the package-level [AppendFrame], but compresses the
// payload into a Snappy block (and sets FlagCompressed) when compression is
// enabled, the payload is at least the threshold and the block is smaller.
// If h.Flags already has FlagCompressed the payload is taken to be
// compressed already and is written as is. The block is built directly in
// dst's spare capacity, so AppendFrame allocates only to grow dst to
// [Config.FrameReserve] spare bytes; payload must not overlap that spare
// capacity.
//
// The encoder is s2.EncodeSnappy, whose blocks any Snappy decoder reads
// (s2.Encode's repeat codes are not Snappy). BenchmarkFrameEncodeSizes
// chose it: as fast as s2.Encode and within 0.3 % of its size on game
// state (only long runs of one repeated row, where S2's repeat codes shine,
// come out larger); s2.EncodeSnappyBetter was 2-6 % smaller on game state
// at 1.5 to 2.5 times the CPU.
func (c Config) AppendFrame(dst []byte, h Header, payload []byte) []byte {
	from := c.compressFrom()
	if from == 0 || len(payload) < from || h.Flags&FlagCompressed != 0 {
		return AppendFrame(dst, h, payload)
	}
	// s2.EncodeSnappy writes into its dst without allocating when dst has
	// MaxEncodedLen capacity: it checks the same bound, and falls back to
	// one literal, which fits in it, when the block would not be smaller.
	maxLen := s2.MaxEncodedLen(len(payload))
	if maxLen < 0 {
		return AppendFrame(dst, h, payload)
	}
	start := len(dst)
	dst = slices.Grow(dst, HeaderSize+maxLen)
	body := dst[start+HeaderSize : start+HeaderSize]
	block := s2.EncodeSnappy(body, payload)
	if len(block) >= len(payload) {
		return AppendFrame(dst[:start], h, payload)
	}
	h.Flags |= FlagCompressed
	h.Length = uint32(len(block))
	// The header goes in front of the block already in place.
	dst = AppendHeader(dst[:start], h)
	return dst[:start+HeaderSize+len(block)]
}

// Split looks for one complete frame at the start of b, the bytes buffered
// so far on a stream. It keeps no state. If b holds fewer than HeaderSize
// bytes, or the header but not all of the payload, it returns n == 0 and a
// nil error: wait for more bytes. It returns ErrTooLarge as soon as the
// header is visible if Length exceeds the payload limit, and ErrBadFlags for
// invalid flags; both are fatal to the stream. On success f.Payload is a
// sub-slice of b (capacity clipped to the frame), still compressed if
// FlagCompressed is set, valid as long as b is; n is the number of bytes to
// discard. Split does not allocate.
func (c Config) Split(b []byte) (f Frame, n int, err error) {
	if len(b) < HeaderSize {
		return Frame{}, 0, nil
	}
	h, err := ConsumeHeader(b)
	if err != nil {
		return Frame{}, 0, err
	}
	if h.Length > c.maxPayload() {
		return Frame{}, 0, ErrTooLarge
	}
	n = h.FrameSize()
	if len(b) < n {
		return Frame{}, 0, nil
	}
	return Frame{Header: h, Payload: b[HeaderSize:n:n]}, n, nil
}

// Decompress returns the payload of f uncompressed. If f is not compressed
// it returns f.Payload itself. Otherwise it checks the block's decoded
// length against the payload limit before decoding (ErrTooLarge; this
// defeats decompression bombs) and decodes into dst, which is scratch space
// reused across calls: the result is dst[:decodedLen] if dst has the
// capacity, else a new slice. A malformed block is ErrCorrupt. dst must not
// overlap f.Payload. The header of f is not changed.
//
// The protocol's format is the Snappy block. The decoder is s2.Decode,
// which also accepts S2's extensions (repeat codes, longer copies): a
// leniency of this implementation that senders must not rely on.
func (c Config) Decompress(dst []byte, f Frame) ([]byte, error) {
	if f.Flags&FlagCompressed == 0 {
		return f.Payload, nil
	}
	n, err := s2.DecodedLen(f.Payload)
	if err != nil {
		return nil, ErrCorrupt
	}
	if uint64(n) > uint64(c.maxPayload()) {
		return nil, ErrTooLarge
	}
	out, err := s2.Decode(dst[:0:cap(dst)], f.Payload)
	if err != nil {
		return nil, ErrCorrupt
	}
	return out, nil
}

// PushReserve is how much of a push's payload limit the server keeps for
// the fields around an application's bytes: the session type, the session
// ID (at most 101 bytes: a UUID, '@' and a node name of at most 64), a user
// ID (at most 128 bytes), the Invite fields and the length prefixes. The
// worst case, an InvitePush, takes 248 bytes besides its Msg.
const PushReserve = 256

// MaxMessageFor returns the largest Msg that a Broadcast, MessageTo or
// Invite accepts on a server whose payload limit is maxPayload (0 meaning
// DefaultMaxPayload): maxPayload - PushReserve. The push that carries such
// a Msg always fits maxPayload, whatever the session and user IDs.
func MaxMessageFor(maxPayload uint32) uint32 {
	return Config{MaxPayload: maxPayload}.maxPayload() - PushReserve
}
