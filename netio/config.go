package netio

import (
	"log/slog"
	"runtime"
	"strconv"
	"time"

	"github.com/coveyhq/covey/secure"
	"github.com/coveyhq/covey/wire"
)

// Transport says which front end a connection came through.
type Transport uint8

// Transports.
const (
	TCP Transport = 1 // gnet v2
	KCP Transport = 2 // KCP (kcp-go v5 compatible) over UDP
)

// String returns "tcp", "kcp", or "transport(N)" for another value.
func (t Transport) String() string {
	switch t {
	case TCP:
		return "tcp"
	case KCP:
		return "kcp"
	}
	return "transport(" + strconv.Itoa(int(t)) + ")"
}

// Kind says what is at the other end of a connection: a game client, or
// another node of the cluster (a mesh link). Both are the same [Conn] type,
// decoded the same way and sent to the same [Handler], which routes by
// Kind; they differ only in their limits (see Config's Peer fields).
type Kind uint8

// Kinds. The zero Kind is KindClient.
const (
	KindClient Kind = 0 // accepted on Config.TCPAddr or over KCP
	KindPeer   Kind = 1 // accepted on Config.MeshAddr, or dialed by [Server.DialPeer]
)

// String returns "client", "peer", or "kind(N)" for another value.
func (k Kind) String() string {
	switch k {
	case KindClient:
		return "client"
	case KindPeer:
		return "peer"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Defaults applied by [Listen] to zero fields of a [Config].
const (
	DefaultMaxConns            = 100_000
	DefaultMaxOutbound         = 4 << 20
	DefaultIdleTimeout         = 15 * time.Second
	DefaultKCPInterval         = 10 * time.Millisecond
	DefaultKCPHandshakeTimeout = 5 * time.Second
	DefaultKCPOverloadWait     = 30 * time.Millisecond
	DefaultPreAuthTimeout      = 5 * time.Second
	DefaultPreAuthMaxPayload   = 4 << 10 // see Config.PreAuthMaxPayload
	DefaultPeerMaxOutbound     = 64 << 20
	DefaultPeerMaxPayload      = 1 << 20
	DefaultPeerIdleTimeout     = 3 * time.Second
)

// DefaultPeerWire returns the frame codec configuration of peer
// connections by default: payloads up to DefaultPeerMaxPayload (1 MiB;
// larger state transfers are chunked by the cluster) and no compression
// (the cluster compresses batches, across slow links only).
func DefaultPeerWire() wire.Config {
	return wire.Config{MaxPayload: DefaultPeerMaxPayload}
}

// Config configures a [Server]. Build it from [DefaultConfig]; Listen
// replaces zero fields (other than the addresses and Wire) with the
// defaults.
//
// The fields without a Peer prefix apply to clients ([KindClient]); peer
// connections ([KindPeer]) have their own limits instead.
type Config struct {
	// TCPAddr is the TCP address to listen on ("host:port"); "" disables
	// TCP. Port 0 picks a free port: see [Server.TCPAddr].
	TCPAddr string
	// KCPAddr is the UDP address KCP listens on; "" disables KCP.
	KCPAddr string
	// MeshAddr is the TCP address on which other nodes of the cluster
	// connect ("host:port"); "" means no mesh listener (DialPeer still
	// works while the TCP engine runs). It is served by the same gnet
	// engine as TCPAddr: every connection accepted on it is a [KindPeer]
	// Conn. It must not be TCPAddr's address (both may ask for port 0).
	// Port 0 picks a free port: see [Server.MeshAddr].
	MeshAddr string

	// Wire is the frame codec configuration of every connection: the
	// largest payload accepted from clients and the compression threshold
	// of frames encoded by [Conn.Send].
	Wire wire.Config

	// MaxConns is the most connections the server holds, TCP and KCP
	// together, each counted from when the front end registers it (TCP:
	// accepted; KCP: first segment) until it is removed (after its last
	// write, or its linger on KCP). Over it a TCP connection gets a Bye
	// push (wire.StatusServerOffline, "server full") and is closed on
	// accept, and a KCP first segment is dropped without a reply; neither
	// reaches the Handler, and both count in [Stats]. TCP connections are
	// also kept 1,280 below the open-file limit (RLIMIT_NOFILE), whatever
	// MaxConns says: each is a file descriptor, and gnet stops the whole
	// TCP engine when accept fails with EMFILE (the reserve covers the
	// accept backlog, which netio sets to 1,024, and the HTTP side; a flood
	// faster than the event loops can still exhaust it). At most MaxConns/10
	// KCP sessions may be in their handshake (see KCPHandshakeTimeout) at
	// once; more first segments are refused like those over MaxConns.
	// Zero or less means the default, 100,000.
	MaxConns int

	// MaxOutbound is the most bytes queued to one connection (netio's
	// pending buffer plus gnet's outbound buffer on TCP, or plus what the
	// KCP window had no room for yet) before it is closed as a slow
	// consumer. It should be well above HeaderSize+MaxPayload: a frame
	// that does not fit closes the connection. Default 4 MiB.
	MaxOutbound int

	// IdleTimeout closes a connection from which no byte arrived for this
	// long with [ErrIdle] (clients ping every 5s). Default 15s.
	IdleTimeout time.Duration

	// EventLoops is how many gnet event loops serve TCP (clients and mesh
	// links); 0 means DefaultEventLoops. Fewer loops batch more per wake-up:
	// nodes that share cores (several on one machine) do better with one
	// each.
	EventLoops int

	// KCPInterval is how often the KCP engine updates the sessions that
	// have data in flight (retransmissions); KCP clamps it to 10ms..5s.
	// Idle sessions cost nothing per interval. Default 10ms.
	KCPInterval time.Duration

	// KCPReaders is how many UDP sockets serve KCP, each with its own
	// reader and writer goroutine (see kcpFront): bound to KCPAddr
	// together with SO_REUSEPORT, so that the kernel spreads the clients
	// over them by source address (all of one client's datagrams reach
	// the same socket) and the front end can use as many cores. 0 means 1;
	// at most 64.
	// More than one needs Linux; elsewhere, or if a socket cannot be
	// bound, the front end runs with those it has and logs a warning.
	// With SO_REUSEPORT another process of the same user can bind the
	// port too and take a share of the datagrams (the kernel allows it
	// only to the same user ID).
	KCPReaders int

	// KCPHandshakeTimeout closes a KCP session that has not delivered one
	// complete frame (so never reached the Handler) this long after its
	// first segment, whatever arrived since: a first segment costs no
	// handshake and its source address can be forged, so this bounds what
	// one holds. Default 5s.
	KCPHandshakeTimeout time.Duration

	// KCPOverloadWait is how long datagrams may wait in the KCP socket,
	// unread, before the KCP front end counts as overloaded
	// ([Conn.Overloaded]): when every batch read for that long waited that
	// long or more; it stops counting so once a batch waited less than
	// half of it. UDP has no flow control: a server that falls behind
	// its socket has the kernel drop datagrams (the socket's buffer holds
	// some tens of milliseconds of a busy node's traffic), KCP answers the
	// loss with retransmissions, more work for the same reader, and every
	// player's latency goes to seconds; the server refuses fan-outs
	// instead while the wait is over this bound. The wait is the kernel's
	// timestamp of each batch's first datagram (Linux only; elsewhere the
	// front end never counts as overloaded). Default 30ms; negative turns
	// the check off.
	KCPOverloadWait time.Duration

	// PreAuthTimeout closes a client connection, TCP or KCP, that has not
	// been authenticated ([Conn.Authenticated], which the server calls when
	// a sign-in succeeds) this long after its front end registered it (TCP:
	// accepted; KCP: its first segment), whatever it sent since: a client
	// that trickles a byte now and then is never idle, and would otherwise
	// hold its place, its file descriptor and its buffers forever. The
	// connection gets a Bye push (wire.StatusUnauthenticated, "sign in
	// within 5s") and OnClose gets [ErrPreAuthTimeout]; a KCP session that
	// has not delivered a complete frame yet is dropped without a Bye, as
	// at KCPHandshakeTimeout (the shorter of the two applies to it). The
	// sweep runs every quarter of the timeout (at most every second), so
	// the close comes up to that much after it. Peers are not concerned:
	// the cluster bounds its own handshake. Default 5s.
	PreAuthTimeout time.Duration

	// PreAuthMaxPayload is the largest payload, as sent and after
	// decompression, accepted from a client before it is authenticated
	// (see PreAuthTimeout); Wire's MaxPayload applies from the frame after
	// the one whose handling called [Conn.Authenticated]. A frame header
	// announcing more closes the connection at once, as one over
	// MaxPayload does (a Bye push wire.StatusTooLarge, ErrTooLarge), so an
	// unauthenticated client never makes the server buffer more than one
	// frame of this size. Before sign-in a client may send nothing but a
	// SignIn (or a Bye), and the largest SignIn a server accepts is 519
	// bytes: 4 of versions, a token of at most 512 bytes (package auth's
	// limit) with its 2-byte length, and an empty user ID (dev mode's
	// largest, a 128-byte user ID, is 135). The default, 4 KiB, leaves
	// room for what a later protocol version adds to it and is the
	// smallest MaxPayload the server accepts; a value over Wire's
	// MaxPayload means Wire's MaxPayload. Default 4 KiB.
	PreAuthMaxPayload uint32

	// PeerWire is the frame codec configuration of peer connections: the
	// largest payload accepted from a peer and the compression threshold
	// of frames encoded by [Conn.Send] to one. A zero MaxPayload means
	// DefaultPeerMaxPayload (1 MiB); the default, [DefaultPeerWire], does
	// not compress.
	PeerWire wire.Config

	// PeerMaxOutbound is MaxOutbound for peer connections: a peer that
	// lets more than this many bytes queue up is closed as a slow consumer
	// ([ErrSlowConsumer], after a Bye push StatusSlowConsumer), as a
	// client is at MaxOutbound; the cluster then redials it. It should be
	// well above HeaderSize+PeerWire.MaxPayload. Default 64 MiB.
	PeerMaxOutbound int

	// PeerIdleTimeout closes a peer connection from which no byte arrived
	// for this long with [ErrPeerSilent] (the cluster pings every second
	// on each link); IdleTimeout does not apply to peers. Default 3s.
	PeerIdleTimeout time.Duration

	// TicketKey opens the tickets of encrypted connections (PROTOCOL.md,
	// Transport security): the servers' key, derived from the token
	// secret. nil means the server has no encryption (development mode):
	// it refuses encrypted handshakes, and every connection is plaintext.
	TicketKey *secure.TicketKey

	// RequireEncryption refuses plaintext client connections: on KCP a
	// ConnectRequest without a ticket gets a Reject
	// (wire.StatusNotEncrypted), on TCP a connection whose first bytes
	// are a frame rather than a ClientHello gets a Bye with that status
	// and is closed. It needs TicketKey.
	RequireEncryption bool

	// KCPRawSegments serves bare kcp-go segments on the UDP port instead
	// of the packet layer (PROTOCOL.md, UDP packets): a session opens on
	// any first segment, with no address validation and no encryption,
	// as before the packet layer existed. It lets stock kcp-go clients
	// connect; a forged source address then gets datagrams the forger
	// never receives. Only for tests and trusted networks.
	KCPRawSegments bool

	// CookieLifetime is how long a UDP Challenge's cookie may be echoed
	// back. Default secure.DefaultCookieLifetime (10s).
	CookieLifetime time.Duration

	// Logger receives netio's and gnet's logs. Default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns a Config with the defaults, wire.DefaultConfig for
// clients and DefaultPeerWire for peers, and no address: set TCPAddr,
// KCPAddr and/or MeshAddr.
func DefaultConfig() Config {
	return Config{
		Wire:                wire.DefaultConfig(),
		MaxConns:            DefaultMaxConns,
		MaxOutbound:         DefaultMaxOutbound,
		IdleTimeout:         DefaultIdleTimeout,
		KCPInterval:         DefaultKCPInterval,
		KCPHandshakeTimeout: DefaultKCPHandshakeTimeout,
		KCPOverloadWait:     DefaultKCPOverloadWait,
		PreAuthTimeout:      DefaultPreAuthTimeout,
		PreAuthMaxPayload:   DefaultPreAuthMaxPayload,
		PeerWire:            DefaultPeerWire(),
		PeerMaxOutbound:     DefaultPeerMaxOutbound,
		PeerIdleTimeout:     DefaultPeerIdleTimeout,
		Logger:              slog.Default(),
	}
}

// DefaultEventLoops returns the event loops of a Config with
// EventLoops 0: one per P (runtime.GOMAXPROCS, which follows the CPU quota
// of a container) but one, at least one. A delivery to a connection of
// another loop is handed to that loop (a wake-up of its thread), and a
// loop that reads and writes all of a broadcast in one pass needs none;
// the core left over runs the kernel's side of the sockets, the KCP
// engine, the timers and the garbage collector. Measured on two cores
// (bench/README.md, "One event loop on two cores"): one loop against two
// spent 0.47-0.82x the CPU per delivery on every row of the side-by-side
// harness and delivered 1.14-1.24x as much where the driver saturates the
// server. Larger machines were not measured.
func DefaultEventLoops() int { return max(runtime.GOMAXPROCS(0)-1, 1) }

// eventLoops returns EventLoops, or DefaultEventLoops for 0.
func (c *Config) eventLoops() int {
	if c.EventLoops > 0 {
		return c.EventLoops
	}
	return DefaultEventLoops()
}

// withDefaults returns c with zero fields replaced by defaults.
func (c Config) withDefaults() Config {
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxOutbound <= 0 {
		c.MaxOutbound = DefaultMaxOutbound
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.KCPInterval <= 0 {
		c.KCPInterval = DefaultKCPInterval
	}
	if c.KCPHandshakeTimeout <= 0 {
		c.KCPHandshakeTimeout = DefaultKCPHandshakeTimeout
	}
	if c.KCPOverloadWait == 0 {
		c.KCPOverloadWait = DefaultKCPOverloadWait
	}
	if c.PreAuthTimeout <= 0 {
		c.PreAuthTimeout = DefaultPreAuthTimeout
	}
	if c.PreAuthMaxPayload == 0 {
		c.PreAuthMaxPayload = DefaultPreAuthMaxPayload
	}
	if c.PeerWire.MaxPayload == 0 {
		c.PeerWire.MaxPayload = DefaultPeerMaxPayload
	}
	if c.PeerMaxOutbound <= 0 {
		c.PeerMaxOutbound = DefaultPeerMaxOutbound
	}
	if c.PeerIdleTimeout <= 0 {
		c.PeerIdleTimeout = DefaultPeerIdleTimeout
	}
	if c.CookieLifetime <= 0 {
		c.CookieLifetime = secure.DefaultCookieLifetime
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
