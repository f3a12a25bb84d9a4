package auth

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestTokenRoundTrip(t *testing.T) {
	s, err := NewSigner([]byte("0123456789abcdef-secret"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	tok, err := s.issueSigned("player.42 ü", now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if uid, err := s.Verify(tok, now); err != nil || uid != "player.42 ü" {
		t.Fatalf("Verify = %q, %v", uid, err)
	}
	if _, err := s.Verify(tok, now.Add(time.Minute)); !errors.Is(err, ErrExpired) {
		t.Fatalf("at expiry: %v", err)
	}
	other, _ := NewSigner([]byte("another-secret-of-16+"))
	if _, err := other.Verify(tok, now); !errors.Is(err, ErrBadSignature) || !errors.Is(err, ErrBadToken) {
		t.Fatalf("other secret: %v", err)
	}
	// Tampering with any part breaks the signature.
	parts := strings.Split(tok, ".")
	forged := parts[0] + "." + b64.EncodeToString([]byte("admin")) + "." + parts[2] + "." + parts[3]
	if _, err := s.Verify(forged, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged user: %v", err)
	}
	later := parts[0] + "." + parts[1] + ".9999999999." + parts[3]
	if _, err := s.Verify(later, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("extended expiry: %v", err)
	}
	// Not of the form Issue makes: malformed, whatever the signature.
	for _, bad := range []string{"", "v1.", "v1.a.b", "v2." + tok[3:], tok + "!", strings.Repeat("v1.", 300), "v1....",
		parts[0] + "." + parts[1] + ".soon." + parts[3], tok + ".x", parts[0] + "." + b64.EncodeToString([]byte("a\nb")) + "." + parts[2] + "." + parts[3]} {
		if _, err := s.Verify(bad, now); !errors.Is(err, ErrMalformedToken) || !errors.Is(err, ErrBadToken) {
			t.Errorf("Verify(%q) = %v", bad, err)
		}
	}
	if _, err := s.Issue("", now); !errors.Is(err, ErrBadUserID) {
		t.Fatal("empty user ID issued")
	}
	if _, err := s.Issue("a\nb", now); !errors.Is(err, ErrBadUserID) {
		t.Fatal("control character issued")
	}
	if _, err := NewSigner([]byte("short")); !errors.Is(err, ErrShortSecret) {
		t.Fatal("short secret accepted")
	}
}

func TestIssuer(t *testing.T) {
	s, _ := NewSigner([]byte("0123456789abcdef-secret"))
	now := time.Unix(1_800_000_000, 0)
	h, err := NewIssuer(s, IssuerConfig{APIKey: "backend-key", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(key, body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := post("backend-key", `{"user_id":"alice","ttl_seconds":60}`)
	var tr TokenResponse
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&tr) != nil {
		t.Fatalf("status %d", resp.StatusCode)
	}
	resp.Body.Close()
	if uid, err := s.Verify(tr.Token, now); err != nil || uid != "alice" || !tr.ExpiresAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("issued token: %q %v, expires %v", uid, err, tr.ExpiresAt)
	}
	resp = post("backend-key", `{"user_id":"alice","ttl_seconds":9223372036854775807}`)
	tr = TokenResponse{}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&tr) != nil || !tr.ExpiresAt.Equal(now.Add(24*time.Hour)) {
		t.Fatalf("huge ttl: status %d, expires %v (want capped at 24h)", resp.StatusCode, tr.ExpiresAt)
	}
	resp.Body.Close()
	for _, c := range []struct {
		key, body string
		want      int
	}{
		{"", `{"user_id":"alice"}`, 401},
		{"wrong", `{"user_id":"alice"}`, 401},
		{"backend-key", `not json`, 400},
		{"backend-key", `{"user_id":""}`, 400},
	} {
		resp := post(c.key, c.body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("key %q body %q: status %d, want %d", c.key, c.body, resp.StatusCode, c.want)
		}
	}
	resp, _ = srv.Client().Get(srv.URL)
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	if _, err := NewIssuer(s, IssuerConfig{}); !errors.Is(err, ErrNoAPIKey) {
		t.Fatal("issuer without API key")
	}
}

// TestIssuerTTL pins how POST /v1/token reads ttl_seconds: missing, zero
// or negative means the default (5 minutes unless configured); 1 to
// 86,400 is taken as it is; more is capped at 86,400 (24 h); a value that
// is not a JSON integer is 400. The expiry is now plus the TTL, in whole
// seconds.
func TestIssuerTTL(t *testing.T) {
	s, _ := NewSigner([]byte("0123456789abcdef-secret"))
	now := time.Unix(1_800_000_000, 600_000_000) // a fraction of a second: truncated
	h, err := NewIssuer(s, IssuerConfig{APIKey: "k", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, c := range []struct {
		body   string
		status int
		ttl    time.Duration
	}{
		{`{"user_id":"a"}`, 200, 5 * time.Minute},
		{`{"user_id":"a","ttl_seconds":0}`, 200, 5 * time.Minute},
		{`{"user_id":"a","ttl_seconds":-30}`, 200, 5 * time.Minute},
		{`{"user_id":"a","ttl_seconds":1}`, 200, time.Second},
		{`{"user_id":"a","ttl_seconds":86400}`, 200, 24 * time.Hour},
		{`{"user_id":"a","ttl_seconds":86401}`, 200, 24 * time.Hour},
		{`{"user_id":"a","ttl_seconds":1.5}`, 400, 0},
		{`{"user_id":"a","ttl_seconds":"60"}`, 400, 0},
		{`{"user_id":"a","ttl_seconds":1e30}`, 400, 0},
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer k")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var tr TokenResponse
		if resp.StatusCode == 200 {
			err = json.NewDecoder(resp.Body).Decode(&tr)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status || err != nil {
			t.Errorf("%s: status %d (%v), want %d", c.body, resp.StatusCode, err, c.status)
			continue
		}
		if c.status != 200 {
			continue
		}
		want := time.Unix(now.Unix(), 0).Add(c.ttl)
		if !tr.ExpiresAt.Equal(want) {
			t.Errorf("%s: expires %v, want %v", c.body, tr.ExpiresAt, want)
		}
		if _, err := s.Verify(tr.Token, want.Add(-time.Second)); err != nil {
			t.Errorf("%s: token refused a second before its expiry: %v", c.body, err)
		}
		if _, err := s.Verify(tr.Token, want); !errors.Is(err, ErrExpired) {
			t.Errorf("%s: token at its expiry: %v, want ErrExpired", c.body, err)
		}
	}
}

// TestIssuerConfigClamp pins IssuerConfig's rules for the two lifetimes:
// 5 minutes and 24 hours by default, a set MaxTTL wins over a longer
// DefaultTTL, and neither is under a second.
func TestIssuerConfigClamp(t *testing.T) {
	for _, c := range []struct {
		def, max         time.Duration
		wantDef, wantMax time.Duration
	}{
		{0, 0, 5 * time.Minute, 24 * time.Hour},
		{-time.Second, -time.Second, 5 * time.Minute, 24 * time.Hour},
		{time.Minute, 0, time.Minute, 24 * time.Hour},
		{48 * time.Hour, 0, 48 * time.Hour, 48 * time.Hour},
		{0, time.Hour, 5 * time.Minute, time.Hour},
		{10 * time.Minute, time.Minute, time.Minute, time.Minute}, // was: MaxTTL raised to 24 h
		{0, time.Minute, time.Minute, time.Minute},
		{300 * time.Millisecond, 0, time.Second, 24 * time.Hour},
		{0, 500 * time.Millisecond, time.Second, time.Second},
	} {
		cfg := IssuerConfig{DefaultTTL: c.def, MaxTTL: c.max}
		cfg.clampTTLs()
		if cfg.DefaultTTL != c.wantDef || cfg.MaxTTL != c.wantMax {
			t.Errorf("DefaultTTL %v, MaxTTL %v: clamped to %v, %v; want %v, %v",
				c.def, c.max, cfg.DefaultTTL, cfg.MaxTTL, c.wantDef, c.wantMax)
		}
	}
}
