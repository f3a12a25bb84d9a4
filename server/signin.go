package server

import (
	"errors"
	"log/slog"

	"github.com/coveyhq/covey/auth"
	"github.com/coveyhq/covey/wire"
)

// signInFailure is why a sign-in was refused: the label of
// covey_signin_failures_total and the status of the refusal.
type signInFailure uint8

// Sign-in failures. The labels are a bounded set: add a failure here, not
// a label per message.
const (
	signInMalformed           signInFailure = iota // payload does not decode, or seq 0
	signInBoth                                     // a token and a user ID
	signInExpired                                  // token mode: the token expired
	signInBadToken                                 // token mode: bad signature or malformed token
	signInUserIDInTokenMode                        // token mode: a user ID instead of a token
	signInNoToken                                  // token mode: neither
	signInTokenInDevMode                           // dev mode: a token instead of a user ID
	signInBadUserID                                // dev mode: no valid user ID
	signInBadVersion                               // no protocol version in common
	signInReplayed                                 // token mode, single use: the token signed in before
	signInGuardFull                                // token mode, single use: the replay guard is full
	signInCredentialsOnTicket                      // an encrypted connection: a token or user ID besides its ticket
	signInNotEncrypted                             // token mode without AllowPlaintext: a plaintext connection
	signInBarred                                   // the user was closed for flooding a moment ago
	signInFailures
)

var signInFailureInfo = [signInFailures]struct {
	label  string
	status wire.Status
}{
	signInMalformed:         {"malformed", wire.StatusBadRequest},
	signInBoth:              {"both", wire.StatusAuthFailed},
	signInExpired:           {"expired", wire.StatusAuthFailed},
	signInBadToken:          {"bad_token", wire.StatusAuthFailed},
	signInUserIDInTokenMode: {"user_id_in_token_mode", wire.StatusAuthFailed},
	signInNoToken:           {"no_token", wire.StatusAuthFailed},
	signInTokenInDevMode:    {"token_in_dev_mode", wire.StatusAuthFailed},
	signInBadUserID:         {"bad_user_id", wire.StatusAuthFailed},
	signInBadVersion:        {"bad_version", wire.StatusBadVersion},
	signInReplayed:          {"replayed", wire.StatusAuthFailed},
	signInGuardFull:         {"replay_guard_full", wire.StatusServerOffline},

	signInCredentialsOnTicket: {"credentials_on_ticket", wire.StatusAuthFailed},
	signInNotEncrypted:        {"not_encrypted", wire.StatusNotEncrypted},
	signInBarred:              {"flooding", wire.StatusRateLimited},
}

// refuseSignIn answers sign-in f with the failure's status, closes the
// connection with reason as the Bye text, counts the failure, and logs it
// at debug level with the client's address and transport. Called on the
// connection's network goroutine; it allocates only when debug logging is
// on.
func (h *handler) refuseSignIn(c *conn, f wire.Frame, why signInFailure, reason string) {
	info := signInFailureInfo[why]
	c.refuse(f, info.status, reason)
	h.metrics.signInFailed(why)
	if h.log.Enabled(bg, slog.LevelDebug) {
		remote := ""
		if a := c.nc.RemoteAddr(); a != nil {
			remote = a.String()
		}
		h.log.Debug("sign-in refused", "reason", reason, "failure", info.label,
			"transport", c.nc.Transport().String(), "remote", remote)
	}
}

// tokenFailure says why Verify refused a token.
func tokenFailure(err error) (signInFailure, string) {
	switch {
	case errors.Is(err, auth.ErrExpired):
		return signInExpired, "token expired"
	case errors.Is(err, auth.ErrBadSignature):
		return signInBadToken, "invalid token: bad signature (issued with another secret?)"
	case errors.Is(err, auth.ErrReplayed):
		return signInReplayed, "token already used: get a new one for every sign-in"
	case errors.Is(err, auth.ErrReplayGuardFull):
		return signInGuardFull, "too many sign-ins to remember: retry later"
	}
	return signInBadToken, "invalid token: malformed"
}

// credentialsFailure says why a sign-in with only a token or only a user
// ID (or neither) is refused in this mode.
func credentialsFailure(devMode bool, req *wire.SignInRequest) (signInFailure, string) {
	switch {
	case !devMode && req.UserID != "":
		return signInUserIDInTokenMode, "this server requires a token, not a user ID"
	case !devMode:
		return signInNoToken, "this server requires a token"
	case req.Token != "":
		return signInTokenInDevMode, "dev mode: sign in with a user ID, not a token"
	}
	return signInBadUserID, "dev mode: invalid user ID (1-128 bytes of UTF-8, no control characters U+0000-U+001F or U+007F)"
}
