package server

import (
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/coveyhq/covey/netio"
	"github.com/coveyhq/covey/session"
	"github.com/coveyhq/covey/wire"
)

// Config configures a Server. Start from DefaultConfig; the zero value of a
// field means its default.
type Config struct {
	// TCPAddr, KCPAddr and HTTPAddr are the listen addresses; "" disables
	// that listener (at least one of TCP and KCP must be on).
	TCPAddr, KCPAddr, HTTPAddr string
	// Secret signs sign-in tokens (at least 16 bytes). Without it the
	// server runs in dev mode: players sign in with a self-declared user ID,
	// and every listener must be on a loopback address.
	Secret string
	// APIKey is what a game backend presents to POST /v1/token. Required
	// with Secret.
	APIKey string
	// TokenTTL is the default lifetime of an issued token.
	TokenTTL time.Duration
	// Heartbeat is how often clients are told to ping; a connection silent
	// for three heartbeats is closed.
	Heartbeat time.Duration
	// MaxPayload is the largest frame payload accepted or sent, in bytes:
	// MinMaxPayload to wire.MaxMaxPayload.
	MaxPayload uint32
	// MaxConns is the most client connections the node holds, TCP and KCP
	// together; over it new ones are refused (TCP: a Bye with
	// StatusServerOffline on accept; KCP: the first segment is dropped).
	// TCP connections are also kept below the open-file limit (netio).
	MaxConns int
	// MaxOutbound is how many bytes may wait to be sent to one connection
	// before it is disconnected as a slow consumer.
	MaxOutbound int
	// KCPInterval is KCP's internal update interval (use 20ms above ~5,000
	// KCP sessions per process).
	KCPInterval time.Duration
	// Node is this node's name, written into session IDs.
	Node string
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// Pprof serves Go's profiles under /debug/pprof/ on the HTTP listener.
	Pprof bool
}

// DefaultConfig returns the configuration of a single dev-mode node on
// loopback: TCP and KCP on 127.0.0.1:7700, HTTP on 127.0.0.1:7701.
func DefaultConfig() Config {
	return Config{
		TCPAddr:     "127.0.0.1:7700",
		KCPAddr:     "127.0.0.1:7700",
		HTTPAddr:    "127.0.0.1:7701",
		TokenTTL:    5 * time.Minute,
		Heartbeat:   5 * time.Second,
		MaxPayload:  wire.DefaultMaxPayload,
		MaxConns:    netio.DefaultMaxConns,
		MaxOutbound: 4 << 20,
		KCPInterval: 10 * time.Millisecond,
		Node:        "local",
	}
}

// Configuration errors returned by New.
// MinMaxPayload is the smallest MaxPayload a Config may set: below it the
// fields around a message (wire.PushReserve) would leave too little room.
const MinMaxPayload = 4 << 10

var (
	ErrNoListener         = errors.New("server: neither TCP nor KCP is enabled")
	ErrNoAPIKey           = errors.New("server: a secret needs an API key for the token endpoint")
	ErrDevModeNotLoopback = errors.New("server: dev mode (no secret) only listens on loopback addresses; set a secret to listen elsewhere")
	ErrBadMaxPayload      = errors.New("server: max payload must be 4 KiB to 16 MiB")
	ErrBadNode            = errors.New("server: a node name is 1 to 64 characters of A-Z a-z 0-9 . _ -")
)

// withDefaults fills zero fields from DefaultConfig and checks the result.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.TokenTTL <= 0 {
		c.TokenTTL = d.TokenTTL
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = d.Heartbeat
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = d.MaxPayload
	}
	if c.MaxConns <= 0 {
		c.MaxConns = d.MaxConns
	}
	if c.MaxOutbound <= 0 {
		c.MaxOutbound = d.MaxOutbound
	}
	if c.KCPInterval <= 0 {
		c.KCPInterval = d.KCPInterval
	}
	if c.Node == "" {
		c.Node = d.Node
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.TCPAddr == "" && c.KCPAddr == "":
		return c, ErrNoListener
	case c.MaxPayload > wire.MaxMaxPayload || c.MaxPayload < MinMaxPayload:
		return c, ErrBadMaxPayload
	case !session.ValidNodeName(c.Node):
		return c, ErrBadNode
	case c.Secret != "" && c.APIKey == "":
		return c, ErrNoAPIKey
	case c.Secret == "":
		for _, addr := range []string{c.TCPAddr, c.KCPAddr, c.HTTPAddr} {
			if addr != "" && !isLoopback(addr) {
				return c, ErrDevModeNotLoopback
			}
		}
	}
	return c, nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c Config) wire() wire.Config {
	w := wire.DefaultConfig()
	w.MaxPayload = c.MaxPayload
	return w
}

func (c Config) netio() netio.Config {
	n := netio.DefaultConfig()
	n.TCPAddr, n.KCPAddr = c.TCPAddr, c.KCPAddr
	n.Wire = c.wire()
	n.MaxConns = c.MaxConns
	n.MaxOutbound = c.MaxOutbound
	n.IdleTimeout = 3 * c.Heartbeat
	n.KCPInterval = c.KCPInterval
	n.Logger = c.Logger
	return n
}

func (c Config) session() session.Config {
	s := session.DefaultConfig()
	s.Node = c.Node
	s.Wire = c.wire()
	return s
}
