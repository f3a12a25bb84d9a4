package server

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coveyhq/covey/auth"
	"github.com/coveyhq/covey/wire"
)

// logBuffer collects a server's log lines; the server's goroutines and
// the test use it at once.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the lines logged so far that contain every one of want.
func (l *logBuffer) lines(want ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.b.String(), "\n") {
		ok := line != ""
		for _, w := range want {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// debugLogs makes the server log at debug level into the returned buffer.
func debugLogs(logs *logBuffer) func(*Config) {
	return func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

// refusedSignIn sends a sign-in with payload over a raw connection and returns the
// reply's status and the Bye the server closed the connection with, and
// the client's address.
func refusedSignIn(t *testing.T, srv *Server, network string, payload []byte) (wire.Status, wire.Bye, string) {
	t.Helper()
	r := dialRaw(t, network, srv.addrOf(network))
	reply := r.call(wire.CmdSignIn, payload)
	for {
		f, err := r.next()
		if err != nil {
			t.Fatalf("connection ended (%v) without a Bye", err)
		}
		if f.Flags&wire.FlagPush != 0 && f.Cmd == wire.CmdBye {
			var bye wire.Bye
			if err := bye.Consume(f.Payload); err != nil {
				t.Fatalf("bad Bye: %v", err)
			}
			r.expectClosed()
			_, port, _ := net.SplitHostPort(r.c.LocalAddr().String())
			return reply.Status, bye, "127.0.0.1:" + port
		}
	}
}

// TestSignInFailureReasons refuses a sign-in for each reason, in token
// mode and in dev mode, on both transports: the Bye says why, the reply
// has the status, a debug line names the reason, the transport and the
// client's address, and covey_signin_failures_total counts it by reason.
func TestSignInFailureReasons(t *testing.T) {
	var tokenLogs, devLogs logBuffer
	tokenSrv := startServer(t, func(c *Config) { c.Secret, c.APIKey, c.AllowPlaintext = testSecret, testAPIKey, true }, debugLogs(&tokenLogs))
	devSrv := startServer(t, debugLogs(&devLogs))

	signer, _ := auth.NewSigner([]byte(testSecret))
	expired, _ := signer.Issue("alice", time.Now().Add(-time.Second))
	valid, _ := signer.Issue("alice", time.Now().Add(time.Minute))
	forger, _ := auth.NewSigner([]byte("not-the-server-secret"))
	forged, _ := forger.Issue("alice", time.Now().Add(time.Minute))
	signIn := func(token, uid string) []byte {
		return (&wire.SignInRequest{MinVersion: 1, MaxVersion: 1, Token: token, UserID: uid}).Append(nil)
	}

	cases := []struct {
		name    string
		srv     *Server
		logs    *logBuffer
		payload []byte
		status  wire.Status
		label   string
		reason  string // in the Bye and the log line
	}{
		{"bad signature", tokenSrv, &tokenLogs, signIn(forged, ""), wire.StatusAuthFailed, "bad_token", "invalid token: bad signature"},
		{"malformed token", tokenSrv, &tokenLogs, signIn("v1.nonsense", ""), wire.StatusAuthFailed, "bad_token", "invalid token: malformed"},
		{"expired token", tokenSrv, &tokenLogs, signIn(expired, ""), wire.StatusAuthFailed, "expired", "token expired"},
		{"user ID in token mode", tokenSrv, &tokenLogs, signIn("", "alice"), wire.StatusAuthFailed, "user_id_in_token_mode", "requires a token, not a user ID"},
		{"nothing in token mode", tokenSrv, &tokenLogs, signIn("", ""), wire.StatusAuthFailed, "no_token", "this server requires a token"},
		{"both", tokenSrv, &tokenLogs, signIn(valid, "alice"), wire.StatusAuthFailed, "both", "not both"},
		{"token in dev mode", devSrv, &devLogs, signIn(valid, ""), wire.StatusAuthFailed, "token_in_dev_mode", "dev mode: sign in with a user ID, not a token"},
		{"bad dev user ID", devSrv, &devLogs, signIn("", "a\x01b"), wire.StatusAuthFailed, "bad_user_id", "dev mode: invalid user ID"},
		{"malformed payload", devSrv, &devLogs, []byte{0xff}, wire.StatusBadRequest, "malformed", "malformed sign-in"},
		{"no common version", devSrv, &devLogs, (&wire.SignInRequest{MinVersion: 2, MaxVersion: 5, UserID: "alice"}).Append(nil),
			wire.StatusBadVersion, "bad_version", "speaks protocol versions 1 to 1"},
	}
	for _, network := range transports {
		for _, c := range cases {
			t.Run(network+"/"+c.name, func(t *testing.T) {
				pattern := `covey_signin_failures_total\{reason="` + c.label + `"\}`
				before := scrape(t, c.srv, pattern)
				status, bye, client := refusedSignIn(t, c.srv, network, c.payload)
				if status != c.status || bye.Status != c.status || !strings.Contains(bye.Reason, c.reason) {
					t.Errorf("reply %v, Bye %v %q; want %v and a reason with %q", status, bye.Status, bye.Reason, c.status, c.reason)
				}
				// The line is logged before the Bye is written.
				lines := c.logs.lines(`msg="sign-in refused"`, c.reason, "failure="+c.label, "transport="+network, "remote="+client)
				if len(lines) != 1 {
					t.Errorf("%d debug lines for the refusal with %q, transport=%s, remote=%s; log:\n%s",
						len(lines), c.reason, network, client, strings.Join(c.logs.lines("sign-in refused"), "\n"))
				}
				if after := scrape(t, c.srv, pattern); after != before+1 {
					t.Errorf("%s went from %v to %v", pattern, before, after)
				}
			})
		}
	}
}

// TestSingleUseTokens: with SingleUseTokens a token signs in once; the
// second sign-in with it is refused (reason "replayed"), and a new token
// signs in.
func TestSingleUseTokens(t *testing.T) {
	srv := startServer(t, func(c *Config) {
		c.Secret, c.APIKey, c.SingleUseTokens, c.AllowPlaintext = testSecret, testAPIKey, true, true
	})
	signer, _ := auth.NewSignerWith([]byte(testSecret), auth.SignerConfig{SingleUse: auth.NewReplayGuard(0)})
	token, _ := signer.Issue("alice", time.Now().Add(time.Minute))
	signIn := (&wire.SignInRequest{MinVersion: 1, MaxVersion: 1, Token: token}).Append(nil)

	first := dialRaw(t, "tcp", srv.addrOf("tcp"))
	if st := first.call(wire.CmdSignIn, signIn).Status; st != wire.StatusOK {
		t.Fatalf("first sign-in: %v", st)
	}
	status, bye, _ := refusedSignIn(t, srv, "tcp", signIn)
	if status != wire.StatusAuthFailed || !strings.Contains(bye.Reason, "token already used") {
		t.Fatalf("second sign-in with the token: %v, Bye %q", status, bye.Reason)
	}
	if n := scrape(t, srv, `covey_signin_failures_total\{reason="replayed"\}`); n != 1 {
		t.Fatalf("replayed sign-ins counted %v, want 1", n)
	}
	fresh, _ := signer.Issue("alice", time.Now().Add(time.Minute))
	again := dialRaw(t, "tcp", srv.addrOf("tcp"))
	if st := again.call(wire.CmdSignIn, (&wire.SignInRequest{MinVersion: 1, MaxVersion: 1, Token: fresh}).Append(nil)).Status; st != wire.StatusOK {
		t.Fatalf("sign-in with a new token: %v", st)
	}
}
