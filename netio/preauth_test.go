package netio

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coveyhq/covey/wire"
)

// trickle writes b to conn one byte every interval, the first at once,
// on a goroutine of the test's that stops (and is waited for) when the
// test ends, when b is all sent, or at the first write error. It returns
// how many bytes were written so far.
func trickle(t testing.TB, conn net.Conn, b []byte, interval time.Duration) func() int {
	t.Helper()
	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := range b {
			_ = conn.SetWriteDeadline(time.Now().Add(waitFor))
			if _, err := conn.Write(b[i : i+1]); err != nil {
				return
			}
			sent.Add(1)
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
	})
	return func() int { return int(sent.Load()) }
}

// TestPreAuthTimeoutClosesTrickler: a client that sends a complete frame
// (not a sign-in), then trickles the bytes of another one every 500ms,
// never idle for IdleTimeout, is closed at PreAuthTimeout (1s here): a
// Bye push StatusUnauthenticated "sign in within 1s", then the close,
// and OnClose gets ErrPreAuthTimeout. Both transports.
func TestPreAuthTimeoutClosesTrickler(t *testing.T) {
	const preAuth = time.Second
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			h := newTestHandler()
			h.preAuth = true
			s := startServer(t, h, func(c *Config) {
				c.PreAuthTimeout = preAuth
				c.IdleTimeout = 3 * preAuth // the trickle keeps it from being idle
			})
			start := time.Now()
			cl, c := dial(t, s, h, tr, dialOpts{}) // a Ping, echoed: a frame, not a sign-in
			frame := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 2}, make([]byte, 100))
			sent := trickle(t, cl.conn, frame, 500*time.Millisecond)

			cl.expectBye(wire.StatusUnauthenticated, "sign in within 1s")
			el := time.Since(start)
			if el < preAuth || el > 2*preAuth { // the sweep runs every preAuth/4
				t.Fatalf("closed %v after connecting, want at the %v pre-auth timeout", el, preAuth)
			}
			if err := h.waitClose(t, c); !errors.Is(err, ErrPreAuthTimeout) {
				t.Fatalf("OnClose(%v), want ErrPreAuthTimeout", err)
			}
			cl.expectClosed()
			if n := sent(); n < 2 {
				t.Fatalf("only %d bytes trickled before the close", n)
			}
			t.Logf("%s: closed %v after connecting (pre-auth timeout %v), %d bytes trickled", tr, el, preAuth, sent())
		})
	}
}

// TestPreAuthTimeoutKCPHandshake: a KCP session that never completes a
// frame is dropped at PreAuthTimeout when that is shorter than
// KCPHandshakeTimeout, without a Bye and without reaching the Handler.
func TestPreAuthTimeoutKCPHandshake(t *testing.T) {
	const preAuth = 200 * time.Millisecond
	h := newTestHandler()
	h.preAuth = true
	s := startServer(t, h, func(c *Config) {
		c.PreAuthTimeout = preAuth
		c.KCPHandshakeTimeout = time.Minute
		c.IdleTimeout = time.Minute
	})
	raw := rawUDP(t, s)
	const conv = 0xABCE
	start := time.Now()
	if _, err := raw.Write(partialFirstSegment(conv)); err != nil {
		t.Fatal(err)
	}
	waitACK(t, raw, conv)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitFor)
	for sn := uint32(1); s.kcp.hasSession(raw.LocalAddr()); sn++ {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("the session without a frame is still there after %v (pre-auth timeout %v)", time.Since(start), preAuth)
		}
		if _, err := raw.Write(kcpSegment(conv, kcpCmdPush, sn, []byte{0})); err != nil {
			t.Fatal(err)
		}
	}
	el := time.Since(start)
	if el < preAuth || el > 8*preAuth { // the sweep runs every preAuth/4
		t.Fatalf("the session without a frame was dropped after %v, want at the %v pre-auth timeout", el, preAuth)
	}
	if len(h.opens) != 0 {
		t.Fatal("OnOpen for a session without a complete frame")
	}
	waitHeld(t, s, 0)
}

// TestAuthenticatedOutlivesPreAuthTimeout: a client authenticated at its
// first frame (as a sign-in does) is not closed at PreAuthTimeout: once an
// unauthenticated client that connected after it has been closed (so the
// sweep has passed both deadlines), it still gets replies. Both
// transports.
func TestAuthenticatedOutlivesPreAuthTimeout(t *testing.T) {
	const preAuth = 300 * time.Millisecond
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			h := newTestHandler()
			h.preAuth = true
			h.onFrame = func(c *Conn, f wire.Frame) {
				if f.Cmd == wire.CmdSignIn {
					c.Authenticated()
				}
				c.Send(wire.Header{Ver: f.Ver, Cmd: f.Cmd, Flags: wire.FlagReply, Seq: f.Seq}, f.Payload)
			}
			s := startServer(t, h, func(c *Config) {
				c.PreAuthTimeout = preAuth
				// Not idle during the test; it bounds the linger of the
				// Bye at Shutdown, which the closed clients never ACK.
				c.IdleTimeout = time.Second
			})
			signed, sc := dial(t, s, h, tr, dialOpts{})
			signed.next() // the Ping's echo
			signed.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdSignIn, Seq: 2}, []byte("credentials")))
			if f := signed.next(); f.Cmd != wire.CmdSignIn || f.Seq != 2 {
				t.Fatalf("sign-in reply %+v", f.Header)
			}

			witness, wc := dial(t, s, h, tr, dialOpts{})
			witness.next()
			witness.expectBye(wire.StatusUnauthenticated, "")
			if err := h.waitClose(t, wc); !errors.Is(err, ErrPreAuthTimeout) {
				t.Fatalf("witness: OnClose(%v), want ErrPreAuthTimeout", err)
			}

			if sc.Closed() || h.closedNow(sc) {
				t.Fatal("the authenticated client was closed")
			}
			signed.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 3}, nil))
			if f := signed.next(); f.Cmd != wire.CmdPing || f.Seq != 3 {
				t.Fatalf("reply %+v after the pre-auth timeout", f.Header)
			}
		})
	}
}

func TestConfigDefaultsPreAuth(t *testing.T) {
	if c := (Config{}).withDefaults(); c.PreAuthTimeout != 5*time.Second {
		t.Errorf("PreAuthTimeout default %v, want 5s", c.PreAuthTimeout)
	}
	if d := DefaultConfig(); d.PreAuthTimeout != DefaultPreAuthTimeout {
		t.Errorf("DefaultConfig: PreAuthTimeout %v", d.PreAuthTimeout)
	}
}
