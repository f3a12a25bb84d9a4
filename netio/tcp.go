package netio

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/coveyhq/covey/wire"
)

// tcpKeepAlive is the TCP keep-alive period of accepted connections.
const tcpKeepAlive = 30 * time.Second

// meshBacklog is the mesh listener's accept backlog (see tcpBacklog): a
// node has a few peers, and the reserve of fdReserve beyond tcpBacklog
// covers it.
const meshBacklog = 64

// tcpFront is the gnet engine's event handler. One engine serves the
// client address and the mesh address (gnet.Rotate) and the peer
// connections DialPeer registers. gnet calls OnBoot and the engine's
// lifecycle on the goroutine running gnet.Rotate, OnOpen, OnTraffic and
// OnClose on the connection's event loop, and OnTick on the engine's
// ticker goroutine.
type tcpFront struct {
	gnet.BuiltinEventEngine
	s *Server

	eng          gnet.Engine // set in OnBoot
	client, mesh tcpListener // their addr is set in OnBoot
	bootErr      error       // set in OnBoot

	// tick is OnTick's period: Server.tick, or a divisor of it short
	// enough for PeerIdleTimeout; clients are swept every clientEvery
	// ticks, so at Server.tick as on KCP, and peers at every tick.
	tick        time.Duration
	clientEvery int
	ticks       int // OnTick's count

	ready     chan struct{} // closed by the first OnTick: the loops run
	readyOnce sync.Once
	runDone   chan struct{} // closed when gnet.Run has returned
	runErr    error         // set before runDone is closed

	idle, unauthed []*Conn // OnTick's scratch

	forged atomic.Uint64 // records dropped for failed authentication, for Stats

	// mu guards stopped and loops: flush requests hold it for reading so
	// that none reaches an engine whose pollers may be closed.
	mu      sync.RWMutex
	stopped bool
	loops   map[gnet.EventLoop]*loopFlusher // one per event loop, made on first use
}

// loopFlusher batches the flushes of one event loop's connections: frames
// queued from any goroutine mark their connection dirty, and the first
// mark of a batch queues ONE task on the loop that flushes every dirty
// connection with one write each. A Wake per connection instead cost a
// closure, a queue push and an OnTraffic call per destination (see
// bench/README.md: at 280k deliveries/s nearly every delivery is its own
// flush).
type loopFlusher struct {
	el gnet.EventLoop

	mu     sync.Mutex
	dirty  []*tcpConn // mu
	queued bool       // mu: the task is queued and has not started
	batch  []*tcpConn // the task's scratch; loop goroutine only
}

// loopFor returns the flusher of el. f.mu must not be held.
func (f *tcpFront) loopFor(el gnet.EventLoop) *loopFlusher {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.loops == nil {
		f.loops = make(map[gnet.EventLoop]*loopFlusher)
	}
	lf := f.loops[el]
	if lf == nil {
		lf = &loopFlusher{el: el}
		f.loops[el] = lf
	}
	return lf
}

// Run flushes every dirty connection. It runs on the flusher's event loop,
// which is what makes gnet.Conn.Write on those connections safe.
func (lf *loopFlusher) Run(context.Context) error {
	lf.mu.Lock()
	lf.batch, lf.dirty = lf.dirty, lf.batch[:0]
	lf.queued = false
	lf.mu.Unlock()
	for i, t := range lf.batch {
		lf.batch[i] = nil
		if t.finished {
			continue // gnet closed it after it was marked
		}
		if t.flush() == gnet.Close {
			_ = t.gc.Close()
		}
	}
	return nil
}

// join adds t to the batch if a batch flush is queued and has not started,
// and reports whether it did. t must have its scheduled flag set (so that
// it is added once). Loop goroutine only.
func (lf *loopFlusher) join(t *tcpConn) bool {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if !lf.queued {
		return false
	}
	lf.dirty = append(lf.dirty, t)
	return true
}

// tcpListener is one of the engine's listening addresses.
type tcpListener struct {
	// gnetAddr is the address as gnet holds it (what Engine.DupListener
	// matches), "" if it is not configured.
	gnetAddr string
	addr     net.Addr // bound, port 0 resolved; set in OnBoot
}

// tcpConn is the TCP part of a Conn. Its fields other than c, gc and f
// belong to the connection's event loop.
type tcpConn struct {
	c  *Conn
	gc gnet.Conn
	f  *tcpFront
	lf *loopFlusher // of gc's event loop

	spare    []byte // the buffer swapped with pending at each flush
	small    int    // see keep
	scratch  []byte // decompression output
	leftover int    // InboundBuffered at the end of the last OnTraffic
	finished bool   // Conn.finish has run
	// backlog is gnet's OutboundBuffered after this connection's last
	// write: only netio's writes fill that buffer, so while it is 0 the
	// next flush need not ask (1.5% of the server's CPU at S2 of the
	// peers harness went to asking twice per flush).
	backlog int

	mode tcpMode         // plaintext or records: see tcpsecure.go
	sec  *tcpRecordLayer // the record layer; nil unless mode is tcpRecords
	// held keeps the batches flushed before a client's mode is decided:
	// they are written, in its mode, by the first flush after it is.
	held []byte
}

func (s *Server) startTCP() error {
	// Go raises the soft limit to the hard one at start-up; past it,
	// accept fails with EMFILE and gnet stops the whole engine, so admit
	// (admitPeer) keeps TCP connections below it.
	s.tcpLimit = int64(s.cfg.MaxConns)
	s.fdLimit = math.MaxInt64
	if nofile, ok := openFileLimit(); ok {
		s.fdLimit = max(int64(nofile)-fdReserve, 1)
		if nofile < uint64(s.cfg.MaxConns)+fdReserve {
			s.tcpLimit = s.fdLimit
			s.log.Info("netio: TCP connections bounded by the open-file limit", "max_tcp_conns", s.tcpLimit, "nofile", nofile)
		}
	}
	f := &tcpFront{s: s, ready: make(chan struct{}), runDone: make(chan struct{})}
	peerTick := min(max(s.cfg.PeerIdleTimeout/4, 10*time.Millisecond), time.Second)
	f.clientEvery = int((s.tick + peerTick - 1) / peerTick)
	f.tick = s.tick / time.Duration(f.clientEvery)
	var addrs []string
	if s.cfg.TCPAddr != "" {
		f.client.gnetAddr = gnetAddr(s.cfg.TCPAddr)
		addrs = append(addrs, "tcp://"+s.cfg.TCPAddr)
	}
	if mesh := s.cfg.MeshAddr; mesh != "" {
		if gnetAddr(mesh) == f.client.gnetAddr && portZero(mesh) {
			// Both on port 0 of one host: Engine.DupListener finds a
			// listener by its address as configured, so the mesh one is
			// spelled differently ("00"), which binds the same way.
			host, _, _ := net.SplitHostPort(mesh)
			mesh = net.JoinHostPort(host, "00")
		}
		f.mesh.gnetAddr = gnetAddr(mesh)
		addrs = append(addrs, "tcp://"+mesh)
	}
	s.tcp = f
	opts := []gnet.Option{
		gnet.WithMulticore(true),
		gnet.WithLoadBalancing(gnet.LeastConnections),
		gnet.WithReusePort(false),
		gnet.WithReuseAddr(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithTCPKeepAlive(tcpKeepAlive),
		gnet.WithTicker(true),
		gnet.WithLogger(gnetLogger{s.log}),
	}
	opts = append(opts, gnet.WithNumEventLoop(s.cfg.eventLoops()))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f.runErr = gnet.Rotate(f, addrs, opts...)
		close(f.runDone)
		f.mu.RLock()
		stopped := f.stopped
		f.mu.RUnlock()
		started := false
		select {
		case <-f.ready:
			started = true
		default: // Listen reports the error
		}
		if started && !stopped {
			// gnet stops the whole engine when accept(2) fails with an
			// error other than EAGAIN/EINTR/ECONNRESET/ECONNABORTED (for
			// instance EMFILE): every TCP connection is closed.
			s.log.Error("netio: tcp engine stopped on its own", "err", f.runErr)
		}
	}()
	select {
	case <-f.ready:
		return nil
	case <-f.runDone:
		err := f.runErr
		if err == nil {
			err = f.bootErr
		}
		if err == nil {
			err = errors.New("engine stopped while starting")
		}
		// gnet v2.9.7 with a keep-alive period reports a failed bind as
		// "setsockopt: bad file descriptor" (initListener overwrites the
		// error): ask the kernel again for the real reason.
		addr := s.cfg.TCPAddr
		for _, a := range []string{s.cfg.TCPAddr, s.cfg.MeshAddr} {
			if a == "" {
				continue
			}
			if ln, perr := net.Listen("tcp", a); perr != nil {
				addr, err = a, perr
				break
			} else {
				ln.Close()
			}
		}
		if addr == "" {
			addr = s.cfg.MeshAddr
		}
		return &ListenError{Transport: TCP, Addr: addr, Err: err}
	}
}

// stop tells the engine to stop (it closes the connections left) without
// waiting: runDone is closed when it has. Idempotent; any goroutine.
func (f *tcpFront) stop() {
	f.mu.Lock()
	already := f.stopped
	f.stopped = true
	f.mu.Unlock()
	if already {
		return
	}
	// Engine.Stop polls for the end of the shutdown every 500ms; with a
	// context that is already done it only triggers the shutdown, and the
	// Server waits for gnet.Run to return instead.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = f.eng.Stop(ctx)
}

// OnBoot records the engine and the listeners' bound addresses, and sets
// the client listener's backlog to tcpBacklog (see fdReserve), the mesh
// listener's to meshBacklog.
func (f *tcpFront) OnBoot(eng gnet.Engine) gnet.Action {
	f.eng = eng
	for _, l := range []struct {
		ln      *tcpListener
		backlog int
	}{{&f.client, tcpBacklog}, {&f.mesh, meshBacklog}} {
		if l.ln.gnetAddr == "" {
			continue
		}
		addr, err := f.bootListener(l.ln.gnetAddr, l.backlog)
		if err != nil {
			f.bootErr = err
			return gnet.Shutdown
		}
		l.ln.addr = addr
	}
	return gnet.None
}

// bootListener sets the backlog of the engine's listener on gnetAddr and
// returns its bound address: gnet exposes neither, so it works on a
// duplicate of the listener's descriptor (Engine.DupListener; Engine.Dup
// refuses an engine with two listeners), which shares the socket.
func (f *tcpFront) bootListener(gnetAddr string, backlog int) (net.Addr, error) {
	fd, err := f.eng.DupListener("tcp", gnetAddr)
	if err != nil {
		return nil, fmt.Errorf("dup listener %s: %w", gnetAddr, err)
	}
	defer syscall.Close(fd)
	// listen on a listening socket only changes its backlog.
	if err := syscall.Listen(fd, backlog); err != nil {
		f.s.log.Warn("netio: tcp backlog left at somaxconn: the open-file reserve may not cover it", "addr", gnetAddr, "err", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return nil, err
	}
	a, err := sockaddrTCP(sa)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// gnetAddr returns a "host:port" address as gnet holds it once it has
// parsed "tcp://"+addr (what Engine.DupListener compares), or "" if gnet
// cannot parse it (then gnet.Rotate fails).
func gnetAddr(addr string) string {
	u, err := url.Parse("tcp://" + strings.ReplaceAll(addr, "%", "%25"))
	if err != nil {
		return ""
	}
	return u.Host
}

// portZero reports whether addr ("host:port") asks for any free port.
func portZero(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

// kindOf tells, for a connection gnet accepted, which listener took it.
// gnet gives an accepted connection the listener's address as configured
// (port 0 unresolved) for LocalAddr, so with two listeners it asks the
// kernel for the connection's local address (one getsockname per
// accept) and compares it with the mesh listener's bound address. It
// reports false if that fails. Event loop.
func (f *tcpFront) kindOf(gc gnet.Conn) (Kind, bool) {
	switch {
	case f.mesh.addr == nil:
		return KindClient, true
	case f.client.addr == nil:
		return KindPeer, true
	}
	sa, err := syscall.Getsockname(gc.Fd())
	if err != nil {
		return 0, false
	}
	local, err := sockaddrTCP(sa)
	if err != nil {
		return 0, false
	}
	mesh := f.mesh.addr.(*net.TCPAddr)
	if local.Port == mesh.Port && (mesh.IP.IsUnspecified() || mesh.IP.Equal(local.IP)) {
		return KindPeer, true
	}
	return KindClient, true
}

// sockaddrTCP converts a TCP socket address.
func sockaddrTCP(sa syscall.Sockaddr) (*net.TCPAddr, error) {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(append([]byte(nil), sa.Addr[:]...)), Port: sa.Port}, nil
	case *syscall.SockaddrInet6:
		a := &net.TCPAddr{IP: net.IP(append([]byte(nil), sa.Addr[:]...)), Port: sa.Port}
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				a.Zone = ifi.Name
			}
		}
		return a, nil
	}
	return nil, fmt.Errorf("unexpected socket address %T", sa)
}

// openFileLimit returns the process's open-file limit (the soft
// RLIMIT_NOFILE). A variable for tests.
var openFileLimit = func() (uint64, bool) {
	var nofile syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile); err != nil {
		return 0, false
	}
	return nofile.Cur, true
}

// fullBye is the Bye a TCP connection refused by admit (Config.MaxConns,
// or the open-file bound) gets.
// Read-only.
var fullBye = appendBye(nil, wire.StatusServerOffline, reasonFull)

// OnOpen registers the connection, with its Kind (from the listener that
// accepted it, or KindPeer for one DialPeer registered), and calls
// Handler.OnOpen. Frames the Handler queues in OnOpen are written before
// it returns.
//
// When admit refuses a client (Config.MaxConns, or the open-file bound),
// or admitPeer a peer (the open-file bound), the connection is refused
// before anything is allocated for it: one write of fullBye (to a new
// socket: the kernel takes it whole; gnet would keep and flush what it
// did not) and a close. The Handler never sees it.
func (f *tcpFront) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	s := f.s
	kind := KindPeer
	d, _ := gc.Context().(*peerDial) // set by DialPeer, through Engine.Register
	if d == nil {
		var ok bool
		if kind, ok = f.kindOf(gc); !ok {
			return nil, gnet.Close
		}
	} else if !d.claim() {
		return nil, gnet.Close // DialPeer gave up waiting
	}
	if !s.admitKind(kind) {
		d.fail(errPeerRefused)
		_, _ = gc.Write(fullBye) // on failure gnet has closed it already
		return nil, gnet.Close
	}
	c := newConn(s, TCP, kind, cloneAddr(gc.RemoteAddr()))
	t := &tcpConn{c: c, gc: gc, f: f, lf: f.loopFor(gc.EventLoop()), mode: tcpModeOf(kind)}
	c.io = t
	if !s.register(c) {
		d.fail(ErrServerClosed)
		return nil, gnet.Close // shutting down; never shown to the Handler
	}
	if d != nil {
		c.SetState(d.state) // before OnOpen: the Handler finds its link object there
		d.conn = c
	}
	gc.SetContext(t)
	c.lastRead.Store(s.now())
	c.holdFlush()
	s.open(c)
	return nil, t.flush()
}

// OnTraffic runs when bytes arrived or after a Wake: it hands every
// complete frame buffered to the Handler, then writes what was queued with
// one write, and closes the connection if it is closing.
func (f *tcpFront) OnTraffic(gc gnet.Conn) gnet.Action {
	t, _ := gc.Context().(*tcpConn)
	if t == nil {
		_, _ = gc.Discard(-1)
		return gnet.Close
	}
	c := t.c
	if gc.InboundBuffered() > t.leftover && t.mode != tcpRecords {
		// Not a Wake: bytes arrived. (On records only those that open
		// count, in decodeRecords: a stream that an injection has put
		// out of step, where no record will open again, goes idle.)
		c.lastRead.Store(f.s.now())
	}
	inBatch := c.holdFlush() // scheduled already: t is in its loop's next batch
	if !c.closing.Load() {
		t.read()
		c.heldInboundOver(gc.InboundBuffered())
	}
	if c.closing.Load() {
		_, _ = gc.Discard(-1)
		return t.flush()
	}
	t.leftover = gc.InboundBuffered()
	// When the loop has a batch flush queued anyway, what this read
	// produced leaves with it, together with what the pass's other reads
	// queue for this connection: one write instead of two. (At S2 of the
	// peers harness, 8,000 clients each a sender and a receiver, writing
	// here cost 0.43 writes per delivery against gnetfanout's 0.31.) An
	// idle loop writes at once: queuing a task just for this would cost an
	// eventfd write and a wake-up per read at low load.
	if inBatch || t.lf.join(t) {
		return gnet.None
	}
	return t.flush()
}

// decode hands the complete frames in the inbound buffer of a plaintext
// connection to the Handler, in a loop until the data is short: gnet
// calls OnTraffic once per read, not once per frame. Peeked bytes are
// discarded after OnFrame returns and never kept.
func (t *tcpConn) decode() {
	c, gc := t.c, t.gc
	for !c.closing.Load() && !c.onHold.Load() {
		cfg := c.inWire() // per frame: OnFrame may have authenticated c
		avail := gc.InboundBuffered()
		if avail < wire.HeaderSize {
			return
		}
		b, err := gc.Peek(wire.HeaderSize)
		if err != nil {
			return
		}
		// Split checks the flags and the length as soon as the header is
		// in; with a header only it returns n == 0 (or a frame with an
		// empty payload).
		fr, n, err := cfg.Split(b)
		if err != nil {
			c.badFrame(err)
			return
		}
		if n == 0 {
			size := wire.HeaderSize + int(binary.BigEndian.Uint32(b))
			if avail < size {
				return
			}
			if b, err = gc.Peek(size); err != nil {
				return
			}
			if fr, n, err = cfg.Split(b); err != nil || n != size {
				c.badFrame(wire.ErrCorrupt)
				return
			}
		}
		if fr.Flags&wire.FlagCompressed != 0 {
			p, err := cfg.Decompress(t.scratch, fr)
			if err != nil {
				c.badFrame(err)
				return
			}
			if cap(p) <= keepCap && cap(p) > cap(t.scratch) {
				t.scratch = p[:0]
			}
			fr.Payload = p
			fr.Flags &^= wire.FlagCompressed
			fr.Length = uint32(len(p))
		}
		c.srv.h.OnFrame(c, fr)
		_, _ = gc.Discard(n)
		c.srv.bytesIn.Add(uint64(n))
	}
}

// flush writes the pending batch with one Conn.Write and returns Close if
// the connection is closing (after calling Handler.OnClose, before the
// last batch is written). gnet copies what the socket does not take into
// its outbound buffer, so the batch buffer is reused at once. On an
// encrypted connection the batch is sealed first (after the ServerHello,
// the first time); before a client's mode is decided it is held, unless
// the connection is closing (then it goes in plaintext: the client reads
// the first byte to tell). Runs on the event loop.
func (t *tcpConn) flush() gnet.Action {
	c, gc := t.c, t.gc
	if c.takeResume() {
		// Released from a Hold: what waited is read first, and its
		// replies leave with this write.
		c.holdFlush()
		t.read()
		t.leftover = gc.InboundBuffered()
		c.heldInboundOver(t.leftover)
	}
	// takePending also refreshes inflight with what gnet still holds:
	// every pass of the loop over this connection corrects the estimate.
	out := 0
	if t.backlog != 0 {
		out = gc.OutboundBuffered()
		t.backlog = out
	}
	batch, closing := c.takePending(t.spare, out+len(t.held))
	if closing && !t.finished {
		t.finished = true
		c.finish(nil, true) // OnClose before the Bye leaves
	}
	if !closing && !t.mode.decided() {
		t.held = append(t.held, batch...)
		t.spare = keep(batch, &t.small)
		return gnet.None
	}
	wr := batch
	if t.held != nil {
		wr = append(t.held, batch...)
		t.held = nil
	}
	plain := len(wr) // what takePending counted in inflight
	if t.sec != nil && (len(wr) > 0 || t.sec.helloDue) {
		var err error
		if wr, err = t.sec.sealBatch(wr); err != nil {
			if !t.finished {
				t.finished = true
				c.finish(err, true)
			}
			t.spare = nil
			return gnet.Close
		}
	}
	if len(wr) > 0 {
		c.writes.Add(1)
		c.srv.bytesOut.Add(uint64(len(wr)))
		if _, err := gc.Write(wr); err != nil {
			// gnet has closed the connection; OnClose has run.
			t.spare = nil
			return gnet.None
		}
		now := gc.OutboundBuffered()
		t.backlog = now
		if now != out+plain { // sealed records are longer than what was counted
			c.setInflight(now)
		}
	}
	if t.sec != nil {
		t.sec.written()
	}
	t.spare = keep(batch, &t.small)
	if closing {
		return gnet.Close
	}
	return gnet.None
}

// OnClose runs once per connection gnet closes: it calls Handler.OnClose
// unless flush did already (netio closed the connection), and removes the
// connection from the server. gnet then writes what its outbound buffer
// still holds, if the socket takes it, and closes the socket.
func (f *tcpFront) OnClose(gc gnet.Conn, err error) gnet.Action {
	t, _ := gc.Context().(*tcpConn)
	if t == nil {
		return gnet.None
	}
	gc.SetContext(nil)
	if !t.finished {
		t.finished = true
		t.c.finish(tcpCloseCause(err), true)
	}
	f.s.remove(t.c)
	return gnet.None
}

// tcpCloseCause maps gnet's close error to ours; it is used only when
// netio did not close the connection itself. gnet passes nil when the
// engine stops.
func tcpCloseCause(err error) error {
	switch {
	case err == nil:
		return ErrServerClosed
	case errors.Is(err, io.EOF):
		return ErrPeerClosed
	}
	return fmt.Errorf("%w: %w", ErrPeerClosed, err)
}

// OnTick marks the engine ready the first time, then closes the peer
// connections that received nothing for PeerIdleTimeout, and every
// clientEvery ticks (so every Server.tick) the TCP client connections
// that received nothing for IdleTimeout, or were not authenticated
// within PreAuthTimeout. It runs on gnet's ticker goroutine every f.tick.
//
// Idle connections are closed with ErrIdle (ErrPeerSilent for a peer) and
// no Bye: no status says "idle", and a silent client or peer is most
// likely gone. Unauthenticated ones get a Bye (StatusUnauthenticated) and
// ErrPreAuthTimeout.
func (f *tcpFront) OnTick() (time.Duration, gnet.Action) {
	f.readyOnce.Do(func() { close(f.ready) })
	s := f.s
	now := s.now()
	clients := f.ticks%f.clientEvery == 0
	f.ticks++
	f.idle, f.unauthed = f.idle[:0], f.unauthed[:0]
	s.mu.Lock()
	limit := now - int64(s.cfg.PeerIdleTimeout)
	for _, c := range s.peers {
		if c.lastRead.Load() < limit && !c.closing.Load() && !c.onHold.Load() {
			f.idle = append(f.idle, c)
		}
	}
	if clients {
		limit = now - int64(s.cfg.IdleTimeout)
		preAuth := now - int64(s.cfg.PreAuthTimeout)
		for _, c := range s.conns {
			switch {
			case c.transport != TCP || c.kind != KindClient || c.closing.Load():
			case c.lastRead.Load() < limit && !c.onHold.Load():
				f.idle = append(f.idle, c)
			case c.born < preAuth && !c.authed.Load():
				f.unauthed = append(f.unauthed, c)
			}
		}
	}
	s.mu.Unlock()
	for i, c := range f.idle {
		c.closeWith(c.lim.idleErr, false, 0, "", false)
		f.idle[i] = nil
	}
	for i, c := range f.unauthed {
		c.closeUnauthenticated()
		f.unauthed[i] = nil
	}
	return f.tick, gnet.None
}

// wake has the connection flushed on its event loop, batched with the
// loop's other connections (see loopFlusher). Safe from any goroutine.
func (t *tcpConn) wake() {
	lf := t.lf
	lf.mu.Lock()
	lf.dirty = append(lf.dirty, t)
	queue := !lf.queued
	lf.queued = true
	lf.mu.Unlock()
	if !queue {
		return
	}
	t.f.mu.RLock()
	var err error
	if !t.f.stopped {
		err = lf.el.Execute(context.Background(), lf)
	}
	t.f.mu.RUnlock()
	if err != nil { // the engine is going away: let a later wake try again
		lf.mu.Lock()
		lf.queued = false
		lf.mu.Unlock()
	}
}

func (t *tcpConn) abort() {} // gnet never blocks a writer

func (t *tcpConn) kill() {} // the engine's stop closes what is left

// badFrame closes the connection after a Bye telling the peer why.
func (c *Conn) badFrame(err error) {
	if errors.Is(err, wire.ErrTooLarge) {
		reason := err.Error()
		if !c.authed.Load() {
			reason = c.srv.preAuthTooLarge
		}
		c.closeWith(ErrTooLarge, true, wire.StatusTooLarge, reason, false)
		return
	}
	c.closeWith(ErrBadFrame, true, wire.StatusBadRequest, err.Error(), false)
}

// cloneAddr copies a gnet address: gnet recycles the zone strings of the
// addresses of closed connections.
func cloneAddr(a net.Addr) net.Addr {
	if a, ok := a.(*net.TCPAddr); ok {
		return &net.TCPAddr{IP: append(net.IP(nil), a.IP...), Port: a.Port, Zone: strings.Clone(a.Zone)}
	}
	return a
}

// gnetLogger adapts slog to gnet's logging.Logger (gnet panics on a nil
// logger). It formats only what the handler will record.
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) logf(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if g.l.Enabled(ctx, level) {
		g.l.Log(ctx, level, fmt.Sprintf(format, args...), "component", "gnet")
	}
}

func (g gnetLogger) Debugf(format string, args ...any) { g.logf(slog.LevelDebug, format, args) }
func (g gnetLogger) Infof(format string, args ...any)  { g.logf(slog.LevelInfo, format, args) }
func (g gnetLogger) Warnf(format string, args ...any)  { g.logf(slog.LevelWarn, format, args) }
func (g gnetLogger) Errorf(format string, args ...any) { g.logf(slog.LevelError, format, args) }

// Fatalf logs at error level: the library calling it decides what follows.
func (g gnetLogger) Fatalf(format string, args ...any) { g.logf(slog.LevelError, format, args) }
