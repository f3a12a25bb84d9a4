package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/coveyhq/covey/clientsdk"
	"github.com/coveyhq/covey/session"
)

// TestRun runs the example end to end and checks what it prints.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		`bob got an invite from alice: "roll with me"`,
		`alice sees: bob rolled [1-6] \(roll #1 of the party\)`,
		`bob sees: bob rolled [1-6] \(roll #1 of the party\)`,
		`bob sees alice say "gg"`,
	} {
		if !regexp.MustCompile(want).Match(out.Bytes()) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestHooks checks the example's OnJoin hook and its command's error.
func TestHooks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, err := newGameServer()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	dial := func(uid string) *clientsdk.Client {
		c, err := clientsdk.Dial(ctx, clientsdk.Config{Network: "tcp", Addr: srv.TCPAddr().String(), UserID: uid})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	host, cheater := dial("host"), dial("cheater")
	id, err := host.Create(ctx, partyType, 4, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cheater.Join(ctx, partyType, id); !errors.Is(err, session.ErrJoinRejected) {
		t.Fatalf("cheater joined: %v", err)
	}
	if _, err := cheater.Request(ctx, gameVer, cmdRoll, nil); !errors.Is(err, session.ErrNotMember) {
		t.Fatalf("roll outside a party: %v", err)
	}
}
