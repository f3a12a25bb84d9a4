package auth

import "errors"

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

// ErrNoAPIKey is returned by NewIssuer without an API key.
var ErrNoAPIKey = errors.New("auth: an API key is required to issue tokens")

// Errors returned by Verify of a Signer whose tokens are single use
// (SignerConfig.SingleUse).
var (
	ErrReplayed        = errors.New("auth: token already used (single-use tokens sign in once)")
	ErrReplayGuardFull = errors.New("auth: too many single-use tokens live (the replay guard is full): new tokens are refused until some expire")
)
