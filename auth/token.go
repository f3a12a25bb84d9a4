package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors returned by Verify. ErrBadSignature and ErrMalformedToken both
// match ErrBadToken (errors.Is).
var (
	ErrBadToken       = errors.New("auth: malformed token or bad signature")
	ErrBadSignature   = error(badToken("auth: bad token signature (signed with another secret, or altered)"))
	ErrMalformedToken = error(badToken("auth: malformed token"))
	ErrExpired        = errors.New("auth: token expired")
	ErrBadUserID      = errors.New("auth: user ID must be 1 to 128 bytes of UTF-8 without control characters (U+0000-U+001F, U+007F)")
	ErrShortSecret    = errors.New("auth: secret must be at least 16 bytes")
)

// badToken is an error that also matches ErrBadToken.
type badToken string

func (e badToken) Error() string        { return string(e) }
func (e badToken) Is(target error) bool { return target == ErrBadToken }

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
	body := tokenPrefix + b64.EncodeToString([]byte(userID)) + "." + strconv.FormatInt(expires.Unix(), 10)
	return body + "." + b64.EncodeToString(s.mac(body)), nil
}

// Verify checks token's signature and expiry at now and returns the user ID
// it was issued for. Errors: ErrMalformedToken (not of the form Issue
// makes), ErrBadSignature (well formed, but not signed with this secret),
// ErrExpired.
func (s *Signer) Verify(token string, now time.Time) (string, error) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if len(token) > maxTokenLen || !ok {
		return "", ErrMalformedToken
	}
	uidPart, rest, ok1 := strings.Cut(rest, ".")
	expPart, sigPart, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.IndexByte(sigPart, '.') >= 0 {
		return "", ErrMalformedToken
	}
	uid, err := b64.DecodeString(uidPart)
	if err != nil || !ValidUserID(string(uid)) {
		return "", ErrMalformedToken
	}
	exp, err := strconv.ParseInt(expPart, 10, 64)
	if err != nil {
		return "", ErrMalformedToken
	}
	sig, err := b64.DecodeString(sigPart)
	if err != nil {
		return "", ErrMalformedToken
	}
	if !hmac.Equal(sig, s.mac(token[:len(token)-len(sigPart)-1])) {
		return "", ErrBadSignature
	}
	if !now.Before(time.Unix(exp, 0)) {
		return "", ErrExpired
	}
	return string(uid), nil
}

func (s *Signer) mac(body string) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(body))
	return m.Sum(nil)
}
