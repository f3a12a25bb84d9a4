// Package wire is Covey's wire protocol codec: the length-prefixed frame
// format spoken over TCP and KCP, and the payload encodings of the built-in
// commands. PROTOCOL.md at the repository root is the specification; this
// package implements it, and its tests check that the hex examples there
// are the ones the code produces.
//
// # Frames
//
// Every frame is a 14-byte big-endian [Header] followed by Length payload
// bytes. [AppendFrame] and [Config.AppendFrame] encode frames (the latter
// compressing large payloads into Snappy blocks). Two decoders share one
// implementation: [Config.Split] is stateless and looks at bytes the caller
// has buffered (the gnet event loop's inbound buffer), and [Decoder] owns
// its buffer for transports read through a Read call (KCP, net.Conn).
//
// # Payloads
//
// Payload primitives follow encoding/protowire: AppendX appends to a
// caller's slice, ConsumeX returns the value and the number of bytes used,
// SizeX returns the encoded length. Integers are fixed-size big-endian;
// strings, byte blobs and lists are prefixed with a uvarint length or
// count. Each built-in command has a message type (see messages.go) with
// Append, Size and Consume methods. Property values are [Value]s, a tagged
// union that does not box.
//
// # Buffers and allocation
//
// Nothing in this package keeps a reference to a slice passed in after
// returning, except [Decoder], which copies what it is given. Decoded byte
// slices (Frame.Payload, ConsumeBytes, Msg fields) are sub-slices of the
// input and are valid only as long as the input is; strings are copies.
// Encoding allocates only to grow the destination slice, decoding a frame
// does not allocate, and errors are preallocated sentinels (see
// errors.go).
//
// # Concurrency
//
// Functions and Config methods are safe for concurrent use on distinct
// buffers. A Decoder belongs to one goroutine.
package wire
