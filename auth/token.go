package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

var b64 = base64.RawURLEncoding

const (
	tokenPrefix     = "v1."
	maxTokenLen     = 512
	minSecretLength = 16
)

// MaxUserIDLen is the longest user ID, in bytes.
const MaxUserIDLen = 128

// ValidUserID reports whether id is acceptable as a user ID: 1 to
// MaxUserIDLen bytes of valid UTF-8 with no control characters.
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

// Signer issues and verifies tokens with one server secret. Safe for
// concurrent use.
type Signer struct {
	secret []byte
}

// NewSigner returns a Signer for secret, which must be at least 16 bytes
// and the same on every node that verifies the tokens.
func NewSigner(secret []byte) (*Signer, error) {
	if len(secret) < minSecretLength {
		return nil, ErrShortSecret
	}
	return &Signer{secret: append([]byte(nil), secret...)}, nil
}

// Issue returns a token for userID valid until expires.
func (s *Signer) Issue(userID string, expires time.Time) (string, error) {
	if !ValidUserID(userID) {
		return "", ErrBadUserID
	}
	body := tokenBody(userID, expires.Unix())
	return body + "." + b64.EncodeToString(s.mac(body)), nil
}

// tokenBody is what a token's signature signs: everything before its last
// dot.
func tokenBody(userID string, expires int64) string {
	return tokenPrefix + b64.EncodeToString([]byte(userID)) + "." + strconv.FormatInt(expires, 10)
}

// Verify checks token's signature and expiry at now and returns the user ID
// it was issued for. Errors: ErrMalformedToken (not of the form Issue
// makes, including another spelling of the same fields), ErrBadSignature
// (well formed, but not signed with this secret), ErrExpired.
func (s *Signer) Verify(token string, now time.Time) (string, error) {
	t, ok := parseToken(token)
	if !ok {
		return "", ErrMalformedToken
	}
	if !hmac.Equal(t.sig[:], s.mac(t.body)) {
		return "", ErrBadSignature
	}
	if !now.Before(time.Unix(t.expires, 0)) {
		return "", ErrExpired
	}
	return t.userID, nil
}

// parsedToken is the fields of a token that parseToken accepted.
type parsedToken struct {
	userID  string
	expires int64 // unix seconds
	sig     [sha256.Size]byte
	body    string // everything before the last dot: what sig signs
}

// String writes t as Issue does.
func (t *parsedToken) String() string {
	return tokenBody(t.userID, t.expires) + "." + b64.EncodeToString(t.sig[:])
}

// parseToken splits token into its fields and reports whether it is
// exactly what Issue writes for them: every token has one spelling, so
// that a token cannot be altered into another string that signs in (a
// signature's unused bits and line breaks decode to the same bytes).
func parseToken(token string) (t parsedToken, ok bool) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if len(token) > maxTokenLen || !ok {
		return t, false
	}
	uidPart, rest, ok1 := strings.Cut(rest, ".")
	expPart, sigPart, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return t, false
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
