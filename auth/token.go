package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/coveyhq/covey/secure"
)

var b64 = base64.RawURLEncoding

// The token formats, by the prefix that names them (PROTOCOL.md, Tokens):
// v1 is "v1.<user ID>.<expiry>.<signature>"; v2 adds a random nonce
// before the signature, so that two tokens issued for one user in one
// second are two tokens; v3, the connect token that Issue writes, carries
// a connection key and a ticket sealed for the servers (package secure),
// which opens an encrypted connection. Verify reads all three, whatever
// the Signer's config, so that a cluster part way through an upgrade, or
// whose nodes are configured differently, still verifies every token any
// of them issued; v1 and v2 sign in on plaintext connections only.
const (
	prefixV1 = "v1."
	prefixV2 = "v2."
	nonceLen = 16
)

const (
	maxTokenLen     = 512 // at least secure.MaxConnectTokenLen
	minSecretLength = 16
)

// MaxUserIDLen is the longest user ID, in bytes.
const MaxUserIDLen = secure.MaxUserIDLen

// ValidUserID reports whether id is acceptable as a user ID: 1 to
// MaxUserIDLen bytes of valid UTF-8 with no control characters.
func ValidUserID(id string) bool { return secure.ValidUserID(id) }

// Signer issues and verifies tokens with one server secret. Safe for
// concurrent use.
type Signer struct {
	secret    []byte
	tickets   *secure.TicketKey // of secret
	singleUse *ReplayGuard      // nil: tokens sign in until they expire
}

// SignerConfig is what a Signer does beyond signing with its secret. The
// zero value is NewSigner's: tokens sign in any number of times until
// they expire.
type SignerConfig struct {
	// SingleUse, if not nil, makes every token sign in once: Verify
	// remembers each token it accepts in SingleUse until the token
	// expires, and refuses it after that with ErrReplayed (a connect
	// token's ticket counts once whether it signs in encrypted, through
	// UseTicket, or in the clear). Signers may share a guard
	// (say, those of the old and the new secret while it is rotated): a
	// token then signs in once through either. See ReplayGuard for its
	// limits: it lives in one process's memory.
	SingleUse *ReplayGuard
}

// NewSigner returns a Signer for secret, which must be at least 16 bytes
// and the same on every node that verifies the tokens. Its tokens sign in
// any number of times until they expire; NewSignerWith can make them
// single use.
func NewSigner(secret []byte) (*Signer, error) {
	return NewSignerWith(secret, SignerConfig{})
}

// NewSignerWith is NewSigner with a config.
func NewSignerWith(secret []byte, cfg SignerConfig) (*Signer, error) {
	if len(secret) < minSecretLength {
		return nil, ErrShortSecret
	}
	tk, err := secure.NewTicketKey(secret)
	if err != nil {
		return nil, err
	}
	return &Signer{secret: append([]byte(nil), secret...), tickets: tk, singleUse: cfg.SingleUse}, nil
}

// TicketKey returns the key that opens the tickets of the Signer's
// connect tokens: what netio needs to accept encrypted connections.
func (s *Signer) TicketKey() *secure.TicketKey { return s.tickets }

// Issue returns a connect token (v3) for userID valid until expires: a
// fresh random connection key, and a ticket holding it, the user ID and
// the expiry, sealed under the Signer's ticket key with a random nonce
// (PROTOCOL.md, Connect tokens and tickets).
func (s *Signer) Issue(userID string, expires time.Time) (string, error) {
	if !ValidUserID(userID) {
		return "", ErrBadUserID
	}
	t := secure.Ticket{UserID: userID, Expires: expires.Unix()}
	var nonce [24]byte
	rand.Read(t.Key[:]) // never fails (crypto/rand, Go 1.24+)
	rand.Read(nonce[:])
	ticket := s.tickets.AppendTicket(make([]byte, 0, secure.MaxTicketSize), &t, &nonce)
	return string(secure.AppendConnectToken(nil, t.Expires, &t.Key, ticket)), nil
}

// issueSigned returns a v1 token, or a v2 one with a fresh random nonce
// if the Signer makes tokens single use: the formats that nodes before
// connect tokens issued, which Verify still reads.
func (s *Signer) issueSigned(userID string, expires time.Time) (string, error) {
	if !ValidUserID(userID) {
		return "", ErrBadUserID
	}
	t := parsedToken{version: 1, userID: userID, expires: expires.Unix()}
	if s.singleUse != nil {
		t.version = 2
		rand.Read(t.nonce[:])
	}
	return s.sign(&t), nil
}

// sign signs t's fields and returns the token.
func (s *Signer) sign(t *parsedToken) string {
	t.body = t.appendBody(nil)
	copy(t.sig[:], s.mac(t.body))
	return t.body + "." + b64.EncodeToString(t.sig[:])
}

// Verify checks token's signature and expiry at now and returns the user ID
// it was issued for; with single use, it also remembers the token and
// refuses it from then on. Errors: ErrMalformedToken (not of the form
// Issue makes, including another spelling of the same fields),
// ErrBadSignature (well formed, but not signed with this secret),
// ErrExpired; with single use, ErrReplayed (accepted before) and
// ErrReplayGuardFull. Safe for concurrent use; it does not block but for
// a lock of the guard's, held to look the token up, remember it and
// forget expired ones (ReplayGuard).
//
// With single use, time does not go back: a token is expired once any
// Verify sharing its guard has been called at or after its expiry (the
// guard forgets a token from then on, so it must not sign in again).
func (s *Signer) Verify(token string, now time.Time) (string, error) {
	if secure.IsConnectToken(token) {
		return s.verifyConnect(token, now)
	}
	t, ok := parseToken(token)
	if !ok {
		return "", ErrMalformedToken
	}
	if !hmac.Equal(t.sig[:], s.mac(t.body)) {
		return "", ErrBadSignature
	}
	if s.singleUse != nil {
		if err := s.singleUse.use(t.id(), t.expires, now.Unix()); err != nil {
			return "", err
		}
		return t.userID, nil
	}
	if !now.Before(time.Unix(t.expires, 0)) {
		return "", ErrExpired
	}
	return t.userID, nil
}

// verifyConnect is Verify of a connect token, presented in a plaintext
// sign-in: its ticket must open, and hold the key the token shows.
func (s *Signer) verifyConnect(token string, now time.Time) (string, error) {
	if len(token) > maxTokenLen {
		return "", ErrMalformedToken
	}
	ct, err := secure.ParseConnectToken(token)
	if err != nil {
		return "", ErrMalformedToken
	}
	t, err := s.tickets.OpenTicket(ct.Ticket, now)
	switch {
	case errors.Is(err, secure.ErrAuth):
		return "", ErrBadSignature
	case errors.Is(err, secure.ErrExpired):
		return "", ErrExpired
	case err != nil || !bytes.Equal(t.Key[:], ct.Key[:]):
		return "", ErrMalformedToken
	}
	if err := s.UseTicket(t, now); err != nil {
		return "", err
	}
	return t.UserID, nil
}

// UseTicket applies single use to a ticket that opened an encrypted
// connection (netio opened it and checked its expiry): with single use it
// remembers the ticket's ID until its expiry and refuses it from then on
// (ErrReplayed, ErrReplayGuardFull, or ErrExpired at or after its
// expiry); without, it returns nil. Safe for concurrent use.
func (s *Signer) UseTicket(t secure.Ticket, now time.Time) error {
	if s.singleUse == nil {
		return nil
	}
	return s.singleUse.use(t.ID, t.Expires, now.Unix())
}

// parsedToken is the fields of a token that parseToken accepted.
type parsedToken struct {
	version int // 1 or 2
	userID  string
	expires int64          // unix seconds
	nonce   [nonceLen]byte // v2 only
	sig     [sha256.Size]byte
	body    string // everything before the last dot: what sig signs
}

// id names the token in a ReplayGuard: 64 bits of its signature, which
// differ for every token (a v2 token's nonce sees to it even for one user
// and expiry) and which no one without the secret can choose. Two live
// tokens whose ids collide (about 2^-44 for each new token with 2^20
// live) make the second refused as replayed: a sign-in to retry with a
// new token, never one let in.
func (t *parsedToken) id() uint64 {
	return binary.LittleEndian.Uint64(t.sig[:8])
}

// appendBody appends what t's signature signs, as Issue writes it.
func (t *parsedToken) appendBody(dst []byte) string {
	if t.version == 2 {
		dst = append(dst, prefixV2...)
	} else {
		dst = append(dst, prefixV1...)
	}
	dst = b64.AppendEncode(dst, []byte(t.userID))
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, t.expires, 10)
	if t.version == 2 {
		dst = append(dst, '.')
		dst = b64.AppendEncode(dst, t.nonce[:])
	}
	return string(dst)
}

// String writes t as Issue does.
func (t *parsedToken) String() string {
	return t.appendBody(nil) + "." + b64.EncodeToString(t.sig[:])
}

// parseToken splits token into its fields and reports whether it is
// exactly what Issue writes for them: every token has one spelling, so
// that a token cannot be altered into another string that signs in (a
// signature's unused bits and line breaks decode to the same bytes).
func parseToken(token string) (t parsedToken, ok bool) {
	if len(token) > maxTokenLen {
		return t, false
	}
	rest, ok := strings.CutPrefix(token, prefixV1)
	t.version = 1
	if !ok {
		rest, ok = strings.CutPrefix(token, prefixV2)
		t.version = 2
	}
	if !ok {
		return t, false
	}
	uidPart, rest, ok1 := strings.Cut(rest, ".")
	expPart, sigPart, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return t, false
	}
	if t.version == 2 {
		noncePart, after, ok := strings.Cut(sigPart, ".")
		nonce, ok3 := decodeCanonical(noncePart)
		if !ok || !ok3 || len(nonce) != nonceLen {
			return t, false
		}
		copy(t.nonce[:], nonce)
		sigPart = after
	}
	uid, ok := decodeCanonical(uidPart)
	if !ok || !ValidUserID(string(uid)) {
		return t, false
	}
	t.userID = string(uid)
	if t.expires, ok = parseCanonicalInt(expPart); !ok {
		return t, false
	}
	sig, ok := decodeCanonical(sigPart)
	if !ok || len(sig) != len(t.sig) {
		return t, false
	}
	copy(t.sig[:], sig)
	t.body = token[:len(token)-len(sigPart)-1]
	return t, true
}

// strictB64 decodes what b64 encodes and refuses a last character with
// unused bits set. Padding and the standard alphabet's + and / are not in
// its alphabet; it still skips CR and LF, which decodeCanonical refuses.
var strictB64 = b64.Strict()

// decodeCanonical decodes s and reports whether s is the one spelling b64
// writes for what it decodes to: base64url (RFC 4648 §5) without padding,
// line breaks or bits set past the last byte.
func decodeCanonical(s string) ([]byte, bool) {
	b, err := strictB64.DecodeString(s)
	// A CR or LF, skipped by the decoder, makes s longer than b's encoding.
	return b, err == nil && len(s) == b64.EncodedLen(len(b))
}

// parseCanonicalInt parses s as strconv.FormatInt writes an int64: decimal,
// no plus sign, no leading zero, no "-0".
func parseCanonicalInt(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	var buf [20]byte
	return n, err == nil && string(strconv.AppendInt(buf[:0], n, 10)) == s
}

func (s *Signer) mac(body string) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(body))
	return m.Sum(nil)
}
