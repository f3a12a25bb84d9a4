package netio

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coveyhq/covey/internal/stacks"
	"github.com/coveyhq/covey/session"
	"github.com/coveyhq/covey/wire"
)

var _ session.Conn = (*Conn)(nil)

func TestListenAddrs(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, h, nil)
	for _, a := range []net.Addr{s.TCPAddr(), s.KCPAddr()} {
		if p := portOf(a); p == 0 {
			t.Errorf("address %v: port not resolved", a)
		}
	}
	if _, ok := s.TCPAddr().(*net.TCPAddr); !ok {
		t.Errorf("TCPAddr() is %T", s.TCPAddr())
	}

	only, err := Listen(Config{TCPAddr: "127.0.0.1:0", Logger: testLogger()}, h)
	if err != nil {
		t.Fatal(err)
	}
	if only.KCPAddr() != nil {
		t.Errorf("KCPAddr() = %v with KCP disabled", only.KCPAddr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := only.Shutdown(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(Config{}, h); err == nil {
		t.Error("Listen with no address succeeded")
	}
	// Ports in use: Listen fails with a ListenError naming the front end
	// and the address, and leaves nothing running.
	for _, c := range []struct {
		tr  Transport
		cfg Config
	}{
		{TCP, Config{TCPAddr: s.TCPAddr().String(), Logger: testLogger()}},
		{KCP, Config{TCPAddr: "127.0.0.1:0", KCPAddr: s.KCPAddr().String(), Logger: testLogger()}},
	} {
		_, err := Listen(c.cfg, h)
		var le *ListenError
		switch {
		case !errors.As(err, &le):
			t.Errorf("%v port in use: Listen = %v, want a *ListenError", c.tr, err)
		case le.Transport != c.tr || le.Addr == "" || !errors.Is(err, syscall.EADDRINUSE):
			t.Errorf("%v port in use: %+v (%v)", c.tr, *le, err)
		}
	}
}

func TestEcho(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, h, nil)
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			cl, c := dial(t, s, h, tr, dialOpts{})

			// Many frames in one write: all replies, in order, written in
			// batches (one per read on the server, at most).
			const n = 1000
			writes := c.writes.Load()
			var batch []byte
			for i := range n {
				payload := bytes.Repeat([]byte{byte(i)}, i%97)
				batch = wire.AppendFrame(batch, wire.Header{Ver: 1, Cmd: wire.Cmd(i % 7), Seq: uint32(i + 100)}, payload)
			}
			cl.write(batch)
			for i := range n {
				f := cl.next()
				if f.Seq != uint32(i+100) || f.Flags != wire.FlagReply || f.Ver != 1 || f.Cmd != wire.Cmd(i%7) {
					t.Fatalf("reply %d: header %+v", i, f.Header)
				}
				if want := bytes.Repeat([]byte{byte(i)}, i%97); !bytes.Equal(f.Payload, want) {
					t.Fatalf("reply %d: payload %x, want %x", i, f.Payload, want)
				}
			}
			w := c.writes.Load() - writes
			t.Logf("%d replies written with %d writes", n, w)
			if w > n/10 {
				t.Errorf("%d replies took %d writes: not batched", n, w)
			}

			// One frame written a byte at a time.
			frame := wire.AppendFrame(nil, wire.Header{Ver: 2, Cmd: 9, Seq: 7}, []byte("split across many writes"))
			for i := range frame {
				cl.write(frame[i : i+1])
			}
			f := cl.next()
			if f.Seq != 7 || string(f.Payload) != "split across many writes" {
				t.Fatalf("byte-by-byte frame: reply %+v %q", f.Header, f.Payload)
			}
		})
	}
}

func TestCompression(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, h, nil)
	payload := bytes.Repeat([]byte("covey room state: player 17 at (10,20) facing north; "), 900) // ~48 KB
	if len(payload) > wire.DefaultMaxPayload {
		t.Fatal("payload too large for the default config")
	}
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			cl, _ := dial(t, s, h, tr, dialOpts{})
			for _, compressed := range []bool{false, true} {
				var frame []byte
				if compressed {
					frame = wire.DefaultConfig().AppendFrame(nil, wire.Header{Ver: 1, Cmd: 1, Seq: 5}, payload)
					if frame[7]&byte(wire.FlagCompressed) == 0 {
						t.Fatal("client frame not compressed")
					}
				} else {
					frame = wire.AppendFrame(nil, wire.Header{Ver: 1, Cmd: 1, Seq: 5}, payload)
				}
				cl.write(frame)
				before := cl.raw
				f := cl.next()
				if f.Seq != 5 || !bytes.Equal(f.Payload, payload) {
					t.Fatalf("reply %+v: payload differs (%d bytes)", f.Header, len(f.Payload))
				}
				if onWire := cl.raw - before; onWire >= len(payload)/2 {
					t.Fatalf("reply took %d bytes on the wire for a %d-byte payload: not compressed", onWire, len(payload))
				}
			}
		})
	}
}

func TestBadFrames(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, h, nil)
	cases := []struct {
		name   string
		frame  []byte
		status wire.Status
		err    error
	}{
		{"too large header only", tooLargeHeader(), wire.StatusTooLarge, ErrTooLarge},
		{"bad flags", badFlagsFrame(wire.Flags(0x80)), wire.StatusBadRequest, ErrBadFrame},
		{"reply and push", badFlagsFrame(wire.FlagReply | wire.FlagPush), wire.StatusBadRequest, ErrBadFrame},
		{"corrupt compressed", wire.AppendFrame(nil, wire.Header{Cmd: 1, Flags: wire.FlagCompressed}, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3}), wire.StatusBadRequest, ErrBadFrame},
	}
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			good, _ := dial(t, s, h, tr, dialOpts{})
			for i, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					bad, c := dial(t, s, h, tr, dialOpts{})
					bad.write(tc.frame)
					bad.expectBye(tc.status, "")
					if !h.closedNow(c) {
						t.Fatal("the Bye arrived before OnClose returned")
					}
					bad.expectClosed()
					if err := h.waitClose(t, c); !errors.Is(err, tc.err) {
						t.Fatalf("OnClose(%v), want %v", err, tc.err)
					}
					// The other connection is still served.
					good.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: uint32(i + 10)}, []byte("still here")))
					if f := good.next(); f.Seq != uint32(i+10) || string(f.Payload) != "still here" {
						t.Fatalf("good connection: reply %+v %q", f.Header, f.Payload)
					}
				})
			}
		})
	}
}

// tooLargeHeader is a header announcing one byte more than the default
// limit, with no payload: the server must answer on the header alone.
func tooLargeHeader() []byte {
	b := wire.AppendHeader(nil, wire.Header{Cmd: 1, Seq: 3})
	binary.BigEndian.PutUint32(b, wire.DefaultMaxPayload+1)
	return b
}

func badFlagsFrame(fl wire.Flags) []byte {
	b := wire.AppendFrame(nil, wire.Header{Cmd: 1, Seq: 4}, []byte("x"))
	b[7] = byte(fl)
	return b
}

func TestSlowConsumer(t *testing.T) {
	const maxOut = 256 << 10
	h := newTestHandler()
	s := startServer(t, h, func(c *Config) {
		c.MaxOutbound = maxOut
		c.IdleTimeout = waitFor // only the budget may close it
	})
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			_, c := dial(t, s, h, tr, dialOpts{rcvBuf: 4 << 10})
			// The client never reads again; deliver until it is closed.
			frame := wire.AppendFrame(nil, wire.Header{Ver: 1, Cmd: 2, Flags: wire.FlagPush}, make([]byte, 1000))
			done := make(chan int)
			go func() {
				sent := 0
				deadline := time.Now().Add(waitFor)
				for !c.Closed() && time.Now().Before(deadline) {
					c.Deliver(frame)
					sent += len(frame)
				}
				done <- sent
			}()
			if err := h.waitClose(t, c); !errors.Is(err, ErrSlowConsumer) {
				t.Fatalf("OnClose(%v), want ErrSlowConsumer", err)
			}
			sent := <-done
			hw := c.queuedHighWater()
			t.Logf("%s: delivered %d bytes before the close; queued at most %d bytes (max %d)", tr, sent, hw, maxOut)
			if hw > maxOut || hw == 0 {
				t.Fatalf("queued high-water mark %d, want in (0, %d]", hw, maxOut)
			}
		})
	}
}

// TestSlowConsumerKCPFullWindow closes a KCP slow consumer whose window
// is full (the client stopped reading): the engine keeps what KCP has no
// room for queued in netio, so the budget closes the connection promptly.
func TestSlowConsumerKCPFullWindow(t *testing.T) {
	const maxOut = 256 << 10
	h := newTestHandler()
	s := startServer(t, h, func(c *Config) {
		c.MaxOutbound = maxOut
		c.IdleTimeout = waitFor
	})
	_, c := dial(t, s, h, KCP, dialOpts{})
	frame := wire.AppendFrame(nil, wire.Header{Ver: 1, Cmd: 2, Flags: wire.FlagPush}, make([]byte, 1000))
	start := time.Now()
	deadline := start.Add(waitFor)
	for !c.Closed() {
		if time.Now().After(deadline) {
			t.Fatalf("still open after %v of delivering to a client that does not read", waitFor)
		}
		c.Deliver(frame)
		if c.queued() >= maxOut/2 {
			runtime.Gosched() // let the engine move frames into the window while there is room
		}
	}
	if err := h.waitClose(t, c); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("OnClose(%v), want ErrSlowConsumer", err)
	}
	t.Logf("closed %v after the first frame", time.Since(start))
	if hw := c.queuedHighWater(); hw > maxOut {
		t.Fatalf("queued high-water mark %d past the budget %d", hw, maxOut)
	}
}

func TestIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			t.Parallel()
			h := newTestHandler()
			s := startServer(t, h, func(c *Config) { c.IdleTimeout = idle })
			start := time.Now() // the silent client's last byte is sent after this
			silent, sc := dial(t, s, h, tr, dialOpts{})
			active, ac := dial(t, s, h, tr, dialOpts{})

			// The active client pings every 50ms and drains the replies.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			defer wg.Wait()
			defer close(stop)
			wg.Add(2)
			go func() {
				defer wg.Done()
				ping := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing}, nil)
				tick := time.NewTicker(50 * time.Millisecond)
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
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					_ = active.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
					_, _ = active.conn.Read(make([]byte, 512))
				}
			}()

			if err := h.waitClose(t, sc); !errors.Is(err, ErrIdle) {
				t.Fatalf("silent connection: OnClose(%v), want ErrIdle", err)
			}
			el := time.Since(start)
			if el < idle {
				t.Fatalf("silent connection closed after %v, before the %v timeout", el, idle)
			}
			t.Logf("silent connection closed after %v (timeout %v)", el, idle)
			silent.expectClosed()
			// Keep the active connection busy for three timeouts.
			<-time.After(time.Until(start.Add(3 * idle)))
			if ac.Closed() {
				t.Fatal("active connection was closed")
			}
		})
	}
}

func TestCloseSendsBye(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, h, nil)
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			cl, c := dial(t, s, h, tr, dialOpts{})
			for i := range 10 {
				c.Deliver(wire.AppendFrame(nil, wire.Header{Ver: 1, Cmd: 3, Flags: wire.FlagPush, Seq: uint32(i)}, []byte("before bye")))
			}
			c.Close(wire.StatusReplaced, "signed in elsewhere")
			c.Close(wire.StatusInternal, "second close is ignored")
			c.Deliver(wire.AppendFrame(nil, wire.Header{Ver: 1, Cmd: 3, Flags: wire.FlagPush}, []byte("after bye")))
			if !c.Closed() {
				t.Fatal("Closed() is false after Close")
			}
			for i := range 10 {
				if f := cl.next(); f.Seq != uint32(i) || string(f.Payload) != "before bye" {
					t.Fatalf("frame %d: %+v %q", i, f.Header, f.Payload)
				}
			}
			cl.expectBye(wire.StatusReplaced, "signed in elsewhere")
			if !h.closedNow(c) {
				t.Fatal("the Bye arrived before OnClose returned")
			}
			cl.expectClosed()
			err := h.waitClose(t, c)
			if !errors.Is(err, ErrClosedByServer) || !errors.Is(err, wire.StatusReplaced) {
				t.Fatalf("OnClose(%v), want ErrClosedByServer and StatusReplaced", err)
			}
		})
	}
}

func TestShutdown(t *testing.T) {
	h := newTestHandler()
	cfg := DefaultConfig()
	cfg.TCPAddr, cfg.KCPAddr, cfg.Logger = "127.0.0.1:0", "127.0.0.1:0", testLogger()
	cfg.KCPRawSegments = true // dial's kcp-go client
	s, err := Listen(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	var clients []*client
	var conns []*Conn
	for _, tr := range transports {
		for range 3 {
			cl, c := dial(t, s, h, tr, dialOpts{})
			clients = append(clients, cl)
			conns = append(conns, c)
		}
	}
	if n := s.Conns(); n != len(conns) {
		t.Fatalf("Conns() = %d, want %d", n, len(conns))
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx, "maintenance"); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	t.Logf("Shutdown of %d connections took %v", len(conns), time.Since(start))
	for _, cl := range clients {
		cl.expectBye(wire.StatusShuttingDown, "maintenance")
		cl.expectClosed()
	}
	for _, c := range conns {
		if err := h.waitClose(t, c); !errors.Is(err, ErrServerClosed) {
			t.Errorf("conn %d: OnClose(%v), want ErrServerClosed", c.ID(), err)
		}
	}
	if n := s.Conns(); n != 0 {
		t.Errorf("Conns() = %d after Shutdown", n)
	}
	h.check(t)
	if err := s.Shutdown(ctx, "again"); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if c, err := net.DialTimeout("tcp", s.TCPAddr().String(), time.Second); err == nil {
		c.Close()
		t.Error("TCP still accepting after Shutdown")
	}
}

func TestShutdownDeadline(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, h, func(c *Config) { c.IdleTimeout = waitFor })
	// A KCP client that stops reading leaves the final flush waiting for
	// its window; an expired context cuts it short.
	_, c := dial(t, s, h, KCP, dialOpts{})
	frame := wire.AppendFrame(nil, wire.Header{Ver: 1, Cmd: 2, Flags: wire.FlagPush}, make([]byte, 1000))
	for range 400 {
		c.Deliver(frame)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Shutdown(ctx, "hurry")
	el := time.Since(start)
	t.Logf("Shutdown returned %v after %v", err, el)
	if el > time.Second {
		t.Fatalf("Shutdown took %v with a 50ms context", el)
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	// The cleanup's Shutdown waits for the rest.
}

func TestConcurrentDeliver(t *testing.T) {
	const goroutines, perG = 8, 2000
	h := newTestHandler()
	s := startServer(t, h, nil)
	for _, tr := range transports {
		t.Run(tr.String(), func(t *testing.T) {
			cl, c := dial(t, s, h, tr, dialOpts{})
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var frame []byte
					for i := range perG {
						frame = wire.AppendFrame(frame[:0], wire.Header{Ver: 1, Cmd: 4, Flags: wire.FlagPush, Seq: uint32(g<<16 | i)},
							[]byte(strconv.Itoa(i)))
						c.Deliver(frame) // frame is reused: Deliver must copy
					}
				}()
			}
			wakes, writes := c.wakes.Load(), c.writes.Load()
			next := make([]int, goroutines)
			for range goroutines * perG {
				f := cl.next()
				g, i := int(f.Seq>>16), int(f.Seq&0xffff)
				if g >= goroutines || i != next[g] || string(f.Payload) != strconv.Itoa(i) {
					t.Fatalf("got goroutine %d frame %d (%q), want frame %d", g, i, f.Payload, next[min(g, goroutines-1)])
				}
				next[g]++
			}
			wg.Wait()
			t.Logf("%d frames: %d wake-ups, %d writes", goroutines*perG, c.wakes.Load()-wakes, c.writes.Load()-writes)
			// Nothing more: a ping's reply comes next.
			cl.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 77}, nil))
			if f := cl.next(); f.Seq != 77 {
				t.Fatalf("extra frame %+v", f.Header)
			}
		})
	}
}

func TestState(t *testing.T) {
	c := &Conn{}
	if c.State() != nil {
		t.Fatal("State() not nil initially")
	}
	c.SetState("player-1")
	if c.State() != "player-1" {
		t.Fatalf("State() = %v", c.State())
	}
	c.SetState(nil)
	if c.State() != nil {
		t.Fatalf("State() = %v after SetState(nil)", c.State())
	}
	if TCP.String() != "tcp" || KCP.String() != "kcp" || Transport(9).String() != "transport(9)" {
		t.Fatal("Transport.String")
	}
}

// TestGoroutines checks that Shutdown leaves no goroutine behind and
// checks that a KCP session costs the server no goroutine.
func TestGoroutines(t *testing.T) {
	settle := func(want int) int {
		deadline := time.Now().Add(waitFor)
		n := runtime.NumGoroutine()
		for n > want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // goroutine exits have no event to wait on
			n = runtime.NumGoroutine()
		}
		return n
	}
	base := runtime.NumGoroutine()

	h := newTestHandler()
	cfg := DefaultConfig()
	cfg.TCPAddr, cfg.KCPAddr, cfg.Logger = "127.0.0.1:0", "127.0.0.1:0", testLogger()
	cfg.KCPRawSegments = true // dial's kcp-go client
	s, err := Listen(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	// gnet's loops may still be starting when Listen returns: one TCP client per loop
	// (gnet runs NumCPU loops and gives each new connection to the least loaded) has each
	// loop call OnOpen, so all are running before the first count.
	var clients []*client
	for range runtime.NumCPU() {
		cl, _ := dial(t, s, h, TCP, dialOpts{})
		clients = append(clients, cl)
	}
	// Counted by stack, not runtime.NumGoroutine: the kcp-go clients run goroutines of their
	// own, and an earlier test's goroutine may exit in between.
	const sessions = 4
	counts := make([]int, 2)
	for i := range counts {
		for range sessions {
			cl, _ := dial(t, s, h, KCP, dialOpts{})
			clients = append(clients, cl)
		}
		counts[i] = serverGoroutines()
	}
	t.Logf("server goroutines: %d with %d KCP sessions, %d with %d", counts[0], sessions, counts[1], 2*sessions)
	if counts[1] > counts[0] { // fewer: a goroutine of an earlier test ended
		t.Errorf("the server runs %d goroutines with %d KCP sessions and %d with %d; the engine should start none per session",
			counts[0], sessions, counts[1], 2*sessions)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := s.Shutdown(ctx, "done"); err != nil {
		t.Fatal(err)
	}
	for _, cl := range clients {
		cl.conn.Close()
	}
	if n := settle(base); n > base {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after Shutdown, %d before Listen:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
	h.check(t)
}

// serverGoroutines counts the goroutines running netio's or gnet's code, leaving out the
// tests' own (under testing.tRunner, or started by test code).
func serverGoroutines() int {
	count := 0
	for _, g := range stacks.Each() {
		if bytes.Contains(g, []byte("testing.tRunner")) || bytes.Contains(g, []byte("_test.go:")) {
			continue
		}
		for _, line := range bytes.Split(g, []byte("\n")) {
			if bytes.HasPrefix(line, []byte("github.com/coveyhq/covey/netio.")) || bytes.HasPrefix(line, []byte("github.com/panjf2000/gnet/")) {
				count++
				break
			}
		}
	}
	return count
}
