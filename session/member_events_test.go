package session

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coveyhq/covey/wire"
)

// The pushes about a session's members reach each member in the order of
// the changes (doc.go, notifyMu), whatever goroutines make them: found
// by a review, where a join racing a kick had the owner see MemberLeft
// before MemberJoined in half the rounds, and two owners leaving at once
// left the last member told that the other was the owner.

// TestMemberEventsInListOrderJoinKick: a's join and the owner's kick of
// a race; the owner sees a join, then leave, every round.
func TestMemberEventsInListOrderJoinKick(t *testing.T) {
	tb, _ := newTestTable(t, unlimited)
	o, oRec := player(tb, "owner")
	a, _ := player(tb, "a")
	s := mustCreate(t, tb, o, 1, 4)
	const rounds = 2000
	bad := 0
	for i := 0; i < rounds; i++ {
		start := oRec.count()
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := tb.Join(bg, 1, s.ID(), a); err != nil {
				t.Errorf("join: %v", err)
			}
		}()
		go func() { // the owner's kick, from its own event loop
			defer wg.Done()
			for tb.Kick(bg, 1, s.ID(), "a") != nil {
			}
		}()
		wg.Wait()
		oRec.mu.Lock()
		var seq []wire.Cmd
		for _, p := range oRec.frames[start:] {
			seq = append(seq, p.cmd)
		}
		oRec.mu.Unlock()
		if len(seq) != 2 || seq[0] != wire.CmdMemberJoined || seq[1] != wire.CmdMemberLeft {
			bad++
			if bad == 1 {
				t.Logf("round %d: owner got %v", i, seq)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("in %d of %d rounds the owner got MemberLeft(a) before MemberJoined(a): it ends believing a is a member; member list is %v", bad, rounds, s.MemberIDs())
	}
}

// TestMemberEventsInListOrderOwnerLeaves: the owner o leaves and a, the
// next owner, leaves as soon as it is: b gets both MemberLefts and both
// OwnerChangeds in that order, and so ends up knowing that b owns it.
func TestMemberEventsInListOrderOwnerLeaves(t *testing.T) {
	tb, _ := newTestTable(t, unlimited)
	const rounds = 1000
	bad := 0
	for i := 0; i < rounds; i++ {
		o, _ := player(tb, "o")
		a, _ := player(tb, "a")
		b, bRec := player(tb, "b")
		s := mustCreate(t, tb, o, 1, 4)
		mustJoin(t, tb, s, a)
		mustJoin(t, tb, s, b)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _ = tb.Leave(bg, 1, s.ID(), o) }()
		go func() {
			defer wg.Done()
			for s.snap.Load().owner().ID != "a" {
			}
			_ = tb.Leave(bg, 1, s.ID(), a)
		}()
		wg.Wait()
		evs := bRec.memberEvents(t, wire.CmdOwnerChanged)
		if len(evs) == 0 || evs[len(evs)-1].UserID != "b" {
			bad++
			if bad == 1 {
				var seq []string
				bRec.mu.Lock()
				for _, p := range bRec.frames {
					var ev wire.MemberEvent
					_ = ev.Consume(p.payload)
					seq = append(seq, p.cmd.String()+"("+ev.UserID+")")
				}
				bRec.mu.Unlock()
				t.Logf("b's pushes: %v; members now %v", seq, s.MemberIDs())
			}
		}
		_ = tb.Delete(bg, s.ID())
		tb.Disconnect(o)
		tb.Disconnect(a)
		tb.Disconnect(b)
	}
	if bad > 0 {
		t.Fatalf("in %d of %d rounds b's last OwnerChanged did not name b (the sole member)", bad, rounds)
	}
}

// TestEmptyPerUserHolds: a user who created a session of every type and
// then left them all holds no more than MaxEmptyPerUser empty sessions
// (16): the sessions that go empty past that budget are deleted at once,
// not after their TTL. Found by a review: the budget was checked at
// Create only, when a live session is not empty.
func TestEmptyPerUserHolds(t *testing.T) {
	tb, clk := newTestTable(t) // default budgets: MaxEmptyPerUser 16, CreateRate 60/min, bursts of 20
	u, _ := player(tb, "spammer")
	deleted := make(chan string, 64)
	for typ := range 40 {
		s, err := tb.Create(bg, u, Spec{Type: uint8(typ), MaxMembers: 2, EmptyTTL: time.Hour})
		if err != nil {
			t.Fatalf("create type %d: %v", typ, err)
		}
		s.SetOnDeleted(func(id string) { deleted <- id })
		clk.advance(tb, time.Second) // within CreateRate
	}
	tb.Disconnect(u)
	clk.advance(tb, time.Millisecond) // the deletions past the budget are due now
	for i := range 40 - 16 {
		waitFor(t, deleted, "deletion "+strconv.Itoa(i+1)+" of 24, past the budget")
	}
	if got := tb.Stats().Empty; got != 16 {
		t.Fatalf("%d empty sessions held after the disconnect, want the budget, 16", got)
	}
	// Within the budget the TTL applies as before: an hour later they go.
	clk.advance(tb, time.Hour)
	for i := range 16 {
		waitFor(t, deleted, "deletion "+strconv.Itoa(i+1)+" of 16 at the TTL")
	}
	if got := tb.Stats().Empty; got != 0 {
		t.Fatalf("%d empty sessions after their TTL", got)
	}
}
