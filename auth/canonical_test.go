package auth

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// respellings returns other spellings of token's fields, named by what
// they change: every base64url part (all but the version and the expiry)
// with its last character's unused bits set, padded, in the standard
// alphabet, or with a line break, which encoding/base64 skips even in
// strict mode; the expiry with a plus sign or a leading zero. Each decodes
// to the same bytes as the part it replaces.
func respellings(token string) map[string]string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	parts := strings.Split(token, ".")
	out := map[string]string{}
	with := func(name string, i int, p string) {
		q := append([]string(nil), parts...)
		q[i] = p
		out["part "+strconv.Itoa(i)+" "+name] = strings.Join(q, ".")
	}
	for i, p := range parts {
		switch i {
		case 0: // the version
			continue
		case 2: // the expiry
			with("with a plus sign", i, "+"+p)
			with("with a leading zero", i, "0"+p)
			continue
		}
		// The last character of a part whose length is 2 (3) mod 4
		// carries 4 (2) unused bits.
		if unused := map[int]int{2: 4, 3: 2}[len(p)%4]; unused > 0 {
			last := strings.IndexByte(alphabet, p[len(p)-1])
			for bits := 1; bits < 1<<unused; bits++ {
				with("with unused bits "+strconv.Itoa(bits), i, p[:len(p)-1]+string(alphabet[last|bits]))
			}
			with("padded", i, p+strings.Repeat("=", 4-len(p)%4))
		}
		with("with an extra =", i, p+"=")
		if std := strings.NewReplacer("-", "+", "_", "/").Replace(p); std != p {
			with("in the standard alphabet", i, std)
		}
		with("with a line feed", i, p[:len(p)/2]+"\n"+p[len(p)/2:])
		with("ending in a carriage return", i, p+"\r")
	}
	return out
}

// TestVerifyAcceptsOnlyTheCanonicalSpelling pins that a token, v1 or v2,
// has exactly one spelling: Verify refuses every other spelling of a valid
// token's fields as ErrMalformedToken, even where it decodes to the same bytes
// and the signature still matches (the signature part's unused bits and
// line breaks), so a token cannot be altered into another string that
// signs in.
func TestVerifyAcceptsOnlyTheCanonicalSpelling(t *testing.T) {
	s, _ := NewSigner([]byte(testSecret))
	// v2 tokens (with a nonce) come from a single-use Signer; s reads them.
	single, _ := NewSignerWith([]byte(testSecret), SignerConfig{SingleUse: NewReplayGuard(0)})
	now := time.Unix(1_800_000_000, 0)
	kinds := map[string]bool{}
	check := func(i int, uid string) {
		t.Helper()
		tok, err := s.issueSigned(uid, now.Add(time.Minute))
		if i%2 == 1 {
			tok, err = single.issueSigned(uid, now.Add(time.Minute))
		}
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.Verify(tok, now); err != nil || got != uid {
			t.Fatalf("Verify(%q) = %q, %v", tok, got, err)
		}
		for name, bad := range respellings(tok) {
			kinds[name] = true
			if got, err := s.Verify(bad, now); !errors.Is(err, ErrMalformedToken) || !errors.Is(err, ErrBadToken) {
				t.Errorf("%s: Verify(%q) = %q, %v; want ErrMalformedToken", name, bad, got, err)
			}
		}
	}
	want := []string{"part 3 with unused bits 3", "part 3 with unused bits 15", "part 4 with unused bits 3", "part 1 with unused bits 15",
		"part 3 in the standard alphabet", "part 4 in the standard alphabet", "part 1 padded"}
	missing := func() (m []string) {
		for _, k := range want {
			if !kinds[k] {
				m = append(m, k)
			}
		}
		return m
	}
	// User IDs of each length mod 3 (each count of unused bits in the user
	// ID part), v1 and v2 tokens in turn.
	for i, uid := range []string{"alice", "bob", "carol7", "dave-the-brave", "é", "player.42 ü", "x", "yy", "zzz"} {
		check(i, uid)
	}
	// Then more tokens until some signature holds a - or _: a v2 token's
	// is random and lacks both a quarter of the time, so the four v2
	// tokens above all lack them in about one run in 240. With 100 more v2
	// tokens that chance is about 1e-62.
	for i := 0; i < 200 && len(missing()) > 0; i++ {
		check(i, "extra"+strconv.Itoa(i))
	}
	for _, k := range missing() {
		t.Errorf("no token was respelled with %s", k)
	}
}
