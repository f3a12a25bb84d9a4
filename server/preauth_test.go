package server

import (
	"strings"
	"testing"
	"time"

	"github.com/coveyhq/covey/auth"
	"github.com/coveyhq/covey/netio"
	"github.com/coveyhq/covey/wire"
)

// TestSignInDeadline: a TCP client that trickles the bytes of a SignIn,
// one every 500ms, and so is never idle, is closed at the sign-in
// deadline (1s here) with a Bye Unauthenticated "sign in within 1s",
// counted as signin_timeout; a player that signed in at once, before it,
// is not affected. (On KCP a session whose first frame, its SignIn, never
// completes is dropped at the deadline without a Bye, before the server
// has seen it: netio's TestPreAuthTimeoutKCPHandshake; a KCP session that
// completed a frame and is not signed in is closed with this Bye:
// TestPreAuthTimeoutClosesTrickler.)
func TestSignInDeadline(t *testing.T) {
	const deadline = time.Second
	srv := startServer(t, func(c *Config) { c.PreAuthTimeout = deadline })
	player := dialRaw(t, "tcp", srv.addrOf("tcp"))
	player.signIn("player")

	start := time.Now()
	slow := dialRaw(t, "tcp", srv.addrOf("tcp"))
	req := wire.SignInRequest{MinVersion: 1, MaxVersion: 1, UserID: "slow"}
	frame := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdSignIn, Seq: 1}, req.Append(nil))
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() { // owned by the test: stops at done or a write error
		defer close(stopped)
		for _, b := range frame[:len(frame)-1] {
			if _, err := slow.c.Write([]byte{b}); err != nil {
				return
			}
			select {
			case <-time.After(500 * time.Millisecond):
			case <-done:
				return
			}
		}
	}()
	defer func() { close(done); <-stopped }()

	bye := slow.expectByeMsg()
	el := time.Since(start)
	if bye.Status != wire.StatusUnauthenticated || bye.Reason != "sign in within 1s" {
		t.Fatalf("Bye %v %q, want Unauthenticated %q", bye.Status, bye.Reason, "sign in within 1s")
	}
	if el < deadline || el > 2*deadline {
		t.Fatalf("closed %v after connecting, want at the %v deadline", el, deadline)
	}
	waitMetric(t, srv, disconnects("signin_timeout"), 1)
	if f := player.call(wire.CmdPing, nil); f.Status != wire.StatusOK {
		t.Fatalf("the signed-in player's Ping after the deadline: %v", f.Status)
	}
}

// TestPreAuthFrameLimit: before sign-in the header of a 64 KiB frame is
// refused at once with a Bye TooLarge; a SignIn and, in the same write,
// commands of up to MaxPayload are served (the limit lifts with the
// sign-in). Both transports.
func TestPreAuthFrameLimit(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.PreAuthTimeout = time.Minute }) // never what closes them here
	for _, network := range transports {
		t.Run(network, func(t *testing.T) {
			bad := dialRaw(t, network, srv.addrOf(network))
			bad.write(header(0, wire.CmdSignIn, 0, 1, wire.DefaultMaxPayload))
			if bye := bad.expectByeMsg(); bye.Status != wire.StatusTooLarge {
				t.Fatalf("Bye %v %q, want TooLarge", bye.Status, bye.Reason)
			}

			good := dialRaw(t, network, srv.addrOf(network))
			signIn := wire.SignInRequest{MinVersion: 1, MaxVersion: 1, UserID: "big-" + network}
			create := wire.CreateRequest{Type: 1, MaxMembers: 4}
			msg := make([]byte, wire.MaxMessageFor(wire.DefaultMaxPayload))
			broadcast := wire.BroadcastRequest{Type: 1, Msg: msg}
			b := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdSignIn, Seq: 1}, signIn.Append(nil))
			b = wire.AppendFrame(b, wire.Header{Cmd: wire.CmdCreate, Seq: 2}, create.Append(nil))
			b = wire.AppendFrame(b, wire.Header{Cmd: wire.CmdBroadcast, Seq: 3}, broadcast.Append(nil))
			if n := broadcast.Size(); n < 60_000 {
				t.Fatalf("the broadcast's payload is only %d bytes", n)
			}
			good.write(b)
			good.seq = 3
			for seq := uint32(1); seq <= 3; seq++ {
				if f := good.reply(seq); f.Status != wire.StatusOK {
					t.Fatalf("reply %d (%v): %v", seq, f.Cmd, f.Status)
				}
			}
		})
	}
}

// TestLargestSignInFitsPreAuthLimit: the largest SignIn a server accepts
// (a token of auth's 512-byte limit; a 128-byte user ID in dev mode) is
// within netio's default pre-auth frame limit, as netio.Config documents
// (519 and 135 bytes), and a token-mode sign-in with the longest token
// Issue makes (for a 128-byte user ID) is served.
func TestLargestSignInFitsPreAuthLimit(t *testing.T) {
	token := wire.SignInRequest{MinVersion: 1, MaxVersion: 1, Token: strings.Repeat("t", 512)}
	dev := wire.SignInRequest{MinVersion: 1, MaxVersion: 1, UserID: strings.Repeat("u", auth.MaxUserIDLen)}
	if token.Size() != 519 || dev.Size() != 135 || token.Size() > netio.DefaultPreAuthMaxPayload {
		t.Fatalf("largest SignIn: %d bytes (token mode), %d (dev mode); pre-auth limit %d", token.Size(), dev.Size(), netio.DefaultPreAuthMaxPayload)
	}

	srv := startServer(t, func(c *Config) { c.Secret, c.APIKey, c.AllowPlaintext = testSecret, testAPIKey, true })
	signer, _ := auth.NewSigner([]byte(testSecret))
	uid := strings.Repeat("é", auth.MaxUserIDLen/2)
	tok, err := signer.Issue(uid, time.Now().Add(time.Hour))
	must(t, err)
	for _, network := range transports {
		r := dialRaw(t, network, srv.addrOf(network))
		f := r.call(wire.CmdSignIn, (&wire.SignInRequest{MinVersion: 1, MaxVersion: 1, Token: tok}).Append(nil))
		if f.Status != wire.StatusOK {
			t.Fatalf("%s: sign-in with a %d-byte token: %v", network, len(tok), f.Status)
		}
	}
}
