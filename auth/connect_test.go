package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coveyhq/covey/secure"
)

func TestConnectTokenIssueAndVerify(t *testing.T) {
	s, _ := NewSigner([]byte("0123456789abcdef-secret"))
	now := time.Unix(1_800_000_000, 0)
	tok, err := s.Issue("player.42 ü", now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "v3.") || len(tok) > maxTokenLen {
		t.Fatalf("Issue wrote %q", tok)
	}
	ct, err := secure.ParseConnectToken(tok)
	if err != nil || ct.Expires != now.Add(time.Minute).Unix() {
		t.Fatalf("ParseConnectToken: %+v, %v", ct, err)
	}
	// The servers open its ticket, with the key the client was given.
	tk, err := s.TicketKey().OpenTicket(ct.Ticket, now)
	if err != nil || tk.UserID != "player.42 ü" || tk.Key != ct.Key {
		t.Fatalf("OpenTicket: %+v, %v", tk, err)
	}
	if uid, err := s.Verify(tok, now); err != nil || uid != "player.42 ü" {
		t.Fatalf("Verify = %q, %v", uid, err)
	}
	if _, err := s.Verify(tok, now.Add(time.Minute)); !errors.Is(err, ErrExpired) {
		t.Fatalf("at expiry: %v", err)
	}
	other, _ := NewSigner([]byte("another-secret-of-16+"))
	if _, err := other.Verify(tok, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other secret: %v", err)
	}
	// Two tokens for one user in one second differ (key and nonce).
	if again, _ := s.Issue("player.42 ü", now.Add(time.Minute)); again == tok {
		t.Fatal("two connect tokens are the same string")
	}
	// Another key in front of a genuine ticket is not the token issued.
	var key [secure.KeySize]byte
	swapped := string(secure.AppendConnectToken(nil, ct.Expires, &key, ct.Ticket))
	if _, err := s.Verify(swapped, now); !errors.Is(err, ErrMalformedToken) {
		t.Fatalf("key swapped: %v", err)
	}
	// Every other spelling or alteration is refused.
	for i := 3; i < len(tok); i++ {
		b := []byte(tok)
		b[i] ^= 1
		if _, err := s.Verify(string(b), now); err == nil {
			t.Fatalf("character %d altered: verified", i)
		}
	}
}

func TestConnectTokenSingleUse(t *testing.T) {
	g := NewReplayGuard(0)
	s, _ := NewSignerWith([]byte("0123456789abcdef-secret"), SignerConfig{SingleUse: g})
	now := time.Unix(1_800_000_000, 0)
	tok, _ := s.Issue("alice", now.Add(time.Minute))
	ct, _ := secure.ParseConnectToken(tok)
	tk, err := s.TicketKey().OpenTicket(ct.Ticket, now)
	if err != nil {
		t.Fatal(err)
	}
	// An encrypted connection uses the ticket; a plaintext sign-in with
	// the same token is then a replay, and so is a second connection.
	if err := s.UseTicket(tk, now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(tok, now); !errors.Is(err, ErrReplayed) {
		t.Fatalf("plaintext sign-in after an encrypted one: %v", err)
	}
	if err := s.UseTicket(tk, now); !errors.Is(err, ErrReplayed) {
		t.Fatalf("second encrypted connection: %v", err)
	}
	plain, _ := NewSigner([]byte("0123456789abcdef-secret"))
	if err := plain.UseTicket(tk, now); err != nil {
		t.Fatalf("without single use: %v", err)
	}
}
