package wire

import "errors"

// Errors returned by the codec. They are preallocated sentinels, so the
// per-frame path never allocates to report a failure; compare them with
// errors.Is. [StatusOf] maps each of them to the status a server replies
// with ([StatusTooLarge] for ErrTooLarge, [StatusBadRequest] for the others).
var (
	// ErrShort reports input that ends before the value or header being
	// consumed. On a stream it means the input was truncated; the frame
	// splitters never return it (see ErrNeedMore).
	ErrShort = errors.New("wire: unexpected end of input")

	// ErrNeedMore is returned by [Decoder.Next] when the buffered bytes do
	// not yet hold a complete frame. It is not a failure: write more bytes
	// and call Next again.
	ErrNeedMore = errors.New("wire: need more input")

	// ErrTooLarge reports a frame whose length, or whose decompressed
	// length, exceeds the configured maximum payload. The stream cannot be
	// resynchronised: close the connection.
	ErrTooLarge = errors.New("wire: frame too large")

	// ErrBadFlags reports a header with an undefined flag bit set, or with
	// both FlagReply and FlagPush. The connection should be closed.
	ErrBadFlags = errors.New("wire: invalid frame flags")

	// ErrCorrupt reports a compressed payload that does not decode (see
	// [Config.Decompress]), or a uvarint longer than 64 bits.
	ErrCorrupt = errors.New("wire: corrupt input")

	// ErrTrailing reports bytes left over after a message's last field.
	ErrTrailing = errors.New("wire: trailing bytes after message")

	// ErrBadValue reports an unknown value tag, a boolean byte other than
	// 0 or 1, or (from [ValueOf]) a Go type that has no property encoding.
	ErrBadValue = errors.New("wire: invalid value")

	// ErrBadUTF8 reports a String field whose bytes are not valid UTF-8.
	// Every String is checked on decode, so nothing invalid is stored or
	// relayed to other players.
	ErrBadUTF8 = errors.New("wire: string is not valid UTF-8")
)
