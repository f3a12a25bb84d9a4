package secure

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// Cookie sizes: expiry (8), nonce (12), then sealed: a mode byte, and for
// an encrypted connection the connection key (32), the ticket's expiry
// (8) and ID (8), the user ID's length (1) and the user ID; then the tag.
const (
	CookieNonceSize = chacha20poly1305.NonceSize
	cookieHeader    = 8 + CookieNonceSize
	cookieTicket    = KeySize + 8 + 8 + 1
	// MinCookieSize and MaxCookieSize bound a cookie's length.
	MinCookieSize = cookieHeader + 1 + TagSize
	MaxCookieSize = cookieHeader + 1 + cookieTicket + ClientNonceSize + MaxUserIDLen + TagSize
)

// Cookie modes: the first sealed byte. Values are part of the protocol.
const (
	cookiePlain      = 0
	cookieEncrypted  = 1
	cookieEncrypted2 = 2 // with the client's nonce (PacketVersion2)
)

// DefaultCookieLifetime is how long a cookie may be echoed: a client
// answers its Challenge within a round trip.
const DefaultCookieLifetime = 10 * time.Second

// CookieJar makes and opens the cookies of one server: stateless proofs
// that a UDP sender receives what is sent to its address. A cookie is
// sealed under the jar's key with the sender's address as additional
// data, and carries what the server learnt from the sender's ticket, so
// the server keeps nothing per sender until the cookie comes back. Safe
// for concurrent use.
type CookieJar struct {
	aead     cipher.AEAD
	lifetime time.Duration
	// counted makes nonces a counter from 0 (NewCookieJarKey, for
	// vectors); otherwise each nonce is 12 random bytes. The nonce is
	// also the salt of the connection's keys, so it must not repeat
	// across jars (nodes sharing the secret, restarts) either: random 96
	// bits do not (about 2^-33 after 2^32 cookies), a counter per jar
	// could be lined up by a sender that makes a jar issue cookies.
	counted bool
	counter atomic.Uint64
}

// NewCookieJar returns a jar with a fresh random key whose cookies last
// lifetime (DefaultCookieLifetime for 0 or less, at least 1 s).
func NewCookieJar(lifetime time.Duration) *CookieJar {
	var key [KeySize]byte
	rand.Read(key[:])
	j := NewCookieJarKey(&key, lifetime)
	j.counted = false
	return j
}

// NewCookieJarKey is NewCookieJar with a given key, for tests and
// vectors: its nonces are a counter from 0 (8 bytes, big-endian, after 4
// zero bytes), not random.
func NewCookieJarKey(key *[KeySize]byte, lifetime time.Duration) *CookieJar {
	if lifetime <= 0 {
		lifetime = DefaultCookieLifetime
	}
	aead, err := chacha20poly1305.New(key[:])
	if err != nil {
		panic("secure: " + err.Error())
	}
	return &CookieJar{aead: aead, lifetime: max(lifetime, time.Second), counted: true}
}

// CookieData is what a cookie carries: whether the connection is
// encrypted, and then the ticket it was asked for with.
type CookieData struct {
	Encrypted bool
	Ticket    Ticket // if Encrypted
	// HasClientNonce is set, with ClientNonce, for the cookie of a
	// version 2 ConnectRequest (PacketVersion2), if Encrypted.
	HasClientNonce bool
	ClientNonce    [ClientNonceSize]byte
}

// cookieAD writes a cookie's additional data: the label, its expiry and
// the address (16 bytes, IPv4 mapped into IPv6, then the port,
// big-endian).
func cookieAD(buf *[len(labelCookieAD) + 8 + 18]byte, expiry []byte, addr netip.AddrPort) []byte {
	n := copy(buf[:], labelCookieAD)
	n += copy(buf[n:], expiry[:8])
	a := addr.Addr().As16()
	n += copy(buf[n:], a[:])
	binary.BigEndian.PutUint16(buf[n:], addr.Port())
	return buf[:]
}

// AppendCookie appends a cookie for a sender at addr carrying d,
// expiring the jar's lifetime after now (whole seconds, rounded up).
// d.Ticket.UserID must be valid (it is truncated to MaxUserIDLen).
func (j *CookieJar) AppendCookie(dst []byte, addr netip.AddrPort, d *CookieData, now time.Time) []byte {
	start := len(dst)
	exp := now.Add(j.lifetime + time.Second - 1).Unix()
	dst = binary.BigEndian.AppendUint64(dst, uint64(exp))
	if j.counted {
		dst = append(dst, 0, 0, 0, 0)
		dst = binary.BigEndian.AppendUint64(dst, j.counter.Add(1)-1)
	} else {
		var n [CookieNonceSize]byte
		rand.Read(n[:]) // never fails (crypto/rand, Go 1.24+)
		dst = append(dst, n[:]...)
	}
	var plain [1 + cookieTicket + ClientNonceSize + MaxUserIDLen]byte
	n := 1
	if d.Encrypted {
		t := &d.Ticket
		uid := t.UserID
		if len(uid) > MaxUserIDLen {
			uid = uid[:MaxUserIDLen]
		}
		plain[0] = cookieEncrypted
		n += copy(plain[n:], t.Key[:])
		binary.BigEndian.PutUint64(plain[n:], uint64(t.Expires))
		binary.BigEndian.PutUint64(plain[n+8:], t.ID)
		plain[n+16] = byte(len(uid))
		n += 17
		if d.HasClientNonce {
			plain[0] = cookieEncrypted2
			n += copy(plain[n:], d.ClientNonce[:])
		}
		n += copy(plain[n:], uid)
	}
	var ad [len(labelCookieAD) + 8 + 18]byte
	return j.aead.Seal(dst, dst[start+8:start+cookieHeader], plain[:n], cookieAD(&ad, dst[start:], addr))
}

// CookieExpiry returns the expiry of a cookie of at least MinCookieSize
// bytes (unix seconds), as written: only OpenCookie says it is genuine.
func CookieExpiry(cookie []byte) int64 { return int64(binary.BigEndian.Uint64(cookie)) }

// CookieNonce returns the nonce of a cookie of at least MinCookieSize
// bytes: the server nonce the connection's keys are derived with.
func CookieNonce(cookie []byte) []byte { return cookie[8:cookieHeader] }

// OpenCookie opens a cookie echoed from addr at now. Errors: ErrMalformed,
// ErrAuth (not made by this jar, or for another address), ErrExpired.
func (j *CookieJar) OpenCookie(cookie []byte, addr netip.AddrPort, now time.Time) (CookieData, error) {
	var d CookieData
	if len(cookie) < MinCookieSize || len(cookie) > MaxCookieSize {
		return d, ErrMalformed
	}
	var ad [len(labelCookieAD) + 8 + 18]byte
	var plain [1 + cookieTicket + ClientNonceSize + MaxUserIDLen + TagSize]byte
	p, err := j.aead.Open(plain[:0], cookie[8:cookieHeader], cookie[cookieHeader:], cookieAD(&ad, cookie, addr))
	if err != nil {
		return d, ErrAuth
	}
	if !now.Before(time.Unix(int64(binary.BigEndian.Uint64(cookie)), 0)) {
		return d, ErrExpired
	}
	uid := 1 + cookieTicket // where the user ID starts
	switch {
	case len(p) == 1 && p[0] == cookiePlain:
		return d, nil
	case len(p) >= uid && p[0] == cookieEncrypted2:
		uid += ClientNonceSize
	case len(p) >= uid && p[0] == cookieEncrypted:
	default:
		return d, ErrMalformed
	}
	if int(p[cookieTicket]) != len(p)-uid {
		return d, ErrMalformed
	}
	d.Encrypted = true
	t := &d.Ticket
	copy(t.Key[:], p[1:])
	t.Expires = int64(binary.BigEndian.Uint64(p[1+KeySize:]))
	t.ID = binary.BigEndian.Uint64(p[1+KeySize+8:])
	if p[0] == cookieEncrypted2 {
		d.HasClientNonce = true
		copy(d.ClientNonce[:], p[1+cookieTicket:uid])
	}
	t.UserID = string(p[uid:])
	return d, nil
}
