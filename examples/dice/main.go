// Command dice is a small game built on Covey, runnable as it is:
//
//	go run ./examples/dice
//
// It embeds a Covey server and adds the game's own command to it (ver 1,
// cmd 1: "roll a die for my party"), which uses the session table directly
// to count rolls in a session property and to broadcast each result to the
// party, as a Diarkis application would. A session hook, set on every
// session created on the node, keeps a player called "cheater" out.
//
// Then two players connect through the Go client SDK, one over TCP and one
// over KCP: alice creates a party and invites bob, bob accepts and rolls,
// and both see the result.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	"github.com/coveyhq/covey/clientsdk"
	"github.com/coveyhq/covey/server"
	"github.com/coveyhq/covey/session"
)

const (
	partyType = 1 // the session type of parties

	gameVer   = 1 // the game's command namespace
	cmdRoll   = 1 // request: roll a die; reply: the number rolled (1 byte)
	cmdRolled = 2 // push to the party: "<user> rolled <n>"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dice:", err)
		os.Exit(1)
	}
}

// newGameServer returns a dev-mode server on loopback ports chosen by the
// kernel, with the game's command and hooks installed.
func newGameServer() (*server.Server, error) {
	cfg := server.DefaultConfig()
	cfg.TCPAddr, cfg.KCPAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", ""
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(cfg)
	if err != nil {
		return nil, err
	}
	table := srv.Sessions()

	table.SetOnCreate(func(s *session.Session) {
		s.SetOnJoin(func(id string, u *session.User) bool { return u.ID != "cheater" })
	})

	srv.Handle(gameVer, cmdRoll, func(r *server.Request) ([]byte, error) {
		id, ok := table.SessionIDByUser(partyType, r.User)
		if !ok {
			return nil, session.ErrNotMember // reaches the client as wire.StatusNotMember
		}
		n := rand.IntN(6) + 1
		count, err := table.IncrProperty(context.Background(), partyType, r.User, "rolls", 1)
		if err != nil {
			return nil, err
		}
		msg := fmt.Appendf(nil, "%s rolled %d (roll #%d of the party)", r.User.ID, n, count)
		if err := table.Broadcast(context.Background(), partyType, id, gameVer, cmdRolled, msg); err != nil {
			return nil, err
		}
		return []byte{byte(n)}, nil
	})
	return srv, srv.Start()
}

func run(ctx context.Context, out io.Writer) error {
	srv, err := newGameServer()
	if err != nil {
		return err
	}
	defer srv.Shutdown(context.Background())

	alice, err := clientsdk.Dial(ctx, clientsdk.Config{Network: "tcp", Addr: srv.TCPAddr().String(), UserID: "alice"})
	if err != nil {
		return err
	}
	defer alice.Close()
	bob, err := clientsdk.Dial(ctx, clientsdk.Config{Network: "kcp", Addr: srv.KCPAddr().String(), UserID: "bob"})
	if err != nil {
		return err
	}
	defer bob.Close()

	party, err := alice.Create(ctx, partyType, 4, time.Minute, map[string]any{"name": "alice's party"})
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "alice created", party)
	if err := alice.Invite(ctx, partyType, []string{"bob"}, clientsdk.InviteOptions{Msg: []byte("roll with me")}); err != nil {
		return err
	}
	inv, err := next[clientsdk.InviteReceived](ctx, bob)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "bob got an invite from %s: %q\n", inv.From, inv.Msg)
	if err := bob.AcceptInvite(ctx, inv.Type, inv.SessionID); err != nil {
		return err
	}
	fmt.Fprintln(out, "bob joined")

	reply, err := bob.Request(ctx, gameVer, cmdRoll, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "bob's roll: %d\n", reply[0])
	for _, c := range []*clientsdk.Client{alice, bob} {
		m, err := next[clientsdk.AppMessage](ctx, c)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s sees: %s\n", c.UserID(), m.Payload)
	}
	if err := alice.Broadcast(ctx, partyType, []byte("gg")); err != nil {
		return err
	}
	b, err := next[clientsdk.BroadcastReceived](ctx, bob)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "bob sees %s say %q\n", b.Sender, b.Msg)
	return nil
}

// next returns the next event of type T from c, skipping the others.
func next[T clientsdk.Event](ctx context.Context, c *clientsdk.Client) (T, error) {
	var zero T
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				return zero, fmt.Errorf("%s disconnected: %w", c.UserID(), c.Err())
			}
			if e, ok := ev.(T); ok {
				return e, nil
			}
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
}
