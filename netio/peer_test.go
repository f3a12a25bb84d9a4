package netio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coveyhq/covey/wire"
)

func TestConfigDefaultsPeer(t *testing.T) {
	for name, c := range map[string]Config{"withDefaults": Config{}.withDefaults(), "DefaultConfig": DefaultConfig()} {
		if c.PeerMaxOutbound != 64<<20 || c.PeerIdleTimeout != 3*time.Second || c.MeshAddr != "" {
			t.Errorf("%s: PeerMaxOutbound %d, PeerIdleTimeout %v, MeshAddr %q", name, c.PeerMaxOutbound, c.PeerIdleTimeout, c.MeshAddr)
		}
		if c.PeerWire != (wire.Config{MaxPayload: 1 << 20}) {
			t.Errorf("%s: PeerWire %+v, want 1 MiB payloads and no compression", name, c.PeerWire)
		}
	}
	// A PeerWire with only a threshold keeps it and gets the peer payload
	// limit, not the client one.
	c := Config{PeerWire: wire.Config{CompressThreshold: 4096}}.withDefaults()
	if c.PeerWire != (wire.Config{MaxPayload: DefaultPeerMaxPayload, CompressThreshold: 4096}) {
		t.Errorf("PeerWire %+v", c.PeerWire)
	}
}

func TestKindString(t *testing.T) {
	if KindClient != 0 || KindClient.String() != "client" || KindPeer.String() != "peer" || Kind(7).String() != "kind(7)" {
		t.Fatal("Kind values or String")
	}
	if (&Conn{}).Kind() != KindClient {
		t.Fatal("the zero Conn is not a client")
	}
}

// peerHandler is a testHandler that records each connection's Kind and
// State as OnOpen sees them, answers only frames that are not replies
// (two servers echoing each other's replies would never stop), and hands
// every frame it gets to frames.
type peerHandler struct {
	*testHandler

	mu     sync.Mutex
	atOpen map[uint64]openSeen

	frames chan peerFrame
}

// openSeen is what OnOpen saw of a connection.
type openSeen struct {
	kind  Kind
	state any
}

type peerFrame struct {
	c *Conn
	f wire.Frame // payload copied
}

func newPeerHandler() *peerHandler {
	h := &peerHandler{testHandler: newTestHandler(), atOpen: make(map[uint64]openSeen), frames: make(chan peerFrame, 1024)}
	h.onFrame = func(c *Conn, f wire.Frame) {
		if f.Flags&wire.FlagReply == 0 && !(f.Ver == 0 && f.Cmd == wire.CmdBye) {
			c.Send(wire.Header{Ver: f.Ver, Cmd: f.Cmd, Flags: wire.FlagReply, Seq: f.Seq}, f.Payload)
		}
		f.Payload = append([]byte(nil), f.Payload...)
		select {
		case h.frames <- peerFrame{c, f}:
		default:
		}
	}
	return h
}

func (h *peerHandler) OnOpen(c *Conn) {
	h.mu.Lock()
	h.atOpen[c.ID()] = openSeen{c.Kind(), c.State()}
	h.mu.Unlock()
	h.testHandler.OnOpen(c)
}

func (h *peerHandler) seen(c *Conn) openSeen {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.atOpen[c.ID()]
}

// nextFrame returns the next frame the handler got, from any connection.
func (h *peerHandler) nextFrame(t testing.TB) peerFrame {
	t.Helper()
	select {
	case pf := <-h.frames:
		return pf
	case <-time.After(waitFor):
		t.Fatalf("no frame within %v", waitFor)
		return peerFrame{}
	}
}

// nextOpen returns the next connection the handler got OnOpen for.
func (h *peerHandler) nextOpen(t testing.TB) *Conn {
	t.Helper()
	select {
	case c := <-h.opens:
		return c
	case <-time.After(waitFor):
		t.Fatalf("no OnOpen within %v", waitFor)
		return nil
	}
}

// startMesh starts a Server with a client TCP address and a mesh
// address, both on 127.0.0.1 port 0 (KCP off), and shuts it down when the
// test ends, with startServer's checks.
func startMesh(t testing.TB, h *peerHandler, mutate func(*Config)) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.TCPAddr = "127.0.0.1:0"
	cfg.MeshAddr = "127.0.0.1:0"
	cfg.Logger = testLogger()
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
		if n, p := s.Conns(), s.Peers(); n != 0 || p != 0 {
			t.Errorf("after Shutdown: Conns() = %d, Peers() = %d", n, p)
		}
		if held, tcp, peers := s.held.Load(), s.heldTCP.Load(), s.heldPeers.Load(); held != 0 || tcp != 0 || peers != 0 {
			t.Errorf("after Shutdown: %d places held (%d TCP), %d peer places: some were not given back", held, tcp, peers)
		}
		h.check(t)
	})
	return s
}

// dialRaw connects a plain TCP socket to addr, with SO_RCVBUF rcvBuf if
// it is not 0, and returns it as a client (which does not ping).
func dialRaw(t testing.TB, addr net.Addr, rcvBuf int) *client {
	t.Helper()
	d := net.Dialer{Timeout: waitFor}
	if rcvBuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvBuf)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	conn, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, tr: TCP, conn: conn, dec: wire.NewDecoder(wire.Config{MaxPayload: wire.MaxMaxPayload}), buf: make([]byte, 64<<10)}
}

// dialMesh connects a raw socket to s's mesh address and returns it with
// the server's Conn for it.
func dialMesh(t testing.TB, s *Server, h *peerHandler, rcvBuf int) (*client, *Conn) {
	t.Helper()
	cl := dialRaw(t, s.MeshAddr(), rcvBuf)
	c := h.nextOpen(t)
	if got, want := portOf(c.RemoteAddr()), portOf(cl.conn.LocalAddr()); got != want {
		t.Fatalf("OnOpen for port %d, want %d (tests must dial one at a time)", got, want)
	}
	if k := h.seen(c).kind; k != KindPeer || c.Kind() != KindPeer {
		t.Fatalf("connection to the mesh address: Kind %v at OnOpen, %v now; want peer", k, c.Kind())
	}
	return cl, c
}

// dialPeer has a dial b's mesh address with state and returns a's Conn
// and b's Conn for the link.
func dialPeer(t testing.TB, a *Server, ha *peerHandler, b *Server, hb *peerHandler, state any) (*Conn, *Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ac, err := a.DialPeer(ctx, b.MeshAddr().String(), state)
	if err != nil {
		t.Fatalf("DialPeer: %v", err)
	}
	if got := ha.nextOpen(t); got != ac {
		t.Fatalf("DialPeer returned conn %d, OnOpen got %d", ac.ID(), got.ID())
	}
	bc := hb.nextOpen(t)
	if got, want := portOf(bc.RemoteAddr()), portOf(ac.RemoteAddr()); want != portOf(b.MeshAddr()) || got == 0 {
		t.Fatalf("link: dialer's remote port %d, want the mesh port %d (acceptor saw port %d)", want, portOf(b.MeshAddr()), got)
	}
	return ac, bc
}

// bigFrame is a frame with a 512 KiB payload: over wire.DefaultMaxPayload,
// under DefaultPeerMaxPayload.
func bigFrame(seq uint32) ([]byte, []byte) {
	payload := bytes.Repeat([]byte("mesh state transfer chunk "), (512<<10)/26+1)[:512<<10]
	return wire.AppendFrame(nil, wire.Header{Cmd: wire.MeshCmdFirst, Seq: seq}, payload), payload
}

// TestMeshListener: one engine serves both addresses (both on port 0):
// a connection to the client address is a client, one to the mesh
// address a peer, which takes a 512 KiB frame that the client address
// refuses as too large.
func TestMeshListener(t *testing.T) {
	h := newPeerHandler()
	s := startMesh(t, h, nil)
	if s.MeshAddr() == nil || portOf(s.MeshAddr()) == 0 || portOf(s.MeshAddr()) == portOf(s.TCPAddr()) {
		t.Fatalf("MeshAddr() = %v, TCPAddr() = %v: want two resolved ports", s.MeshAddr(), s.TCPAddr())
	}
	if _, ok := s.MeshAddr().(*net.TCPAddr); !ok {
		t.Fatalf("MeshAddr() is %T", s.MeshAddr())
	}

	cl := dialRaw(t, s.TCPAddr(), 0)
	cc := h.nextOpen(t)
	if k := h.seen(cc).kind; k != KindClient || cc.Kind() != KindClient {
		t.Fatalf("connection to the client address: Kind %v at OnOpen, %v now; want client", k, cc.Kind())
	}
	pl, pc := dialMesh(t, s, h, 0)
	if n, p := s.Conns(), s.Peers(); n != 1 || p != 1 {
		t.Fatalf("Conns() = %d, Peers() = %d; want 1 and 1", n, p)
	}

	frame, payload := bigFrame(9)
	pl.write(frame)
	if pf := h.nextFrame(t); pf.c != pc || !bytes.Equal(pf.f.Payload, payload) {
		t.Fatalf("peer frame: conn %d, %d bytes; want conn %d, %d bytes", pf.c.ID(), len(pf.f.Payload), pc.ID(), len(payload))
	}
	if f := pl.next(); f.Seq != 9 || f.Flags != wire.FlagReply || !bytes.Equal(f.Payload, payload) {
		t.Fatalf("peer reply %+v, %d bytes", f.Header, len(f.Payload))
	}

	cl.writeRefused(frame)
	cl.expectBye(wire.StatusTooLarge, "")
	cl.expectClosed()
	if err := h.waitClose(t, cc); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("client: OnClose(%v), want ErrTooLarge", err)
	}
	if pc.Closed() {
		t.Fatal("the peer connection was closed")
	}
}

// TestMeshOnly: with no client address the engine still runs for the
// mesh, and every connection is a peer.
func TestMeshOnly(t *testing.T) {
	h := newPeerHandler()
	s := startMesh(t, h, func(c *Config) { c.TCPAddr = "" })
	if s.TCPAddr() != nil || s.KCPAddr() != nil || s.MeshAddr() == nil {
		t.Fatalf("TCPAddr() = %v, KCPAddr() = %v, MeshAddr() = %v", s.TCPAddr(), s.KCPAddr(), s.MeshAddr())
	}
	pl, _ := dialMesh(t, s, h, 0)
	pl.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 4}, nil))
	if f := pl.next(); f.Seq != 4 || f.Flags != wire.FlagReply {
		t.Fatalf("reply %+v", f.Header)
	}

	// A server without mesh address has none.
	if s := startServer(t, newTestHandler(), nil); s.MeshAddr() != nil {
		t.Fatalf("MeshAddr() = %v with no MeshAddr", s.MeshAddr())
	}
}

// TestDialPeer links two servers: both ends are peers, the dialer's with
// the state given to DialPeer already at OnOpen, and frames (512 KiB ones
// too) flow both ways.
func TestDialPeer(t *testing.T) {
	ha, hb := newPeerHandler(), newPeerHandler()
	a := startMesh(t, ha, nil)
	b := startMesh(t, hb, nil)
	type link struct{ name string }
	state := &link{"b"}
	ac, bc := dialPeer(t, a, ha, b, hb, state)
	if seen := ha.seen(ac); seen.kind != KindPeer || seen.state != any(state) {
		t.Fatalf("dialer's OnOpen saw Kind %v, State %v; want peer, %v", seen.kind, seen.state, state)
	}
	if ac.State() != any(state) || ac.Kind() != KindPeer || ac.Transport() != TCP {
		t.Fatalf("dialed conn: State %v, Kind %v, Transport %v", ac.State(), ac.Kind(), ac.Transport())
	}
	if seen := hb.seen(bc); seen.kind != KindPeer || seen.state != nil {
		t.Fatalf("acceptor's OnOpen saw Kind %v, State %v; want peer, nil", seen.kind, seen.state)
	}
	if a.Peers() != 1 || a.Conns() != 0 || b.Peers() != 1 || b.Conns() != 0 {
		t.Fatalf("Peers/Conns: a %d/%d, b %d/%d; want 1/0 each", a.Peers(), a.Conns(), b.Peers(), b.Conns())
	}

	frame, payload := bigFrame(1)
	for _, dir := range []struct {
		name       string
		from, to   *Conn
		hFrom, hTo *peerHandler
	}{{"a to b", ac, bc, ha, hb}, {"b to a", bc, ac, hb, ha}} {
		dir.from.Deliver(frame)
		if pf := dir.hTo.nextFrame(t); pf.c != dir.to || pf.f.Seq != 1 || !bytes.Equal(pf.f.Payload, payload) {
			t.Fatalf("%s: got seq %d, %d bytes on conn %d", dir.name, pf.f.Seq, len(pf.f.Payload), pf.c.ID())
		}
		if pf := dir.hFrom.nextFrame(t); pf.c != dir.from || pf.f.Flags != wire.FlagReply || !bytes.Equal(pf.f.Payload, payload) {
			t.Fatalf("%s: reply %+v, %d bytes on conn %d", dir.name, pf.f.Header, len(pf.f.Payload), pf.c.ID())
		}
	}
	// Pushes and replies are just frames to netio.
	ac.Send(wire.Header{Cmd: wire.MeshCmdFirst + 1, Flags: wire.FlagPush, Seq: 5}, []byte("fanout"))
	if pf := hb.nextFrame(t); pf.f.Flags != wire.FlagPush || string(pf.f.Payload) != "fanout" {
		t.Fatalf("push: %+v %q", pf.f.Header, pf.f.Payload)
	}
}

// TestPeersNotCountedInMaxConns: a server full of clients (MaxConns 1)
// still takes peers, accepted and dialed, and they take no client place.
func TestPeersNotCountedInMaxConns(t *testing.T) {
	ha, hb := newPeerHandler(), newPeerHandler()
	a := startMesh(t, ha, nil)
	b := startMesh(t, hb, func(c *Config) { c.MaxConns = 1 })
	dialRaw(t, b.TCPAddr(), 0)
	hb.nextOpen(t)
	dialMesh(t, b, hb, 0)          // b accepts
	dialPeer(t, b, hb, a, ha, nil) // b dials
	if b.held.Load() != 1 || b.Conns() != 1 || b.Peers() != 2 {
		t.Fatalf("held %d, Conns %d, Peers %d; want 1, 1, 2", b.held.Load(), b.Conns(), b.Peers())
	}
	// A second client is still refused.
	conn := dialRaw(t, b.TCPAddr(), 0).conn
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	got, err := io.ReadAll(conn)
	if err != nil || !bytes.Equal(got, fullBye) {
		t.Fatalf("second client: %x, %v; want the refusal Bye", got, err)
	}
	if st := b.Stats(); st.RefusedTCP != 1 || st.RefusedPeers != 0 {
		t.Fatalf("Stats: refused tcp %d, peers %d; want 1, 0", st.RefusedTCP, st.RefusedPeers)
	}
}

// TestPeerIdleTimeout: a silent peer link is closed after
// PeerIdleTimeout with ErrPeerSilent, while a peer that pings and a
// client (IdleTimeout) stay open.
func TestPeerIdleTimeout(t *testing.T) {
	const idle = 200 * time.Millisecond
	h := newPeerHandler()
	s := startMesh(t, h, func(c *Config) { c.PeerIdleTimeout = idle })
	dialRaw(t, s.TCPAddr(), 0)
	cc := h.nextOpen(t)
	start := time.Now() // the silent peer's connection opens after this
	_, sc := dialMesh(t, s, h, 0)
	active, ac := dialMesh(t, s, h, 0)

	stop := make(chan struct{})
	done := make(chan struct{})
	defer func() { close(stop); <-done }()
	go func() { // pings every idle/4; the handler's replies are left unread
		defer close(done)
		ping := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing}, nil)
		tick := time.NewTicker(idle / 4)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := active.conn.Write(ping); err != nil {
					return
				}
			}
		}
	}()

	if err := h.waitClose(t, sc); !errors.Is(err, ErrPeerSilent) {
		t.Fatalf("silent peer: OnClose(%v), want ErrPeerSilent", err)
	}
	el := time.Since(start)
	if el < idle {
		t.Fatalf("silent peer closed after %v, before the %v timeout", el, idle)
	}
	t.Logf("silent peer closed after %v (timeout %v)", el, idle)
	<-time.After(time.Until(start.Add(3 * idle)))
	if ac.Closed() || cc.Closed() {
		t.Fatalf("closed: pinging peer %v, client %v", ac.Closed(), cc.Closed())
	}
}

// TestPeerMaxOutbound: a peer that does not read is closed as a slow
// consumer at PeerMaxOutbound, not at the clients' MaxOutbound.
func TestPeerMaxOutbound(t *testing.T) {
	const clientMax, peerMax = 128 << 10, 1 << 20
	h := newPeerHandler()
	s := startMesh(t, h, func(c *Config) {
		c.MaxOutbound = clientMax
		c.PeerMaxOutbound = peerMax
		c.PeerIdleTimeout = waitFor // only the budget may close it
	})
	_, c := dialMesh(t, s, h, 4<<10)
	frame := wire.AppendFrame(nil, wire.Header{Cmd: wire.MeshCmdFirst + 1, Flags: wire.FlagPush}, make([]byte, 1000))
	maxPending := 0
	deadline := time.Now().Add(waitFor)
	for !c.Closed() && time.Now().Before(deadline) {
		c.Deliver(frame)
		maxPending = max(maxPending, c.Pending())
	}
	if err := h.waitClose(t, c); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("OnClose(%v), want ErrSlowConsumer", err)
	}
	hw := c.queuedHighWater()
	t.Logf("queued at most %d bytes (Pending saw %d; peer max %d, client max %d)", hw, maxPending, peerMax, clientMax)
	if hw > peerMax || hw <= clientMax || maxPending <= clientMax {
		t.Fatalf("queued high-water mark %d (Pending %d), want in (%d, %d]", hw, maxPending, clientMax, peerMax)
	}
}

// TestShutdownClosesPeers: Shutdown sends its peers a Bye and closes
// them, and DialPeer fails cleanly afterwards.
func TestShutdownClosesPeers(t *testing.T) {
	ha, hb := newPeerHandler(), newPeerHandler()
	a := startMesh(t, ha, nil)
	b := startMesh(t, hb, nil)
	ac, bc := dialPeer(t, a, ha, b, hb, nil)
	pl, pc := dialMesh(t, a, ha, 0)

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := a.Shutdown(ctx, "leaving"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Conn{ac, pc} {
		if err := ha.waitClose(t, c); !errors.Is(err, ErrServerClosed) {
			t.Errorf("conn %d: OnClose(%v), want ErrServerClosed", c.ID(), err)
		}
	}
	pl.expectBye(wire.StatusShuttingDown, "leaving")
	pl.expectClosed()
	if pf := hb.nextFrame(t); pf.c != bc || pf.f.Cmd != wire.CmdBye || pf.f.Flags != wire.FlagPush {
		t.Fatalf("b got %+v on conn %d, want the Bye", pf.f.Header, pf.c.ID())
	}
	if err := hb.waitClose(t, bc); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("b: OnClose(%v), want ErrPeerClosed", err)
	}

	c, err := a.DialPeer(ctx, b.MeshAddr().String(), nil)
	if c != nil || !errors.Is(err, ErrServerClosed) {
		t.Fatalf("DialPeer after Shutdown = %v, %v; want ErrServerClosed", c, err)
	}
	if len(ha.opens) != 0 || len(hb.opens) != 0 {
		t.Fatal("OnOpen after Shutdown")
	}
}

// TestDialPeerFails: DialPeer to a closed port fails with ECONNREFUSED,
// one with a done context with its error, and one on a server without
// TCP engine at once; the Handler sees none of them.
func TestDialPeerFails(t *testing.T) {
	h := newPeerHandler()
	s := startMesh(t, h, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	start := time.Now()
	c, err := s.DialPeer(ctx, closed, "state")
	t.Logf("DialPeer to a closed port: %v after %v", err, time.Since(start))
	if c != nil || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("DialPeer to a closed port = %v, %v; want ECONNREFUSED", c, err)
	}

	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	if c, err := s.DialPeer(done, s.MeshAddr().String(), nil); c != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("DialPeer with a done context = %v, %v", c, err)
	}

	kcpOnly := startServer(t, newTestHandler(), func(c *Config) { c.TCPAddr = "" })
	if c, err := kcpOnly.DialPeer(ctx, s.MeshAddr().String(), nil); c != nil || err == nil {
		t.Fatalf("DialPeer without TCP engine = %v, %v", c, err)
	}
	if len(h.opens) != 0 || s.Peers() != 0 {
		t.Fatalf("%d OnOpen, %d peers after failed dials", len(h.opens), s.Peers())
	}
}

// TestMeshListenErrors: a mesh address in use fails Listen with a
// ListenError naming it, and the client address cannot be the mesh one.
func TestMeshListenErrors(t *testing.T) {
	h := newPeerHandler()
	s := startMesh(t, h, nil)
	_, err := Listen(Config{TCPAddr: "127.0.0.1:0", MeshAddr: s.MeshAddr().String(), Logger: testLogger()}, h)
	var le *ListenError
	if !errors.As(err, &le) || le.Transport != TCP || le.Addr != s.MeshAddr().String() || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("mesh port in use: Listen = %v, want a *ListenError for %v with EADDRINUSE", err, s.MeshAddr())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := ln.Addr().String()
	ln.Close()
	if _, err := Listen(Config{TCPAddr: free, MeshAddr: free, Logger: testLogger()}, h); err == nil || errors.As(err, &le) {
		t.Fatalf("TCPAddr = MeshAddr: Listen = %v, want a configuration error", err)
	}
}

// TestDialPeerGivesUp races DialPeer's deadline with the dial and the
// registration on the event loop: a call that fails returns a nil Conn
// and leaves no connection the dialer's Handler saw; one that succeeds
// returns the Conn its OnOpen got, with its state.
func TestDialPeerGivesUp(t *testing.T) {
	ha, hb := newPeerHandler(), newPeerHandler()
	a := startMesh(t, ha, nil)
	b := startMesh(t, hb, nil)
	const n = 200
	ok, late := 0, 0
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%20)*50*time.Microsecond)
		c, err := a.DialPeer(ctx, b.MeshAddr().String(), i)
		cancel()
		if err != nil {
			if c != nil {
				t.Fatalf("DialPeer returned conn %d with %v", c.ID(), err)
			}
			var ne net.Error
			if !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &ne) && ne.Timeout()) {
				t.Fatalf("DialPeer: %v, want a timeout", err)
			}
			if err == context.DeadlineExceeded {
				late++ // dialed, given up before OnOpen
			}
			continue
		}
		ok++
		if got := ha.nextOpen(t); got != c || ha.seen(c).state != i {
			t.Fatalf("dial %d: DialPeer returned conn %d, OnOpen got %d with state %v", i, c.ID(), got.ID(), ha.seen(got).state)
		}
	}
	t.Logf("%d of %d dials succeeded, %d gave up after the dial", ok, n, late)
	if len(ha.opens) != 0 || a.Peers() != ok {
		t.Fatalf("%d OnOpen not returned by DialPeer; %d peers open, want %d", len(ha.opens), a.Peers(), ok)
	}
	// b closes what a gave up on.
	deadline := time.Now().Add(waitFor)
	for b.Peers() != ok {
		if time.Now().After(deadline) {
			t.Fatalf("b has %d peers, want %d", b.Peers(), ok)
		}
		time.Sleep(time.Millisecond)
	}
}
