package netio

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coveyhq/covey/secure"
	"github.com/coveyhq/covey/wire"
)

// keepCap is the largest buffer capacity a connection keeps once its
// traffic is light. A burst grows the buffers up to Config.MaxOutbound;
// a run of small batches after it releases them (see keep), so a quiet
// connection holds at most two buffers of keepCap bytes.
const keepCap = 16 << 10

// nextConnID numbers connections across every Server of the process.
var nextConnID atomic.Uint64

// Conn is one connection, of a client over TCP or KCP or of a peer (another
// node of the cluster) over TCP: the same type for all, with a Kind, the
// limits of its Kind, and a small transport-specific part underneath
// (connIO).
//
// Its methods may be called from any goroutine, including from Handler
// callbacks, and none of them blocks on the network.
type Conn struct {
	id        uint64
	transport Transport
	kind      Kind
	lim       *connLimits // of kind: srv.lim[kind]
	remote    net.Addr
	srv       *Server
	io        connIO

	state atomic.Pointer[any]

	// ticket is what the encrypted handshake opened (nil for a plaintext
	// connection): set by the front end before the Handler sees the
	// connection's first frame, never changed after.
	ticket atomic.Pointer[secure.Ticket]

	// closing mirrors closeErr != nil for lock-free checks on the receive
	// path. It is set once, with mu held.
	closing atomic.Bool

	// lastRead is when bytes last arrived, in nanoseconds since srv.epoch
	// (TCP: read by the idle sweep).
	lastRead atomic.Int64

	// authed is set by Authenticated (for a peer, by newConn): until then
	// a client has the pre-auth limits. born is when the front end
	// registered the connection (TCP: accepted; KCP: first segment), in
	// nanoseconds since srv.epoch; the pre-auth deadline counts from it.
	authed atomic.Bool
	born   int64

	// onHold is set by Hold and cleared by Release: the front end hands
	// no frame to OnFrame while it is. resume, set by Release, has the I/O
	// owner's next flush read what arrived meanwhile.
	onHold, resume atomic.Bool

	// wakes and writes count I/O-owner wake-ups requested by enqueues and
	// transport writes (tests check that both are per batch, not per
	// frame).
	wakes, writes atomic.Int64

	mu sync.Mutex
	// pending holds whole encoded frames not yet handed to the transport.
	pending []byte
	// inflight counts bytes handed to the transport and not yet sent, as
	// far as netio knows: on TCP gnet's OutboundBuffered as of the last
	// flush, plus the batch being written; on KCP the part of the batch
	// the KCP window has had no room for yet. len(pending)+inflight is
	// what MaxOutbound bounds.
	inflight int
	// scheduled is set when a flush is due: the owner of the
	// connection's I/O will swap pending soon. Whoever sets it from false
	// wakes the owner (or, inside the owner's own read batch, flushes at
	// the end of it).
	scheduled bool
	// closeErr is why the connection is closing; nil while open.
	closeErr error
	// highWater is the largest len(pending)+inflight after an enqueue
	// (Bye pushes, which may pass the budget, are not counted).
	highWater int
}

// connIO is the transport-specific part of a Conn.
type connIO interface {
	// wake makes the goroutine that owns the connection's I/O flush
	// pending (and close the connection if it is closing). It is called
	// without c.mu held and must not block.
	wake()
	// abort tells the transport that the connection is about to close
	// without waiting for what the peer has not taken (a slow consumer,
	// or a client not authenticated in time): what it still holds for the
	// peer may be dropped so that the Bye leaves promptly (KCP drops its
	// backlog and lingers briefly; TCP has nothing to do). It is called
	// with c.mu held, so that no flush sees the close without it: it must
	// not block or take c.mu.
	abort()
	// kill closes the connection at once, without flushing, when Shutdown
	// runs out of time. It must not block.
	kill()
}

// connLimits are the limits of the connections of one Kind (from Config:
// the client fields, or the Peer ones). Read-only after Listen.
type connLimits struct {
	maxOutbound int           // MaxOutbound or PeerMaxOutbound
	wire        wire.Config   // Wire or PeerWire
	idle        time.Duration // IdleTimeout or PeerIdleTimeout
	idleErr     error         // ErrIdle or ErrPeerSilent
}

func newConn(s *Server, t Transport, k Kind, remote net.Addr) *Conn {
	c := &Conn{id: nextConnID.Add(1), transport: t, kind: k, lim: &s.lim[k], remote: remote, srv: s, born: s.now()}
	if k == KindPeer {
		c.authed.Store(true) // the cluster's handshake has its own deadline
	}
	return c
}

// ID returns the connection's identifier, unique among the connections of
// this process (across Servers). Any goroutine.
func (c *Conn) ID() uint64 { return c.id }

// Transport returns the front end the connection came through. Any
// goroutine.
func (c *Conn) Transport() Transport { return c.transport }

// Kind returns what is at the other end: a client, or a peer node. It is
// set before OnOpen and never changes. Any goroutine.
func (c *Conn) Kind() Kind { return c.kind }

// RemoteAddr returns the peer's address (a *net.TCPAddr or *net.UDPAddr).
// Any goroutine; the caller must not modify it.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// Ticket returns the ticket an encrypted connection was opened with (the
// player's user ID, the ticket's expiry and ID), and false for a
// plaintext connection. It is set before the Handler's first OnFrame for
// the connection and never changes. Any goroutine; atomic.
func (c *Conn) Ticket() (secure.Ticket, bool) {
	if t := c.ticket.Load(); t != nil {
		return *t, true
	}
	return secure.Ticket{}, false
}

// setTicket records the ticket of an encrypted handshake, with its key
// wiped: nothing above netio needs it. Front end, before the first frame.
func (c *Conn) setTicket(t secure.Ticket) {
	t.Key = [secure.KeySize]byte{}
	c.ticket.Store(&t)
}

// Authenticated tells netio that the client at the other end has signed
// in, which lifts the pre-auth limits: a client connection that is not
// authenticated within Config.PreAuthTimeout of its arrival is closed,
// and until then it may send no frame over Config.PreAuthMaxPayload (see
// the package doc, Pre-auth limits). From the next frame read on (the
// next one of the same read included), the connection has its Kind's
// normal limits. A peer connection is authenticated from the start.
// Idempotent; any goroutine (the server calls it from OnFrame, when a
// sign-in succeeds); atomic, never blocks.
func (c *Conn) Authenticated() { c.authed.Store(true) }

// inWire returns the codec configuration of the next frame read from c:
// Config.Wire (PeerWire for a peer) once c is authenticated, the pre-auth
// one before. Called by the I/O owner before each frame.
func (c *Conn) inWire() *wire.Config {
	if c.authed.Load() {
		return &c.lim.wire
	}
	return &c.srv.preAuthWire
}

// SetState stores the server's per-connection state, replacing the
// previous value. Any goroutine; atomic; it allocates a small box.
func (c *Conn) SetState(v any) { c.state.Store(&v) }

// State returns the value last given to SetState, or nil. Any goroutine;
// atomic.
func (c *Conn) State() any {
	if p := c.state.Load(); p != nil {
		return *p
	}
	return nil
}

// Closed reports whether the connection has started closing (or has
// closed). From then on Deliver and Send drop their frames. Any goroutine.
func (c *Conn) Closed() bool { return c.closing.Load() }

// Hold, called from OnFrame, stops the hand-off of the connection's
// inbound frames after the current one: the frames that arrive from now on
// wait (TCP: in the socket's inbound buffer; KCP: in the session's receive
// window, which the client then sees closing) until [Conn.Release]. The
// Handler uses it when a request's effect, and so what the next request
// finds, is decided elsewhere (another node): the next frame then runs as
// if the request had run at once. A held TCP connection with more than
// Config.MaxOutbound waiting (or two of its largest frames or records, if
// that is more) is closed with ErrInboundHeld; one that its client closes
// meanwhile drops what waited (gnet discards it on EOF). A held
// connection is never idle. Call it on the connection's callbacks only.
func (c *Conn) Hold() { c.onHold.Store(true) }

// Release ends a Hold: the frames that waited are handed to OnFrame, in
// order, on the goroutine that owns the connection's I/O (TCP: its event
// loop; KCP: whichever of its engine's goroutines flushes it, with the
// session's mutex held, so that calls for one connection still never
// overlap). Any goroutine; it never blocks, and does nothing on a
// connection that is not held.
func (c *Conn) Release() {
	if !c.onHold.Swap(false) {
		return
	}
	// Waiting for the server is not idleness: the idle sweeps skip a
	// held connection, and its clock starts again here (on KCP and on
	// encrypted TCP nothing counts as arrived while held).
	c.lastRead.Store(c.srv.now())
	// Always a wake of its own, not through the scheduled flag: a flush
	// already past its check of resume may have that flag set.
	c.resume.Store(true)
	c.io.wake()
}

// takeResume reports whether a Release asked for the frames held to be
// read, and clears the request. Called by the I/O owner at the start of a
// flush; if true, it reads before it takes the pending frames.
func (c *Conn) takeResume() bool {
	return c.resume.Load() && c.resume.Swap(false) && !c.closing.Load()
}

// heldInboundLimit is the most bytes a held TCP connection may have
// waiting (ErrInboundHeld past it). gnet reads on while a connection is
// held, at the socket's speed, so this is what a burst behind a held
// request may reach: the connection's outbound budget (MaxOutbound, the
// memory a connection may hold anyway), and at least two of its largest
// frames or records.
func (c *Conn) heldInboundLimit() int {
	frame := wire.HeaderSize + int(c.lim.wire.PayloadLimit())
	return max(c.lim.maxOutbound, 2*frame, 2*secure.MaxRecordSize)
}

// heldInboundOver closes a held connection with more than
// heldInboundLimit bytes waiting and reports whether it did.
func (c *Conn) heldInboundOver(waiting int) bool {
	if !c.onHold.Load() || waiting <= c.heldInboundLimit() {
		return false
	}
	c.closeWith(ErrInboundHeld, true, wire.StatusSlowConsumer, "too much sent while an earlier request waits for another node", false)
	return true
}

// Overloaded reports whether the front end serving the connection is
// behind its traffic now: on KCP, while its datagrams wait longer than
// Config.KCPOverloadWait in the socket (always false on TCP, where the
// kernel's flow control slows senders instead, and for peers). The
// Handler should refuse what multiplies the load, such as a fan-out,
// while it is. Any goroutine; an atomic read.
func (c *Conn) Overloaded() bool {
	// A KCP connection's io is its session from its creation on; the
	// front end it lives in is overloaded or not, independently of the
	// others (Config.KCPReaders).
	return c.transport == KCP && c.kind == KindClient && c.io.(*kcpConn).f.overloaded.Load()
}

// Deliver queues frame, one or more already-encoded frames, to be sent to
// the peer. It implements session.Conn.
//
// Deliver may be called from any goroutine, including Handler callbacks,
// and never blocks: it copies frame into the connection's pending buffer
// (the caller may reuse frame as soon as it returns) and, if no flush is
// scheduled yet, wakes the connection's I/O owner. Frames are written in
// the order Deliver and Send were called (per calling goroutine, and in
// lock order across goroutines). If the connection is closing the frame is
// dropped; if it would take the connection past Config.MaxOutbound
// (Config.PeerMaxOutbound for a peer), the frame is dropped and the
// connection closed with ErrSlowConsumer.
func (c *Conn) Deliver(frame []byte) {
	if len(frame) == 0 {
		return
	}
	c.mu.Lock()
	if c.closing.Load() {
		c.mu.Unlock()
		return
	}
	if !c.fitsLocked(len(frame)) {
		c.slowConsumerLocked(len(frame)) // unlocks
		return
	}
	c.pending = grow(c.pending, len(frame), c.lim.maxOutbound)
	c.pending = append(c.pending, frame...)
	c.enqueuedLocked() // unlocks
}

// Send encodes a frame with header h (its Length is ignored) and payload,
// compressing the payload per Config.Wire (Config.PeerWire for a peer),
// straight into the connection's
// pending buffer. Same contract as Deliver: any goroutine, never blocks,
// payload may be reused when Send returns. Compression, when it applies,
// runs under the connection's mutex. The budget check counts the payload
// uncompressed.
func (c *Conn) Send(h wire.Header, payload []byte) {
	size := wire.HeaderSize + len(payload)
	// Config.AppendFrame compresses in place: reserve its worst case so
	// that it does not grow pending past our bound.
	wcfg := &c.lim.wire
	reserve := wcfg.FrameReserve(len(payload))
	c.mu.Lock()
	if c.closing.Load() {
		c.mu.Unlock()
		return
	}
	if !c.fitsLocked(size) {
		c.slowConsumerLocked(size) // unlocks
		return
	}
	c.pending = grow(c.pending, reserve, c.lim.maxOutbound+reserve-size)
	c.pending = wcfg.AppendFrame(c.pending, h, payload)
	c.enqueuedLocked() // unlocks
}

// Close starts closing the connection: it queues a Bye push with status
// and reason (even past the outbound budget) after what is already
// queued; the connection's I/O owner then calls OnClose (with an error
// matching both ErrClosedByServer and status), flushes the queue ending
// with the Bye, and closes the socket (on KCP after a short linger). Close
// is idempotent (only the first close of any kind counts), may be called
// from any goroutine including Handler callbacks, and never blocks.
func (c *Conn) Close(status wire.Status, reason string) {
	c.closeWith(fmt.Errorf("%w: %w", ErrClosedByServer, status), true, status, reason, false)
}

// fitsLocked reports whether n more bytes stay within the budget.
// c.mu must be held.
func (c *Conn) fitsLocked(n int) bool {
	return len(c.pending)+c.inflight+n <= c.lim.maxOutbound
}

// enqueuedLocked records the high-water mark and schedules a flush after
// frames were appended to pending. c.mu must be held; it is released.
func (c *Conn) enqueuedLocked() {
	if q := len(c.pending) + c.inflight; q > c.highWater {
		c.highWater = q
	}
	wake := !c.scheduled
	c.scheduled = true
	c.mu.Unlock()
	if wake {
		c.wakes.Add(1)
		c.io.wake()
	}
}

// slowConsumerLocked closes the connection because n more bytes do not
// fit. c.mu must be held; it is released.
func (c *Conn) slowConsumerLocked(n int) {
	if c.closing.Load() {
		c.mu.Unlock()
		return
	}
	queued := len(c.pending) + c.inflight
	wake := c.beginCloseLocked(ErrSlowConsumer, true, wire.StatusSlowConsumer, "outbound queue full", true)
	c.io.abort() // before c.mu is released: a flush that sees the close sees the abort too
	c.mu.Unlock()
	if wake {
		c.io.wake()
	}
	c.srv.log.Warn("netio: closing slow consumer",
		"conn", c.id, "transport", c.transport.String(), "kind", c.kind.String(), "remote", addrString(c.remote),
		"queued", queued, "frame", n, "max", c.lim.maxOutbound)
}

// closeUnauthenticated closes a client that was not authenticated within
// Config.PreAuthTimeout: what is queued is dropped, and a Bye push
// (StatusUnauthenticated) is sent alone. Called by the sweeps; never
// blocks.
func (c *Conn) closeUnauthenticated() {
	c.mu.Lock()
	if c.closing.Load() {
		c.mu.Unlock()
		return
	}
	wake := c.beginCloseLocked(ErrPreAuthTimeout, true, wire.StatusUnauthenticated, c.srv.preAuthReason, true)
	c.io.abort() // before c.mu is released, as in slowConsumerLocked
	c.mu.Unlock()
	if wake {
		c.io.wake()
	}
}

// closeWith starts closing the connection with err (a no-op if it is
// already closing). With bye, a Bye push (status, reason) is queued after
// what is pending, or instead of it with drop. Any goroutine; never
// blocks.
func (c *Conn) closeWith(err error, bye bool, status wire.Status, reason string, drop bool) {
	c.mu.Lock()
	wake := c.beginCloseLocked(err, bye, status, reason, drop)
	c.mu.Unlock()
	if wake {
		c.io.wake()
	}
}

// beginCloseLocked marks the connection closing and reports whether the
// caller must wake the I/O owner. c.mu must be held.
func (c *Conn) beginCloseLocked(err error, bye bool, status wire.Status, reason string, drop bool) bool {
	if c.closing.Load() {
		return false
	}
	c.closeErr = err
	c.closing.Store(true)
	if drop {
		c.pending = c.pending[:0]
	}
	if bye {
		c.pending = appendBye(c.pending, status, reason)
	}
	wake := !c.scheduled
	c.scheduled = true
	return wake
}

// holdFlush is called by the I/O owner before it hands a batch of inbound
// frames to the Handler: frames queued meanwhile (replies from OnFrame,
// or from other goroutines) then wait for the owner's one flush at the end
// of the batch instead of each waking it. It reports whether a flush was
// already scheduled.
func (c *Conn) holdFlush() (was bool) {
	c.mu.Lock()
	was = c.scheduled
	c.scheduled = true
	c.mu.Unlock()
	return was
}

// takePending swaps the pending buffer with spare (whose contents are
// discarded) and returns the batch to write, and whether the connection is
// closing (then the batch is the last one: it ends with the Bye, if any).
// It clears the scheduled flag and sets inflight to queued+len(batch),
// where queued is what the transport still holds. Called by the I/O owner.
func (c *Conn) takePending(spare []byte, queued int) (batch []byte, closing bool) {
	c.mu.Lock()
	batch = c.pending
	c.pending = spare[:0]
	c.scheduled = false
	c.inflight = queued + len(batch)
	closing = c.closing.Load()
	c.mu.Unlock()
	return batch, closing
}

// setInflight records how many bytes the transport still holds. Called by
// the I/O owner after a write.
func (c *Conn) setInflight(n int) {
	c.mu.Lock()
	c.inflight = n
	c.mu.Unlock()
}

// sent records that the transport accepted n bytes of the batch (KCP).
func (c *Conn) sent(n int) {
	c.mu.Lock()
	c.inflight -= n
	c.mu.Unlock()
}

// finish is called exactly once per connection, by the goroutine that may
// call the Handler for it, once the connection is closing and before the
// last batch (with the Bye, if any) is written: so a peer that got the
// Bye knows the server is done with its connection. It settles the reason
// (cause if none was set yet), drops what is pending, and calls
// Handler.OnClose if OnOpen was called. The transport removes the
// connection from the server once its last write is done.
func (c *Conn) finish(cause error, opened bool) {
	c.mu.Lock()
	if !c.closing.Load() {
		c.closeErr = cause
		c.closing.Store(true)
	}
	err := c.closeErr
	c.mu.Unlock()
	if opened {
		c.srv.h.OnClose(c, err)
		c.srv.count[c.kind].Add(-1)
	}
}

// release drops the connection's buffers once its last batch is written.
func (c *Conn) release() {
	c.mu.Lock()
	c.pending, c.inflight, c.scheduled = nil, 0, true
	c.mu.Unlock()
}

// Pending returns the bytes queued to the connection and not yet sent, as
// far as netio knows: what is pending in netio plus what the transport
// still held at its last flush (see the package doc, Outbound). This is
// what Config.MaxOutbound (PeerMaxOutbound) bounds; for metrics, such as
// the backlog of each mesh link. Any goroutine; it takes the connection's
// mutex for a moment.
func (c *Conn) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending) + c.inflight
}

// queued is Pending. For tests.
func (c *Conn) queued() int { return c.Pending() }

// queuedHighWater returns the largest number of bytes queued to c (pending
// plus inflight) seen after a frame was accepted. For tests.
func (c *Conn) queuedHighWater() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.highWater
}

// appendBye appends a Bye push frame.
func appendBye(dst []byte, status wire.Status, reason string) []byte {
	m := wire.Bye{Status: status, Reason: reason}
	var buf [128]byte
	payload := m.Append(buf[:0])
	return wire.AppendFrame(dst, wire.Header{Cmd: wire.CmdBye, Flags: wire.FlagPush}, payload)
}

// grow returns b with room for n more bytes. Unlike append it does not let
// the capacity overshoot limit (when len(b)+n fits in it), so that a full
// queue does not hold twice MaxOutbound.
func grow(b []byte, n, limit int) []byte {
	need := len(b) + n
	if need <= cap(b) {
		return b
	}
	nc := max(2*cap(b), 4096)
	nc = min(nc, limit)
	nc = max(nc, need)
	nb := make([]byte, len(b), nc)
	copy(nb, b)
	return nb
}

// keepSmallRuns is how many small batches in a row release a large
// buffer: releasing at the first one made bursty traffic reallocate the
// buffers over and over (BenchmarkTCPFanout: ~1.2 KB allocated per
// broadcast to 10 clients; none with this).
const keepSmallRuns = 64

// keep returns the written batch b emptied for reuse, or nil to release a
// large buffer once keepSmallRuns batches in a row were small. small is
// the owner's counter.
func keep(b []byte, small *int) []byte {
	switch {
	case cap(b) <= keepCap:
	case len(b) > keepCap/2:
		*small = 0
	default:
		if *small++; *small >= keepSmallRuns {
			*small = 0
			return nil
		}
	}
	return b[:0]
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
