package clientsdk

import (
	"fmt"
	"time"

	"github.com/coveyhq/covey/secure"
	"github.com/coveyhq/covey/wire"
)

// Defaults applied by Dial to zero Config fields, and protocol constants.
const (
	// DefaultDialTimeout bounds connecting and signing in.
	DefaultDialTimeout = 10 * time.Second
	// DefaultEventBuffer is the default capacity of the event queue.
	DefaultEventBuffer = 4096
	// DefaultHeartbeat is the ping interval used when the server's sign-in
	// reply announces none.
	DefaultHeartbeat = 5 * time.Second
	// deadHeartbeats is how many heartbeat intervals of silence from the
	// server mean the connection is dead (the server applies the same rule
	// to the client).
	deadHeartbeats = 3
)

// Config configures a client. Pass it to [Dial]; it is copied and not
// used after Dial returns. Start from [DefaultConfig] or the zero value:
// zero fields take their defaults. Exactly one of Token and UserID must be
// set.
type Config struct {
	// Network is "tcp" (the default when empty) or "kcp".
	Network string
	// Addr is the server's host:port.
	Addr string
	// Token signs in on a server in signed mode: a token the game backend
	// obtained from the server's HTTP API for this player. A connect token
	// (the "v3." tokens servers issue) opens an encrypted connection
	// (PROTOCOL.md, Transport security) unless Plaintext is set; an older
	// token signs in on a plaintext one.
	Token string
	// Plaintext sends Token in a plaintext sign-in instead of encrypting
	// the connection: only servers run with -allow-plaintext accept it,
	// and anyone on the path reads and may alter the traffic. A connect
	// token sent so shows its connection key, which then opens every
	// encrypted connection made with the same token: never use one token
	// both ways. For debugging and for servers that predate encryption.
	Plaintext bool
	// UserID signs in on a server in development mode, which trusts the
	// client's word.
	UserID string
	// DialTimeout bounds Dial: connecting and signing in. 0 means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// EventBuffer is the capacity of the event queue behind
	// [Client.Events]. When the application lets it fill up, the client
	// closes with ErrEventOverflow. 0 means DefaultEventBuffer.
	EventBuffer int
	// Wire sets the largest payload the client accepts from the server
	// (Wire.MaxPayload; 0 means wire.DefaultMaxPayload, the server's
	// default) and whether large outgoing payloads are compressed
	// (Wire.CompressThreshold; 0 means never). Payloads are limited on the
	// way out by the server's announced maximum, whatever this says.
	Wire wire.Config
}

// DefaultConfig returns a Config for a TCP connection with every default
// set and compression of outgoing payloads from
// wire.DefaultCompressThreshold bytes. Fill in Addr and Token (or UserID).
func DefaultConfig() Config {
	return Config{
		Network:     "tcp",
		DialTimeout: DefaultDialTimeout,
		EventBuffer: DefaultEventBuffer,
		Wire:        wire.DefaultConfig(),
	}
}

// withDefaults returns c with defaults applied, or an error wrapping
// ErrBadConfig.
func (c Config) withDefaults() (Config, error) {
	switch c.Network {
	case "":
		c.Network = "tcp"
	case "tcp", "kcp":
	default:
		return c, fmt.Errorf("%w: Network %q: want \"tcp\" or \"kcp\"", ErrBadConfig, c.Network)
	}
	if c.Addr == "" {
		return c, fmt.Errorf("%w: Addr is empty", ErrBadConfig)
	}
	if (c.Token == "") == (c.UserID == "") {
		return c, fmt.Errorf("%w: set exactly one of Token (signed mode) and UserID (development mode)", ErrBadConfig)
	}
	if c.Token != "" && secure.IsConnectToken(c.Token) {
		if _, err := secure.ParseConnectToken(c.Token); err != nil {
			return c, fmt.Errorf("%w: Token starts like a connect token (\"v3.\") but is not one: %w", ErrBadConfig, err)
		}
	}
	if c.DialTimeout < 0 || c.EventBuffer < 0 {
		return c, fmt.Errorf("%w: negative DialTimeout or EventBuffer", ErrBadConfig)
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.EventBuffer == 0 {
		c.EventBuffer = DefaultEventBuffer
	}
	return c, nil
}

// ticket returns the ticket the connection is encrypted with, or nil for
// a plaintext connection. c has passed withDefaults.
func (c *Config) ticket() *secure.ClientTicket {
	if c.Token == "" || c.Plaintext || !secure.IsConnectToken(c.Token) {
		return nil
	}
	ct, _ := secure.ParseConnectToken(c.Token) // checked by withDefaults
	return &ct
}
