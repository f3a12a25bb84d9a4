package auth

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

// IssuerConfig configures the token endpoint.
type IssuerConfig struct {
	// APIKey is what a game backend presents as "Authorization: Bearer KEY".
	APIKey string
	// DefaultTTL is a token's lifetime when the request names none.
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

// ErrNoAPIKey is returned by NewIssuer without an API key.
var ErrNoAPIKey = errors.New("auth: an API key is required to issue tokens")

// NewIssuer returns the handler of POST /v1/token: a game backend presents
// its API key and a user ID and receives a signed token for that user.
// Answers: 200 with a TokenResponse; 400 for a bad body or user ID; 401 for
// a missing or wrong API key; 405 for another method.
func NewIssuer(s *Signer, cfg IssuerConfig) (http.Handler, error) {
	if cfg.APIKey == "" {
		return nil, ErrNoAPIKey
	}
	if cfg.DefaultTTL <= 0 {
		cfg.DefaultTTL = 5 * time.Minute
	}
	if cfg.MaxTTL < cfg.DefaultTTL {
		cfg.MaxTTL = max(24*time.Hour, cfg.DefaultTTL)
	}
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
		ttl := cfg.DefaultTTL
		if req.TTLSeconds > 0 {
			// Compare in seconds: a huge ttl_seconds would overflow a Duration.
			ttl = cfg.MaxTTL
			if int64(req.TTLSeconds) < int64(cfg.MaxTTL/time.Second) {
				ttl = time.Duration(req.TTLSeconds) * time.Second
			}
		}
		expires := cfg.Now().Add(ttl).Truncate(time.Second)
		token, err := s.Issue(req.UserID, expires)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(TokenResponse{Token: token, UserID: req.UserID, ExpiresAt: expires.UTC()})
	}), nil
}
