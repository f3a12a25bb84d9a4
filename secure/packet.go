package secure

import (
	"encoding/binary"
)

// PacketType is the first byte of every UDP datagram between a client and
// a server's KCP port. Values are part of the protocol: only append.
type PacketType = byte

// Packet types.
const (
	PacketConnectRequest    PacketType = 0x10 // client: ticket (or none), padded
	PacketChallenge         PacketType = 0x11 // server: cookie
	PacketChallengeResponse PacketType = 0x12 // client: conversation ID, cookie
	PacketAccept            PacketType = 0x13 // server: cookie nonce
	PacketReject            PacketType = 0x14 // server: status, reason
	PacketData              PacketType = 0x20 // either: counter, sealed KCP datagram
	PacketPlainData         PacketType = 0x21 // either: KCP datagram, unencrypted
)

// PacketVersion is the version of the UDP packet layer a ConnectRequest
// names: version 1, keys from the cookie's nonce only.
const PacketVersion = 1

// PacketVersion2 adds a nonce of the client's (ClientNonceSize bytes,
// after the ticket) to an encrypted ConnectRequest and to the keys
// (DeriveKeys2): a Challenge replayed to the client no longer gives it the
// keys of a recorded connection.
const PacketVersion2 = 2

// ConnectRequestSize is the exact size of a ConnectRequest: the padding
// makes the client send more than any answer to it, so a forged source
// address gets back less than the forger sent.
const ConnectRequestSize = 1200

// AppendConnectRequest appends a ConnectRequest: type, version, the
// ticket's length (2 bytes, big-endian; 0 for an unencrypted connection)
// and the ticket, then zeros up to ConnectRequestSize. ticket must be at
// most MaxTicketSize bytes.
func AppendConnectRequest(dst, ticket []byte) []byte {
	start := len(dst)
	dst = append(dst, PacketConnectRequest, PacketVersion)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(ticket)))
	dst = append(dst, ticket...)
	return append(dst, make([]byte, ConnectRequestSize-(len(dst)-start))...)
}

// AppendConnectRequest2 appends a version 2 ConnectRequest: as
// AppendConnectRequest, with version 2 and the client's nonce after the
// ticket.
func AppendConnectRequest2(dst, ticket []byte, nonce *[ClientNonceSize]byte) []byte {
	start := len(dst)
	dst = append(dst, PacketConnectRequest, PacketVersion2)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(ticket)))
	dst = append(append(dst, ticket...), nonce[:]...)
	return append(dst, make([]byte, ConnectRequestSize-(len(dst)-start))...)
}

// ConnectRequestNonce returns the client nonce of a version 2
// ConnectRequest that ConsumeConnectRequest read with ticket (a sub-slice
// of p).
func ConnectRequestNonce(p, ticket []byte) []byte {
	at := 4 + len(ticket)
	return p[at : at+ClientNonceSize]
}

// ConsumeConnectRequest reads a ConnectRequest and returns its version
// and ticket (a sub-slice of p; empty for an unencrypted connection).
// ErrMalformed: not exactly ConnectRequestSize bytes, or a ticket length
// past the end or over MaxTicketSize. The padding is not checked, and a
// version other than PacketVersion is returned, not refused.
func ConsumeConnectRequest(p []byte) (version byte, ticket []byte, err error) {
	if len(p) != ConnectRequestSize || p[0] != PacketConnectRequest {
		return 0, nil, ErrMalformed
	}
	n := int(binary.BigEndian.Uint16(p[2:]))
	if n > MaxTicketSize {
		return 0, nil, ErrMalformed
	}
	return p[1], p[4 : 4+n], nil
}

// AppendChallenge appends a Challenge: the type, then the cookie.
func AppendChallenge(dst, cookie []byte) []byte {
	return append(append(dst, PacketChallenge), cookie...)
}

// ConsumeChallenge returns a Challenge's cookie (a sub-slice of p).
func ConsumeChallenge(p []byte) ([]byte, error) {
	if len(p) < 1+MinCookieSize || len(p) > 1+MaxCookieSize || p[0] != PacketChallenge {
		return nil, ErrMalformed
	}
	return p[1:], nil
}

// AppendChallengeResponse appends a ChallengeResponse: the type, the KCP
// conversation ID the client will use (4 bytes, big-endian), then the
// cookie as the Challenge gave it.
func AppendChallengeResponse(dst []byte, conv uint32, cookie []byte) []byte {
	dst = append(dst, PacketChallengeResponse)
	dst = binary.BigEndian.AppendUint32(dst, conv)
	return append(dst, cookie...)
}

// ConsumeChallengeResponse returns a ChallengeResponse's conversation ID
// and cookie (a sub-slice of p).
func ConsumeChallengeResponse(p []byte) (conv uint32, cookie []byte, err error) {
	if len(p) < 5+MinCookieSize || len(p) > 5+MaxCookieSize || p[0] != PacketChallengeResponse {
		return 0, nil, ErrMalformed
	}
	return binary.BigEndian.Uint32(p[1:]), p[5:], nil
}

// AppendAccept appends an Accept: the type, then the nonce of the cookie
// that opened the connection.
func AppendAccept(dst, cookieNonce []byte) []byte {
	return append(append(dst, PacketAccept), cookieNonce[:CookieNonceSize]...)
}

// ConsumeAccept returns an Accept's cookie nonce (a sub-slice of p).
func ConsumeAccept(p []byte) ([]byte, error) {
	if len(p) != 1+CookieNonceSize || p[0] != PacketAccept {
		return nil, ErrMalformed
	}
	return p[1:], nil
}

// MaxRejectReason is the longest reason a Reject carries.
const MaxRejectReason = 200

// AppendReject appends a Reject: the type, a status (2 bytes,
// big-endian: a wire.Status), the reason's length (1 byte) and the reason
// (cut to MaxRejectReason bytes).
func AppendReject(dst []byte, status uint16, reason string) []byte {
	if len(reason) > MaxRejectReason {
		reason = reason[:MaxRejectReason]
	}
	dst = append(dst, PacketReject)
	dst = binary.BigEndian.AppendUint16(dst, status)
	dst = append(dst, byte(len(reason)))
	return append(dst, reason...)
}

// ConsumeReject returns a Reject's status and reason (a sub-slice of p).
func ConsumeReject(p []byte) (status uint16, reason []byte, err error) {
	if len(p) < 4 || p[0] != PacketReject || len(p) != 4+int(p[3]) {
		return 0, nil, ErrMalformed
	}
	return binary.BigEndian.Uint16(p[1:]), p[4:], nil
}

// TCP handshake.
const (
	// HelloMagic starts a TCP client's Hello and the server's answer: a
	// plaintext frame can never start with it (its length's first byte
	// would announce over 3 GiB).
	HelloMagic = 0xC7
	// HelloVersion is the version of the TCP record layer a client
	// without a nonce of its own speaks: keys from the server's nonce only.
	HelloVersion = 1
	// HelloVersion2 adds the client's nonce to the ClientHello and to the
	// keys (DeriveKeys2): a ServerHello replayed to the client no longer
	// gives it the keys of the recorded connection.
	HelloVersion2 = 2
	// ClientNonceSize is a version 2 ClientHello's nonce.
	ClientNonceSize = 16
	// ServerNonceSize is the ServerHello's nonce.
	ServerNonceSize = 16
	// ServerHelloSize is the size of a ServerHello.
	ServerHelloSize = 2 + ServerNonceSize
	// ClientHelloHeader is a ClientHello's size before its ticket.
	ClientHelloHeader = 4
)

// AppendClientHello appends a TCP ClientHello: HelloMagic, HelloVersion,
// the ticket's length (2 bytes, big-endian), the ticket.
func AppendClientHello(dst, ticket []byte) []byte {
	dst = append(dst, HelloMagic, HelloVersion)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(ticket)))
	return append(dst, ticket...)
}

// AppendClientHello2 appends a version 2 TCP ClientHello: HelloMagic,
// HelloVersion2, the ticket's length (2 bytes, big-endian), the ticket,
// the client's nonce.
func AppendClientHello2(dst, ticket []byte, nonce *[ClientNonceSize]byte) []byte {
	dst = append(dst, HelloMagic, HelloVersion2)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(ticket)))
	return append(append(dst, ticket...), nonce[:]...)
}

// ClientHelloLen returns the size of the ClientHello that starts b (at
// least ClientHelloHeader bytes), or ErrMalformed for another version or
// a ticket length out of range.
func ClientHelloLen(b []byte) (int, error) {
	n := int(binary.BigEndian.Uint16(b[2:]))
	if b[0] != HelloMagic || (b[1] != HelloVersion && b[1] != HelloVersion2) || n < MinTicketSize || n > MaxTicketSize {
		return 0, ErrMalformed
	}
	if b[1] == HelloVersion2 {
		return ClientHelloHeader + n + ClientNonceSize, nil
	}
	return ClientHelloHeader + n, nil
}

// ConsumeClientHello returns a whole ClientHello's version, ticket and
// client nonce (nil for version 1), sub-slices of b.
func ConsumeClientHello(b []byte) (version byte, ticket, clientNonce []byte, err error) {
	if len(b) < ClientHelloHeader {
		return 0, nil, nil, ErrMalformed
	}
	n, err := ClientHelloLen(b)
	if err != nil || n != len(b) {
		return 0, nil, nil, ErrMalformed
	}
	end := ClientHelloHeader + int(binary.BigEndian.Uint16(b[2:]))
	if b[1] == HelloVersion2 {
		return b[1], b[ClientHelloHeader:end], b[end:], nil
	}
	return b[1], b[ClientHelloHeader:end], nil, nil
}

// AppendServerHello appends a ServerHello: HelloMagic, HelloVersion, the
// server's nonce. AppendServerHelloVersion answers a ClientHello of
// another version with its version.
func AppendServerHello(dst []byte, nonce *[ServerNonceSize]byte) []byte {
	return AppendServerHelloVersion(dst, HelloVersion, nonce)
}

// AppendServerHelloVersion appends a ServerHello of version v.
func AppendServerHelloVersion(dst []byte, v byte, nonce *[ServerNonceSize]byte) []byte {
	return append(append(dst, HelloMagic, v), nonce[:]...)
}

// ConsumeServerHello returns a version 1 ServerHello's nonce (a sub-slice
// of p, which must be exactly ServerHelloSize bytes).
func ConsumeServerHello(p []byte) ([]byte, error) {
	return ConsumeServerHelloVersion(p, HelloVersion)
}

// ConsumeServerHelloVersion is ConsumeServerHello for version v.
func ConsumeServerHelloVersion(p []byte, v byte) ([]byte, error) {
	if len(p) != ServerHelloSize || p[0] != HelloMagic || p[1] != v {
		return nil, ErrMalformed
	}
	return p[2:], nil
}
