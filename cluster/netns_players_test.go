package cluster_test

// TestNetns's players: SDK clients that broadcast numbered messages,
// and the bookkeeping that checks what each of them receives.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coveyhq/covey/clientsdk"
	"github.com/coveyhq/covey/wire"
)

// never is the first required sequence number of a pair from which no
// message is required (a pair not set up yet, or during a disruption).
const never = math.MaxInt

// harness is the child's state. Everything below mu is guarded by it;
// every change closes changed, which waitUntil watches.
type harness struct {
	bin   string
	nodes []*node
	http  *http.Client

	stop chan struct{} // closed at the end: players' goroutines return
	wg   sync.WaitGroup

	mu        sync.Mutex
	changed   chan struct{}
	logs      [][]logLine          // by node index
	players   map[string]*player   // by user ID; a player signing in again replaces the old
	sent      map[sendKey]int      // the next sequence number of each sender in each session type
	pairs     map[pairKey]*pairRec // what each receiver got from each sender in each session
	problems  []string             // broken promises seen by the event loops
	asyncErrs map[string]int       // AsyncErrors tolerated during a disruption, by player and error
	lax       bool                 // a disruption is under way: AsyncErrors are expected
}

// player is one SDK client and what it was told.
type player struct {
	uid  string
	node int
	c    *clientsdk.Client

	// Guarded by h.mu.
	active map[uint8]string // session type -> the session it broadcasts to
	events []stampedEvent   // every event but broadcasts, in arrival order
	leftAt time.Time        // when an event last took a session from active
}

// leftGrace is how long after p learnt that it is no longer in a session
// a NotMember answer to one of its broadcasts is expected: the broadcasts
// it sent before the event, which the server refused once it had sent
// the event, are answered after it (one round trip on loopback; 1 s is
// 20 broadcasts at broadcastRate, far more than are ever in flight).
const leftGrace = time.Second

type stampedEvent struct {
	at time.Time
	ev clientsdk.Event
}

type sendKey struct {
	uid string
	typ uint8
}

type pairKey struct{ receiver, session, sender string }

// pairRec is what receiver got from sender in a session: the last
// sequence number, and from which on every message must arrive. During
// a disruption no message is required (from is never); laxFrom is then
// what from was before it, and lostLax counts the messages of
// [laxFrom, from) that went missing: lost while it was under way.
type pairRec struct {
	last, from, laxFrom int
	lostLax             int
}

func newPair() *pairRec { return &pairRec{last: -1, from: never, laxFrom: never} }

func newHarness(bin string) *harness {
	h := &harness{
		bin:     bin,
		http:    &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
		stop:    make(chan struct{}),
		changed: make(chan struct{}),
		players: make(map[string]*player),
		sent:    make(map[sendKey]int),
		pairs:   make(map[pairKey]*pairRec),

		asyncErrs: make(map[string]int),
	}
	for i := 1; i <= 3; i++ {
		h.nodes = append(h.nodes, &node{name: fmt.Sprintf("n%d", i), ip: fmt.Sprintf("127.0.0.%d", i)})
	}
	h.logs = make([][]logLine, len(h.nodes))
	return h
}

// changedLocked wakes every waitUntil. h.mu must be held.
func (h *harness) changedLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// waitUntil waits until cond, called with h.mu held after each change,
// is true; false if deadline passes first.
func (h *harness) waitUntil(deadline time.Time, cond func() bool) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		h.mu.Lock()
		ok, ch := cond(), h.changed
		h.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			h.mu.Lock()
			defer h.mu.Unlock()
			return cond()
		}
	}
}

// problemLocked records a broken promise. h.mu must be held.
func (h *harness) problemLocked(format string, args ...any) {
	if len(h.problems) < 50 {
		h.problems = append(h.problems, fmt.Sprintf(format, args...))
	}
}

// checkProblems fails the test with the problems recorded so far.
func (h *harness) checkProblems(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	ps := slices.Clone(h.problems)
	h.mu.Unlock()
	for _, p := range ps {
		t.Error(p)
	}
	if len(ps) > 0 {
		t.FailNow()
	}
}

// dial signs uid in on node i and starts its event loop and broadcaster.
func (h *harness) dial(t *testing.T, uid string, i int) *player {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	c, err := clientsdk.Dial(ctx, clientsdk.Config{Network: "tcp", Addr: h.nodes[i].addr(7700), UserID: uid})
	if err != nil {
		t.Fatalf("%s signing in on %s: %v", uid, h.nodes[i].name, err)
	}
	p := &player{uid: uid, node: i, c: c, active: make(map[uint8]string)}
	h.mu.Lock()
	h.players[uid] = p
	h.mu.Unlock()
	h.wg.Add(2)
	go h.eventLoop(p)
	go h.broadcaster(p)
	return p
}

// player returns the player signed in as uid.
func (h *harness) player(uid string) *player {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.players[uid]
}

// eventLoop receives p's events until its client closes: broadcasts go to
// the pair records, the rest to p.events; a session lost stops p's
// broadcasts to it.
func (h *harness) eventLoop(p *player) {
	defer h.wg.Done()
	for ev := range p.c.Events() {
		now := time.Now()
		h.mu.Lock()
		switch ev := ev.(type) {
		case clientsdk.BroadcastReceived:
			h.receivedLocked(p, ev)
		case clientsdk.AsyncError:
			switch {
			case h.lax:
				h.asyncErrs[p.uid+": "+ev.Err.Error()]++
			case ev.Cmd == uint16(wire.CmdBroadcast) && errors.Is(ev.Err, wire.StatusNotMember) && now.Sub(p.leftAt) < leftGrace:
				// Sent before p learnt that it had left (see leftGrace).
				h.asyncErrs[p.uid+": "+ev.Err.Error()+" (just after leaving)"]++
			default:
				h.problemLocked("%s: async error outside a disruption: %v", p.uid, ev.Err)
			}
		case clientsdk.SessionDeleted:
			if p.active[ev.Type] == ev.SessionID {
				delete(p.active, ev.Type)
				p.leftAt = now
			}
		case clientsdk.MemberLeft:
			if ev.UserID == p.uid && p.active[ev.Type] == ev.SessionID {
				delete(p.active, ev.Type)
				p.leftAt = now
			}
		}
		if _, ok := ev.(clientsdk.BroadcastReceived); !ok {
			p.events = append(p.events, stampedEvent{now, ev})
		}
		h.changedLocked()
		h.mu.Unlock()
	}
}

// receivedLocked checks a broadcast p received: from someone else, in
// per-sender order, with no message missing from the pair's from on.
// h.mu must be held.
func (h *harness) receivedLocked(p *player, e clientsdk.BroadcastReceived) {
	sender, n, ok := strings.Cut(string(e.Msg), ":")
	seq, err := strconv.Atoi(n)
	if !ok || err != nil || sender != e.Sender {
		h.problemLocked("%s got a broadcast %q from %s in %s", p.uid, e.Msg, e.Sender, e.SessionID)
		return
	}
	if sender == p.uid {
		h.problemLocked("%s got its own broadcast %d back in %s", p.uid, seq, e.SessionID)
		return
	}
	k := pairKey{p.uid, e.SessionID, sender}
	r := h.pairs[k]
	if r == nil {
		r = newPair()
		h.pairs[k] = r
	}
	if seq <= r.last {
		h.problemLocked("%s got %s's broadcast %d after %d in %s: out of order", p.uid, sender, seq, r.last, e.SessionID)
		return
	}
	next := r.last + 1
	if req := max(next, r.from); req < seq {
		h.problemLocked("%s lost %s's broadcasts %d to %d in %s", p.uid, sender, req, seq-1, e.SessionID)
	}
	if lax := min(seq, r.from) - max(next, r.laxFrom); lax > 0 {
		r.lostLax += lax
	}
	r.last = seq
}

// broadcaster broadcasts broadcastRate numbered messages a second to each
// session p is active in, until p's client closes.
func (h *harness) broadcaster(p *player) {
	defer h.wg.Done()
	tick := time.NewTicker(time.Second / broadcastRate)
	defer tick.Stop()
	type out struct {
		typ uint8
		seq int
	}
	var batch []out
	for {
		select {
		case <-h.stop:
			return
		case <-p.c.Done():
			return
		case <-tick.C:
		}
		batch = batch[:0]
		h.mu.Lock()
		for typ := range p.active {
			k := sendKey{p.uid, typ}
			batch = append(batch, out{typ, h.sent[k]})
			h.sent[k]++
		}
		h.mu.Unlock()
		for _, m := range batch {
			// Numbered under h.mu, sent in order by this goroutine
			// alone: a message numbered after a mark is sent after it.
			if p.c.BroadcastAsync(m.typ, []byte(p.uid+":"+strconv.Itoa(m.seq))) != nil {
				return // closed: its node is gone
			}
		}
	}
}

// close closes every player and waits for their goroutines.
func (h *harness) close() {
	close(h.stop)
	h.mu.Lock()
	ps := make([]*player, 0, len(h.players))
	for _, p := range h.players {
		ps = append(ps, p)
	}
	h.mu.Unlock()
	for _, p := range ps {
		p.c.Close()
	}
	h.wg.Wait()
}
