package netio

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/coveyhq/covey/wire"
)

// relayHandler answers pings and relays every other frame to every other
// open connection: a fan-out from whichever front end read the frame to
// connections on any front end.
func relayHandler() *testHandler {
	h := newTestHandler()
	h.onFrame = func(c *Conn, f wire.Frame) {
		if f.Cmd == wire.CmdPing {
			c.Send(wire.Header{Cmd: f.Cmd, Flags: wire.FlagReply, Seq: f.Seq}, f.Payload)
			return
		}
		out := wire.AppendFrame(nil, wire.Header{Cmd: f.Cmd, Seq: f.Seq}, f.Payload)
		h.mu.Lock()
		for _, o := range h.conns {
			if o != c {
				o.Deliver(out)
			}
		}
		h.mu.Unlock()
	}
	return h
}

// TestKCPReaders runs the KCP front end on four sockets bound to one
// port (Config.KCPReaders), in both modes: the kernel spreads the clients
// over the sockets, each client's traffic stays on its own (its session
// works), a frame read on one socket's reader reaches the clients of the
// others through their writers, and the fronts' counters add up in Stats.
func TestKCPReaders(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("several KCP readers need SO_REUSEPORT (Linux)")
	}
	for _, packets := range []bool{false, true} {
		t.Run(fmt.Sprintf("packets=%v", packets), func(t *testing.T) {
			h := relayHandler()
			readers := func(c *Config) { c.KCPReaders = 4 }
			var s *Server
			if packets {
				s = startPacketServer(t, h, readers)
			} else {
				s = startServer(t, h, readers)
			}
			if len(s.kcp) != 4 {
				t.Fatalf("%d KCP fronts, want 4", len(s.kcp))
			}
			for _, f := range s.kcp[1:] {
				if f.addr().String() != s.KCPAddr().String() {
					t.Fatalf("front on %v, the first on %v", f.addr(), s.KCPAddr())
				}
			}
			const n = 16
			clients := make([]*client, n)
			conns := make([]*Conn, n)
			for i := range clients {
				if packets {
					var ticket = testTicket(testTicketKey(t), fmt.Sprintf("u%d", i), time.Now().Add(time.Hour))
					if i%2 == 0 {
						ticket = nil // plaintext and encrypted sessions side by side
					}
					clients[i], conns[i] = dialPacket(t, s, h, ticket)
				} else {
					clients[i], conns[i] = dial(t, s, h, KCP, dialOpts{})
					if f := clients[i].next(); f.Cmd != wire.CmdPing || f.Seq != 1 {
						t.Fatalf("ping reply %+v", f.Header)
					}
				}
			}
			used := 0
			for _, f := range s.kcp {
				if f.sessionCount() > 0 {
					used++
				}
			}
			// Four sockets and 16 client ports: all on one socket has a
			// chance of 4^-15 if the kernel spreads them.
			if used < 2 {
				t.Fatalf("all %d clients on one socket of 4: not spread", n)
			}
			if got := s.kcp.sessionCount(); got != n {
				t.Fatalf("%d sessions, want %d", got, n)
			}

			const cmd = 0x4242
			for i, cl := range clients {
				cl.write(wire.AppendFrame(nil, wire.Header{Cmd: cmd, Seq: uint32(100 + i)}, []byte(fmt.Sprintf("from %d", i))))
			}
			for i, cl := range clients {
				seen := make(map[uint32]bool)
				for len(seen) < n-1 {
					f := cl.next()
					from := int(f.Seq) - 100
					if f.Cmd != cmd || from < 0 || from >= n || from == i || seen[f.Seq] || string(f.Payload) != fmt.Sprintf("from %d", from) {
						t.Fatalf("client %d got %+v %q", i, f.Header, f.Payload)
					}
					seen[f.Seq] = true
				}
			}
			read := func() (n uint64) {
				for _, f := range s.kcp {
					n += f.datagramsIn.Load()
				}
				return n
			}
			before := read()
			st := s.Stats()
			after := read()
			if st.KCPDatagramsIn < before || st.KCPDatagramsIn > after || before == 0 {
				t.Fatalf("Stats().KCPDatagramsIn = %d, the fronts read %d before it and %d after", st.KCPDatagramsIn, before, after)
			}
			if packets && st.KCPChallenges < n {
				t.Fatalf("Stats().KCPChallenges = %d for %d handshakes", st.KCPChallenges, n)
			}

			// Overloaded is the state of the connection's own front.
			var a, b *Conn
			for _, c := range conns {
				switch {
				case a == nil:
					a = c
				case c.io.(*kcpConn).f != a.io.(*kcpConn).f:
					b = c
				}
			}
			fa := a.io.(*kcpConn).f
			fa.overloaded.Store(true)
			if !a.Overloaded() || b.Overloaded() {
				t.Fatalf("one front overloaded: its conn reports %v, another front's %v", a.Overloaded(), b.Overloaded())
			}
			fa.overloaded.Store(false)
		})
	}
}

// TestKCPReadersPortTaken: a port that another socket holds, even one
// that allows SO_REUSEPORT (another process of the same user), is not
// joined: Listen fails as it does with one reader.
func TestKCPReadersPortTaken(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("several KCP readers need SO_REUSEPORT (Linux)")
	}
	lc := net.ListenConfig{Control: reusePort}
	pc, err := lc.ListenPacket(context.Background(), "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	cfg := DefaultConfig()
	cfg.KCPAddr = pc.LocalAddr().String()
	cfg.KCPReaders = 2
	cfg.Logger = testLogger()
	s, err := Listen(cfg, newTestHandler())
	if err == nil {
		s.Shutdown(context.Background(), "test over")
		t.Fatalf("Listen on %v, held by another socket with SO_REUSEPORT: no error", cfg.KCPAddr)
	}
	var le *ListenError
	if !errors.As(err, &le) || le.Transport != KCP {
		t.Fatalf("Listen: %v, want a KCP ListenError", err)
	}
}
