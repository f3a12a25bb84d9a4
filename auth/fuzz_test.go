package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coveyhq/covey/secure"
)

// fuzzSecret signs the tokens among FuzzVerify's seeds.
const fuzzSecret = "fuzz-secret-0123456789"

// FuzzVerify checks that, for any string, Verify does not panic, answers
// nil or one of its documented errors, and accepts only the spelling Issue
// writes: whatever parseToken accepts it writes back unchanged, and
// whatever Verify accepts parseToken accepts, for the same user. The seeds
// (testdata/fuzz/FuzzVerify) include tokens signed with fuzzSecret and
// valid at fuzzNow, so that their mutations explore the side that Verify
// accepts, where other spellings of a signature used to pass.
func FuzzVerify(f *testing.F) {
	s, err := NewSigner([]byte(fuzzSecret))
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(fuzzNow, 0)
	f.Fuzz(func(t *testing.T, token string) {
		if secure.IsConnectToken(token) {
			uid, err := s.Verify(token, now)
			switch {
			case err == nil:
				ct, perr := secure.ParseConnectToken(token)
				if perr != nil || string(secure.AppendConnectToken(nil, ct.Expires, &ct.Key, ct.Ticket)) != token || uid == "" {
					t.Fatalf("Verify(%q) = %q, nil for a spelling AppendConnectToken does not write", token, uid)
				}
			case errors.Is(err, ErrMalformedToken), errors.Is(err, ErrBadSignature), errors.Is(err, ErrExpired):
			default:
				t.Fatalf("Verify(%q): undocumented error %v", token, err)
			}
			return
		}
		p, parsed := parseToken(token)
		if parsed {
			if got := p.String(); got != token {
				t.Fatalf("parseToken(%q) accepts a spelling Issue does not write: %q", token, got)
			}
		}
		uid, err := s.Verify(token, now)
		switch {
		case err == nil && (!parsed || uid != p.userID):
			t.Fatalf("Verify(%q) = %q, but parseToken says %v, %q", token, uid, parsed, p.userID)
		case err == nil, errors.Is(err, ErrMalformedToken), errors.Is(err, ErrBadSignature), errors.Is(err, ErrExpired):
		default:
			t.Fatalf("Verify(%q): undocumented error %v", token, err)
		}
		if parsed != (err == nil || !errors.Is(err, ErrMalformedToken)) {
			t.Fatalf("Verify(%q) = %v, but parseToken says %v", token, err, parsed)
		}
	})
}

// fuzzNow is the time at which FuzzVerify verifies.
const fuzzNow = 1_800_000_000

// TestFuzzSeeds keeps FuzzVerify's seeds what their names say: those named
// valid-* verify at fuzzNow with fuzzSecret, and those named respelled-*
// are refused as malformed (other spellings of a valid token).
func TestFuzzSeeds(t *testing.T) {
	s, _ := NewSigner([]byte(fuzzSecret))
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzVerify", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no seeds: %v", err)
	}
	valid := 0
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		// The corpus format: a header line, then string("...").
		quoted, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "go test fuzz v1\nstring(")
		token, err := strconv.Unquote(strings.TrimSuffix(quoted, ")"))
		if !ok || err != nil {
			t.Fatalf("%s: not a corpus file of one string: %v", file, err)
		}
		_, err = s.Verify(token, time.Unix(fuzzNow, 0))
		switch name := filepath.Base(file); {
		case strings.HasPrefix(name, "valid-"):
			valid++
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case strings.HasPrefix(name, "respelled-") && !errors.Is(err, ErrMalformedToken):
			t.Errorf("%s: %v, want ErrMalformedToken", name, err)
		}
	}
	if valid == 0 {
		t.Error("no valid-* seed")
	}
}
