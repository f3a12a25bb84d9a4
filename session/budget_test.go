package session

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coveyhq/covey/internal/rate"
	"github.com/coveyhq/covey/wire"
)

// TestMaxSessions: a node holds at most MaxSessions sessions; a deleted
// one makes room.
func TestMaxSessions(t *testing.T) {
	tb, _ := newTestTable(t, unlimited, func(c *Config) { c.MaxSessions = 3 })
	var first *Session
	for i := range 3 {
		u, _ := player(tb, string(rune('a'+i)))
		s := mustCreate(t, tb, u, 1, 2)
		if first == nil {
			first = s
		}
	}
	late, _ := player(tb, "late")
	_, err := tb.Create(bg, late, Spec{Type: 1, MaxMembers: 2})
	wantErr(t, err, ErrLimitExceeded, IsSessionError)
	if err := tb.Delete(bg, first.ID()); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, tb, late, 1, 2)
}

// TestMaxSessionsConcurrent: creates racing for the node's last places
// never pass MaxSessions: the place is taken before the session is made
// (found by a review: the count was read first and raised later).
func TestMaxSessionsConcurrent(t *testing.T) {
	const limit, racers, rounds = 4, 8, 100
	for round := range rounds {
		tb, _ := newTestTable(t, unlimited, func(c *Config) { c.MaxSessions = limit })
		var users []*User
		for i := range racers {
			u, _ := player(tb, "u"+strconv.Itoa(i))
			users = append(users, u)
		}
		var wg sync.WaitGroup
		var made atomic.Int64
		for _, u := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := tb.Create(bg, u, Spec{Type: 1, MaxMembers: 2}); err == nil {
					made.Add(1)
				} else if !errors.Is(err, ErrLimitExceeded) {
					t.Errorf("create: %v", err)
				}
			}()
		}
		wg.Wait()
		if n, held := made.Load(), tb.Stats().SessionsByType[1]; n != limit || held != limit || tb.count.Load() != limit {
			t.Fatalf("round %d: %d creates succeeded and %d sessions held, want %d", round, n, held, limit)
		}
	}
}

// TestMaxEmptyPerUser: the create-leave loop of the attack run (a session
// with a long empty TTL, leave, again) stops at MaxEmptyPerUser empty
// sessions per creator, even across a sign-out; a session that someone
// joins no longer counts.
func TestMaxEmptyPerUser(t *testing.T) {
	tb, _ := newTestTable(t, unlimited, func(c *Config) { c.MaxEmptyPerUser = 2 })
	u, _ := player(tb, "spammer")
	var made []*Session
	for range 2 {
		s, err := tb.Create(bg, u, Spec{Type: 1, MaxMembers: 4, EmptyTTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if err := tb.Leave(bg, 1, s.ID(), u); err != nil {
			t.Fatal(err)
		}
		made = append(made, s)
	}
	_, err := tb.Create(bg, u, Spec{Type: 1, MaxMembers: 4})
	wantErr(t, err, ErrLimitExceeded, IsSessionError)

	tb.Disconnect(u) // signing out and in again does not reset the count
	u, _ = player(tb, "spammer")
	_, err = tb.Create(bg, u, Spec{Type: 1, MaxMembers: 4})
	wantErr(t, err, ErrLimitExceeded, nil)

	friend, _ := player(tb, "friend")
	mustJoin(t, tb, made[0], friend) // no longer empty
	mustCreate(t, tb, u, 1, 4)
	if got := tb.Stats().Empty; got != 1 {
		t.Fatalf("%d empty sessions, want 1", got)
	}
}

// TestCreateRate: a user creates at most CreateRate sessions: the burst,
// then one per refill.
func TestCreateRate(t *testing.T) {
	tb, clk := newTestTable(t, unlimited, func(c *Config) { c.CreateRate = rate.PerMinute(60, 3) })
	u, _ := player(tb, "maker")
	create := func() error {
		s, err := tb.Create(bg, u, Spec{Type: 1, MaxMembers: 2})
		if err == nil {
			_ = tb.Delete(bg, s.ID())
		}
		return err
	}
	for i := range 3 {
		if err := create(); err != nil {
			t.Fatalf("create %d of the burst: %v", i, err)
		}
	}
	wantErr(t, create(), ErrRateLimited, IsSessionError)
	clk.advance(tb, time.Second) // 60 a minute: one more
	if err := create(); err != nil {
		t.Fatalf("after the refill: %v", err)
	}
	wantErr(t, create(), ErrRateLimited, nil)
}

// TestInviteRates: an inviter over InviteRate sends nothing; a target
// over InviteReceiveRate is skipped while the others are invited.
func TestInviteRates(t *testing.T) {
	tb, _ := newTestTable(t, unlimited, func(c *Config) {
		c.InviteRate = rate.PerMinute(60, 3)
		c.InviteReceiveRate = rate.PerMinute(60, 1)
	})
	a, _ := player(tb, "a")
	b, _ := player(tb, "b")
	_, tRec := player(tb, "target")
	_, oRec := player(tb, "other")
	_, xRec := player(tb, "x")
	_, yRec := player(tb, "y")
	sa := mustCreate(t, tb, a, 1, 8)
	sb := mustCreate(t, tb, b, 1, 8)

	wantErr(t, tb.Invite(bg, 1, sa.ID(), a, []string{"target", "other", "x", "target", "y"}, InviteSpec{}), ErrRateLimited, IsInviteError)
	if n := tRec.count() + oRec.count() + xRec.count() + yRec.count(); n != 0 {
		t.Fatalf("%d invites sent past the inviter's rate", n)
	}
	if err := tb.Invite(bg, 1, sa.ID(), a, []string{"target"}, InviteSpec{}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, tb.Invite(bg, 1, sb.ID(), b, []string{"target", "other"}, InviteSpec{}), ErrRateLimited, nil)
	if n := len(tRec.pushes(wire.CmdInviteReceived)); n != 1 {
		t.Fatalf("target got %d invites, want 1 (its rate)", n)
	}
	if n := len(oRec.pushes(wire.CmdInviteReceived)); n != 1 {
		t.Fatalf("the other target got %d invites, want 1", n)
	}
}
