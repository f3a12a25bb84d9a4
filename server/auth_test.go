package server

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coveyhq/covey/auth"
	"github.com/coveyhq/covey/clientsdk"
	"github.com/coveyhq/covey/wire"
)

const (
	testSecret = "test-secret-0123456789"
	testAPIKey = "test-api-key"
)

// fetchToken asks the server's HTTP API for a token, as a game backend does.
func fetchToken(t *testing.T, srv *Server, apiKey, uid string) (*http.Response, auth.TokenResponse) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+srv.HTTPAddr().String()+"/v1/token",
		strings.NewReader(`{"user_id":"`+uid+`","ttl_seconds":60}`))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr auth.TokenResponse
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
			t.Fatal(err)
		}
	}
	return resp, tr
}

// TestTokenSignIn runs a server with a secret: a token from the HTTP API
// signs a player in on either transport, and bad, expired or forged tokens
// and self-declared IDs are refused.
func TestTokenSignIn(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.Secret, c.APIKey, c.AllowPlaintext = testSecret, testAPIKey, true })
	if srv.DevMode() {
		t.Fatal("a server with a secret is in dev mode")
	}
	resp, tok := fetchToken(t, srv, testAPIKey, "alice")
	if resp.StatusCode != http.StatusOK || tok.Token == "" {
		t.Fatalf("token endpoint: %d", resp.StatusCode)
	}
	if resp, _ := fetchToken(t, srv, "wrong-key", "alice"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong API key: %d", resp.StatusCode)
	}
	signer, _ := auth.NewSigner([]byte(testSecret))
	expired, _ := signer.Issue("alice", time.Now().Add(-time.Second))
	forger, _ := auth.NewSigner([]byte("not-the-server-secret"))
	forged, _ := forger.Issue("alice", time.Now().Add(time.Minute))

	for _, network := range transports {
		t.Run(network, func(t *testing.T) {
			ctx := testCtx(t)
			c, err := clientsdk.Dial(ctx, clientsdk.Config{Network: network, Addr: srv.addrOf(network), Token: tok.Token})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.UserID() != "alice" {
				t.Fatalf("signed in as %q", c.UserID())
			}
			if _, err := c.Create(ctx, 1, 2, 0, nil); err != nil {
				t.Fatal(err)
			}
			for name, cfg := range map[string]clientsdk.Config{
				"expired token": {Token: expired},
				"forged token":  {Token: forged},
				"garbage token": {Token: "v1.nonsense"},
				"self-declared": {UserID: "alice"},
			} {
				cfg.Network, cfg.Addr = network, srv.addrOf(network)
				_, err := clientsdk.Dial(ctx, cfg)
				if !errors.Is(err, wire.StatusAuthFailed) {
					t.Errorf("%s: err = %v, want StatusAuthFailed", name, err)
				}
			}
		})
	}
}

// TestDevModeRules checks dev mode's loopback-only rule and the
// configuration errors.
func TestDevModeRules(t *testing.T) {
	for _, c := range []struct {
		mutate func(*Config)
		want   error
	}{
		{func(c *Config) { c.TCPAddr = "0.0.0.0:0" }, ErrDevModeNotLoopback},
		{func(c *Config) { c.HTTPAddr = ":7701" }, ErrDevModeNotLoopback},
		{func(c *Config) { c.AdminAddr = "0.0.0.0:7709" }, ErrDevModeNotLoopback},
		{func(c *Config) { c.TCPAddr, c.KCPAddr = "", "" }, ErrNoListener},
		{func(c *Config) { c.Secret = testSecret }, ErrNoAPIKey},
		{func(c *Config) { c.MaxPayload = wire.MaxMaxPayload + 1 }, ErrBadMaxPayload},
		{func(c *Config) { c.MaxPayload = MinMaxPayload - 1 }, ErrBadMaxPayload},
		{func(c *Config) { c.Secret, c.APIKey = "short", "k" }, auth.ErrShortSecret},
		{func(c *Config) { c.Node = "node a" }, ErrBadNode},
	} {
		cfg := DefaultConfig()
		c.mutate(&cfg)
		if _, err := New(cfg); !errors.Is(err, c.want) {
			t.Errorf("New = %v, want %v", err, c.want)
		}
	}
	cfg := DefaultConfig()
	cfg.Secret, cfg.APIKey, cfg.TCPAddr = testSecret, "k", "0.0.0.0:0"
	if _, err := New(cfg); err != nil {
		t.Fatalf("a server with a secret may listen anywhere: %v", err)
	}
}

// TestHealthEndpoints checks /healthz and /readyz on both HTTP listeners,
// and that dev mode issues no tokens.
func TestHealthEndpoints(t *testing.T) {
	srv := startServer(t)
	for _, addr := range []net.Addr{srv.HTTPAddr(), srv.AdminAddr()} {
		if httpStatus(t, addr, "/healthz") != 200 || httpStatus(t, addr, "/readyz") != 200 {
			t.Fatalf("health endpoints on %v", addr)
		}
	}
	if resp, _ := fetchToken(t, srv, "", "alice"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("dev mode token endpoint: %d", resp.StatusCode)
	}
	srv.Sessions().SetOffline(true)
	for _, addr := range []net.Addr{srv.HTTPAddr(), srv.AdminAddr()} {
		if httpStatus(t, addr, "/readyz") != http.StatusServiceUnavailable {
			t.Fatalf("/readyz on %v while offline", addr)
		}
	}
}

// TestMetricsOnlyOnAdmin: /metrics is served by the admin listener, not
// the public one, and a node without an admin listener serves it nowhere.
func TestMetricsOnlyOnAdmin(t *testing.T) {
	srv := startServer(t)
	if got := httpStatus(t, srv.AdminAddr(), "/metrics"); got != http.StatusOK {
		t.Errorf("admin /metrics: %d", got)
	}
	if got := httpStatus(t, srv.HTTPAddr(), "/metrics"); got != http.StatusNotFound {
		t.Errorf("public /metrics: %d, want 404", got)
	}
	if got := httpStatus(t, srv.AdminAddr(), "/v1/token"); got != http.StatusNotFound {
		t.Errorf("admin /v1/token: %d, want 404", got)
	}
	noAdmin := startServer(t, func(c *Config) { c.AdminAddr = "" })
	if noAdmin.AdminAddr() != nil {
		t.Errorf("AdminAddr with the admin listener off = %v", noAdmin.AdminAddr())
	}
}

// httpStatus GETs path from the HTTP listener at addr and returns the
// status.
func httpStatus(t *testing.T, addr net.Addr, path string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr.String() + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
