package server

import (
	"testing"
	"time"

	"github.com/coveyhq/covey/wire"
)

// These end-to-end tests hold replyOrder's promises on a live connection
// (found by a review: each failed before its fix).

// handled returns how many ver 0 commands cmd the server has answered.
func handled(srv *Server, cmd wire.Cmd) uint64 {
	var n uint64
	row := &srv.metrics.commands[cmdSlot(0, cmd)]
	for i := range row {
		n += row[i].Load()
	}
	return n
}

// waitHandled polls until the server has answered n commands cmd: the
// test must release a deferred reply only after the requests behind it
// were read, and nothing else says when.
func waitHandled(t *testing.T, srv *Server, cmd wire.Cmd, n uint64) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for handled(srv, cmd) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the server handled %d %v, want %d", handled(srv, cmd), cmd, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// deferringServer is a server whose app command 1/0x10 defers its reply,
// handing the reply function to the test.
func deferringServer(t *testing.T) (*Server, chan func([]byte, error)) {
	release := make(chan func([]byte, error), 1)
	srv := startServerWith(t, func(s *Server) {
		s.Handle(1, 0x0010, func(r *Request) ([]byte, error) {
			release <- r.Defer()
			return nil, nil
		})
	})
	return srv, release
}

// TestByeAfterPendingReplies: a Bye request behind a deferred request and
// a Ping: the deferred reply, the Ping's, then the server's Bye, as
// PROTOCOL.md's Bye says; the connection does not close before.
func TestByeAfterPendingReplies(t *testing.T) {
	srv, release := deferringServer(t)
	c := dialRaw(t, "tcp", srv.addrOf("tcp"))
	c.signIn("leaver")
	b := wire.AppendFrame(nil, wire.Header{Ver: 1, Cmd: 0x0010, Seq: 1}, nil)
	b = wire.AppendFrame(b, wire.Header{Cmd: wire.CmdPing, Seq: 2}, nil)
	b = wire.AppendFrame(b, wire.Header{Cmd: wire.CmdBye, Seq: 3}, nil)
	c.write(b)
	reply := <-release
	waitHandled(t, srv, wire.CmdBye, 1)
	reply([]byte("late"), nil)
	if f := c.frame(); f.Ver != 1 || f.Seq != 1 || string(f.Payload) != "late" {
		t.Fatalf("first frame %+v, want the deferred reply", f.Header)
	}
	c.expectReply(wire.CmdPing, 2, wire.StatusOK)
	if f := c.frame(); f.Cmd != wire.CmdBye || f.Flags != wire.FlagPush {
		t.Fatalf("third frame %+v, want the server's Bye", f.Header)
	}
}

// TestPanicAfterDefer: a handler that panics after Defer is answered
// Internal, and the replies behind it flow.
func TestPanicAfterDefer(t *testing.T) {
	srv := startServerWith(t, func(s *Server) {
		s.Handle(1, 0x0010, func(r *Request) ([]byte, error) {
			r.Defer()
			panic("after Defer")
		})
	})
	c := dialRaw(t, "tcp", srv.addrOf("tcp"))
	c.signIn("panicker")
	b := wire.AppendFrame(nil, wire.Header{Ver: 1, Cmd: 0x0010, Seq: 1}, nil)
	b = wire.AppendFrame(b, wire.Header{Cmd: wire.CmdPing, Seq: 2}, nil)
	c.write(b)
	if f := c.frame(); f.Ver != 1 || f.Seq != 1 || f.Status != wire.StatusInternal {
		t.Fatalf("first frame %+v, want Internal for the panicking handler", f.Header)
	}
	c.expectReply(wire.CmdPing, 2, wire.StatusOK)
}

// TestDeferTimeout: a deferred reply that does not come within
// Config.DeferTimeout is answered Internal in its turn, the replies
// behind it follow, and the handler's reply, when it comes after all, is
// dropped. A reply in time stops the timer: no second reply follows it.
func TestDeferTimeout(t *testing.T) {
	late := make(chan func([]byte, error), 2)
	cfg := DefaultConfig()
	cfg.TCPAddr, cfg.KCPAddr, cfg.HTTPAddr = "127.0.0.1:0", "", ""
	cfg.Logger = discardLogger()
	cfg.DeferTimeout = 50 * time.Millisecond
	srv := startConfigured(t, cfg, func(s *Server) {
		s.Handle(1, 0x0010, func(r *Request) ([]byte, error) {
			late <- r.Defer() // never called in time
			return nil, nil
		})
		s.Handle(1, 0x0011, func(r *Request) ([]byte, error) {
			r.Defer()([]byte("in time"), nil)
			return nil, nil
		})
	})
	c := dialRaw(t, "tcp", srv.addrOf("tcp"))
	c.signIn("forgetful")
	b := wire.AppendFrame(nil, wire.Header{Ver: 1, Cmd: 0x0010, Seq: 1}, nil)
	b = wire.AppendFrame(b, wire.Header{Cmd: wire.CmdPing, Seq: 2}, nil)
	c.write(b)
	if f := c.frame(); f.Ver != 1 || f.Seq != 1 || f.Status != wire.StatusInternal {
		t.Fatalf("first frame %+v, want Internal for the reply that did not come", f.Header)
	}
	c.expectReply(wire.CmdPing, 2, wire.StatusOK)
	(<-late)([]byte("too late"), nil)
	b = wire.AppendFrame(nil, wire.Header{Ver: 1, Cmd: 0x0011, Seq: 3}, nil)
	b = wire.AppendFrame(b, wire.Header{Ver: 1, Cmd: 0x0010, Seq: 4}, nil)
	c.write(b)
	if f := c.frame(); f.Ver != 1 || f.Seq != 3 || f.Status != wire.StatusOK || string(f.Payload) != "in time" {
		t.Fatalf("frame %+v %q, want the reply in time", f.Header, f.Payload)
	}
	// Then the second deferred request's Internal, nothing between: not
	// the late reply, nor a second reply to seq 3 when its timer would
	// have run out.
	if f := c.frame(); f.Ver != 1 || f.Seq != 4 || f.Status != wire.StatusInternal {
		t.Fatalf("frame %+v, want Internal for seq 4", f.Header)
	}
	(<-late)(nil, nil)
	c.expectReply(wire.CmdPing, c.request(0, wire.CmdPing, nil), wire.StatusOK)
}

// TestRepliesPastTheLateBound: more requests behind a deferred one than
// maxLateReplies: their replies still leave in request order.
func TestRepliesPastTheLateBound(t *testing.T) {
	srv, release := deferringServer(t)
	c := dialRaw(t, "tcp", srv.addrOf("tcp"))
	c.signIn("pipeliner")
	const pings = maxLateReplies + 4
	b := wire.AppendFrame(nil, wire.Header{Ver: 1, Cmd: 0x0010, Seq: 1}, nil)
	for i := range uint32(pings) {
		b = wire.AppendFrame(b, wire.Header{Cmd: wire.CmdPing, Seq: 2 + i}, nil)
	}
	c.write(b)
	reply := <-release
	waitHandled(t, srv, wire.CmdPing, pings)
	reply(nil, nil)
	if f := c.frame(); f.Ver != 1 || f.Seq != 1 {
		t.Fatalf("first frame %+v, want the deferred reply", f.Header)
	}
	for i := range uint32(pings) {
		c.expectReply(wire.CmdPing, 2+i, wire.StatusOK)
	}
}
