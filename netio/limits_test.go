package netio

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coveyhq/covey/internal/kcptest"
	"github.com/coveyhq/covey/wire"
)

// fullByeHex is what a TCP client refused over MaxConns receives, as
// PROTOCOL.md shows it ("Full server"): a Bye push, ServerOffline,
// "server full".
const fullByeHex = "0000000e 00 0003 02 00000000 0000 | 0006 0b7365727665722066756c6c"

func TestConfigDefaultsLimits(t *testing.T) {
	c := Config{}.withDefaults()
	if c.MaxConns != DefaultMaxConns || DefaultMaxConns != 100_000 {
		t.Errorf("MaxConns default %d (DefaultMaxConns %d), want 100000", c.MaxConns, DefaultMaxConns)
	}
	if c.KCPHandshakeTimeout != DefaultKCPHandshakeTimeout || DefaultKCPHandshakeTimeout != 5*time.Second {
		t.Errorf("KCPHandshakeTimeout default %v, want 5s", c.KCPHandshakeTimeout)
	}
	if d := DefaultConfig(); d.MaxConns != DefaultMaxConns || d.KCPHandshakeTimeout != DefaultKCPHandshakeTimeout {
		t.Errorf("DefaultConfig: MaxConns %d, KCPHandshakeTimeout %v", d.MaxConns, d.KCPHandshakeTimeout)
	}
}

// TestFullByeVector checks the refusal Bye against PROTOCOL.md.
func TestFullByeVector(t *testing.T) {
	want := unhex(t, fullByeHex)
	if !bytes.Equal(fullBye, want) {
		t.Fatalf("fullBye = %x, want %x", fullBye, want)
	}
	doc, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), fullByeHex) {
		t.Fatalf("PROTOCOL.md lacks the refusal Bye %q", fullByeHex)
	}
}

// unhex decodes hex with spaces and "|" separators.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "|", "").Replace(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitHeld polls until the server holds n connections (counted against
// MaxConns).
func waitHeld(t testing.TB, s *Server, n int64) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for s.held.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("server holds %d connections, want %d", s.held.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestMaxConnsTCP fills a server's two places with one connection of each
// transport: a third TCP connection gets the refusal Bye and is closed,
// without reaching the Handler; once the TCP client leaves, a new one is
// served.
func TestMaxConnsTCP(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, h, func(c *Config) { c.MaxConns = 2 })
	dial(t, s, h, KCP, dialOpts{})
	tc, _ := dial(t, s, h, TCP, dialOpts{})
	if n := s.held.Load(); n != 2 {
		t.Fatalf("server holds %d connections, want 2", n)
	}

	conn, err := net.DialTimeout("tcp", s.TCPAddr().String(), waitFor)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	got, err := io.ReadAll(conn) // until the server closes it
	if err != nil {
		t.Fatalf("refused connection: %v after %x", err, got)
	}
	if want := unhex(t, fullByeHex); !bytes.Equal(got, want) {
		t.Fatalf("refused connection got %x, want the Bye %x", got, want)
	}
	if st := s.Stats(); st.RefusedTCP != 1 || st.RefusedKCP != 0 {
		t.Fatalf("Stats: refused tcp %d kcp %d, want 1 and 0", st.RefusedTCP, st.RefusedKCP)
	}
	if len(h.opens) != 0 {
		t.Fatal("OnOpen for a refused connection")
	}
	if n := s.held.Load(); n != 2 {
		t.Fatalf("server holds %d connections after a refusal, want 2", n)
	}

	tc.conn.Close()
	waitHeld(t, s, 1)
	cl, _ := dial(t, s, h, TCP, dialOpts{}) // served: pings and reads the echo
	cl.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 2}, nil))
	if f := cl.next(); f.Seq != 2 {
		t.Fatalf("reply %+v", f.Header)
	}
	if st := s.Stats(); st.RefusedTCP != 1 {
		t.Fatalf("Stats: refused tcp %d after a place freed up, want 1", st.RefusedTCP)
	}
}

// TestMaxConnsKCP fills a server's two places with one connection of each
// transport: a KCP first segment from a new address then makes no session
// and no reply. Once the TCP client leaves, the same segment (as kcp-go
// retransmits it) opens a session.
func TestMaxConnsKCP(t *testing.T) {
	h := newTestHandler()
	// IdleTimeout bounds the linger of the raw session's Bye at Shutdown:
	// that client never acknowledges it.
	s := startServer(t, h, func(c *Config) { c.MaxConns = 2; c.IdleTimeout = time.Second })
	probe, _ := dial(t, s, h, KCP, dialOpts{})
	tc, _ := dial(t, s, h, TCP, dialOpts{})

	raw := rawUDP(t, s)
	first := kcpSegment(0xBEEF, kcpCmdPush, 0, wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 7}, nil))
	if _, err := raw.Write(first); err != nil {
		t.Fatal(err)
	}
	// The engine reads the socket in order: once the probe is answered,
	// the first segment was handled, and any reply to it already sent.
	probe.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 2}, nil))
	if f := probe.next(); f.Seq != 2 {
		t.Fatalf("probe reply %+v", f.Header)
	}
	if n := s.kcp.sessionCount(); n != 1 {
		t.Fatalf("%d KCP sessions, want 1 (the probe's)", n)
	}
	if st := s.Stats(); st.RefusedKCP != 1 || st.RefusedTCP != 0 {
		t.Fatalf("Stats: refused kcp %d tcp %d, want 1 and 0", st.RefusedKCP, st.RefusedTCP)
	}
	if len(h.opens) != 0 {
		t.Fatal("OnOpen for a refused first segment")
	}
	_ = raw.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := raw.Read(make([]byte, 2048)); err == nil {
		t.Fatalf("the refused address got a %d-byte reply", n)
	} else if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("raw read: %v", err)
	}

	tc.conn.Close()
	waitHeld(t, s, 1)
	if _, err := raw.Write(first); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-h.opens:
		if portOf(c.RemoteAddr()) != portOf(raw.LocalAddr()) {
			t.Fatalf("OnOpen for %v, want the raw client %v", c.RemoteAddr(), raw.LocalAddr())
		}
	case <-time.After(waitFor):
		t.Fatal("no session for the first segment once a place freed up")
	}
}

// TestKCPHandshakeTimeout opens a KCP session that delivers a frame, then
// one that keeps sending the pieces of a frame it never completes: the
// second is dropped once its handshake time is up, however recent its
// data, without reaching the Handler; the first, older one stays.
func TestKCPHandshakeTimeout(t *testing.T) {
	const handshake = 100 * time.Millisecond
	h := newTestHandler()
	s := startServer(t, h, func(c *Config) {
		c.KCPHandshakeTimeout = handshake
		c.IdleTimeout = time.Minute // the idle sweep must not be what closes it
	})
	good, gc := dial(t, s, h, KCP, dialOpts{})

	raw := rawUDP(t, s)
	const conv = 0xABCD
	start := time.Now()
	if _, err := raw.Write(partialFirstSegment(conv)); err != nil {
		t.Fatal(err)
	}
	// The ACK of segment 0 says the session exists.
	waitACK(t, raw, conv)
	if !s.kcp.hasSession(raw.LocalAddr()) && time.Since(start) < handshake {
		t.Fatal("no session for the client's address after the ACK")
	}
	if len(h.opens) != 0 {
		t.Fatal("OnOpen for a session without a complete frame")
	}

	// Trickle one more byte of the frame every 10ms until the session is
	// gone.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitFor)
	for sn := uint32(1); s.kcp.hasSession(raw.LocalAddr()); sn++ {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("the session without a frame is still there after %v (handshake timeout %v)", time.Since(start), handshake)
		}
		if _, err := raw.Write(kcpSegment(conv, kcpCmdPush, sn, []byte{0})); err != nil {
			t.Fatal(err)
		}
	}
	el := time.Since(start)
	if el < handshake {
		t.Fatalf("the session without a frame was dropped after %v, before the %v timeout", el, handshake)
	}
	if el > 8*handshake { // the sweep runs every handshake/4 here, not every second
		t.Fatalf("the session without a frame was dropped only after %v (handshake timeout %v)", el, handshake)
	}
	t.Logf("dropped after %v (handshake timeout %v)", el, handshake)
	if len(h.opens) != 0 {
		t.Fatal("OnOpen for a session without a complete frame")
	}
	waitHeld(t, s, 1)

	// The complete session is older than the one dropped: the handshake
	// timeout did not apply to it.
	if gc.Closed() || h.closedNow(gc) {
		t.Fatal("the session that delivered a frame was closed")
	}
	good.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 2}, nil))
	if f := good.next(); f.Seq != 2 {
		t.Fatalf("reply %+v", f.Header)
	}
}

// hasSession reports whether a front holds a session for the client
// address a.
func (fs kcpShards) hasSession(a net.Addr) bool {
	for _, f := range fs {
		if f.hasSession(a) {
			return true
		}
	}
	return false
}

// hasSession reports whether the front holds a session for the client
// address a.
func (f *kcpFront) hasSession(a net.Addr) bool {
	want := a.(*net.UDPAddr).AddrPort()
	f.mu.RLock()
	defer f.mu.RUnlock()
	for key := range f.sessions {
		if key.Addr().Unmap() == want.Addr().Unmap() && key.Port() == want.Port() {
			return true
		}
	}
	return false
}

// waitACK reads datagrams from raw until one holds an ACK of segment 0 of
// conv.
func waitACK(t testing.TB, raw *net.UDPConn, conv uint32) {
	t.Helper()
	_ = raw.SetReadDeadline(time.Now().Add(waitFor))
	buf := make([]byte, 2048)
	for {
		n, err := raw.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("no ACK for the first segment")
			}
			t.Fatal(err)
		}
		acked := false
		kcptest.Segments(buf[:n], func(sg kcptest.Segment) {
			acked = acked || sg.Conv == conv && sg.Cmd == kcptest.CmdAck && sg.Sn == 0
		})
		if acked {
			return
		}
	}
}

// TestTCPBoundedByOpenFiles: with an open-file limit of fdReserve+1, one
// TCP connection is served and a second is refused with the Bye, whatever
// MaxConns says, while KCP (no file descriptor per session) still opens.
func TestTCPBoundedByOpenFiles(t *testing.T) {
	saved := openFileLimit
	openFileLimit = func() (uint64, bool) { return fdReserve + 1, true }
	t.Cleanup(func() { openFileLimit = saved })
	h := newTestHandler()
	s := startServer(t, h, nil)
	dial(t, s, h, TCP, dialOpts{})

	conn, err := net.DialTimeout("tcp", s.TCPAddr().String(), waitFor)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("refused connection: %v after %x", err, got)
	}
	if want := unhex(t, fullByeHex); !bytes.Equal(got, want) {
		t.Fatalf("second TCP connection got %x, want the Bye %x", got, want)
	}
	if st := s.Stats(); st.RefusedTCP != 1 {
		t.Fatalf("Stats: refused tcp %d, want 1", st.RefusedTCP)
	}
	dial(t, s, h, KCP, dialOpts{}) // fails the test if not served
	if n := s.held.Load(); n != 2 {
		t.Fatalf("server holds %d connections, want 2", n)
	}
}

// partialFirstSegment is a client's first KCP segment carrying the start
// of a frame that never completes: a session in its handshake.
func partialFirstSegment(conv uint32) []byte {
	frame := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 3}, make([]byte, 1000))
	return kcpSegment(conv, kcpCmdPush, 0, frame[:wire.HeaderSize+2])
}

// TestKCPHandshakeBudget: with MaxConns 20, at most 2 KCP sessions may be
// in their handshake at once. A third first segment is refused, while TCP
// and a session that completes a frame are still served: a flood of
// first segments cannot take every place.
func TestKCPHandshakeBudget(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, h, func(c *Config) {
		c.MaxConns = 20
		c.IdleTimeout = time.Second // bounds the Shutdown of the raw sessions
	})
	probe, _ := dial(t, s, h, KCP, dialOpts{}) // open: not in its handshake
	for i := range 2 {
		raw := rawUDP(t, s)
		if _, err := raw.Write(partialFirstSegment(0x100 + uint32(i))); err != nil {
			t.Fatal(err)
		}
		waitACK(t, raw, 0x100+uint32(i))
	}
	if n := s.kcpPending.Load(); n != 2 {
		t.Fatalf("%d KCP sessions in their handshake, want 2", n)
	}
	third := rawUDP(t, s)
	if _, err := third.Write(partialFirstSegment(0x200)); err != nil {
		t.Fatal(err)
	}
	// The engine reads its socket in order: once the probe is answered,
	// the third first segment was handled.
	probe.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 2}, nil))
	if f := probe.next(); f.Seq != 2 {
		t.Fatalf("probe reply %+v", f.Header)
	}
	if st := s.Stats(); st.RefusedKCP != 1 {
		t.Fatalf("refused KCP %d, want 1", st.RefusedKCP)
	}
	if s.kcp.hasSession(third.LocalAddr()) {
		t.Fatal("a session over the handshake budget")
	}
	if n := s.kcp.sessionCount(); n != 3 {
		t.Fatalf("%d KCP sessions, want the probe's and the 2 in their handshake", n)
	}
	dial(t, s, h, TCP, dialOpts{}) // TCP is still served
}

// TestShutdownNoByeToUnopened: at Shutdown a KCP session still in its
// handshake (its address may be forged) is dropped without a Bye, while
// an open session gets one.
func TestShutdownNoByeToUnopened(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, h, nil)
	open, _ := dial(t, s, h, KCP, dialOpts{})
	raw := rawUDP(t, s)
	if _, err := raw.Write(partialFirstSegment(0x77)); err != nil {
		t.Fatal(err)
	}
	waitACK(t, raw, 0x77)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := s.Shutdown(ctx, "bye"); err != nil {
		t.Fatal(err)
	}
	open.expectBye(wire.StatusShuttingDown, "bye")
	// Whatever reached the raw client after its ACK, none of it is data.
	buf := make([]byte, 2048)
	for {
		_ = raw.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := raw.Read(buf)
		if err != nil {
			break
		}
		kcptest.Segments(buf[:n], func(sg kcptest.Segment) {
			if sg.Cmd == kcptest.CmdPush {
				t.Fatal("a session in its handshake got data (a Bye) at Shutdown")
			}
		})
	}
}
