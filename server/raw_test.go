package server

import (
	"slices"
	"strings"
	"testing"

	"github.com/coveyhq/covey/wire"
)

// bystanders sets up two signed-in players sharing a session with a
// property, so tests can check that bad input from a third connection
// changes nothing for them.
type bystanders struct {
	a, b    *rawClient
	session string
}

func newBystanders(t testing.TB, srv *Server, network string) *bystanders {
	t.Helper()
	a, b := dialRaw(t, network, srv.addrOf(network)), dialRaw(t, network, srv.addrOf(network))
	a.signIn("bystander-a")
	b.signIn("bystander-b")
	create := wire.CreateRequest{Type: 1, MaxMembers: 4, Props: []wire.KeyValue{{Key: "score", Value: wire.IntValue(7)}}}
	f := a.call(wire.CmdCreate, create.Append(nil))
	var rep wire.CreateReply
	if f.Status != wire.StatusOK || rep.Consume(f.Payload) != nil {
		t.Fatalf("create: %v", f.Status)
	}
	join := wire.SessionRef{Type: 1, SessionID: rep.SessionID}
	if f := b.call(wire.CmdJoin, join.Append(nil)); f.Status != wire.StatusOK {
		t.Fatalf("join: %v", f.Status)
	}
	return &bystanders{a: a, b: b, session: rep.SessionID}
}

// check verifies the bystanders' session is as it was and still delivers.
func (by *bystanders) check(t testing.TB) {
	t.Helper()
	f := by.a.call(wire.CmdGetMemberIDs, (&wire.TypeRequest{Type: 1}).Append(nil))
	var ids wire.StringsReply
	if f.Status != wire.StatusOK || ids.Consume(f.Payload) != nil || !slices.Equal(ids.Items, []string{"bystander-a", "bystander-b"}) {
		t.Fatalf("bystanders' members changed: %v %v", f.Status, ids.Items)
	}
	f = by.b.call(wire.CmdGetProperty, (&wire.PropertyKeyRequest{Type: 1, Key: "score"}).Append(nil))
	var p wire.PropertyReply
	if f.Status != wire.StatusOK || p.Consume(f.Payload) != nil || !p.Exists || p.Value.Int() != 7 {
		t.Fatalf("bystanders' property changed: %v %+v", f.Status, p)
	}
	msg := []byte("still here")
	if f := by.a.call(wire.CmdBroadcast, (&wire.BroadcastRequest{Type: 1, Msg: msg}).Append(nil)); f.Status != wire.StatusOK {
		t.Fatalf("bystander broadcast: %v", f.Status)
	}
	for {
		f, err := by.b.next()
		if err != nil {
			t.Fatalf("bystander b: %v", err)
		}
		var m wire.MessagePush
		if f.Cmd == wire.CmdBroadcastReceived && m.Consume(f.Payload) == nil && string(m.Msg) == string(msg) {
			return
		}
	}
}

func header(ver uint8, cmd wire.Cmd, flags wire.Flags, seq uint32, length uint32) []byte {
	return wire.AppendHeader(nil, wire.Header{Ver: ver, Cmd: cmd, Flags: flags, Seq: seq, Length: length})
}

// TestRawProtocolErrors sends broken and forbidden frames from a client
// that bypasses the SDK. Each gets its documented status or a closed
// connection, and the other players' state does not change.
func TestRawProtocolErrors(t *testing.T) {
	for _, network := range transports {
		t.Run(network, func(t *testing.T) {
			srv := startServer(t)
			by := newBystanders(t, srv, network)
			dial := func() *rawClient { return dialRaw(t, network, srv.addrOf(network)) }

			t.Run("command before sign-in", func(t *testing.T) {
				c := dial()
				f := c.call(wire.CmdGetMemberIDs, (&wire.TypeRequest{Type: 1}).Append(nil))
				if f.Status != wire.StatusUnauthenticated {
					t.Fatalf("status %v", f.Status)
				}
				if st := c.expectBye(); st != wire.StatusUnauthenticated {
					t.Fatalf("bye %v", st)
				}
			})
			t.Run("ping before sign-in", func(t *testing.T) {
				c := dial()
				if f := c.call(wire.CmdPing, nil); f.Status != wire.StatusUnauthenticated {
					t.Fatalf("status %v", f.Status)
				}
				c.expectBye()
			})
			t.Run("malformed header flags", func(t *testing.T) {
				c := dial()
				c.signIn("flags")
				c.write(header(0, wire.CmdPing, 0x80, 5, 0))
				if st := c.expectBye(); st != wire.StatusBadRequest {
					t.Fatalf("bye %v", st)
				}
			})
			t.Run("reply flag from a client", func(t *testing.T) {
				c := dial()
				c.signIn("replier")
				c.write(header(0, wire.CmdPing, wire.FlagReply, 5, 0))
				c.expectBye()
			})
			t.Run("oversize length", func(t *testing.T) {
				c := dial()
				c.signIn("big")
				c.write(header(0, wire.CmdBroadcast, 0, 5, wire.DefaultMaxPayload+1)) // header only
				if st := c.expectBye(); st != wire.StatusTooLarge {
					t.Fatalf("bye %v", st)
				}
			})
			t.Run("unknown command", func(t *testing.T) {
				c := dial()
				c.signIn("unknown")
				if f := c.call(0x0300, nil); f.Status != wire.StatusUnknownCommand {
					t.Fatalf("status %v", f.Status)
				}
				if f := c.reply(c.request(42, 9, nil)); f.Status != wire.StatusUnknownCommand {
					t.Fatalf("app command without handler: %v", f.Status)
				}
				if f := c.call(wire.CmdPing, nil); f.Status != wire.StatusOK {
					t.Fatalf("connection unusable after an unknown command: %v", f.Status)
				}
			})
			t.Run("mesh command from a client", func(t *testing.T) {
				c := dial()
				c.signIn("mesh")
				if f := c.call(wire.MeshCmdFirst, nil); f.Status != wire.StatusUnknownCommand {
					t.Fatalf("status %v", f.Status)
				}
				c.expectBye()
			})
			t.Run("malformed payload", func(t *testing.T) {
				c := dial()
				c.signIn("payload")
				join := (&wire.SessionRef{Type: 1, SessionID: by.session}).Append(nil)
				for _, p := range [][]byte{join[:len(join)-3], append(join, 0xFF), {1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F}} {
					if f := c.call(wire.CmdJoin, p); f.Status != wire.StatusBadRequest {
						t.Fatalf("payload %x: status %v", p, f.Status)
					}
				}
				if f := c.call(wire.CmdPing, nil); f.Status != wire.StatusOK {
					t.Fatalf("connection unusable after a bad payload: %v", f.Status)
				}
			})
			t.Run("garbage after a valid frame", func(t *testing.T) {
				c := dial()
				c.signIn("garbage")
				ping := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 77}, nil)
				junk := make([]byte, 32)
				for i := range junk {
					junk[i] = 0xA5
				}
				c.write(append(ping, junk...))
				if f := c.reply(77); f.Status != wire.StatusOK {
					t.Fatalf("the valid frame before the garbage: %v", f.Status)
				}
				c.expectBye()
			})
			t.Run("truncated frame", func(t *testing.T) {
				c := dial()
				c.signIn("truncated")
				frame := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdBroadcast, Seq: 9}, (&wire.BroadcastRequest{Type: 1, Msg: make([]byte, 100)}).Append(nil))
				c.write(frame[:40])
				// The rest never comes: the server waits for it, then the
				// connection idles out; meanwhile nobody else is affected.
				by.check(t)
				c.c.Close()
			})
			t.Run("sign in twice on one connection", func(t *testing.T) {
				c := dial()
				c.signIn("twice")
				req := wire.SignInRequest{MinVersion: 1, MaxVersion: 1, UserID: "someone-else"}
				if f := c.call(wire.CmdSignIn, req.Append(nil)); f.Status != wire.StatusBadRequest {
					t.Fatalf("status %v", f.Status)
				}
			})
			t.Run("version negotiation", func(t *testing.T) {
				// The highest version both speak is chosen: a client of
				// versions 1 to 7 gets 1 from this server.
				c := dial()
				req := wire.SignInRequest{MinVersion: 1, MaxVersion: 7, UserID: "newer-client"}
				f := c.call(wire.CmdSignIn, req.Append(nil))
				var rep wire.SignInReply
				if f.Status != wire.StatusOK || rep.Consume(f.Payload) != nil || rep.Version != wire.ProtocolVersion {
					t.Fatalf("versions 1-7: status %v, reply %+v", f.Status, rep)
				}
				if rep.MaxMessage != wire.MaxMessageFor(rep.MaxPayload) {
					t.Fatalf("MaxMessage %d for MaxPayload %d", rep.MaxMessage, rep.MaxPayload)
				}
				// None in common: BadVersion, then a Bye that says which
				// versions the server speaks, then the close.
				for _, r := range [][2]uint16{{0, 0}, {2, 9}, {5, 3}} {
					c := dial()
					req := wire.SignInRequest{MinVersion: r[0], MaxVersion: r[1], UserID: "older-client"}
					if f := c.call(wire.CmdSignIn, req.Append(nil)); f.Status != wire.StatusBadVersion {
						t.Fatalf("versions %d-%d: status %v", r[0], r[1], f.Status)
					}
					if bye := c.expectByeMsg(); bye.Status != wire.StatusBadVersion || !strings.Contains(bye.Reason, "versions 1 to 1") {
						t.Fatalf("versions %d-%d: bye %+v", r[0], r[1], bye)
					}
				}
			})
			t.Run("bad sign-in", func(t *testing.T) {
				for _, req := range []wire.SignInRequest{{}, {Token: "v1.abc"}, {UserID: "bad\x00id"}, {Token: "t", UserID: "both"}} {
					req.MinVersion, req.MaxVersion = 1, 1
					c := dial()
					if f := c.call(wire.CmdSignIn, req.Append(nil)); f.Status != wire.StatusAuthFailed {
						t.Fatalf("%+v: status %v", req, f.Status)
					}
					c.expectBye()
				}
				c := dial()
				if f := c.call(wire.CmdSignIn, []byte{0xFF}); f.Status != wire.StatusBadRequest {
					t.Fatalf("malformed sign-in: %v", f.Status)
				}
				c = dial() // seq 0 would leave the client without its SID
				c.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdSignIn}, (&wire.SignInRequest{MinVersion: 1, MaxVersion: 1, UserID: "zero"}).Append(nil)))
				if st := c.expectBye(); st != wire.StatusBadRequest {
					t.Fatalf("sign-in with seq 0: bye %v", st)
				}
			})
			by.check(t)
		})
	}
}

// TestRawFireAndForget checks that a request with seq 0 gets no reply on
// success and a seq-0 reply with the status on failure.
func TestRawFireAndForget(t *testing.T) {
	srv := startServer(t)
	by := newBystanders(t, srv, "tcp")
	msg := (&wire.BroadcastRequest{Type: 1, Msg: []byte("ff")}).Append(nil)
	by.a.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdBroadcast}, msg))          // ok: no reply
	by.a.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdBroadcast}, []byte{9, 0})) // type 9: not a member
	var f wire.Frame
	for f.Flags&wire.FlagReply == 0 { // skip pushes (b joining, ...)
		var err error
		if f, err = by.a.next(); err != nil {
			t.Fatal(err)
		}
	}
	if f.Seq != 0 || f.Status != wire.StatusNotMember {
		t.Fatalf("first frame back: flags %v seq %d status %v", f.Flags, f.Seq, f.Status)
	}
}

// TestPingAlwaysAnswered pins the heartbeat rule: a Ping gets an OK reply
// whatever its seq, including 0 (the one exception to fire-and-forget), so
// a client that counts silence in heartbeats never kills a healthy idle
// connection; and a Ping with a payload is BadRequest, like any command
// with trailing bytes. Both transports.
func TestPingAlwaysAnswered(t *testing.T) {
	srv := startServer(t)
	for _, network := range []string{"tcp", "kcp"} {
		t.Run(network, func(t *testing.T) {
			c := dialRaw(t, network, srv.addrOf(network))
			c.signIn("pinger-" + network)
			c.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing}, nil))
			f, err := c.next()
			if err != nil {
				t.Fatal(err)
			}
			if f.Flags != wire.FlagReply || f.Cmd != wire.CmdPing || f.Seq != 0 || f.Status != wire.StatusOK {
				t.Fatalf("Ping seq 0: got %+v, want an OK reply with seq 0", f.Header)
			}
			if f := c.call(wire.CmdPing, []byte{0}); f.Status != wire.StatusBadRequest {
				t.Fatalf("Ping with a payload byte: status %v, want BadRequest", f.Status)
			}
			if f := c.call(wire.CmdPing, nil); f.Status != wire.StatusOK {
				t.Fatalf("Ping after: status %v", f.Status)
			}
		})
	}
}
