package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// countingConn records the IDs of the broadcasts a user received.
type countingConn struct {
	mu   sync.Mutex
	got  map[uint64]int
	dups int
}

func (c *countingConn) Deliver(frame []byte) {
	if len(frame) != 14+8 || frame[4] != 9 { // only the stress broadcasts: ver 9, 8-byte ID
		return
	}
	id := binary.BigEndian.Uint64(frame[14:])
	c.mu.Lock()
	c.got[id]++
	if c.got[id] > 1 {
		c.dups++
	}
	c.mu.Unlock()
}

// interval is when a user was certainly a member of a session: from after
// its join returned to before its (successful) leave was called.
type interval struct {
	session    string
	user       string
	start, end uint64
}

type sentBroadcast struct {
	id         uint64
	session    string
	start, end uint64
}

// TestStressInvariants runs creates, joins, leaves, kicks, broadcasts and
// property writes from many goroutines at once, then checks the table's
// invariants and that every broadcast reached every member present for
// the whole of it.
func TestStressInvariants(t *testing.T) {
	tb, _ := newTestTable(t, unlimited)
	const (
		stableSessions = 12
		maxMembers     = 5
		churners       = 40
		rounds         = 150
		broadcasters   = 4
		broadcasts     = 300
	)
	var clock atomic.Uint64 // orders events across goroutines
	conns := map[string]*countingConn{}
	users := map[string]*User{}
	newUser := func(id string) *User {
		c := &countingConn{got: map[uint64]int{}}
		u := &User{ID: id, SID: "s-" + id, Conn: c}
		conns[id], users[id] = c, u
		tb.Connect(u)
		return u
	}
	var sessions []*Session
	for i := range stableSessions {
		owner := newUser(fmt.Sprintf("owner%d", i))
		sessions = append(sessions, mustCreate(t, tb, owner, 1, maxMembers))
	}
	for i := range churners {
		newUser(fmt.Sprintf("u%d", i))
	}

	var (
		logMu     sync.Mutex
		intervals []interval
		kicks     int // successful kicks
		sent      []sentBroadcast
		nextBID   atomic.Uint64
		wg        sync.WaitGroup
		errs      = make(chan error, 64)
	)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	expected := func(err error, allowed ...error) {
		for _, a := range allowed {
			if errors.Is(err, a) {
				return
			}
		}
		if err != nil {
			fail(err)
		}
	}

	for i := range churners {
		u := users[fmt.Sprintf("u%d", i)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for range rounds {
				s := sessions[rng.IntN(len(sessions))]
				err := tb.Join(bg, 1, s.ID(), u)
				expected(err, ErrSessionFull, ErrAlreadyInSession)
				if err == nil {
					start := clock.Add(1)
					// A broadcast of its own while a member: u is present
					// throughout it, so every run checks some deliveries.
					id := nextBID.Add(1)
					var own [8]byte
					binary.BigEndian.PutUint64(own[:], id)
					bstart := clock.Add(1)
					expected(tb.Broadcast(bg, 1, s.ID(), 9, 1, own[:]))
					bend := clock.Add(1)
					logMu.Lock()
					sent = append(sent, sentBroadcast{id: id, session: s.ID(), start: bstart, end: bend})
					logMu.Unlock()
					expected(tb.SetProperty(bg, 1, u, fmt.Sprintf("k%d", rng.IntN(4)), rng.Int64()), ErrNotMember)
					_, err := tb.IncrProperty(bg, 1, u, "hits", 1)
					expected(err, ErrNotMember)
					if rng.IntN(4) == 0 { // kick someone else, as a member
						if ids := s.MemberIDs(); len(ids) > 1 {
							target := ids[rng.IntN(len(ids))]
							if tb.KickAsMember(bg, 1, u, target) == nil {
								logMu.Lock()
								kicks++
								logMu.Unlock()
							}
						}
					}
					end := clock.Add(1)
					err = tb.Leave(bg, 1, s.ID(), u)
					expected(err, ErrNotMember)
					// A successful leave proves u was a member from its
					// join to its leave; ErrNotMember means a kick cut the
					// interval at a time we do not know, so it is dropped.
					if err == nil {
						logMu.Lock()
						intervals = append(intervals, interval{session: s.ID(), user: u.ID, start: start, end: end})
						logMu.Unlock()
					}
				}
				// Session churn on another type.
				if rng.IntN(8) == 0 {
					ns, err := tb.Create(bg, u, Spec{Type: 2, MaxMembers: 3})
					expected(err, ErrAlreadyInSession)
					if err == nil {
						expected(tb.Leave(bg, 2, ns.ID(), u))
					}
				}
			}
		}()
	}
	for b := range broadcasters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(b), 99))
			var msg [8]byte
			for range broadcasts {
				s := sessions[rng.IntN(len(sessions))]
				id := nextBID.Add(1)
				binary.BigEndian.PutUint64(msg[:], id)
				start := clock.Add(1)
				expected(tb.Broadcast(bg, 1, s.ID(), 9, 1, msg[:]))
				end := clock.Add(1)
				if n := s.MemberCount(); n > maxMembers {
					fail(fmt.Errorf("session has %d members, max %d", n, maxMembers))
				}
				logMu.Lock()
				sent = append(sent, sentBroadcast{id: id, session: s.ID(), start: start, end: end})
				logMu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Invariants of the table and the user index.
	checkIndexAgrees(t, tb)
	for _, s := range sessions {
		if s.MemberCount() > maxMembers {
			t.Fatalf("session over max: %d", s.MemberCount())
		}
	}

	// Every broadcast reached every member present throughout it.
	checked := 0
	for _, b := range sent {
		for _, s := range sessions {
			if s.ID() != b.session {
				continue
			}
			owner := s.MemberIDs()[0] // owners never leave
			if conns[owner].got[b.id] != 1 {
				t.Fatalf("owner %s got broadcast %d %d times", owner, b.id, conns[owner].got[b.id])
			}
		}
		for _, iv := range intervals {
			if iv.session == b.session && iv.start < b.start && iv.end > b.end {
				checked++
				if conns[iv.user].got[b.id] == 0 {
					t.Fatalf("broadcast %d missed %s, a member throughout", b.id, iv.user)
				}
			}
		}
	}
	for id, c := range conns {
		if c.dups != 0 {
			t.Fatalf("%s received %d duplicate broadcasts", id, c.dups)
		}
	}
	t.Logf("%d broadcasts, %d member intervals, %d kicks, %d present-throughout deliveries checked",
		len(sent), len(intervals), kicks, checked)
	if checked == 0 {
		t.Fatal("the stress produced no broadcast with a churning member present throughout: the check checked nothing")
	}
}

// checkIndexAgrees verifies that no user is twice in one type, that every
// member is indexed in its session, and that every index entry names a
// session the user is a member of; and that Stats' counters agree with
// the sessions held (the table must be quiet).
func checkIndexAgrees(t *testing.T, tb *Table) {
	t.Helper()
	seen := map[string]map[uint8]string{}
	var held, empty int64
	for i := range tb.shards {
		sh := &tb.shards[i]
		sh.mu.RLock()
		for id, s := range sh.sessions {
			held++
			if s.MemberCount() == 0 {
				empty++
			}
			if s.MemberCount() > int(s.maxMembers) {
				t.Errorf("session %s has %d members, max %d", id, s.MemberCount(), s.maxMembers)
			}
			for _, uid := range s.MemberIDs() {
				if seen[uid] == nil {
					seen[uid] = map[uint8]string{}
				}
				if other, dup := seen[uid][s.typ]; dup {
					t.Errorf("user %s in two sessions of type %d: %s and %s", uid, s.typ, other, id)
				}
				seen[uid][s.typ] = id
				if got, _ := tb.users.sessionOf(uid, s.typ); got != id {
					t.Errorf("member %s of %s indexed as in %q", uid, id, got)
				}
			}
		}
		sh.mu.RUnlock()
	}
	for i := range tb.users.shards {
		sh := &tb.users.shards[i]
		sh.mu.Lock()
		for uid, e := range sh.users {
			for _, us := range e.sessions {
				if seen[uid][us.Type] != us.ID {
					t.Errorf("index has %s in %s (type %d), the table does not", uid, us.ID, us.Type)
				}
			}
		}
		sh.mu.Unlock()
	}
	if st := tb.Stats(); st.Empty != empty || int64(st.Created-st.Deleted) != held {
		t.Errorf("stats: %d empty, %d created - %d deleted; the table holds %d sessions, %d empty",
			st.Empty, st.Created, st.Deleted, held, empty)
	}
}
