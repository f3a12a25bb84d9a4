package auth

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// The lifetimes of issued tokens, unless IssuerConfig says otherwise.
const (
	DefaultTTL    = 5 * time.Minute
	DefaultMaxTTL = 24 * time.Hour
)

// IssuerConfig configures the token endpoint. NewIssuer clamps the two
// lifetimes: a DefaultTTL of 0 or less is DefaultTTL; a MaxTTL of 0 or
// less is the longer of DefaultMaxTTL and DefaultTTL; a DefaultTTL over a
// MaxTTL that is set is MaxTTL (the cap wins); both are at least 1 s, as
// expiries are whole seconds.
type IssuerConfig struct {
	// APIKey is what a game backend presents as "Authorization: Bearer KEY".
	APIKey string
	// DefaultTTL is a token's lifetime when the request names none (or
	// 0 or less).
	DefaultTTL time.Duration
	// MaxTTL caps the lifetime a request may ask for.
	MaxTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// TokenRequest is the JSON body of POST /v1/token.
type TokenRequest struct {
	UserID     string `json:"user_id"`
	TTLSeconds int    `json:"ttl_seconds,omitempty"`
}

// TokenResponse is the JSON reply of POST /v1/token.
type TokenResponse struct {
	Token     string    `json:"token"`
	UserID    string    `json:"user_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// NewIssuer returns the handler of POST /v1/token: a game backend presents
// its API key and a user ID and receives a signed token for that user.
// Answers: 200 with a TokenResponse; 400 for a bad body or user ID; 401 for
// a missing or wrong API key; 405 for another method. A token lasts the
// request's ttl_seconds, capped at cfg.MaxTTL, or cfg.DefaultTTL without
// one; its expiry is truncated to the second.
func NewIssuer(s *Signer, cfg IssuerConfig) (http.Handler, error) {
	if cfg.APIKey == "" {
		return nil, ErrNoAPIKey
	}
	cfg.clampTTLs()
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	key := []byte(cfg.APIKey)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), key) != 1 {
			http.Error(w, "missing or wrong API key", http.StatusUnauthorized)
			return
		}
		var req TokenRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
			http.Error(w, "body must be JSON {\"user_id\": ..., \"ttl_seconds\": ...}", http.StatusBadRequest)
			return
		}
		expires := cfg.Now().Add(cfg.lifetime(req.TTLSeconds)).Truncate(time.Second)
		token, err := s.Issue(req.UserID, expires)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(TokenResponse{Token: token, UserID: req.UserID, ExpiresAt: expires.UTC()})
	}), nil
}

// clampTTLs applies the rules of IssuerConfig's doc to its lifetimes.
func (cfg *IssuerConfig) clampTTLs() {
	if cfg.DefaultTTL <= 0 {
		cfg.DefaultTTL = DefaultTTL
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = max(DefaultMaxTTL, cfg.DefaultTTL)
	}
	cfg.MaxTTL = max(cfg.MaxTTL, time.Second)
	cfg.DefaultTTL = max(min(cfg.DefaultTTL, cfg.MaxTTL), time.Second)
}

// lifetime is the lifetime of a token that a request asks to last
// ttlSeconds: DefaultTTL for 0 or less, else ttlSeconds capped at MaxTTL.
// cfg must have been clamped.
func (cfg *IssuerConfig) lifetime(ttlSeconds int) time.Duration {
	switch {
	case ttlSeconds <= 0:
		return cfg.DefaultTTL
	case int64(ttlSeconds) >= int64(cfg.MaxTTL/time.Second):
		// Compared in seconds: a huge ttl_seconds would overflow a Duration.
		return cfg.MaxTTL
	}
	return time.Duration(ttlSeconds) * time.Second
}
