package netio

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/coveyhq/covey/wire"
)

// Commands of holdHandler's frames.
const (
	cmdHold        wire.Cmd = 0x7001 // Hold, and signal the test
	cmdHoldRelease wire.Cmd = 0x7002 // Hold and Release at once
)

// holdHandler echoes every frame; a cmdHold frame also holds the
// connection and is sent on holds; a cmdHoldRelease frame holds and
// releases it at once (an outcome known at once). It counts the frames
// handed over while the test holds the connection.
type holdHandler struct {
	*testHandler
	holds chan *Conn

	mu        sync.Mutex
	holding   bool
	whileHeld int // frames handed over while holding
	seqs      []uint32
}

func newHoldHandler() *holdHandler {
	h := &holdHandler{testHandler: newTestHandler(), holds: make(chan *Conn, 1)}
	h.onFrame = func(c *Conn, f wire.Frame) {
		h.mu.Lock()
		if h.holding {
			h.whileHeld++
		}
		h.seqs = append(h.seqs, f.Seq)
		h.mu.Unlock()
		c.Send(wire.Header{Ver: f.Ver, Cmd: f.Cmd, Flags: wire.FlagReply, Seq: f.Seq}, f.Payload)
		switch f.Cmd {
		case cmdHold:
			h.mu.Lock()
			h.holding = true
			h.mu.Unlock()
			c.Hold()
			h.holds <- c
		case cmdHoldRelease:
			c.Hold()
			c.Release()
		}
	}
	return h
}

// release ends the test's hold of c.
func (h *holdHandler) release(c *Conn) {
	h.mu.Lock()
	h.holding = false
	h.mu.Unlock()
	c.Release()
}

func (h *holdHandler) framesWhileHeld() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.whileHeld
}

// pings returns n ping frames, seqs from first on, of size bytes of
// payload each.
func pings(first uint32, n, size int) []byte {
	var b []byte
	for i := range n {
		seq := first + uint32(i)
		b = wire.AppendFrame(b, wire.Header{Cmd: wire.CmdPing, Seq: seq}, bytes.Repeat([]byte{byte(seq)}, size))
	}
	return b
}

// arrived reports whether bytes reached the server for c after it was
// held at lastRead (TCP: gnet read them; KCP: the session's receive queue
// has them), so that a check of what was handed over is not vacuous.
func arrived(c *Conn, lastRead int64) bool {
	if k, ok := c.io.(*kcpConn); ok {
		k.mu.Lock()
		defer k.mu.Unlock()
		return k.kcp.PeekSize() >= 0
	}
	return c.lastRead.Load() != lastRead
}

// TestHoldRelease: after Conn.Hold in OnFrame no frame of the connection
// reaches OnFrame, however much arrives (on KCP more than a receive
// window, which then closes and opens again), until Release from another
// goroutine; then every frame does, in order, on the connection's own
// goroutine (the handler's calls never overlap: testHandler counts
// any that do). A Hold released at once within OnFrame stops nothing.
func TestHoldRelease(t *testing.T) {
	h := newHoldHandler()
	s := startServer(t, h.testHandler, nil)
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			cl, c := dial(t, s, h.testHandler, tr, dialOpts{})
			cl.expectEcho(1, 0)
			h.mu.Lock()
			h.seqs = h.seqs[:0]
			h.mu.Unlock()

			// A Hold released at once, with frames behind it in the
			// same write.
			b := wire.AppendFrame(nil, wire.Header{Cmd: cmdHoldRelease, Seq: 2}, nil)
			b = append(b, pings(3, 5, 10)...)
			cl.write(b)
			if f := cl.next(); f.Seq != 2 {
				t.Fatalf("got %+v, want the reply to 2", f.Header)
			}
			for seq := uint32(3); seq < 8; seq++ {
				cl.expectEcho(seq, 10)
			}

			// A Hold released later, with more than a KCP window behind
			// it, written while the connection is held.
			cl.write(wire.AppendFrame(nil, wire.Header{Cmd: cmdHold, Seq: 8}, nil))
			var held *Conn
			select {
			case held = <-h.holds:
			case <-time.After(waitFor):
				t.Fatal("no Hold")
			}
			if held != c {
				t.Fatal("held another connection")
			}
			lastRead := c.lastRead.Load()
			const n, size = 200, 1000 // 200 kB: a KCP window is 128 segments
			wrote := make(chan error, 1)
			go func() {
				_ = cl.conn.SetWriteDeadline(time.Now().Add(waitFor))
				_, err := cl.conn.Write(pings(9, n, size))
				wrote <- err
			}()
			if err := waitUntil(func() bool { return arrived(c, lastRead) }); err != nil {
				t.Fatal("nothing arrived while held")
			}
			if got := h.framesWhileHeld(); got != 0 {
				t.Fatalf("%d frames handed over while held", got)
			}
			h.release(c)
			if f := cl.next(); f.Seq != 8 {
				t.Fatalf("got %+v, want the reply to 8", f.Header)
			}
			for seq := uint32(9); seq < 9+n; seq++ {
				cl.expectEcho(seq, size)
			}
			if err := <-wrote; err != nil {
				t.Fatalf("write: %v", err)
			}
			if got := h.framesWhileHeld(); got != 0 {
				t.Fatalf("%d frames handed over while held", got)
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			for i, seq := range h.seqs {
				if seq != uint32(i+2) {
					t.Fatalf("OnFrame %d had seq %d, want %d", i, seq, i+2)
				}
			}
		})
	}
}

// TestHoldInboundBound: a held TCP connection (plaintext or encrypted)
// that keeps sending is closed with ErrInboundHeld past
// heldInboundLimit, and none of what it sent meanwhile reaches OnFrame.
// (On KCP the receive window bounds what waits.)
func TestHoldInboundBound(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		name := "plaintext"
		if encrypted {
			name = "encrypted"
		}
		t.Run(name, func(t *testing.T) {
			h := newHoldHandler()
			var cl *client
			var c *Conn
			if encrypted {
				s := startSecureServer(t, h.testHandler, nil)
				cl, _, c = dialSecure(t, s, h.testHandler, testTicket(testTicketKey(t), "u1", time.Now().Add(time.Hour)))
			} else {
				s := startServer(t, h.testHandler, nil)
				cl, c = dial(t, s, h.testHandler, TCP, dialOpts{})
				cl.expectEcho(1, 0)
			}
			cl.write(wire.AppendFrame(nil, wire.Header{Cmd: cmdHold, Seq: 2}, nil))
			select {
			case <-h.holds:
			case <-time.After(waitFor):
				t.Fatal("no Hold")
			}
			if f := cl.next(); f.Seq != 2 {
				t.Fatalf("got %+v, want the reply to 2", f.Header)
			}
			limit := c.heldInboundLimit()
			cl.writeRefused(pings(3, limit/(32<<10)+8, 32<<10))
			cl.expectBye(wire.StatusSlowConsumer, "")
			if err := h.waitClose(t, c); !errors.Is(err, ErrInboundHeld) {
				t.Fatalf("OnClose(%v), want ErrInboundHeld", err)
			}
			if got := h.framesWhileHeld(); got != 0 {
				t.Fatalf("%d frames handed over while held", got)
			}
		})
	}
}

// TestHoldNotIdle: a held connection is not closed as idle, however long
// the hold: a connection dialed after it, idle as long, is closed first
// (which shows the sweep has passed the held one's timeout), and the held
// one answers after its release.
func TestHoldNotIdle(t *testing.T) {
	mutate := func(c *Config) { c.IdleTimeout = 300 * time.Millisecond }
	for _, mode := range []string{"tcp", "kcp", "tcp-encrypted"} {
		t.Run(mode, func(t *testing.T) {
			h := newHoldHandler()
			var dialOne func() (*client, *Conn)
			if mode == "tcp-encrypted" {
				s := startSecureServer(t, h.testHandler, mutate)
				dialOne = func() (*client, *Conn) {
					cl, _, c := dialSecure(t, s, h.testHandler, testTicket(testTicketKey(t), "u1", time.Now().Add(time.Hour)))
					cl.write(ping(1, 0))
					cl.expectEcho(1, 0)
					return cl, c
				}
			} else {
				tr := TCP
				if mode == "kcp" {
					tr = KCP
				}
				s := startServer(t, h.testHandler, mutate)
				dialOne = func() (*client, *Conn) {
					cl, c := dial(t, s, h.testHandler, tr, dialOpts{})
					cl.expectEcho(1, 0)
					return cl, c
				}
			}
			cl, c := dialOne()
			cl.write(wire.AppendFrame(nil, wire.Header{Cmd: cmdHold, Seq: 2}, nil))
			select {
			case <-h.holds:
			case <-time.After(waitFor):
				t.Fatal("no Hold")
			}
			if f := cl.next(); f.Seq != 2 {
				t.Fatalf("got %+v, want the reply to 2", f.Header)
			}
			_, later := dialOne()
			if err := h.waitClose(t, later); !errors.Is(err, ErrIdle) {
				t.Fatalf("the idle connection: OnClose(%v), want ErrIdle", err)
			}
			if h.closedNow(c) {
				t.Fatalf("the held connection was closed: OnClose(%v)", h.waitClose(t, c))
			}
			h.release(c)
			cl.write(ping(3, 5))
			cl.expectEcho(3, 5)
		})
	}
}
