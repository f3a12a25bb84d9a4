package kcpconn

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"

	ikcp "github.com/coveyhq/covey/internal/kcp"
	"github.com/coveyhq/covey/internal/kcptune"
	"github.com/coveyhq/covey/secure"
)

// Limits.
const (
	// packetMax is the largest datagram read; the MTU is 1200, a larger
	// datagram is not ours and fails to parse.
	packetMax = 1500
	// maxWaitSnd is how many segments may wait in KCP (unsent or
	// unacknowledged) before Write waits for acknowledgements.
	maxWaitSnd = 2 * kcptune.Window
	// sendChunk is the most bytes handed to one KCP Send: KCP refuses more
	// than 255 segments at once; in stream mode the pieces join up again.
	sendChunk = 64 << 10
)

// ErrMessageMode is the error of Read and Write after the server sent a
// KCP message of several segments (frg > 0): the connection is in stream
// mode, and could not read anything after it.
var ErrMessageMode = errors.New("kcpconn: the server sent a KCP message in message mode (fragment count > 0); the connection is in stream mode")

// Test hooks, called just before Read waits for a datagram and before
// Write waits for the window.
var testHookRead, testHookWaitWindow func()

// Conn is a KCP connection: see the package doc. Read and Write may be
// called concurrently (one reader and one writer at a time, as for any
// stream); Close and the deadline setters may be called at any time.
type Conn struct {
	uc   *net.UDPConn
	pkt  []byte        // the reader's datagram buffer
	done chan struct{} // closed by Close
	wnd  chan struct{} // 1 slot: an ACK arrived (the send window may have room)
	dlch chan struct{} // 1 slot: the write deadline changed

	mu      sync.Mutex
	kcp     *ikcp.KCP
	err     error  // net.ErrClosed after Close (the socket is then closed)
	held    []byte // received data that did not fit the caller's buffer: held[off:]
	off     int
	active  bool      // in the updater's list
	ackWait int       // updater passes left before the waiting ACKs go out (0: none wait)
	writeDL time.Time // Write's deadline (not the socket's: ACKs must go out)

	// The packet layer (handshake.go), unless dialed with DialRaw: set by
	// the handshake, before the Conn is returned.
	packets bool
	seal    *secure.Sealer // client-to-server; nil for plaintext (c.mu held)
	open    *secure.Opener // server-to-client; nil for plaintext (reader only)
	obuf    []byte         // output's packet (c.mu held)
	ibuf    []byte         // the reader's opened datagram
}

// Dial opens a plaintext KCP connection to addr ("host:port") through
// the UDP packet layer: DialTicket with no ticket.
func Dial(ctx context.Context, addr string) (*Conn, error) {
	return DialTicket(ctx, addr, nil)
}

// DialTicket opens a KCP connection to addr ("host:port") from a new UDP
// socket, with a random conversation ID, through the UDP packet layer
// (PROTOCOL.md, UDP packets): encrypted with ticket's keys, or plaintext
// if ticket is nil. It runs the handshake on the caller's goroutine and
// returns once the server has accepted the connection, within ctx and
// HandshakeTimeout (ErrHandshakeTimeout, or ctx's error, if no answer
// came; cancelling ctx is noticed within ResendInterval). A server that
// refuses the connection makes it return a *RejectError.
func DialTicket(ctx context.Context, addr string, ticket *secure.ClientTicket) (*Conn, error) {
	uc, err := dialUDP(ctx, addr)
	if err != nil {
		return nil, err
	}
	c := newConn(uc, rand.Uint32())
	if err := c.handshake(ctx, ticket); err != nil {
		uc.Close()
		return nil, err
	}
	return c, nil
}

// DialRaw opens a KCP connection to addr ("host:port") from a new UDP
// socket, with a random conversation ID, that sends bare KCP segments:
// for a server with netio.Config.KCPRawSegments, or a kcp-go peer.
// Nothing is sent until the first Write: such a server opens its session
// on the first data segment. ctx bounds only the address resolution.
func DialRaw(ctx context.Context, addr string) (*Conn, error) {
	uc, err := dialUDP(ctx, addr)
	if err != nil {
		return nil, err
	}
	return newConn(uc, rand.Uint32()), nil
}

// dialUDP returns a UDP socket connected to addr.
func dialUDP(ctx context.Context, addr string) (*net.UDPConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	return nc.(*net.UDPConn), nil
}

// newConn wraps a connected UDP socket.
func newConn(uc *net.UDPConn, conv uint32) *Conn {
	c := &Conn{
		uc:   uc,
		pkt:  make([]byte, packetMax),
		done: make(chan struct{}),
		wnd:  make(chan struct{}, 1),
		dlch: make(chan struct{}, 1),
	}
	c.kcp = ikcp.NewKCP(conv, c.output)
	kcptune.TuneCore(c.kcp, kcptune.DefaultInterval)
	c.kcp.SetInputFlush(false) // see input
	return c
}

// output writes one datagram (in a Data or PlainData packet, unless the
// Conn is raw); KCP calls it with c.mu held. A failed write is left to
// KCP's retransmission: UDP is lossy anyway, and a socket that is gone
// fails the next Read. The socket has no write deadline.
func (c *Conn) output(b []byte, n int) {
	if c.err != nil {
		return
	}
	p := b[:n]
	if c.packets {
		var err error
		if p, err = c.wrap(b[:n]); err != nil {
			c.err = err
			return
		}
	}
	_, _ = c.uc.Write(p)
}

// Read reads stream bytes into p, waiting for a datagram if KCP holds
// none in order. It returns a timeout error (os.ErrDeadlineExceeded) after
// the read deadline, net.ErrClosed after Close (even if data was
// received), ErrMessageMode once the bytes received before the server's
// fragment are read, and the socket's errors.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		c.mu.Lock()
		n := 0
		if c.err == nil || c.err == ErrMessageMode {
			n = c.recvLocked(p)
		}
		err := c.err
		c.mu.Unlock()
		if n > 0 {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		if testHookRead != nil {
			testHookRead()
		}
		m, err := c.uc.Read(c.pkt)
		if err != nil {
			c.mu.Lock()
			if c.err != nil { // closed: say so rather than how
				err = c.err
			}
			c.mu.Unlock()
			return 0, err
		}
		p := c.pkt[:m]
		if c.packets {
			if p = c.unwrap(p); p == nil {
				continue
			}
		}
		c.input(p)
	}
}

// input feeds one datagram to KCP and sends the ACKs it calls for (and
// whatever the ACKs let out of the send window).
func (c *Conn) input(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	before := c.kcp.WaitSnd()
	rc := c.kcp.Input(p, true, false)
	// If the peer asked for our window (WASK), answer at once, and send
	// what the ACKs let into the send window. Otherwise the ACKs wait
	// up to AckDelay for the updater (or go out sooner with data that
	// Write sends): a server pushing to
	// thousands of players reads every ACK datagram, and one per datagram
	// it sent doubled what it had to read (see AckDelay).
	switch {
	case c.kcp.ProbePending(), c.kcp.Unsent() > 0 && c.kcp.WaitSnd() < before:
		// An answer to a window probe, or data the ACKs let out of the
		// window (KCP's Input does not flush: SetInputFlush), go at once,
		// with the waiting ACKs.
		c.kcp.Flush(false)
		c.ackWait = 0
	case c.kcp.AckPending() && c.ackWait == 0:
		c.ackWait = ackPasses
		if !c.active {
			c.active = true
			defaultUpdater.add(c)
		}
	}
	if rc == ikcp.InputFragment {
		// A server in message mode: nothing after this segment could be
		// read. Wake a Write waiting for the window, which no ACK will
		// open now; the ACKs waiting go first (output stops with c.err).
		c.kcp.Flush(true)
		c.err = ErrMessageMode
		select {
		case c.wnd <- struct{}{}:
		default:
		}
		return
	}
	if rc < 0 {
		return
	}
	if c.kcp.WaitSnd() < before {
		select {
		case c.wnd <- struct{}{}:
		default:
		}
	}
}

// recvLocked moves received data to p: held bytes first, else as many
// whole KCP messages as fit, keeping the first one that does not fit
// whole (if nothing else was copied). It returns the bytes copied.
// c.mu must be held.
func (c *Conn) recvLocked(p []byte) int {
	if c.off < len(c.held) {
		n := copy(p, c.held[c.off:])
		c.off += n
		if c.off == len(c.held) {
			c.held, c.off = c.held[:0], 0
		}
		return n
	}
	n := 0
	for n < len(p) {
		size := c.kcp.PeekSize()
		if size < 0 {
			break
		}
		if size > len(p)-n {
			if n > 0 {
				break
			}
			c.held = grow(c.held, size)
			c.kcp.Recv(c.held)
			c.off = copy(p, c.held)
			n = c.off
			break
		}
		n += c.kcp.Recv(p[n:])
	}
	if n > 0 && c.kcp.ProbePending() {
		// Taking data reopened a receive window that was full: KCP has a
		// window update (WINS) to send.
		c.kcp.Flush(false)
	}
	return n
}

// grow returns b resized to n bytes, reallocated if too small.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// Write queues p to KCP and sends what the send window allows at once;
// it waits while 2×Window segments or more are unsent or unacknowledged. It
// returns os.ErrDeadlineExceeded once the write deadline has passed (a
// wait ends when the deadline is moved into the past), net.ErrClosed
// after Close, and ErrMessageMode once the server sent a fragment.
func (c *Conn) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		c.mu.Lock()
		if c.err != nil {
			err := c.err
			c.mu.Unlock()
			return written, err
		}
		if dl := c.writeDL; !dl.IsZero() && !time.Now().Before(dl) {
			c.mu.Unlock()
			return written, os.ErrDeadlineExceeded
		}
		if c.kcp.WaitSnd() >= maxWaitSnd {
			dl := c.writeDL
			c.mu.Unlock()
			c.waitWindow(dl)
			continue
		}
		m := min(len(p)-written, sendChunk)
		c.kcp.Send(p[written : written+m]) // cannot fail: at most 56 segments
		written += m
		c.kcp.Flush(false) // the waiting ACKs too
		c.ackWait = 0
		if c.kcp.WaitSnd() > 0 && !c.active {
			c.active = true
			defaultUpdater.add(c)
		}
		c.mu.Unlock()
	}
	return written, nil
}

// waitWindow waits for an ACK, Close, a change of the write deadline, or
// the deadline dl (none if zero). The caller looks again at everything.
func (c *Conn) waitWindow(dl time.Time) {
	var expired <-chan time.Time
	if !dl.IsZero() {
		t := time.NewTimer(time.Until(dl))
		defer t.Stop()
		expired = t.C
	}
	if testHookWaitWindow != nil {
		testHookWaitWindow()
	}
	select {
	case <-c.wnd:
	case <-c.dlch:
	case <-c.done:
	case <-expired:
	}
}

// AckDelay is the longest a Conn holds the ACKs of what it received:
// they go out with the next data Write sends, or at the updater's next
// pass (0-10 ms after they were due), whichever comes first, so that the
// ACKs of several datagrams share one. The server's retransmission
// timeout allows for the delay (KCP measures the round trip with it in),
// as for QUIC's max_ack_delay (25 ms by default); PROTOCOL.md lets a
// client hold its ACKs up to 20 ms. Two passes (10-20 ms) measured no
// better at the load test's KCP 100×8 @50/s (bench/README.md).
const AckDelay = ackPasses * kcptune.DefaultInterval

// ackPasses is AckDelay in updater passes.
const ackPasses = 1

// update runs KCP's timers (due retransmissions and window probes) and
// sends the ACKs whose AckDelay is up. The updater calls it every
// interval while the connection has data in flight or ACKs waiting; it
// reports whether it still has either.
func (c *Conn) update() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		c.active = false
		return false
	}
	if c.ackWait > 0 {
		c.ackWait--
	}
	if c.ackWait == 0 || c.kcp.WaitSnd() > 0 {
		// Timers due, ACKs due; ACKs also go with a retransmission.
		c.kcp.Flush(false)
		c.ackWait = 0
	}
	c.active = c.kcp.WaitSnd() > 0 || c.ackWait > 0
	return c.active
}

// Close closes the socket at once: data not yet acknowledged is dropped
// (Covey's clients close after the server's Bye, which acknowledges
// theirs). Read and Write then fail with net.ErrClosed. Closing twice
// returns net.ErrClosed.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
		return net.ErrClosed
	default:
	}
	close(c.done)
	if c.err == nil && c.kcp.AckPending() {
		// The ACKs waiting for AckDelay go now: the last thing a client
		// reads is the server's Bye, and a server waits for its ACK before
		// it lets the session go.
		c.kcp.Flush(true)
	}
	c.err = net.ErrClosed
	return c.uc.Close()
}

// LocalAddr returns the local UDP address.
func (c *Conn) LocalAddr() net.Addr { return c.uc.LocalAddr() }

// RemoteAddr returns the server's UDP address.
func (c *Conn) RemoteAddr() net.Addr { return c.uc.RemoteAddr() }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetWriteDeadline(t)
	return c.SetReadDeadline(t)
}

// SetReadDeadline sets the deadline of Read's waits for a datagram.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.uc.SetReadDeadline(t) }

// SetWriteDeadline sets Write's deadline. It is not the socket's: the
// ACKs and retransmissions that Read and the updater send are not bound
// by it.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.writeDL = t
	c.mu.Unlock()
	select {
	case c.dlch <- struct{}{}:
	default:
	}
	return nil
}
