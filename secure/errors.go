package secure

import "errors"

// Errors. They are sentinels: the receive path returns them per packet
// without allocating.
var (
	// ErrMalformed is a ticket, cookie, token, record or packet that does
	// not have the layout PROTOCOL.md gives it.
	ErrMalformed = errors.New("secure: malformed")
	// ErrAuth is a ticket, cookie, record or packet whose authentication
	// tag does not verify: not sealed with this key, or altered.
	ErrAuth = errors.New("secure: authentication failed")
	// ErrExpired is an authentic ticket or cookie past its expiry.
	ErrExpired = errors.New("secure: expired")
	// ErrReplayed is a UDP packet whose counter the replay window has
	// seen, or that is older than the window.
	ErrReplayed = errors.New("secure: replayed packet")
	// ErrTooLarge is a record over MaxRecordPayload.
	ErrTooLarge = errors.New("secure: record too large")
	// ErrExhausted is a Sealer whose counter has reached MaxCounter: the
	// connection must close (no connection gets near it).
	ErrExhausted = errors.New("secure: nonce counter exhausted")
	// ErrShortSecret is a secret under 16 bytes.
	ErrShortSecret = errors.New("secure: secret shorter than 16 bytes")
)
