package secure

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/chacha20poly1305"
)

// KeySize is the size of every key: ticket, cookie, connection and
// direction keys.
const KeySize = 32

// TagSize is the size of a Poly1305 authentication tag.
const TagSize = 16

// MaxUserIDLen is the longest user ID a ticket carries, in bytes (package
// auth's limit).
const MaxUserIDLen = 128

// Ticket sizes: expiry (8), nonce (24), then the sealed connection key
// (32), user ID length (1) and user ID, and the tag.
const (
	ticketNonceSize = chacha20poly1305.NonceSizeX
	ticketHeader    = 8 + ticketNonceSize
	// MinTicketSize and MaxTicketSize bound a ticket's length.
	MinTicketSize = ticketHeader + KeySize + 1 + 1 + TagSize
	MaxTicketSize = ticketHeader + KeySize + 1 + MaxUserIDLen + TagSize
)

// Labels: the HKDF info strings and additional data that keep each key
// and each sealed thing to one use. Values are part of the protocol.
const (
	labelTicketKey = "covey ticket key v1"
	labelTicketAD  = "covey ticket v1"
	labelConnKeys  = "covey connection keys v1"
	labelConnKeys2 = "covey connection keys v2"
	labelCookieAD  = "covey cookie v1"
)

// Ticket is what a ticket carries: who the player is, until when the
// ticket opens a connection, and the connection key shared with the
// client.
type Ticket struct {
	UserID  string
	Expires int64 // unix seconds; the ticket opens no connection from then on
	Key     [KeySize]byte
	// ID names the ticket for single use: the first 8 bytes of its
	// nonce, big-endian. Set by OpenTicket; ignored by SealTicket.
	ID uint64
}

// TicketKey seals and opens tickets: the servers' shared key, derived
// from their secret. Safe for concurrent use.
type TicketKey struct {
	aead cipher.AEAD
}

// NewTicketKey derives the ticket key from the servers' secret (at least
// 16 bytes; the token secret): HKDF-SHA256 with no salt and the info
// "covey ticket key v1".
func NewTicketKey(secret []byte) (*TicketKey, error) {
	if len(secret) < 16 {
		return nil, ErrShortSecret
	}
	k, err := hkdf.Key(sha256.New, secret, nil, labelTicketKey, KeySize)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return nil, err
	}
	return &TicketKey{aead: aead}, nil
}

// AppendTicket appends t sealed under k with nonce, which must be random
// (24 bytes from crypto/rand) and never reused. t.UserID must be 1 to
// MaxUserIDLen bytes (it is truncated to that otherwise; callers check).
func (k *TicketKey) AppendTicket(dst []byte, t *Ticket, nonce *[ticketNonceSize]byte) []byte {
	uid := t.UserID
	if len(uid) > MaxUserIDLen {
		uid = uid[:MaxUserIDLen]
	}
	start := len(dst)
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.Expires))
	dst = append(dst, nonce[:]...)
	var plain [KeySize + 1 + MaxUserIDLen]byte
	n := copy(plain[:], t.Key[:])
	plain[n] = byte(len(uid))
	n++
	n += copy(plain[n:], uid)
	var ad [len(labelTicketAD) + 8]byte
	copy(ad[:], labelTicketAD)
	copy(ad[len(labelTicketAD):], dst[start:start+8])
	return k.aead.Seal(dst, nonce[:], plain[:n], ad[:])
}

// OpenTicket opens a ticket sealed under k and checks its expiry at now.
// Errors: ErrMalformed, ErrAuth, ErrExpired (only for an authentic
// ticket). It allocates the user ID string.
func (k *TicketKey) OpenTicket(b []byte, now time.Time) (Ticket, error) {
	var t Ticket
	if len(b) < MinTicketSize || len(b) > MaxTicketSize {
		return t, ErrMalformed
	}
	var ad [len(labelTicketAD) + 8]byte
	copy(ad[:], labelTicketAD)
	copy(ad[len(labelTicketAD):], b[:8])
	var plain [KeySize + 1 + MaxUserIDLen + TagSize]byte
	p, err := k.aead.Open(plain[:0], b[8:ticketHeader], b[ticketHeader:], ad[:])
	if err != nil {
		return t, ErrAuth
	}
	if len(p) < KeySize+2 || int(p[KeySize]) != len(p)-KeySize-1 {
		return t, ErrMalformed // authentic, so only a bad sealer writes it
	}
	t.Expires = int64(binary.BigEndian.Uint64(b))
	t.ID = binary.BigEndian.Uint64(b[8:])
	copy(t.Key[:], p)
	t.UserID = string(p[KeySize+1:])
	if !ValidUserID(t.UserID) {
		return t, ErrMalformed
	}
	if !now.Before(time.Unix(t.Expires, 0)) {
		return t, ErrExpired
	}
	return t, nil
}

// The connect token: what the client is given, as one string.
const connectTokenPrefix = "v3."

var b64 = base64.RawURLEncoding
var strictB64 = b64.Strict()

// AppendConnectToken appends the connect token for a ticket: "v3." and,
// in unpadded base64url, the expiry (8 bytes, big-endian unix seconds),
// the connection key (32) and the ticket. The client reads the key and
// the expiry; it sends the ticket as it is.
func AppendConnectToken(dst []byte, expires int64, key *[KeySize]byte, ticket []byte) []byte {
	raw := make([]byte, 0, 8+KeySize+len(ticket))
	raw = binary.BigEndian.AppendUint64(raw, uint64(expires))
	raw = append(raw, key[:]...)
	raw = append(raw, ticket...)
	dst = append(dst, connectTokenPrefix...)
	return b64.AppendEncode(dst, raw)
}

// ClientTicket is a connect token as the client uses it.
type ClientTicket struct {
	Expires int64 // unix seconds
	Key     [KeySize]byte
	Ticket  []byte // sent as it is in the handshake
}

// IsConnectToken reports whether s has the connect token's prefix (a v3
// token); it does not check the rest.
func IsConnectToken(s string) bool {
	return len(s) >= len(connectTokenPrefix) && s[:len(connectTokenPrefix)] == connectTokenPrefix
}

// ParseConnectToken reads a connect token. It accepts only the one
// spelling AppendConnectToken writes (ErrMalformed otherwise) and checks
// the ticket's length, not its seal (only servers can).
func ParseConnectToken(s string) (ClientTicket, error) {
	var ct ClientTicket
	if !IsConnectToken(s) {
		return ct, ErrMalformed
	}
	enc := s[len(connectTokenPrefix):]
	raw, err := strictB64.DecodeString(enc)
	if err != nil || len(enc) != b64.EncodedLen(len(raw)) {
		return ct, ErrMalformed
	}
	if n := len(raw) - 8 - KeySize; n < MinTicketSize || n > MaxTicketSize {
		return ct, ErrMalformed
	}
	ct.Expires = int64(binary.BigEndian.Uint64(raw))
	copy(ct.Key[:], raw[8:])
	ct.Ticket = raw[8+KeySize:]
	if int64(binary.BigEndian.Uint64(ct.Ticket)) != ct.Expires {
		return ct, ErrMalformed
	}
	return ct, nil
}

// MaxConnectTokenLen is the longest connect token.
const MaxConnectTokenLen = len(connectTokenPrefix) + (8+KeySize+MaxTicketSize+2)/3*4

// ValidUserID reports whether id is acceptable as a user ID: 1 to
// MaxUserIDLen bytes of valid UTF-8 with no control characters
// (U+0000-U+001F, U+007F). It is the sign-in rule (package auth's
// ValidUserID), here so that a ticket holds nothing else.
func ValidUserID(id string) bool {
	if id == "" || len(id) > MaxUserIDLen || !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// Keys are a connection's two direction keys.
type Keys struct {
	ClientToServer, ServerToClient [KeySize]byte
}

// DeriveKeys derives a connection's direction keys from its connection
// key and the server's nonce: 64 bytes of HKDF-SHA256 with the nonce as
// salt and the info "covey connection keys v1", client-to-server first.
func DeriveKeys(key *[KeySize]byte, serverNonce []byte) Keys {
	return deriveKeys(key, serverNonce, labelConnKeys)
}

// DeriveKeys2 derives a connection's direction keys from its connection
// key, the server's nonce and the client's (version 2 of the TCP
// handshake): HKDF-SHA256 with serverNonce ‖ clientNonce as salt and the
// info "covey connection keys v2". A ServerHello recorded and replayed to
// a client then gives keys of a connection that never was.
func DeriveKeys2(key *[KeySize]byte, serverNonce, clientNonce []byte) Keys {
	salt := make([]byte, 0, len(serverNonce)+len(clientNonce))
	return deriveKeys(key, append(append(salt, serverNonce...), clientNonce...), labelConnKeys2)
}

func deriveKeys(key *[KeySize]byte, salt []byte, label string) Keys {
	b, err := hkdf.Key(sha256.New, key[:], salt, label, 2*KeySize)
	if err != nil {
		panic("secure: hkdf: " + err.Error()) // only for lengths over 255*32
	}
	var k Keys
	copy(k.ClientToServer[:], b)
	copy(k.ServerToClient[:], b[KeySize:])
	clear(b)
	return k
}
