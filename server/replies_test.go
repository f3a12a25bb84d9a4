package server

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/coveyhq/covey/wire"
)

// These tests pin PROTOCOL.md's "Requests and replies", "Sign-in" and
// "Bye": which requests get exactly one reply, which get none, and what a
// client reads instead. Each reads the server's frames in order, so "no
// reply" means the next frame is something else.

// frame returns the next frame from the server, failing the test if the
// connection ends first.
func (r *rawClient) frame() wire.Frame {
	r.t.Helper()
	f, err := r.next()
	if err != nil {
		r.t.Fatalf("waiting for a frame: %v", err)
	}
	return f
}

// expectReply checks that the next frame is the reply to request cmd/seq
// with the given status, and returns it.
func (r *rawClient) expectReply(cmd wire.Cmd, seq uint32, status wire.Status) wire.Frame {
	r.t.Helper()
	f := r.frame()
	if f.Flags != wire.FlagReply || f.Ver != 0 || f.Cmd != cmd || f.Seq != seq || f.Status != status {
		r.t.Fatalf("got %+v, want the reply to %v seq %d with status %v", f.Header, cmd, seq, status)
	}
	return f
}

// expectByeNext checks that the next frame is a Bye push with status
// (whose reason contains reason), then that the server closes the
// connection.
func (r *rawClient) expectByeNext(status wire.Status, reason string) {
	r.t.Helper()
	f := r.frame()
	var bye wire.Bye
	if f.Flags != wire.FlagPush || f.Ver != 0 || f.Cmd != wire.CmdBye || bye.Consume(f.Payload) != nil {
		r.t.Fatalf("got %+v, want a Bye push", f.Header)
	}
	if bye.Status != status || !strings.Contains(bye.Reason, reason) {
		r.t.Fatalf("Bye %v %q, want %v with %q", bye.Status, bye.Reason, status, reason)
	}
	r.expectEnd()
}

// expectEnd checks that nothing follows: on TCP the next read is the
// close; on KCP, which has no close on the wire, nothing arrives for a
// while.
func (r *rawClient) expectEnd() {
	r.t.Helper()
	if r.network == "kcp" {
		r.expectSilence(200 * time.Millisecond)
		return
	}
	f, err := r.next()
	var ne net.Error
	switch {
	case err == nil:
		r.t.Fatalf("got %+v, want the connection closed", f.Header)
	case errors.As(err, &ne) && ne.Timeout():
		r.t.Fatal("the server did not close the connection")
	}
}

// expectSilence checks that no frame arrives within d (on TCP, that the
// connection stays open or closes without sending anything more).
func (r *rawClient) expectSilence(d time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for {
		if f, err := r.dec.Next(); err == nil {
			r.t.Fatalf("got %+v, want nothing", f.Header)
		}
		r.c.SetReadDeadline(deadline)
		n, err := r.c.Read(r.buf)
		if n > 0 {
			r.dec.Write(r.buf[:n])
			continue
		}
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() {
			return
		}
		return // closed: nothing came before the close
	}
}

// frames encodes requests back to back, to be written at once.
func frames(hs ...wire.Header) []byte {
	var b []byte
	for _, h := range hs {
		b = wire.AppendFrame(b, h, nil)
	}
	return b
}

// TestByeRequestGetsNoReply: a Bye request, with any seq and any payload,
// is answered by the server's own Bye push (status 0, "goodbye") instead
// of a reply, then the close; requests after it are not answered. Before
// sign-in too.
func TestByeRequestGetsNoReply(t *testing.T) {
	srv := startServer(t)
	for _, network := range transports {
		t.Run(network, func(t *testing.T) {
			t.Run("signed in", func(t *testing.T) {
				c := dialRaw(t, network, srv.addrOf(network))
				c.signIn("leaver-" + network)
				b := frames(wire.Header{Cmd: wire.CmdPing, Seq: 10})
				b = wire.AppendFrame(b, wire.Header{Cmd: wire.CmdBye, Seq: 11}, []byte("any payload"))
				b = wire.AppendFrame(b, wire.Header{Cmd: wire.CmdPing, Seq: 12}, nil)
				c.write(b)
				c.expectReply(wire.CmdPing, 10, wire.StatusOK) // before the Bye: answered
				c.expectByeNext(wire.StatusOK, "goodbye")      // and no reply to Ping 12
			})
			t.Run("before sign-in", func(t *testing.T) {
				c := dialRaw(t, network, srv.addrOf(network))
				c.write(frames(wire.Header{Cmd: wire.CmdBye, Seq: 1}))
				c.expectByeNext(wire.StatusOK, "goodbye") // no Unauthenticated reply
			})
		})
	}
}

// TestRefusalIsAnsweredThenBye: a frame that breaks the protocol after
// framing (before sign-in, a Reply flag, a mesh command) gets a reply
// echoing its seq, even seq 0, then a Bye with the same status; later
// requests are not answered.
func TestRefusalIsAnsweredThenBye(t *testing.T) {
	srv := startServer(t)
	for _, tc := range []struct {
		name   string
		signIn bool
		h      wire.Header
		status wire.Status
	}{
		{"command before sign-in", false, wire.Header{Cmd: wire.CmdGetUserSessions, Seq: 1}, wire.StatusUnauthenticated},
		{"seq 0 before sign-in", false, wire.Header{Cmd: wire.CmdGetUserSessions}, wire.StatusUnauthenticated},
		{"reply flag", true, wire.Header{Cmd: wire.CmdPing, Flags: wire.FlagReply, Seq: 7}, wire.StatusBadRequest},
		{"push flag before sign-in", false, wire.Header{Cmd: wire.CmdSignIn, Flags: wire.FlagPush, Seq: 1}, wire.StatusBadRequest},
		{"mesh command", true, wire.Header{Cmd: wire.MeshCmdFirst, Seq: 8}, wire.StatusUnknownCommand},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, "tcp", srv.addrOf("tcp"))
			if tc.signIn {
				c.signIn("refused")
			}
			c.write(frames(tc.h, wire.Header{Cmd: wire.CmdPing, Seq: 99}))
			c.expectReply(tc.h.Cmd, tc.h.Seq, tc.status)
			c.expectByeNext(tc.status, "")
		})
	}
}

// TestFrameErrorsGetOnlyABye: a frame-level error (invalid flags, a length
// over MaxPayload, a compressed payload that does not decode or declares
// more than MaxPayload) gets no reply: the next frame is a Bye (TooLarge
// for sizes, BadRequest otherwise), then the close. Frames before it are
// answered.
func TestFrameErrorsGetOnlyABye(t *testing.T) {
	srv := startServer(t)
	tooLong := wire.AppendHeader(nil, wire.Header{Cmd: wire.CmdBroadcast, Seq: 5, Length: wire.DefaultMaxPayload + 1})
	// A block declaring 65,537 decoded bytes (uvarint 81 80 04), then junk.
	bomb := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdBroadcast, Flags: wire.FlagCompressed, Seq: 5}, []byte{0x81, 0x80, 0x04, 0, 1, 2})
	corrupt := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdBroadcast, Flags: wire.FlagCompressed, Seq: 5}, []byte{0x05, 0x00, 0x61})
	badFlags := func(fl byte) []byte {
		b := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 5}, nil)
		b[7] = fl
		return b
	}
	for _, network := range transports {
		t.Run(network, func(t *testing.T) {
			for _, tc := range []struct {
				name   string
				frame  []byte
				status wire.Status
				reason string
			}{
				{"undefined flag bit", badFlags(0x80), wire.StatusBadRequest, "invalid frame flags"},
				{"reply and push", badFlags(byte(wire.FlagReply | wire.FlagPush)), wire.StatusBadRequest, "invalid frame flags"},
				{"length over MaxPayload", tooLong, wire.StatusTooLarge, "frame too large"},
				{"decoded size over MaxPayload", bomb, wire.StatusTooLarge, "frame too large"},
				{"corrupt compressed payload", corrupt, wire.StatusBadRequest, "corrupt"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					c := dialRaw(t, network, srv.addrOf(network))
					c.signIn("framer-" + network + "-" + tc.name)
					c.write(append(frames(wire.Header{Cmd: wire.CmdPing, Seq: 4}), tc.frame...))
					c.expectReply(wire.CmdPing, 4, wire.StatusOK)
					c.expectByeNext(tc.status, tc.reason)
				})
			}
		})
	}
}

// TestSignInWithSeqZeroRefused: a SignIn with seq 0 is answered anyway,
// with seq 0 and BadRequest, then a Bye BadRequest and the close.
func TestSignInWithSeqZeroRefused(t *testing.T) {
	srv := startServer(t)
	c := dialRaw(t, "tcp", srv.addrOf("tcp"))
	req := wire.SignInRequest{MinVersion: 1, MaxVersion: 1, UserID: "zero"}
	c.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdSignIn}, req.Append(nil)))
	c.expectReply(wire.CmdSignIn, 0, wire.StatusBadRequest)
	c.expectByeNext(wire.StatusBadRequest, "")
	if srv.Sessions().Online("zero") {
		t.Fatal("the refused sign-in signed the user in")
	}
}

// TestSecondSignInRefusedConnectionStays: SignIn on a signed-in connection
// is BadRequest (seq 0 included: a failure is always answered); the
// connection stays open and signed in as the first user.
func TestSecondSignInRefusedConnectionStays(t *testing.T) {
	srv := startServer(t)
	c := dialRaw(t, "tcp", srv.addrOf("tcp"))
	c.signIn("first")
	req := (&wire.SignInRequest{MinVersion: 1, MaxVersion: 1, UserID: "second"}).Append(nil)
	seq := c.request(0, wire.CmdSignIn, req)
	c.expectReply(wire.CmdSignIn, seq, wire.StatusBadRequest)
	c.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdSignIn}, req))
	c.expectReply(wire.CmdSignIn, 0, wire.StatusBadRequest)
	f := c.call(wire.CmdCreate, (&wire.CreateRequest{Type: 1, MaxMembers: 2}).Append(nil))
	var created wire.CreateReply
	if f.Status != wire.StatusOK || created.Consume(f.Payload) != nil {
		t.Fatalf("create after the refused sign-in: %v", f.Status)
	}
	info, err := srv.Sessions().SessionInfo(bg, created.SessionID)
	if err != nil || info.OwnerID != "first" {
		t.Fatalf("session owner %q (%v), want the first user", info.OwnerID, err)
	}
	if srv.Sessions().Online("second") {
		t.Fatal("the second sign-in signed its user in")
	}
}

// TestDevModeUserIDs pins auth.ValidUserID on the wire: 1 to 128 bytes
// (bytes, not characters) of UTF-8 with no U+0000-U+001F or U+007F.
// Refused IDs get AuthFailed and a Bye AuthFailed; a UserID that is not
// UTF-8 does not decode: BadRequest.
func TestDevModeUserIDs(t *testing.T) {
	srv := startServer(t)
	for _, tc := range []struct {
		name, uid string
		status    wire.Status
	}{
		{"one byte", "a", wire.StatusOK},
		{"128 bytes", strings.Repeat("x", 128), wire.StatusOK},
		{"128 bytes of 2-byte characters", strings.Repeat("é", 64), wire.StatusOK},
		{"spaces and punctuation", "player one (eu)", wire.StatusOK},
		{"C1 control U+0085", "a\u0085b", wire.StatusOK},
		{"empty", "", wire.StatusAuthFailed},
		{"129 bytes", strings.Repeat("x", 129), wire.StatusAuthFailed},
		{"65 2-byte characters", strings.Repeat("é", 65), wire.StatusAuthFailed},
		{"NUL", "a\x00b", wire.StatusAuthFailed},
		{"newline", "a\nb", wire.StatusAuthFailed},
		{"U+001F", "a\x1fb", wire.StatusAuthFailed},
		{"DEL", "a\x7fb", wire.StatusAuthFailed},
		{"not UTF-8", "a\xffb", wire.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, "tcp", srv.addrOf("tcp"))
			req := wire.SignInRequest{MinVersion: 1, MaxVersion: 1, UserID: tc.uid}
			// Append writes the bytes as given; Consume on the server checks them.
			seq := c.request(0, wire.CmdSignIn, req.Append(nil))
			f := c.expectReply(wire.CmdSignIn, seq, tc.status)
			if tc.status == wire.StatusOK {
				var rep wire.SignInReply
				if rep.Consume(f.Payload) != nil || rep.UserID != tc.uid {
					t.Fatalf("signed in as %q", rep.UserID)
				}
				return
			}
			reason := "user ID"
			if tc.status == wire.StatusBadRequest {
				reason = "malformed"
			}
			c.expectByeNext(tc.status, reason)
		})
	}
}

// TestDeferredReplyKeepsItsPlace: replies come in request order even
// where an application handler defers its reply: the replies to later
// requests, produced at once, wait for it.
func TestDeferredReplyKeepsItsPlace(t *testing.T) {
	release := make(chan func([]byte, error), 1)
	handled := make(chan struct{}, 1)
	srv := startServerWith(t, func(s *Server) {
		s.Handle(1, 0x0010, func(r *Request) ([]byte, error) {
			release <- r.Defer()
			return nil, nil
		})
		s.Handle(1, 0x0011, func(r *Request) ([]byte, error) {
			handled <- struct{}{}
			return []byte("now"), nil
		})
	})
	c := dialRaw(t, "tcp", srv.addrOf("tcp"))
	c.signIn("deferrer")
	c.write(wire.AppendFrame(nil, wire.Header{Ver: 1, Cmd: 0x0010, Seq: 1}, nil))
	c.write(frames(wire.Header{Cmd: wire.CmdPing, Seq: 2}))
	c.write(wire.AppendFrame(nil, wire.Header{Ver: 1, Cmd: 0x0011, Seq: 3}, nil))
	reply := <-release
	<-handled // requests 2 and 3 were run (in order, after 1): their replies wait
	reply([]byte("late"), nil)
	reply([]byte("twice"), nil) // a second call does nothing
	f := c.frame()
	if f.Flags != wire.FlagReply || f.Ver != 1 || f.Cmd != 0x0010 || f.Seq != 1 || string(f.Payload) != "late" {
		t.Fatalf("got %+v %q, want the deferred reply to seq 1 first", f.Header, f.Payload)
	}
	c.expectReply(wire.CmdPing, 2, wire.StatusOK)
	f = c.frame()
	if f.Ver != 1 || f.Cmd != 0x0011 || f.Seq != 3 || string(f.Payload) != "now" {
		t.Fatalf("got %+v %q, want the reply to seq 3", f.Header, f.Payload)
	}
	c.write(frames(wire.Header{Cmd: wire.CmdPing, Seq: 4}))
	c.expectReply(wire.CmdPing, 4, wire.StatusOK)
}

// TestIdleCloseSendsNoBye: a connection that sends nothing for 3
// heartbeats is closed without a Bye, on both transports, even while the
// server keeps sending to it: the client's ACKs (TCP's, or KCP's ACK-only
// datagrams) are not traffic.
func TestIdleCloseSendsNoBye(t *testing.T) {
	const heartbeat = 100 * time.Millisecond
	srv := startServer(t, func(c *Config) { c.Heartbeat = heartbeat })
	for _, network := range transports {
		t.Run(network, func(t *testing.T) {
			talker := dialRaw(t, "tcp", srv.addrOf("tcp"))
			talker.signIn("talker-" + network)
			id := talker.create(1, 2)
			idler := dialRaw(t, network, srv.addrOf(network))
			idler.signIn("idler-" + network)
			idler.mustOK(wire.CmdJoin, ref(id))
			silentFrom := time.Now()

			// The talker broadcasts every 20 ms (which also keeps it alive);
			// the idler receives and ACKs, and sends nothing else.
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				b := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdBroadcast}, (&wire.BroadcastRequest{Type: 1, Msg: []byte("tick")}).Append(nil))
				for {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
						talker.c.Write(b)
					}
				}
			}()
			defer func() { close(stop); <-done }()

			waitUntil(t, "the idle connection closed", func() bool { return !srv.Sessions().Online("idler-" + network) })
			if el := time.Since(silentFrom); el < 3*heartbeat-heartbeat/2 {
				t.Fatalf("closed after %v, before 3 heartbeats", el)
			}
			if !srv.Sessions().Online("talker-" + network) {
				t.Fatal("the talker was closed too")
			}
			for _, f := range idler.readToEnd(500 * time.Millisecond) {
				if f.Cmd != wire.CmdBroadcastReceived {
					t.Fatalf("got %+v, want only broadcasts and then no Bye", f.Header)
				}
			}
		})
	}
}

// readToEnd returns the frames that arrive until the connection closes
// (TCP) or nothing has arrived for quiet (KCP, and TCP as a bound).
func (r *rawClient) readToEnd(quiet time.Duration) []wire.Frame {
	r.t.Helper()
	var got []wire.Frame
	for {
		if f, err := r.dec.Next(); err == nil {
			f.Payload = append([]byte(nil), f.Payload...)
			got = append(got, f)
			continue
		}
		r.c.SetReadDeadline(time.Now().Add(quiet))
		n, err := r.c.Read(r.buf)
		if n > 0 {
			r.dec.Write(r.buf[:n])
			continue
		}
		var ne net.Error
		if err != nil && errors.As(err, &ne) && ne.Timeout() && r.network == "tcp" {
			r.t.Fatal("the server did not close the connection")
		}
		return got
	}
}

// startServerWith is startServer with a hook run between New and Start,
// to register application handlers (TCP only).
func startServerWith(t testing.TB, before func(*Server)) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.TCPAddr, cfg.KCPAddr, cfg.HTTPAddr = "127.0.0.1:0", "", ""
	cfg.Logger = discardLogger()
	return startConfigured(t, cfg, before)
}

// waitUntil polls cond until it holds, failing the test after testTimeout.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSignInCheckOrder: a sign-in is checked for its payload and seq
// first (BadRequest), then for the versions (BadVersion), then for the
// credentials (AuthFailed).
func TestSignInCheckOrder(t *testing.T) {
	srv := startServer(t)
	noVersion := wire.SignInRequest{MinVersion: 2, MaxVersion: 9, Token: "a token in dev mode"}
	c := dialRaw(t, "tcp", srv.addrOf("tcp"))
	c.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdSignIn}, noVersion.Append(nil)))
	c.expectReply(wire.CmdSignIn, 0, wire.StatusBadRequest)
	c.expectByeNext(wire.StatusBadRequest, "")

	c = dialRaw(t, "tcp", srv.addrOf("tcp"))
	seq := c.request(0, wire.CmdSignIn, noVersion.Append(nil))
	c.expectReply(wire.CmdSignIn, seq, wire.StatusBadVersion)
	c.expectByeNext(wire.StatusBadVersion, "")
}
