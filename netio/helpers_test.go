package netio

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coveyhq/covey/internal/kcptest"
	"github.com/coveyhq/covey/secure"
	"github.com/coveyhq/covey/wire"
)

// waitFor bounds every wait in these tests.
const waitFor = 10 * time.Second

var transports = []Transport{TCP, KCP}

func testLogger() *slog.Logger {
	if os.Getenv("NETIO_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testHandler echoes every frame (FlagReply, same Ver/Cmd/Seq/payload)
// unless onFrame is set, and records the connection events. It
// authenticates every connection in OnOpen (so that the pre-auth limits
// do not get in the way of tests about something else) unless preAuth is
// set.
type testHandler struct {
	onFrame func(c *Conn, f wire.Frame)
	preAuth bool // OnOpen does not call Authenticated

	opens chan *Conn

	mu          sync.Mutex
	conns       map[uint64]*Conn
	closes      map[uint64][]error
	closed      map[uint64]chan error
	badOrder    atomic.Int64 // OnFrame or OnClose out of order
	framesTotal atomic.Int64
}

func newTestHandler() *testHandler {
	return &testHandler{
		opens:  make(chan *Conn, 1024),
		conns:  make(map[uint64]*Conn),
		closes: make(map[uint64][]error),
		closed: make(map[uint64]chan error),
	}
}

func (h *testHandler) OnOpen(c *Conn) {
	h.mu.Lock()
	if _, dup := h.conns[c.ID()]; dup {
		h.badOrder.Add(1)
	}
	h.conns[c.ID()] = c
	h.closed[c.ID()] = make(chan error, 1)
	h.mu.Unlock()
	if !h.preAuth {
		c.Authenticated()
	}
	h.opens <- c
}

func (h *testHandler) OnFrame(c *Conn, f wire.Frame) {
	h.framesTotal.Add(1)
	h.mu.Lock()
	if _, ok := h.conns[c.ID()]; !ok || len(h.closes[c.ID()]) > 0 {
		h.badOrder.Add(1)
	}
	h.mu.Unlock()
	if h.onFrame != nil {
		h.onFrame(c, f)
		return
	}
	c.Send(wire.Header{Ver: f.Ver, Cmd: f.Cmd, Flags: wire.FlagReply, Seq: f.Seq}, f.Payload)
}

func (h *testHandler) OnClose(c *Conn, err error) {
	h.mu.Lock()
	if _, ok := h.conns[c.ID()]; !ok {
		h.badOrder.Add(1)
	}
	h.closes[c.ID()] = append(h.closes[c.ID()], err)
	ch := h.closed[c.ID()]
	h.mu.Unlock()
	select {
	case ch <- err:
	default:
	}
}

// waitClose returns the error OnClose got for c.
func (h *testHandler) waitClose(t testing.TB, c *Conn) error {
	t.Helper()
	h.mu.Lock()
	ch := h.closed[c.ID()]
	h.mu.Unlock()
	select {
	case err := <-ch:
		ch <- err // let later waits see it too
		return err
	case <-time.After(waitFor):
		t.Fatalf("conn %d (%s): no OnClose within %v", c.ID(), c.Transport(), waitFor)
		return nil
	}
}

// closedNow reports whether OnClose has been called for c.
func (h *testHandler) closedNow(c *Conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.closes[c.ID()]) > 0
}

// check verifies, after Shutdown, that every connection got exactly one
// OnClose and that no callback came out of order.
func (h *testHandler) check(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for id := range h.conns {
		if n := len(h.closes[id]); n != 1 {
			t.Errorf("conn %d: OnClose called %d times, want 1", id, n)
		}
	}
	if n := h.badOrder.Load(); n != 0 {
		t.Errorf("%d handler calls out of order", n)
	}
}

// startServer starts a Server on 127.0.0.1:0 for both transports and shuts
// it down when the test ends. Its KCP port serves bare segments
// (KCPRawSegments), for the kcp-go clients of most tests; the packet
// layer's tests (kcppacket_test.go) turn it off in mutate.
func startServer(t testing.TB, h *testHandler, mutate func(*Config)) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.TCPAddr = "127.0.0.1:0"
	cfg.KCPAddr = "127.0.0.1:0"
	cfg.KCPRawSegments = true
	cfg.Logger = testLogger()
	// Several loops whatever the machine (the default is one on two
	// cores): deliveries cross loops, through the loops' flushers, as on
	// a larger node. (The server package's tests force 2; cmd/server's
	// tests and the multi-process cluster test run the default.)
	cfg.EventLoops = 3
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := Listen(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := s.Shutdown(ctx, "test over"); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if n := s.Conns(); n != 0 {
			t.Errorf("Conns() = %d after Shutdown", n)
		}
		if held, tcp, pending := s.held.Load(), s.heldTCP.Load(), s.kcpPending.Load(); held != 0 || tcp != 0 || pending != 0 {
			t.Errorf("after Shutdown: %d places held (%d TCP), %d KCP handshakes: some were not given back", held, tcp, pending)
		}
		h.check(t)
	})
	return s
}

// client is a minimal Covey client over TCP or KCP using wire.Decoder.
type client struct {
	t    testing.TB
	tr   Transport
	conn net.Conn
	dec  *wire.Decoder
	buf  []byte
	raw  int // bytes read so far
}

// dialOpts tunes dial.
type dialOpts struct {
	rcvBuf int    // TCP SO_RCVBUF, set before connecting
	via    string // KCP: dial this address (a relay) instead of the server's
}

// dial connects to s over tr, sends a ping (a KCP session exists on the
// server only once a packet arrived), reads the echo, and returns the
// client with the server's Conn for it.
func dial(t testing.TB, s *Server, h *testHandler, tr Transport, o dialOpts) (*client, *Conn) {
	t.Helper()
	cl := &client{t: t, tr: tr, dec: wire.NewDecoder(wire.Config{MaxPayload: wire.MaxMaxPayload}), buf: make([]byte, 64<<10)}
	switch tr {
	case TCP:
		d := net.Dialer{Timeout: waitFor}
		if o.rcvBuf > 0 {
			d.Control = func(_, _ string, rc syscall.RawConn) error {
				var serr error
				err := rc.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, o.rcvBuf)
				})
				if err != nil {
					return err
				}
				return serr
			}
		}
		conn, err := d.Dial("tcp", s.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		cl.conn = conn
	case KCP:
		addr := s.KCPAddr().String()
		if o.via != "" {
			addr = o.via
		}
		sess, err := kcptest.Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		cl.conn = sess
	}
	t.Cleanup(func() { cl.conn.Close() })

	cl.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 1}, nil))
	var c *Conn
	select {
	case c = <-h.opens:
	case <-time.After(waitFor):
		t.Fatalf("%s: no OnOpen", tr)
	}
	if got, want := portOf(c.RemoteAddr()), portOf(cl.conn.LocalAddr()); got != want && o.via == "" {
		t.Fatalf("%s: OnOpen for port %d, want %d (tests must dial one at a time)", tr, got, want)
	}
	if c.Transport() != tr {
		t.Fatalf("Transport() = %v, want %v", c.Transport(), tr)
	}
	if h.onFrame == nil {
		f := cl.next()
		if f.Cmd != wire.CmdPing || f.Flags != wire.FlagReply || f.Seq != 1 {
			t.Fatalf("%s: ping reply %+v", tr, f.Header)
		}
	}
	return cl, c
}

func portOf(a net.Addr) int {
	_, p, _ := net.SplitHostPort(a.String())
	n, _ := strconv.Atoi(p)
	return n
}

func (cl *client) write(b []byte) {
	cl.t.Helper()
	_ = cl.conn.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := cl.conn.Write(b); err != nil {
		cl.t.Fatalf("%s write: %v", cl.tr, err)
	}
}

// writeRefused writes b, which the server refuses part way (a frame over
// a limit): the server may close before all of it is written, so a
// broken pipe or a reset is not an error; the Bye is read after it.
func (cl *client) writeRefused(b []byte) {
	cl.t.Helper()
	_ = cl.conn.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := cl.conn.Write(b); err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		cl.t.Fatalf("%s write: %v", cl.tr, err)
	}
}

// read returns the next frame (payload copied) or the read error.
func (cl *client) read() (wire.Frame, error) {
	for {
		f, err := cl.dec.Next()
		if err == nil {
			f.Payload = append([]byte(nil), f.Payload...)
			return f, nil
		}
		if !errors.Is(err, wire.ErrNeedMore) {
			return wire.Frame{}, err
		}
		_ = cl.conn.SetReadDeadline(time.Now().Add(waitFor))
		n, err := cl.conn.Read(cl.buf)
		cl.raw += n
		cl.dec.Write(cl.buf[:n])
		if err != nil && n == 0 {
			return wire.Frame{}, err
		}
	}
}

func (cl *client) next() wire.Frame {
	cl.t.Helper()
	f, err := cl.read()
	if err != nil {
		cl.t.Fatalf("%s read: %v", cl.tr, err)
	}
	return f
}

// expectBye reads the next frame and checks it is a Bye push with status
// (and reason, if not "").
func (cl *client) expectBye(status wire.Status, reason string) {
	cl.t.Helper()
	f := cl.next()
	if f.Cmd != wire.CmdBye || f.Ver != 0 || f.Flags != wire.FlagPush {
		cl.t.Fatalf("%s: got %+v, want a Bye push", cl.tr, f.Header)
	}
	var b wire.Bye
	if err := b.Consume(f.Payload); err != nil {
		cl.t.Fatalf("%s: Bye payload: %v", cl.tr, err)
	}
	if b.Status != status || (reason != "" && b.Reason != reason) {
		cl.t.Fatalf("%s: Bye %v %q, want %v %q", cl.tr, b.Status, b.Reason, status, reason)
	}
}

// expectClosed checks, on TCP, that the server closed the connection
// after what was read. KCP has no close on the wire: the client closes
// its session, as a client does after a Bye.
func (cl *client) expectClosed() {
	cl.t.Helper()
	if cl.tr != TCP {
		cl.conn.Close()
		return
	}
	f, err := cl.read()
	if err == nil {
		cl.t.Fatalf("tcp: got frame %+v, want the connection closed", f.Header)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		cl.t.Fatalf("tcp: read error %v, want EOF", err)
	}
}

// testSecret is the token secret of the encrypted test servers (TCP and
// KCP).
var testSecret = []byte("0123456789abcdef0123456789abcdef")

func testTicketKey(t testing.TB) *secure.TicketKey {
	t.Helper()
	k, err := secure.NewTicketKey(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testTicket seals a ticket for user under k, expiring at exp, and
// returns it as a client holds it.
func testTicket(k *secure.TicketKey, user string, exp time.Time) *secure.ClientTicket {
	tk := secure.Ticket{UserID: user, Expires: exp.Unix()}
	rand.Read(tk.Key[:])
	var nonce [24]byte
	rand.Read(nonce[:])
	return &secure.ClientTicket{Expires: tk.Expires, Key: tk.Key, Ticket: k.AppendTicket(nil, &tk, &nonce)}
}
