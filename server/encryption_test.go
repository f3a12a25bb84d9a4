package server

import (
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/coveyhq/covey/auth"
	"github.com/coveyhq/covey/clientsdk"
	"github.com/coveyhq/covey/internal/clientconn"
	"github.com/coveyhq/covey/secure"
	"github.com/coveyhq/covey/wire"
)

// encryptedNetworks are the transports that carry encrypted connections.
var encryptedNetworks = []string{"tcp", "kcp"}

// dialToken signs in through the SDK with a token.
func dialToken(t *testing.T, srv *Server, network, token string, plaintext bool) (*clientsdk.Client, error) {
	t.Helper()
	c, err := clientsdk.Dial(testCtx(t), clientsdk.Config{Network: network, Addr: srv.addrOf(network), Token: token, Plaintext: plaintext})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// TestEncryptedSignIn: on a token-mode server, tokens from the HTTP API
// open encrypted connections on which players sign in with the ticket
// alone and talk to each other; the server counts them as encrypted.
func TestEncryptedSignIn(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.Secret, c.APIKey = testSecret, testAPIKey })
	for _, network := range encryptedNetworks {
		t.Run(network, func(t *testing.T) {
			ctx := testCtx(t)
			_, ta := fetchToken(t, srv, testAPIKey, "alice-"+network)
			_, tb := fetchToken(t, srv, testAPIKey, "bob-"+network)
			a, err := dialToken(t, srv, network, ta.Token, false)
			must(t, err)
			b, err := dialToken(t, srv, network, tb.Token, false)
			must(t, err)
			if a.UserID() != "alice-"+network {
				t.Fatalf("signed in as %q", a.UserID())
			}
			id, err := a.Create(ctx, 1, 4, 0, nil)
			must(t, err)
			must(t, b.Join(ctx, 1, id))
			must(t, a.Broadcast(ctx, 1, []byte("sealed")))
			e := waitEvent(t, b, func(clientsdk.BroadcastReceived) bool { return true })
			if string(e.Msg) != "sealed" || e.Sender != a.UserID() {
				t.Fatalf("broadcast: %+v", e)
			}
		})
	}
}

// TestPlaintextRefusedInTokenMode: a token-mode server without
// AllowPlaintext refuses a plaintext connection with NotEncrypted, even
// with a good token; with AllowPlaintext the same token signs in.
func TestPlaintextRefusedInTokenMode(t *testing.T) {
	strict := startServer(t, func(c *Config) { c.Secret, c.APIKey = testSecret, testAPIKey })
	lenient := startServer(t, func(c *Config) { c.Secret, c.APIKey, c.AllowPlaintext = testSecret, testAPIKey, true })
	for _, network := range []string{"tcp", "kcp"} {
		_, tok := fetchToken(t, strict, testAPIKey, "carol")
		_, err := dialToken(t, strict, network, tok.Token, true)
		var bye *clientsdk.ByeError
		if !errors.As(err, &bye) || bye.Status != wire.StatusNotEncrypted {
			t.Fatalf("%s: plaintext sign-in on a strict server: %v, want a Bye NotEncrypted", network, err)
		}
		c, err := dialToken(t, lenient, network, tok.Token, true)
		if err != nil || c.UserID() != "carol" {
			t.Fatalf("%s: plaintext sign-in with -allow-plaintext: %v", network, err)
		}
	}
}

// TestEncryptedHandshakeRefusals: a ticket sealed with another secret,
// or expired, is refused at the handshake with AuthFailed and its reason;
// with single-use tokens a ticket opens one signed-in connection.
func TestEncryptedHandshakeRefusals(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.Secret, c.APIKey, c.SingleUseTokens = testSecret, testAPIKey, true })
	other, _ := auth.NewSigner([]byte("not-the-server-secret"))
	forged, _ := other.Issue("mallory", time.Now().Add(time.Minute))
	signer, _ := auth.NewSigner([]byte(testSecret))
	expired, _ := signer.Issue("mallory", time.Now().Add(-time.Second))
	for _, network := range encryptedNetworks {
		for _, tc := range []struct{ name, token, reason string }{
			{"other secret", forged, "bad ticket"},
			{"expired", expired, "ticket expired"},
		} {
			_, err := dialToken(t, srv, network, tc.token, false)
			var bye *clientsdk.ByeError
			if !errors.As(err, &bye) || bye.Status != wire.StatusAuthFailed || bye.Reason != tc.reason {
				t.Errorf("%s, %s: %v, want a Bye AuthFailed %q", network, tc.name, err, tc.reason)
			}
		}
		resp, tok := fetchToken(t, srv, testAPIKey, "dave-"+network)
		if resp.StatusCode != http.StatusOK {
			t.Fatal(resp.Status)
		}
		if _, err := dialToken(t, srv, network, tok.Token, false); err != nil {
			t.Fatalf("%s: first use: %v", network, err)
		}
		_, err := dialToken(t, srv, network, tok.Token, false)
		var bye *clientsdk.ByeError
		if !errors.As(err, &bye) || bye.Status != wire.StatusAuthFailed {
			t.Fatalf("%s: second use of a single-use ticket: %v", network, err)
		}
	}
}

// TestTicketExpiringBeforeSignIn: a ticket that opened the connection in
// time but expired before the sign-in came is refused (AuthFailed,
// "ticket expired").
func TestTicketExpiringBeforeSignIn(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.Secret, c.APIKey = testSecret, testAPIKey })
	signer, _ := auth.NewSigner([]byte(testSecret))
	expires := time.Now().Add(1500 * time.Millisecond).Truncate(time.Second)
	tok, _ := signer.Issue("late", expires)
	ct, err := secure.ParseConnectToken(tok)
	must(t, err)
	nc, err := net.Dial("tcp", srv.addrOf("tcp"))
	must(t, err)
	defer nc.Close()
	sc, err := clientconn.SecureTCP(nc, &ct, time.Now().Add(testTimeout))
	must(t, err)
	time.Sleep(time.Until(expires) + 10*time.Millisecond) // the expiry itself is what the test waits for
	sc.SetDeadline(time.Now().Add(testTimeout))
	_, err = clientconn.SignIn(sc, wire.NewDecoder(wire.DefaultConfig()), make([]byte, 4096), 1, "", "")
	var bye *clientconn.ByeError
	if !errors.As(err, &bye) || bye.Status != wire.StatusAuthFailed || bye.Reason != "ticket expired" {
		t.Fatalf("sign-in after the ticket expired: %v, want a Bye AuthFailed \"ticket expired\"", err)
	}
}
