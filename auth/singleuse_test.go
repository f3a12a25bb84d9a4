package auth

import (
	"errors"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const testSecret = "0123456789abcdef-secret"

func singleUseSigner(t testing.TB, capacity int) (*Signer, *ReplayGuard) {
	t.Helper()
	g := NewReplayGuard(capacity)
	s, err := NewSignerWith([]byte(testSecret), SignerConfig{SingleUse: g})
	if err != nil {
		t.Fatal(err)
	}
	return s, g
}

// TestSingleUseTokenSignsInOnce pins single use: a token signs in once and
// is ErrReplayed after; each token Issue writes is another token, even
// for one user and expiry (v2, with a nonce); an expired token is
// ErrExpired, and forgotten.
func TestSingleUseTokenSignsInOnce(t *testing.T) {
	s, g := singleUseSigner(t, 0)
	now := time.Unix(1_800_000_000, 0)
	exp := now.Add(time.Minute)
	a, _ := s.issueSigned("alice", exp)
	b, _ := s.issueSigned("alice", exp)
	if a == b || !strings.HasPrefix(a, "v2.") || strings.Count(a, ".") != 4 {
		t.Fatalf("two tokens for alice: %q, %q; want two different v2 tokens", a, b)
	}
	if uid, err := s.Verify(a, now); err != nil || uid != "alice" {
		t.Fatalf("first use: %q, %v", uid, err)
	}
	for _, at := range []time.Time{now, now.Add(59 * time.Second)} {
		if _, err := s.Verify(a, at); !errors.Is(err, ErrReplayed) {
			t.Fatalf("second use at %v: %v, want ErrReplayed", at, err)
		}
	}
	if _, err := s.Verify(b, now); err != nil {
		t.Fatalf("the other token: %v", err)
	}
	if g.Len() != 2 {
		t.Fatalf("Len = %d, want 2", g.Len())
	}
	// At the expiry: expired, not replayed, and forgotten (swept by the
	// calls on their shards).
	for _, tok := range []string{a, b} {
		if _, err := s.Verify(tok, exp); !errors.Is(err, ErrExpired) {
			t.Fatalf("at expiry: %v, want ErrExpired", err)
		}
	}
	if g.Len() != 0 {
		t.Fatalf("Len = %d after the expiry, want 0", g.Len())
	}
	// Time does not go back: what was swept as expired stays expired.
	if _, err := s.Verify(b, now); !errors.Is(err, ErrExpired) {
		t.Fatalf("forgotten token at an earlier time: %v, want ErrExpired", err)
	}
	// Refusals before the guard are unchanged, and remember nothing.
	forged := a[:len(a)-2] + "AA"
	if _, err := s.Verify(forged, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged: %v", err)
	}
	if g.Len() != 0 {
		t.Fatalf("Len = %d after refusals, want 0", g.Len())
	}
}

// TestFormatsVerifyWhateverTheConfig pins that every Signer reads both
// formats: one without single use accepts v2 tokens (any number of
// times), and one with it accepts a v1 token once.
func TestFormatsVerifyWhateverTheConfig(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	plain, _ := NewSigner([]byte(testSecret))
	single, _ := singleUseSigner(t, 0)
	v1, _ := plain.issueSigned("bob", now.Add(time.Minute))
	v2, _ := single.issueSigned("bob", now.Add(time.Minute))
	if !strings.HasPrefix(v1, "v1.") || !strings.HasPrefix(v2, "v2.") {
		t.Fatalf("issued %q and %q", v1, v2)
	}
	for range 2 {
		if uid, err := plain.Verify(v2, now); err != nil || uid != "bob" {
			t.Fatalf("v2 without single use: %q, %v", uid, err)
		}
	}
	if uid, err := single.Verify(v1, now); err != nil || uid != "bob" {
		t.Fatalf("v1 with single use: %q, %v", uid, err)
	}
	if _, err := single.Verify(v1, now); !errors.Is(err, ErrReplayed) {
		t.Fatalf("v1 with single use, again: %v", err)
	}
}

// TestReplayGuardFullRefusesNewTokens pins the guard's cap: with capacity
// live tokens it refuses new ones with ErrReplayGuardFull (still knowing
// the live ones as replayed), and takes new ones again once some expire,
// whichever shard they were in.
func TestReplayGuardFullRefusesNewTokens(t *testing.T) {
	const capacity = 100
	s, g := singleUseSigner(t, capacity)
	now := time.Unix(1_800_000_000, 0)
	var first string
	for i := range capacity {
		// Half expire in 10 s, half in a minute.
		tok, _ := s.Issue("p", now.Add(time.Duration(10+50*(i%2))*time.Second))
		if _, err := s.Verify(tok, now); err != nil {
			t.Fatalf("token %d of %d: %v", i+1, capacity, err)
		}
		if i == 0 {
			first = tok
		}
	}
	late, _ := s.Issue("p", now.Add(time.Hour))
	if _, err := s.Verify(late, now); !errors.Is(err, ErrReplayGuardFull) {
		t.Fatalf("over capacity: %v, want ErrReplayGuardFull", err)
	}
	if _, err := s.Verify(first, now); !errors.Is(err, ErrReplayed) {
		t.Fatalf("a live token when full: %v, want ErrReplayed", err)
	}
	if g.Len() != capacity || g.Capacity() != capacity {
		t.Fatalf("Len %d, Capacity %d; want %d", g.Len(), g.Capacity(), capacity)
	}
	// Once half have expired, the refused token and 49 more are taken,
	// whichever shards hold the expired ones; the next is refused again.
	now = now.Add(10 * time.Second)
	if _, err := s.Verify(late, now); err != nil {
		t.Fatalf("after half expired: %v", err)
	}
	for i := range capacity/2 - 1 {
		tok, _ := s.Issue("p", now.Add(time.Hour))
		if _, err := s.Verify(tok, now); err != nil {
			t.Fatalf("after half expired, token %d: %v", i+2, err)
		}
	}
	if _, err := s.Verify(first, now); !errors.Is(err, ErrExpired) {
		t.Fatalf("an expired token: %v, want ErrExpired", err)
	}
	tok, _ := s.Issue("p", now.Add(time.Hour))
	if _, err := s.Verify(tok, now); !errors.Is(err, ErrReplayGuardFull) {
		t.Fatalf("full again: %v, want ErrReplayGuardFull", err)
	}
	if g.Len() != capacity {
		t.Fatalf("Len = %d, want %d", g.Len(), capacity)
	}
}

// TestSingleUseConcurrent races Verify calls: one token verified by many
// goroutines at once signs in exactly once, and distinct tokens verified at
// once all sign in. Run with -race.
func TestSingleUseConcurrent(t *testing.T) {
	s, g := singleUseSigner(t, 0)
	now := time.Unix(1_800_000_000, 0)
	const goroutines, tokens = 8, 200
	shared, _ := s.Issue("shared", now.Add(time.Minute))
	own := make([][]string, goroutines)
	for i := range own {
		for range tokens {
			tok, _ := s.Issue("p", now.Add(time.Minute))
			own[i] = append(own[i], tok)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, failures := 0, 0
	for i := range goroutines {
		wg.Go(func() {
			for j, tok := range own[i] {
				_, err := s.Verify(tok, now)
				_, errShared := s.Verify(shared, now)
				mu.Lock()
				if err != nil {
					failures++
				}
				if errShared == nil {
					wins++
				} else if !errors.Is(errShared, ErrReplayed) {
					t.Errorf("goroutine %d, round %d: shared token: %v", i, j, errShared)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 || failures != 0 {
		t.Fatalf("the shared token signed in %d times, want 1; %d of the distinct tokens refused", wins, failures)
	}
	if g.Len() != goroutines*tokens+1 {
		t.Fatalf("Len = %d, want %d", g.Len(), goroutines*tokens+1)
	}
}

// TestReplayGuardSweepsExactlyTheExpired checks the guard's heaps against
// a model: tokens with random expiries, the clock moving forward in
// random steps; after each step, every token not yet expired is still
// remembered (refused as replayed), and Len counts exactly those.
func TestReplayGuardSweepsExactlyTheExpired(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	g := NewReplayGuard(0)
	now := int64(1_000)
	live := map[uint64]int64{}
	for step := range 200 {
		for range r.IntN(50) {
			id, exp := r.Uint64(), now+1+r.Int64N(300)
			if err := g.use(id, exp, now); err != nil {
				t.Fatalf("step %d: new token: %v", step, err)
			}
			live[id] = exp
		}
		now += r.Int64N(20)
		for id, exp := range live {
			err := g.use(id, exp, now)
			switch {
			case exp <= now && !errors.Is(err, ErrExpired):
				t.Fatalf("step %d: expired token: %v", step, err)
			case exp > now && !errors.Is(err, ErrReplayed):
				t.Fatalf("step %d: live token: %v, want ErrReplayed", step, err)
			}
			if exp <= now {
				delete(live, id)
			}
		}
		if got := g.Len(); got != len(live) {
			t.Fatalf("step %d: Len = %d, want %d", step, got, len(live))
		}
	}
}

// TestProtocolTokenVectors checks the example tokens of PROTOCOL.md's
// Tokens section: each is what the Signer writes for the fields the text
// gives (user ID alice, expiry 1800000000, the nonce 00 01 ... 0f for v2)
// with the secret it names, and verifies until that expiry.
func TestProtocolTokenVectors(t *testing.T) {
	doc, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(doc), "### Tokens (HTTP)")
	section, _, _ = strings.Cut(section, "\n### ")
	secret := regexp.MustCompile("the secret `([^`]+)`").FindStringSubmatch(section)
	vectors := regexp.MustCompile("`(v[12]\\.[A-Za-z0-9_.-]+)`").FindAllStringSubmatch(section, -1)
	if secret == nil || len(vectors) != 2 {
		t.Fatalf("PROTOCOL.md's Tokens section: secret %q, %d example tokens; want a secret and 2", secret, len(vectors))
	}
	s, _ := NewSigner([]byte(secret[1]))
	for i, v := range vectors {
		want := parsedToken{version: i + 1, userID: "alice", expires: 1_800_000_000}
		if want.version == 2 {
			for j := range want.nonce {
				want.nonce[j] = byte(j)
			}
		}
		if got := s.sign(&want); got != v[1] {
			t.Errorf("v%d: PROTOCOL.md has %s, the Signer writes %s", want.version, v[1], got)
		}
		if uid, err := s.Verify(v[1], time.Unix(want.expires-1, 0)); err != nil || uid != "alice" {
			t.Errorf("v%d: Verify = %q, %v", want.version, uid, err)
		}
	}
}
