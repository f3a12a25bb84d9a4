package netio

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coveyhq/covey/wire"
)

// Handler receives the connections of a Server. It is implemented by the
// server package.
//
// Clients and peers (other nodes, see Conn.Kind) come through the same
// Handler, which routes by Kind. Calls for one connection never overlap
// and come in order: OnOpen, then OnFrame for each inbound frame, then
// OnClose exactly once. Calls for different connections run
// concurrently. No method may block: on TCP they run on a gnet event
// loop shared by many connections (clients and peers), on KCP on one of
// the two goroutines of the KCP engine of its socket (one or several,
// Config.KCPReaders), shared by every KCP connection there (OnOpen and
// OnFrame on its reader; OnClose on the reader or the writer,
// or on the goroutine calling Shutdown when it runs out of time).
type Handler interface {
	// OnOpen is called when a connection is established (TCP: accepted,
	// or dialed by Server.DialPeer; KCP: its first complete frame arrived,
	// which OnFrame gets next). c.Kind() is set, and for a dialed peer
	// c.State() returns the state given to DialPeer. Connections refused
	// over Config.MaxConns (or the open-file bound), and KCP sessions
	// closed before a complete frame, never get here. c may be used
	// (Deliver, Send, Close, SetState) from any goroutine from now on.
	OnOpen(c *Conn)

	// OnFrame is called for each complete frame the peer sent, on the
	// connection's event loop (TCP) or its KCP front's reader (or, after a
	// Conn.Release, its writer, under the session's mutex); it must not
	// block. f.Payload is already decompressed (FlagCompressed
	// cleared, Length set to its length) and is valid only until OnFrame
	// returns: copy what must outlive it. Frames queued to c from OnFrame
	// are flushed together when the batch of frames read with f ends.
	OnFrame(c *Conn, f wire.Frame)

	// OnClose is called once the connection is closing for good; err says
	// why (ErrIdle, ErrPreAuthTimeout, ErrPeerSilent, ErrSlowConsumer,
	// ErrInboundHeld, ErrPeerClosed, ErrTooLarge, ErrBadFrame, ErrServerClosed, or an error
	// matching ErrClosedByServer and the status given to Conn.Close). Frames
	// delivered to c from now on are dropped. When netio closes the
	// connection, OnClose returns before the last frames (the Bye) are
	// written and the socket closed: a client that received its Bye can
	// count on the server being done with that connection.
	OnClose(c *Conn, err error)
}

// Server runs netio's front ends. Its methods are safe for concurrent use.
type Server struct {
	cfg   Config
	h     Handler
	log   *slog.Logger
	epoch time.Time
	tick  time.Duration // period of the client sweeps: idle and pre-auth

	// preAuthReason is the Bye reason of a client closed at
	// Config.PreAuthTimeout: "sign in within 5s". Read-only.
	preAuthReason string
	// preAuthWire is the codec configuration of the frames read from a
	// client until it is authenticated: Wire with MaxPayload set to
	// Config.PreAuthMaxPayload (at most Wire's). preAuthTooLarge is the
	// Bye reason of one over it. Read-only.
	preAuthWire     wire.Config
	preAuthTooLarge string

	lim [2]connLimits // by Kind: from cfg

	tcp *tcpFront // the gnet engine (clients and mesh); nil if neither TCPAddr nor MeshAddr is set
	kcp kcpShards // nil if KCP is disabled

	// wg counts every goroutine netio starts: the gnet engine and each KCP
	// front's reader and writer.
	wg sync.WaitGroup

	count [2]atomic.Int64 // by Kind: connections between OnOpen and the end of OnClose

	// held counts the connections from admit to remove, what
	// Config.MaxConns bounds: a front end takes a place before it
	// allocates anything for a connection.
	held       atomic.Int64
	heldTCP    atomic.Int64     // the TCP part of held, bounded by tcpLimit
	kcpPending atomic.Int64     // KCP sessions before their first frame, bounded by kcpPendingLimit
	tcpLimit   int64            // min(MaxConns, the open-file limit less fdReserve): see admit
	refused    [3]atomic.Uint64 // by Transport: refused by admit, for Stats
	refusedLog atomic.Int64     // s.now() of the last "limit reached" warning

	// heldPeers counts the peer connections from admitPeer to remove,
	// apart from held: peers do not take the places of clients. Only the
	// open-file limit, fdLimit, bounds them, with heldTCP.
	heldPeers    atomic.Int64
	fdLimit      int64 // the open-file limit less fdReserve (no bound if unknown)
	refusedPeers atomic.Uint64

	bytesIn, bytesOut atomic.Uint64 // for Stats

	mu       sync.Mutex
	conns    map[uint64]*Conn // every kind
	peers    map[uint64]*Conn // the KindPeer part of conns, for the peer idle sweep
	closing  bool             // Shutdown started: refuse new connections
	drained  chan struct{}    // closed when closing and conns is empty
	drainedD bool             // drained is closed

	stopOnce sync.Once
	stopped  chan struct{} // closed when every goroutine has returned
}

// Listen starts the front ends enabled in cfg (at least one address must
// be set: TCPAddr, KCPAddr or MeshAddr) and returns once they accept
// connections. Zero fields of cfg take their defaults. h receives every
// connection. Listen blocks only while the front ends start.
func Listen(cfg Config, h Handler) (*Server, error) {
	cfg = cfg.withDefaults()
	if cfg.TCPAddr == "" && cfg.KCPAddr == "" && cfg.MeshAddr == "" {
		return nil, errors.New("netio: no address to listen on")
	}
	if cfg.MeshAddr != "" && cfg.MeshAddr == cfg.TCPAddr && !portZero(cfg.MeshAddr) {
		return nil, errors.New("netio: MeshAddr and TCPAddr are the same address")
	}
	if h == nil {
		return nil, errors.New("netio: nil Handler")
	}
	if cfg.RequireEncryption && cfg.TicketKey == nil {
		return nil, errors.New("netio: RequireEncryption without a TicketKey")
	}
	s := &Server{
		cfg:     cfg,
		h:       h,
		log:     cfg.Logger,
		epoch:   time.Now(),
		tick:    min(max(min(cfg.IdleTimeout, cfg.PreAuthTimeout)/4, 10*time.Millisecond), time.Second),
		conns:   make(map[uint64]*Conn),
		peers:   make(map[uint64]*Conn),
		drained: make(chan struct{}),
		stopped: make(chan struct{}),

		preAuthReason: "sign in within " + cfg.PreAuthTimeout.String(),
	}
	s.preAuthWire = cfg.Wire
	s.preAuthWire.MaxPayload = min(cfg.PreAuthMaxPayload, cfg.Wire.PayloadLimit())
	s.preAuthTooLarge = "frame over " + strconv.Itoa(int(s.preAuthWire.MaxPayload)) + " bytes before sign-in"
	s.lim[KindClient] = connLimits{maxOutbound: cfg.MaxOutbound, wire: cfg.Wire, idle: cfg.IdleTimeout, idleErr: ErrIdle}
	s.lim[KindPeer] = connLimits{maxOutbound: cfg.PeerMaxOutbound, wire: cfg.PeerWire, idle: cfg.PeerIdleTimeout, idleErr: ErrPeerSilent}
	if cfg.TCPAddr != "" || cfg.MeshAddr != "" {
		if err := s.startTCP(); err != nil {
			return nil, err
		}
	}
	if cfg.KCPAddr != "" {
		if err := s.startKCP(); err != nil {
			if s.tcp != nil {
				s.tcp.stop()
				<-s.tcp.runDone
			}
			return nil, err
		}
	}
	return s, nil
}

// TCPAddr returns the address the TCP front end is bound to (with port 0
// resolved), or nil if TCP is disabled. Any goroutine.
func (s *Server) TCPAddr() net.Addr {
	if s.tcp == nil || s.tcp.client.addr == nil {
		return nil
	}
	return s.tcp.client.addr
}

// MeshAddr returns the TCP address the mesh listener is bound to (with
// port 0 resolved), or nil if Config.MeshAddr is "". Any goroutine.
func (s *Server) MeshAddr() net.Addr {
	if s.tcp == nil || s.tcp.mesh.addr == nil {
		return nil
	}
	return s.tcp.mesh.addr
}

// KCPAddr returns the UDP address the KCP front end is bound to, or nil if
// KCP is disabled. Any goroutine.
func (s *Server) KCPAddr() net.Addr {
	if s.kcp == nil {
		return nil
	}
	return s.kcp.addr()
}

// Conns returns the number of open client connections: those whose
// OnOpen has been called and whose OnClose has not returned yet. Peer
// connections are not counted (see Peers). Any goroutine.
func (s *Server) Conns() int { return int(s.count[KindClient].Load()) }

// Peers returns the number of open peer connections (mesh links, accepted
// or dialed), counted as Conns counts clients. Any goroutine.
func (s *Server) Peers() int { return int(s.count[KindPeer].Load()) }

// Stats counts what the front ends moved and refused.
type Stats struct {
	BytesIn  uint64 // bytes of frames received (as on the wire, before decompression)
	BytesOut uint64 // bytes handed to the sockets

	// RefusedTCP and RefusedKCP count the connections refused because the
	// server was full (Config.MaxConns, the open-file bound on TCP, the
	// handshake budget on KCP): TCP connections closed on accept, KCP first
	// segments dropped (a client's retransmissions of its first segment
	// count again).
	RefusedTCP, RefusedKCP uint64

	// RefusedPeers counts the peer connections refused because the TCP
	// connections would have reached the open-file limit (MaxConns does
	// not apply to peers), accepted or dialed.
	RefusedPeers uint64

	// TCPForgedRecords counts the TCP records dropped because they failed
	// authentication (PROTOCOL.md, TCP records): injected into a stream,
	// or altered on the way. They close nothing.
	TCPForgedRecords uint64

	// The KCP port's UDP packet layer (all 0 with Config.KCPRawSegments).
	// KCPChallenges counts the Challenges sent (one per acceptable
	// ConnectRequest, repeats included); KCPRejects the Rejects (refused
	// ConnectRequests, and validated ChallengeResponses a full server
	// refused); KCPDropped the datagrams dropped without an answer:
	// malformed or of an unknown type, from an address without a session,
	// with a ticket or cookie that does not open, a Data packet that fails
	// authentication or the replay window, or of the other kind than its
	// session's.
	KCPChallenges, KCPRejects, KCPDropped uint64

	// KCPSocketDrops counts the datagrams the kernel dropped at the KCP
	// sockets because their buffers were full (Linux only: SO_RXQ_OVFL,
	// as of each socket's last batch read; the sum of one 32-bit counter
	// per socket, each of which wraps), and KCPOverloads the times a KCP
	// front end became overloaded ([Conn.Overloaded]).
	KCPSocketDrops, KCPOverloads uint64

	// KCPDatagramsIn and KCPDatagramsOut count the datagrams the KCP port
	// read and sent, KCPReads the reads (recvmmsg batches) that returned
	// some: datagrams per read near 64 mean the reader is behind.
	KCPDatagramsIn, KCPDatagramsOut, KCPReads uint64

	// KCPResent counts the KCP segments sent again (retransmissions,
	// every session): loss, or ACKs later than the timeout.
	KCPResent uint64
}

// Stats returns the counters since Listen. Any goroutine; atomic reads.
func (s *Server) Stats() Stats {
	st := Stats{
		BytesIn:    s.bytesIn.Load(),
		BytesOut:   s.bytesOut.Load(),
		RefusedTCP: s.refused[TCP].Load(),
		RefusedKCP: s.refused[KCP].Load(),

		RefusedPeers: s.refusedPeers.Load(),

		TCPForgedRecords: s.tcpForgedRecords(),
	}
	s.kcp.stats(&st)
	return st
}

// tcpForgedRecords returns the TCP front end's count of forged records.
func (s *Server) tcpForgedRecords() uint64 {
	if s.tcp == nil {
		return 0
	}
	return s.tcp.forged.Load()
}

// Shutdown stops accepting connections (and DialPeer fails from now on
// with ErrServerClosed), sends every open connection, peers too, a Bye
// push (wire.StatusShuttingDown with reason) after what is queued to it,
// waits until every connection is closed (OnClose returned, last batch
// written, socket closed), then stops the front ends and waits for every
// goroutine netio started. It blocks until then
// or until ctx is done; in that case it closes what is left without
// flushing and returns ctx.Err() (the remaining goroutines exit shortly
// after; calling Shutdown again waits for them). Any goroutine except a
// Handler callback (it would wait for itself).
func (s *Server) Shutdown(ctx context.Context, reason string) error {
	s.mu.Lock()
	s.closing = true
	conns := make([]*Conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.checkDrainedLocked()
	s.mu.Unlock()

	for _, c := range conns {
		// A KCP session still in its handshake gets no Bye: its address may
		// be forged, and it would wait for the acknowledgement.
		bye := c.transport != KCP || c.io.(*kcpConn).opened.Load()
		c.closeWith(ErrServerClosed, bye, wire.StatusShuttingDown, reason, false)
	}

	var err error
	select {
	case <-s.drained:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		left := make([]*Conn, 0, len(s.conns))
		for _, c := range s.conns {
			left = append(left, c)
		}
		s.mu.Unlock()
		for _, c := range left {
			c.io.kill()
		}
	}

	s.stopOnce.Do(func() {
		if s.tcp != nil {
			s.tcp.stop()
		}
		if s.kcp != nil {
			s.kcp.stop()
		}
		go func() { // owned by Shutdown: it only waits
			s.wg.Wait()
			close(s.stopped)
		}()
	})
	if err != nil {
		return err
	}
	select {
	case <-s.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// refusedLogEvery spaces the warnings that the server is full: a flood of
// refusals logs one line per period, the counters say the rest.
const refusedLogEvery = 10 * time.Second

// tcpBacklog is the TCP listener's accept backlog, set in OnBoot (gnet
// uses somaxconn, 4096 or more): connections gnet has accepted but not yet
// handed to OnOpen hold descriptors admit does not count, as many as the
// backlog and what arrives while gnet drains it.
const tcpBacklog = 1024

// fdReserve is how many file descriptors the process keeps for other
// things than admitted TCP players when it bounds them by the open-file
// limit: the accepted connections not yet through OnOpen (tcpBacklog), and
// 256 for listeners, epoll and event fds, the UDP sockets (at most
// kcpMaxReaders), HTTP (which
// package server caps at 128 connections) and logs.
const fdReserve = tcpBacklog + 256

// admit takes a place for a new connection on transport t before its
// front end allocates anything for it. It reports false, and counts a
// refusal, if the server already holds Config.MaxConns connections, or
// for TCP if the TCP connections would reach the open-file limit less
// fdReserve: past that limit accept fails with EMFILE, which stops gnet's
// whole TCP engine, so TCP is bounded by it whatever MaxConns says (this
// makes EMFILE unlikely, not impossible: a flood faster than the event
// loops can still fill the reserve). The place is given back by remove,
// or by register if that fails. Any goroutine; lock-free: atomic adds and
// a compare-and-swap.
func (s *Server) admit(t Transport) bool {
	limit := int64(s.cfg.MaxConns)
	if t == TCP && s.heldTCP.Add(1) > s.tcpLimit {
		s.heldTCP.Add(-1)
		s.refuse(t, "open files")
		return false
	}
	for {
		n := s.held.Load()
		if n >= limit {
			if t == TCP {
				s.heldTCP.Add(-1)
			}
			s.refuse(t, "max conns")
			return false
		}
		if s.held.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// kcpPendingLimit is how many KCP sessions may be in their handshake
// (before their first complete frame) at once: a tenth of MaxConns, so
// that a flood of first segments from forged addresses cannot take every
// place from established players and TCP.
func (s *Server) kcpPendingLimit() int64 { return max(int64(s.cfg.MaxConns)/10, 1) }

// admitPeer takes a place for a new peer connection (always TCP) before
// anything is allocated for it. Peers are not bounded by MaxConns, nor do
// they take the places of clients; only the open-file limit bounds them,
// together with the TCP clients, for the reason given at admit (a flood
// of connections to the mesh address must not stop the engine). It
// reports false, and counts a refusal, over that limit. The place is
// given back by remove, or by register if that fails. Any goroutine;
// lock-free.
func (s *Server) admitPeer() bool {
	if s.heldPeers.Add(1)+s.heldTCP.Load() > s.fdLimit {
		s.heldPeers.Add(-1)
		s.refusedPeers.Add(1)
		if s.refusedLogDue() {
			s.log.Warn("netio: open-file limit reached: refusing peer connections",
				"max_tcp_conns", s.fdLimit, "refused_peers", s.refusedPeers.Load())
		}
		return false
	}
	return true
}

// admitKind is admit(TCP) for a client, admitPeer for a peer.
func (s *Server) admitKind(k Kind) bool {
	if k == KindPeer {
		return s.admitPeer()
	}
	return s.admit(TCP)
}

// release gives back the place admit took for a connection on t.
func (s *Server) release(t Transport) {
	s.held.Add(-1)
	if t == TCP {
		s.heldTCP.Add(-1)
	}
}

// releaseConn gives back the place admit or admitPeer took for c.
func (s *Server) releaseConn(c *Conn) {
	if c.kind == KindPeer {
		s.heldPeers.Add(-1)
		return
	}
	s.release(c.transport)
}

// refuse counts a connection refused by admit (or a KCP session refused
// over the handshake budget) and logs a warning naming the limit, at most
// once per refusedLogEvery.
func (s *Server) refuse(t Transport, limit string) {
	s.refused[t].Add(1)
	if s.refusedLogDue() {
		s.log.Warn("netio: connection limit reached: refusing new connections",
			"limit", limit, "transport", t.String(), "max_conns", s.cfg.MaxConns, "max_tcp_conns", s.tcpLimit,
			"max_kcp_handshakes", s.kcpPendingLimit(),
			"refused_tcp", s.refused[TCP].Load(), "refused_kcp", s.refused[KCP].Load())
	}
}

// refusedLogDue reports whether a refusal warning may be logged now: at
// most one per refusedLogEvery, whatever was refused.
func (s *Server) refusedLogDue() bool {
	now := s.now()
	last := s.refusedLog.Load()
	if last != 0 && now-last < int64(refusedLogEvery) {
		return false
	}
	return s.refusedLog.CompareAndSwap(last, now)
}

// register adds a new connection, for which admit (admitPeer) took a
// place, unless the server is shutting down (then it gives the place
// back).
func (s *Server) register(c *Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		s.releaseConn(c)
		return false
	}
	s.conns[c.id] = c
	if c.kind == KindPeer {
		s.peers[c.id] = c
	}
	return true
}

// open calls Handler.OnOpen for a registered connection.
func (s *Server) open(c *Conn) {
	s.count[c.kind].Add(1)
	s.h.OnOpen(c)
}

// remove drops a closed connection, after its last write.
func (s *Server) remove(c *Conn) {
	c.release()
	s.mu.Lock()
	delete(s.conns, c.id)
	delete(s.peers, c.id)
	s.checkDrainedLocked()
	s.mu.Unlock()
	s.releaseConn(c)
}

// checkDrainedLocked closes s.drained once shutting down with no
// connection left. s.mu must be held.
func (s *Server) checkDrainedLocked() {
	if s.closing && len(s.conns) == 0 && !s.drainedD {
		s.drainedD = true
		close(s.drained)
	}
}

// now returns the time in nanoseconds since s.epoch (monotonic).
func (s *Server) now() int64 { return int64(time.Since(s.epoch)) }
