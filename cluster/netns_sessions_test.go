package cluster_test

// TestNetns's sessions: what the test expects of each, and the checks
// and event waits built on it.

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/coveyhq/covey/clientsdk"
)

// testSession is a session and the members the test expects in it.
type testSession struct {
	name    string
	typ     uint8
	id      string
	home    int            // the owning node
	members []string       // user IDs, in join order
	marked  map[string]int // h.sent of each member when the pairs were last marked
}

func ctxTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}

// create has uid create a session of type typ and the others join it,
// then marks it (see mark) and starts everyone's broadcasts to it.
func (h *harness) create(t *testing.T, name string, typ uint8, uid string, joiners ...string) *testSession {
	t.Helper()
	ctx, cancel := ctxTimeout()
	defer cancel()
	p := h.player(uid)
	id, err := p.c.Create(ctx, typ, 16, 0, nil)
	if err != nil {
		t.Fatalf("%s creating %s on %s: %v", uid, name, h.nodes[p.node].name, err)
	}
	s := &testSession{name: name, typ: typ, id: id, home: p.node, members: []string{uid}}
	h.join(t, s, joiners...)
	return s
}

// join has each user join s, then marks s and starts their broadcasts.
func (h *harness) join(t *testing.T, s *testSession, uids ...string) {
	t.Helper()
	ctx, cancel := ctxTimeout()
	defer cancel()
	for _, uid := range uids {
		p := h.player(uid)
		if err := p.c.Join(ctx, s.typ, s.id); err != nil {
			t.Fatalf("%s (on %s) joining %s: %v", uid, h.nodes[p.node].name, s.name, err)
		}
		s.members = append(s.members, uid)
	}
	h.mark(s)
}

// mark makes every message sent from now on between two members of s
// required (pairs already required stay as they are), and has every
// member broadcast to s. Call it once every member has joined: each
// member's Join reply came after the owner added it, so a message
// numbered after mark reaches the owner after every join.
func (h *harness) mark(s *testSession) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.markLocked(s, false)
}

// markLocked is mark; settling keeps the pairs' record of what they lose
// during the disruption that ends. h.mu must be held.
func (h *harness) markLocked(s *testSession, settling bool) {
	s.marked = make(map[string]int)
	for _, snd := range s.members {
		from := h.sent[sendKey{snd, s.typ}]
		s.marked[snd] = from
		for _, r := range s.members {
			if r == snd {
				continue
			}
			k := pairKey{r, s.id, snd}
			rec := h.pairs[k]
			if rec == nil {
				rec = newPair()
				h.pairs[k] = rec
			}
			if rec.from == never {
				rec.from = from
				if !settling {
					rec.laxFrom, rec.lostLax = never, 0
				}
			}
		}
		if p := h.players[snd]; p != nil {
			p.active[s.typ] = s.id
		}
	}
	h.changedLocked()
}

// relax starts a disruption: no message is required between anyone
// until the sessions that remain are settled, and AsyncErrors are
// tolerated.
func (h *harness) relax() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.pairs {
		if r.from != never {
			r.laxFrom, r.lostLax = r.from, 0
		}
		r.from = never
	}
	h.lax = true
}

// settle ends a disruption: the messages between members of the
// sessions that remain are required again from now on. It logs the
// AsyncErrors the players got during it.
func (h *harness) settle(t *testing.T, sessions ...*testSession) {
	t.Helper()
	h.mu.Lock()
	h.lax = false
	var async []string
	for k, n := range h.asyncErrs {
		async = append(async, fmt.Sprintf("%s (x%d)", k, n))
	}
	clear(h.asyncErrs)
	for _, s := range sessions {
		h.markLocked(s, true)
	}
	h.mu.Unlock()
	slices.Sort(async)
	t.Logf("async errors during the disruption: %v", async)
}

// reportLax logs which broadcasts between members of the sessions went
// missing during the last disruption (see settle; call it after
// checkFlow, once the gaps have been seen). They are not required.
func (h *harness) reportLax(t *testing.T, sessions ...*testSession) {
	t.Helper()
	h.mu.Lock()
	var lost []string
	total := 0
	for _, s := range sessions {
		for _, r := range s.members {
			for _, snd := range s.members {
				if rec := h.pairs[pairKey{r, s.id, snd}]; rec != nil && rec.lostLax > 0 {
					lost = append(lost, fmt.Sprintf("%s<-%s in %s: %d", r, snd, s.name, rec.lostLax))
					total += rec.lostLax
					rec.lostLax = 0
				}
			}
		}
	}
	h.mu.Unlock()
	t.Logf("%d broadcasts between members that stayed went missing during the disruption (not required): %v", total, lost)
}

// checkFlow waits until every member of the sessions has broadcast at
// least n messages since the sessions were marked, then until every
// member has received every message the others sent up to then.
func (h *harness) checkFlow(t *testing.T, n int, deadline time.Time, sessions ...*testSession) {
	t.Helper()
	var behind []string
	ok := h.waitUntil(deadline, func() bool {
		behind = behind[:0]
		for _, s := range sessions {
			for _, m := range s.members {
				if got := h.sent[sendKey{m, s.typ}] - s.marked[m]; got < n {
					behind = append(behind, fmt.Sprintf("%s in %s: %d sent", m, s.name, got))
				}
			}
		}
		return len(behind) == 0
	})
	if !ok {
		t.Fatalf("members not broadcasting (is their session lost?): %v", behind)
	}
	type target struct {
		s   *testSession
		snd string
		seq int
	}
	var targets []target
	h.mu.Lock()
	for _, s := range sessions {
		for _, m := range s.members {
			targets = append(targets, target{s, m, h.sent[sendKey{m, s.typ}] - 1})
		}
	}
	h.mu.Unlock()
	var missing []string
	ok = h.waitUntil(deadline, func() bool {
		missing = missing[:0]
		for _, tg := range targets {
			for _, r := range tg.s.members {
				if r == tg.snd {
					continue
				}
				rec := h.pairs[pairKey{r, tg.s.id, tg.snd}]
				if rec == nil || rec.last < tg.seq {
					last := -1
					if rec != nil {
						last = rec.last
					}
					missing = append(missing, fmt.Sprintf("%s has %s's %d of %d in %s", r, tg.snd, last, tg.seq, tg.s.name))
				}
			}
		}
		return len(missing) == 0
	})
	h.checkProblems(t)
	if !ok {
		if len(missing) > 20 {
			missing = append(missing[:20], "...")
		}
		t.Fatalf("broadcasts not delivered in time: %v", missing)
	}
}

// checkMembers asks s's member list from one member on each node that
// has one: every answer must be the same, and be the members expected.
func (h *harness) checkMembers(t *testing.T, s *testSession) {
	t.Helper()
	ctx, cancel := ctxTimeout()
	defer cancel()
	var first []string
	var firstBy string
	asked := make(map[int]bool)
	for _, uid := range s.members {
		p := h.player(uid)
		if asked[p.node] {
			continue
		}
		asked[p.node] = true
		ids, err := p.c.MemberIDs(ctx, s.typ)
		if err != nil {
			t.Fatalf("%s (on %s) asking the members of %s: %v", uid, h.nodes[p.node].name, s.name, err)
		}
		by := uid + " on " + h.nodes[p.node].name
		if first == nil {
			first, firstBy = ids, by
			if !sameSet(ids, s.members) {
				t.Fatalf("members of %s asked by %s: %v, want %v", s.name, by, ids, s.members)
			}
		} else if !slices.Equal(ids, first) {
			t.Fatalf("members of %s: %v asked by %s, %v asked by %s", s.name, ids, by, first, firstBy)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// checkNotIn checks that uid's server no longer counts it in s.
func (h *harness) checkNotIn(t *testing.T, uid string, s *testSession) {
	t.Helper()
	ctx, cancel := ctxTimeout()
	defer cancel()
	us, err := h.player(uid).c.UserSessions(ctx)
	if err != nil {
		t.Fatalf("%s asking its sessions: %v", uid, err)
	}
	for _, u := range us {
		if u.SessionID == s.id {
			t.Fatalf("%s is still in %s for its node after losing it: %+v", uid, s.name, us)
		}
	}
}

// ---------------------------------------------------------------------
// Expected events.

// expectation is an event a player must get.
type expectation struct {
	who   *player
	what  string
	match func(clientsdk.Event) bool
}

// eventCursor returns how many events each player has had so far.
func (h *harness) eventCursor() map[*player]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := make(map[*player]int, len(h.players))
	for _, p := range h.players {
		c[p] = len(p.events)
	}
	return c
}

// splitExpectations are the events of nodes gone being cut off from
// viewers, as the members on the viewers' nodes see them: in a session
// homed on a viewer, MemberLeft for each member on a gone node; in a
// session homed on a gone node, SessionDeleted.
func (h *harness) splitExpectations(viewers, gone []int, sessions ...*testSession) []expectation {
	var exps []expectation
	for _, s := range sessions {
		for _, uid := range s.members {
			p := h.player(uid)
			if !slices.Contains(viewers, p.node) {
				continue
			}
			if slices.Contains(gone, s.home) {
				id := s.id
				exps = append(exps, expectation{p, "SessionDeleted " + s.name, func(e clientsdk.Event) bool {
					d, ok := e.(clientsdk.SessionDeleted)
					return ok && d.SessionID == id
				}})
				continue
			}
			for _, other := range s.members {
				if slices.Contains(gone, h.player(other).node) {
					id, who := s.id, other
					exps = append(exps, expectation{p, "MemberLeft " + who + " from " + s.name, func(e clientsdk.Event) bool {
						l, ok := e.(clientsdk.MemberLeft)
						return ok && l.SessionID == id && l.UserID == who
					}})
				}
			}
		}
	}
	return exps
}

// waitEvents waits until every expectation is met by an event after the
// cursor, and returns when the last one arrived.
func (h *harness) waitEvents(t *testing.T, since map[*player]int, deadline time.Time, exps []expectation) time.Time {
	t.Helper()
	var last time.Time
	var missing []string
	ok := h.waitUntil(deadline, func() bool {
		missing, last = missing[:0], time.Time{}
		for _, x := range exps {
			found := false
			for _, se := range x.who.events[since[x.who]:] {
				if x.match(se.ev) {
					found = true
					if se.at.After(last) {
						last = se.at
					}
					break
				}
			}
			if !found {
				missing = append(missing, x.who.uid+": "+x.what)
			}
		}
		return len(missing) == 0
	})
	if !ok {
		t.Fatalf("%d of %d events missing at the deadline: %v", len(missing), len(exps), missing)
	}
	return last
}
