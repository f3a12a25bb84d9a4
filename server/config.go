package server

import (
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/coveyhq/covey/cluster"
	"github.com/coveyhq/covey/internal/rate"
	"github.com/coveyhq/covey/netio"
	"github.com/coveyhq/covey/session"
	"github.com/coveyhq/covey/wire"
)

// Config configures a Server. Start from DefaultConfig; the zero value of a
// field means its default.
type Config struct {
	// TCPAddr, KCPAddr and HTTPAddr are the listen addresses; "" disables
	// that listener (at least one of TCP and KCP must be on). HTTPAddr is
	// the public HTTP API: POST /v1/token, /healthz and /readyz.
	TCPAddr, KCPAddr, HTTPAddr string
	// AdminAddr is the admin HTTP listener's address: /metrics, /healthz,
	// /readyz and, with Pprof, /debug/pprof/. It is for operators,
	// Prometheus and probes, and must not be reachable from the internet.
	// "" disables it, and is DefaultConfig's value; cmd/server's default
	// is DefaultAdminAddr.
	AdminAddr string
	// Secret signs sign-in tokens (at least 16 bytes). Without it the
	// server runs in dev mode: players sign in with a self-declared user ID,
	// and every listener must be on a loopback address.
	Secret string
	// APIKey is what a game backend presents to POST /v1/token. Required
	// with Secret.
	APIKey string
	// TokenTTL is the default lifetime of an issued token.
	TokenTTL time.Duration
	// SingleUseTokens makes every token sign in once (auth.ReplayGuard,
	// remembering up to 1<<20 live tokens per node): a token seen again
	// is refused. Tokens are then of format v2; every node of a cluster
	// must run a version that reads it.
	SingleUseTokens bool
	// AllowPlaintext lets clients of a server with a Secret connect
	// without encryption (PROTOCOL.md, Transport security), as clients
	// that predate it do: they sign in with a token in a plaintext SignIn.
	// Off, a token-mode server accepts encrypted connections only.
	// Development mode (no Secret) has no keys and is always plaintext.
	AllowPlaintext bool
	// KCPRawSegments serves bare kcp-go segments on the KCP port, without
	// the UDP packet layer's address validation and encryption
	// (netio.Config.KCPRawSegments). Only for tests and trusted networks.
	KCPRawSegments bool
	// Heartbeat is how often clients are told to ping; a connection silent
	// for three heartbeats is closed.
	Heartbeat time.Duration
	// DeferTimeout is how long an application handler's deferred reply
	// (Request.Defer) may take: past it the request is answered
	// StatusInternal, in its turn, the handler's late reply is dropped,
	// and the connection's later replies, which wait behind it, go out.
	// 0 means DefaultDeferTimeout; negative means no limit.
	DeferTimeout time.Duration
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
	// KCPOverloadWait is how long KCP datagrams may wait unread in the
	// server's socket before the node refuses Broadcast and MessageTo from
	// KCP clients with StatusOverloaded, until it catches up
	// (netio.Config.KCPOverloadWait); 0 means 30ms, negative never.
	KCPOverloadWait time.Duration
	// EventLoops is how many event loops serve TCP; 0 means one per CPU
	// but one, at least one (netio.DefaultEventLoops).
	EventLoops int
	// KCPReaders is how many UDP sockets, each with its own reader,
	// serve KCP on KCPAddr (SO_REUSEPORT, Linux); 0 means 1
	// (netio.Config.KCPReaders). One reader takes about a core at
	// some 200k deliveries a second: more let KCP use more cores.
	KCPReaders int
	// PreAuthTimeout is how long a client connection may take to sign in:
	// one that has not signed in this long after it connected (TCP) or
	// sent its first segment (KCP) is closed with a Bye
	// (StatusUnauthenticated, "sign in within 5s"), however many bytes it
	// trickles (netio.Config.PreAuthTimeout). Until it signs in, its
	// frames are at most netio.DefaultPreAuthMaxPayload (4 KiB).
	PreAuthTimeout time.Duration
	// Node is this node's name, written into session IDs.
	Node string
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// Pprof serves Go's profiles under /debug/pprof/ on the admin
	// listener, which must then be on.
	Pprof bool
	// Cluster makes the node one of a cluster; the zero value is a single
	// node.
	Cluster ClusterConfig

	// publicHTTP and adminHTTP, for tests, replace the bounds of the
	// public and the admin HTTP listeners; the zero value keeps
	// publicHTTPLimits and adminHTTPLimits.
	publicHTTP, adminHTTP httpLimits
	// Limits are what one connection and one player may cost the node;
	// zero fields take DefaultLimits' values.
	Limits Limits
}

// Limits bound what one connection and one player may cost the node, with
// defaults that no normal game reaches (PROTOCOL.md, Limits). Past a rate
// a request is answered StatusRateLimited and not run; past a budget,
// StatusLimitExceeded. A negative value means no limit.
type Limits struct {
	// CommandsPerSecond and CommandBurst bound the requests of one
	// signed-in connection (a token bucket).
	CommandsPerSecond, CommandBurst float64
	// BytesPerSecond and ByteBurst bound the request bytes (headers and
	// payloads, as decoded) of one signed-in connection.
	BytesPerSecond, ByteBurst float64
	// FloodBurst bounds the requests refused with RateLimited: a
	// connection that keeps sending after its replies say RateLimited,
	// FloodBurst refused requests beyond what CommandsPerSecond refills
	// (a token bucket of its own), is closed with a Bye RateLimited
	// ("flooding"). Refusing costs the node a little per request, which a
	// client writing as fast as its link allows turns into a core; a
	// client that slows down when refused never comes near it.
	FloodBurst float64
	// FloodBarTime is how long the user of a connection closed for
	// flooding may not sign in on this node (StatusRateLimited): without
	// it, each reconnection would bring a full burst again.
	FloodBarTime time.Duration
	// MaxSessions is the most sessions the node holds.
	MaxSessions int
	// MaxEmptyPerUser is the most empty sessions (waiting for their empty
	// TTL) a user may have created and still hold.
	MaxEmptyPerUser int
	// CreatesPerMinute, InvitesPerMinute and InvitesReceivedPerMinute
	// bound what one user creates, invites (targets) and is invited to;
	// each allows a burst of a third of its minute.
	CreatesPerMinute, InvitesPerMinute, InvitesReceivedPerMinute float64
}

// DefaultLimits returns the limits a Config's zero Limits take.
func DefaultLimits() Limits {
	return Limits{
		CommandsPerSecond: 1000, CommandBurst: 2000,
		BytesPerSecond: 4 << 20, ByteBurst: 8 << 20, FloodBurst: 4000, FloodBarTime: 10 * time.Second,
		MaxSessions: 1 << 20, MaxEmptyPerUser: 16,
		CreatesPerMinute: 60, InvitesPerMinute: 300, InvitesReceivedPerMinute: 60,
	}
}

// NoLimits returns limits that lift every rate and budget: for load tests
// and benchmarks, never for a node players reach.
func NoLimits() Limits {
	return Limits{
		CommandsPerSecond: -1, CommandBurst: -1, BytesPerSecond: -1, ByteBurst: -1, FloodBurst: -1, FloodBarTime: -1,
		MaxSessions: -1, MaxEmptyPerUser: -1,
		CreatesPerMinute: -1, InvitesPerMinute: -1, InvitesReceivedPerMinute: -1,
	}
}

// withDefaults fills l's zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	or := func(v *float64, def float64) {
		if *v == 0 {
			*v = def
		}
	}
	or(&l.CommandsPerSecond, d.CommandsPerSecond)
	or(&l.CommandBurst, d.CommandBurst)
	or(&l.BytesPerSecond, d.BytesPerSecond)
	or(&l.ByteBurst, d.ByteBurst)
	or(&l.FloodBurst, d.FloodBurst)
	or(&l.CreatesPerMinute, d.CreatesPerMinute)
	or(&l.InvitesPerMinute, d.InvitesPerMinute)
	or(&l.InvitesReceivedPerMinute, d.InvitesReceivedPerMinute)
	if l.MaxSessions == 0 {
		l.MaxSessions = d.MaxSessions
	}
	if l.MaxEmptyPerUser == 0 {
		l.MaxEmptyPerUser = d.MaxEmptyPerUser
	}
	if l.FloodBarTime == 0 {
		l.FloodBarTime = d.FloodBarTime
	}
	return l
}

// perMinute is n a minute with a burst of a third of n (unlimited for
// n < 0).
func perMinute(n float64) rate.Limit {
	if n < 0 {
		return rate.Limit{PerSecond: -1}
	}
	return rate.PerMinute(n, max(n/3, 1))
}

// ClusterConfig is how a node joins a cluster (see the cluster package).
// A node is in a cluster when MeshAddr is set; then GossipAddr must be
// too, and Node must be unique in the cluster and stable across restarts.
type ClusterConfig struct {
	// MeshAddr is the TCP listen address of the links to the other nodes;
	// GossipAddr is memberlist's (UDP and TCP on the same port).
	MeshAddr, GossipAddr string
	// MeshAdvertise and GossipAdvertise are the addresses other nodes
	// reach those at, when not the bound ones (behind NAT or in a
	// container); "" for the bound addresses.
	MeshAdvertise, GossipAdvertise string
	// Join lists gossip addresses (host:port, hostnames allowed) of nodes
	// to join; a node retries them for as long as it runs, so they may be
	// every node of the cluster, itself included.
	Join []string
	// Secret authenticates the links and encrypts gossip (at least 16
	// bytes). Without it every listener, mesh and gossip included, must
	// be on loopback.
	Secret string
	// Name is the cluster's name ("covey" by default): nodes of different
	// clusters refuse each other's links.
	Name string
	// CallTimeout is how long a command forwarded to another node waits
	// for the owner's answer before the client gets Unavailable (a join
	// given up on this way is undone on the owner). Default 2s.
	CallTimeout time.Duration
	// Faults, for tests, cuts chosen pairs of nodes apart (gossip and
	// mesh) inside one process.
	Faults *cluster.Faults
}

// enabled reports whether the node is to join a cluster.
func (c ClusterConfig) enabled() bool { return c.MeshAddr != "" }

// DefaultConfig returns the configuration of a single dev-mode node on
// loopback: TCP and KCP on 127.0.0.1:7700, public HTTP on 127.0.0.1:7701,
// no admin listener (set AdminAddr, to DefaultAdminAddr for instance, for
// /metrics).
func DefaultConfig() Config {
	return Config{
		TCPAddr:        "127.0.0.1:7700",
		KCPAddr:        "127.0.0.1:7700",
		HTTPAddr:       "127.0.0.1:7701",
		TokenTTL:       5 * time.Minute,
		Heartbeat:      5 * time.Second,
		MaxPayload:     wire.DefaultMaxPayload,
		MaxConns:       netio.DefaultMaxConns,
		MaxOutbound:    4 << 20,
		KCPInterval:    10 * time.Millisecond,
		PreAuthTimeout: netio.DefaultPreAuthTimeout,
		Node:           "local",
	}
}

// DefaultDeferTimeout is Config.DeferTimeout's default.
const DefaultDeferTimeout = 30 * time.Second

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
	ErrClusterConfig      = errors.New("server: a cluster node needs both a mesh and a gossip address")
	ErrClusterSecret      = errors.New("server: a cluster secret is at least 16 bytes; without one every listener, mesh and gossip included, must be on loopback")
	ErrPprofNoAdmin       = errors.New("server: pprof is served on the admin listener, which is off")
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
	if c.DeferTimeout == 0 {
		c.DeferTimeout = DefaultDeferTimeout
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
	if c.PreAuthTimeout <= 0 {
		c.PreAuthTimeout = d.PreAuthTimeout
	}
	if c.Node == "" {
		c.Node = d.Node
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Limits = c.Limits.withDefaults()
	// A connection may always send one frame of the largest payload.
	c.Limits.ByteBurst = max(c.Limits.ByteBurst, float64(c.MaxPayload+wire.HeaderSize))
	switch {
	case c.TCPAddr == "" && c.KCPAddr == "":
		return c, ErrNoListener
	case c.MaxPayload > wire.MaxMaxPayload || c.MaxPayload < MinMaxPayload:
		return c, ErrBadMaxPayload
	case !session.ValidNodeName(c.Node):
		return c, ErrBadNode
	case c.Secret != "" && c.APIKey == "":
		return c, ErrNoAPIKey
	case c.Cluster.enabled() && c.Cluster.GossipAddr == "":
		return c, ErrClusterConfig
	case c.Cluster.enabled() && c.Cluster.Secret != "" && len(c.Cluster.Secret) < 16:
		return c, ErrClusterSecret
	case c.Cluster.enabled() && c.Cluster.Secret == "" &&
		(!isLoopback(c.Cluster.MeshAddr) || !isLoopback(c.Cluster.GossipAddr) || !allLoopback(c.TCPAddr, c.KCPAddr, c.HTTPAddr, c.AdminAddr)):
		return c, ErrClusterSecret
	case c.Pprof && c.AdminAddr == "":
		return c, ErrPprofNoAdmin
	case c.Secret == "" && !allLoopback(c.TCPAddr, c.KCPAddr, c.HTTPAddr, c.AdminAddr):
		return c, ErrDevModeNotLoopback
	}
	return c, nil
}

// allLoopback reports whether every address set is on loopback.
func allLoopback(addrs ...string) bool {
	for _, a := range addrs {
		if a != "" && !isLoopback(a) {
			return false
		}
	}
	return true
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

// meshHeadroom is what a mesh frame carries beyond the client frame or
// payload inside it: a Fanout's session ID and targets (a Fanout with
// more targets than fit is split), an Exec's session, caller and op.
const meshHeadroom = 64 << 10

// peerMaxPayload is the largest mesh payload the node accepts (and tells
// its peers): netio's default, 1 MiB, or more where client frames may be
// larger, so that any client frame fits in a Fanout or an Exec to a node
// configured alike.
func (c Config) peerMaxPayload() uint32 {
	return max(netio.DefaultPeerMaxPayload, c.MaxPayload+meshHeadroom)
}

func (c Config) netio() netio.Config {
	n := netio.DefaultConfig()
	n.TCPAddr, n.KCPAddr = c.TCPAddr, c.KCPAddr
	n.MeshAddr = c.Cluster.MeshAddr
	n.PeerWire.MaxPayload = c.peerMaxPayload()
	n.Wire = c.wire()
	n.MaxConns = c.MaxConns
	n.MaxOutbound = c.MaxOutbound
	n.IdleTimeout = 3 * c.Heartbeat
	n.KCPInterval = c.KCPInterval
	n.KCPOverloadWait = c.KCPOverloadWait // 0: netio's default
	n.EventLoops = c.EventLoops
	n.KCPReaders = c.KCPReaders
	n.PreAuthTimeout = c.PreAuthTimeout
	n.KCPRawSegments = c.KCPRawSegments
	n.RequireEncryption = c.Secret != "" && !c.AllowPlaintext
	n.Logger = c.Logger
	return n
}

func (c Config) session() session.Config {
	s := session.DefaultConfig()
	s.Node = c.Node
	s.Wire = c.wire()
	s.MaxSessions, s.MaxEmptyPerUser = c.Limits.MaxSessions, c.Limits.MaxEmptyPerUser
	s.CreateRate = perMinute(c.Limits.CreatesPerMinute)
	s.InviteRate = perMinute(c.Limits.InvitesPerMinute)
	s.InviteReceiveRate = perMinute(c.Limits.InvitesReceivedPerMinute)
	return s
}
