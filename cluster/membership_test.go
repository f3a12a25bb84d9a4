package cluster

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// waitLong bounds waits that have no bound of their own in these tests.
const waitLong = 10 * time.Second

func testLogger() *slog.Logger {
	if os.Getenv("COVEY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testSecret returns a fresh cluster secret, so that the clusters of two
// tests can never merge (their gossip keys differ).
func testSecret() []byte { return []byte(rand.Text()) }

// recorder collects one node's events and the view they build.
type recorder struct {
	mu      sync.Mutex
	events  []Event
	view    map[string]NodeInfo
	changed chan struct{} // closed and replaced at each event
}

func newRecorder() *recorder {
	return &recorder{view: make(map[string]NodeInfo), changed: make(chan struct{})}
}

func (r *recorder) record(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	switch e.Kind {
	case EventJoin, EventUpdate:
		r.view[e.Node.Name] = e.Node
	case EventLeave:
		delete(r.view, e.Node.Name)
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// waitFor waits until cond holds for the events seen so far, or fails the
// test after within. It returns how long it waited.
func (r *recorder) waitFor(t *testing.T, within time.Duration, what string, cond func(events []Event, view map[string]NodeInfo) bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok := cond(r.events, r.view)
		ch := r.changed
		r.mu.Unlock()
		if ok {
			return time.Since(start)
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%s: not within %v", what, within)
		}
	}
}

// mark returns the number of events seen so far, for waitEvent.
func (r *recorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// waitEvent waits for an event of kind about node (with meta, if not nil)
// after the first from events, and returns how long it waited.
func (r *recorder) waitEvent(t *testing.T, from int, within time.Duration, kind EventKind, node string, meta []byte) time.Duration {
	t.Helper()
	return r.waitFor(t, within, kind.String()+" of "+node, func(events []Event, _ map[string]NodeInfo) bool {
		for _, e := range events[from:] {
			if e.Kind == kind && e.Node.Name == node && (meta == nil || bytes.Equal(e.Node.Meta, meta)) {
				return true
			}
		}
		return false
	})
}

// testNode is one Membership with its recorder and its metadata.
type testNode struct {
	*Membership
	name   string
	rec    *recorder
	meta   atomic.Pointer[[]byte]
	secret []byte // the cluster's, once config was called
}

func (n *testNode) setMeta(b []byte) { n.meta.Store(&b) }

func metaOf(name string) []byte { return []byte("mesh=" + name + ";v=1") }

// config returns the configuration of a test node: loopback, port 0,
// recording events.
func (n *testNode) config(secret []byte, seeds ...string) MembershipConfig {
	n.secret = secret
	return MembershipConfig{
		Node:   n.name,
		Bind:   "127.0.0.1:0",
		Seeds:  seeds,
		Secret: secret,
		Meta:   func() []byte { return *n.meta.Load() },
		Events: n.rec.record,
		Logger: testLogger().With("node", n.name),
	}
}

func newTestNode(name string) *testNode {
	n := &testNode{name: name, rec: newRecorder()}
	n.setMeta(metaOf(name))
	return n
}

// start starts n with cfg and shuts it down at the end of the test.
func (n *testNode) start(t *testing.T, cfg MembershipConfig) {
	t.Helper()
	m, err := StartMembership(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", n.name, err)
	}
	n.Membership = m
	t.Cleanup(func() { _ = m.Shutdown() })
}

// startCluster starts count nodes named n1, n2, ...; each joins the first
// one's address. It waits until every node sees all of them alive, in
// Alive and through its events. tweak, if set, changes each config.
func startCluster(t *testing.T, count int, tweak func(*testNode, *MembershipConfig)) []*testNode {
	t.Helper()
	secret := testSecret()
	nodes := make([]*testNode, count)
	start := time.Now()
	for i := range nodes {
		n := newTestNode("n" + string(rune('1'+i)))
		var seeds []string
		if i > 0 {
			seeds = []string{nodes[0].LocalAddr()}
		}
		cfg := n.config(secret, seeds...)
		if tweak != nil {
			tweak(n, &cfg)
		}
		n.start(t, cfg)
		nodes[i] = n
	}
	waitAllAlive(t, nodes, nodes, waitLong)
	t.Logf("%d nodes converged in %v", count, time.Since(start).Round(time.Millisecond))
	return nodes
}

// waitAllAlive waits until each of observers sees exactly members alive,
// with their current addresses and metadata, through its events and in
// Alive. It returns the longest wait.
func waitAllAlive(t *testing.T, observers, members []*testNode, within time.Duration) time.Duration {
	t.Helper()
	var want []NodeInfo
	for _, n := range members {
		want = append(want, NodeInfo{Name: n.name, Addr: n.LocalAddr(), Meta: *n.meta.Load()})
	}
	slices.SortFunc(want, func(a, b NodeInfo) int { return strings.Compare(a.Name, b.Name) })
	var longest time.Duration
	for _, o := range observers {
		d := o.rec.waitFor(t, within, o.name+" sees all alive", func(_ []Event, view map[string]NodeInfo) bool {
			return sameNodes(mapValues(view), want)
		})
		longest = max(longest, d)
		if got := o.Alive(); !sameNodes(got, want) {
			t.Fatalf("%s: Alive() = %v, want %v", o.name, got, want)
		}
	}
	return longest
}

func mapValues(m map[string]NodeInfo) []NodeInfo {
	var s []NodeInfo
	for _, v := range m {
		s = append(s, v)
	}
	slices.SortFunc(s, func(a, b NodeInfo) int { return strings.Compare(a.Name, b.Name) })
	return s
}

func sameNodes(a, b []NodeInfo) bool {
	return slices.EqualFunc(a, b, func(x, y NodeInfo) bool {
		return x.Name == y.Name && x.Addr == y.Addr && bytes.Equal(x.Meta, y.Meta)
	})
}

func TestMembershipJoinSeesAllAliveWithMeta(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	for _, n := range nodes {
		alive := n.Alive()
		if !slices.IsSortedFunc(alive, func(a, b NodeInfo) int { return strings.Compare(a.Name, b.Name) }) {
			t.Errorf("%s: Alive() not sorted by name: %v", n.name, alive)
		}
		// Its own join is an event too, and the first one.
		n.rec.mu.Lock()
		first := n.rec.events[0]
		n.rec.mu.Unlock()
		if first.Kind != EventJoin || first.Node.Name != n.name {
			t.Errorf("%s: first event %v %s, want its own join", n.name, first.Kind, first.Node.Name)
		}
	}
}

func TestMembershipUpdateMetaSeenByOthers(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	v2 := []byte("mesh=n1;v=2")
	marks := []int{nodes[1].rec.mark(), nodes[2].rec.mark()}
	nodes[0].setMeta(v2)
	start := time.Now()
	if err := nodes[0].UpdateMeta(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	for i, o := range nodes[1:] {
		o.rec.waitEvent(t, marks[i], 2*time.Second, EventUpdate, "n1", v2)
	}
	t.Logf("meta update seen by both others after %v", time.Since(start).Round(time.Millisecond))
	waitAllAlive(t, nodes, nodes, waitLong)
}

func TestMembershipShutdownSeenAsLeave(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	marks := []int{nodes[0].rec.mark(), nodes[1].rec.mark()}
	start := time.Now()
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatal(err)
	}
	for i, o := range nodes[:2] {
		o.rec.waitEvent(t, marks[i], 6*time.Second, EventLeave, "n3", nil)
		t.Logf("%s saw n3's shutdown (no Leave) after %v", o.name, time.Since(start).Round(time.Millisecond))
	}
	waitAllAlive(t, nodes[:2], nodes[:2], waitLong)
}

func TestMembershipLeaveSeenQuickly(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	marks := []int{nodes[0].rec.mark(), nodes[1].rec.mark()}
	start := time.Now()
	if err := nodes[2].Leave(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	for i, o := range nodes[:2] {
		o.rec.waitEvent(t, marks[i], 2*time.Second, EventLeave, "n3", nil)
		t.Logf("%s saw n3's Leave after %v", o.name, time.Since(start).Round(time.Millisecond))
	}
	waitAllAlive(t, nodes[:2], nodes[:2], waitLong)
}

func TestMembershipNameConflictRefused(t *testing.T) {
	nodes := startCluster(t, 2, nil)
	impostor := newTestNode("n2")
	cfg := impostor.config(nodes[0].secret, nodes[0].LocalAddr())
	m, err := StartMembership(cfg)
	if err == nil {
		_ = m.Shutdown()
		t.Fatal("a second node named n2 started")
	}
	if !errors.Is(err, ErrNameConflict) {
		t.Fatalf("err = %v, want ErrNameConflict", err)
	}
	t.Log(err)
	// The cluster is unchanged: n2 is still the first one.
	waitAllAlive(t, nodes, nodes, waitLong)
}

func TestMembershipMetaOverLimitIsAnError(t *testing.T) {
	n := newTestNode("n1")
	n.setMeta(bytes.Repeat([]byte{'m'}, MaxMetaSize+1))
	if m, err := StartMembership(n.config(testSecret())); !errors.Is(err, ErrMetaTooLarge) {
		if err == nil {
			_ = m.Shutdown()
		}
		t.Fatalf("start with %d bytes of meta: err = %v, want ErrMetaTooLarge", MaxMetaSize+1, err)
	}

	nodes := startCluster(t, 2, func(n *testNode, _ *MembershipConfig) {
		n.setMeta(bytes.Repeat([]byte{n.name[1]}, MaxMetaSize)) // the limit itself is fine
	})
	v1 := *nodes[0].meta.Load()
	nodes[0].setMeta(bytes.Repeat([]byte{'x'}, MaxMetaSize+1))
	if err := nodes[0].UpdateMeta(time.Second); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("UpdateMeta with %d bytes: err = %v, want ErrMetaTooLarge", MaxMetaSize+1, err)
	}
	// The node keeps its previous metadata and goes on working.
	nodes[0].setMeta(v1)
	waitAllAlive(t, nodes, nodes, waitLong)
	v2 := bytes.Repeat([]byte{'y'}, MaxMetaSize)
	mark := nodes[1].rec.mark()
	nodes[0].setMeta(v2)
	if err := nodes[0].UpdateMeta(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	nodes[1].rec.waitEvent(t, mark, 2*time.Second, EventUpdate, "n1", v2)
}

func TestMembershipConfigRefused(t *testing.T) {
	ok := MembershipConfig{Node: "n1", Bind: "127.0.0.1:0"}
	for _, tc := range []struct {
		name   string
		change func(*MembershipConfig)
		want   error
	}{
		{"empty name", func(c *MembershipConfig) { c.Node = "" }, ErrBadNodeName},
		{"name too long", func(c *MembershipConfig) { c.Node = strings.Repeat("n", 65) }, ErrBadNodeName},
		{"name with a space", func(c *MembershipConfig) { c.Node = "n 1" }, ErrBadNodeName},
		{"name with a slash", func(c *MembershipConfig) { c.Node = "n/1" }, ErrBadNodeName},
		{"bind without port", func(c *MembershipConfig) { c.Bind = "127.0.0.1" }, ErrBadAddress},
		{"bind to a hostname", func(c *MembershipConfig) { c.Bind = "localhost:0" }, ErrBadAddress},
		{"bind port out of range", func(c *MembershipConfig) { c.Bind = "127.0.0.1:65536" }, ErrBadAddress},
		{"all interfaces, nothing to advertise", func(c *MembershipConfig) { c.Bind = ":0" }, ErrBadAddress},
		{"advertise a hostname", func(c *MembershipConfig) { c.Advertise = "node1:7703" }, ErrBadAddress},
		{"seed without port", func(c *MembershipConfig) { c.Seeds = []string{"127.0.0.1"} }, ErrBadAddress},
		{"seed without host", func(c *MembershipConfig) { c.Seeds = []string{":7703"} }, ErrBadAddress},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.change(&cfg)
			m, err := StartMembership(cfg)
			if err == nil {
				_ = m.Shutdown()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestMembershipJoinsSeedThatStartsLater(t *testing.T) {
	secret := testSecret()
	// Find a free gossip address for n1, then free it again.
	probe, err := StartMembership(MembershipConfig{Node: "probe", Bind: "127.0.0.1:0", Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.LocalAddr()
	_ = probe.Shutdown()

	const every = 200 * time.Millisecond
	n2 := newTestNode("n2")
	cfg := n2.config(secret, addr)
	cfg.RejoinInterval = every
	n2.start(t, cfg) // n1 is not there: not an error
	if got := n2.Alive(); len(got) != 1 || got[0].Name != "n2" {
		t.Fatalf("Alive() = %v, want n2 alone", got)
	}

	n1 := newTestNode("n1")
	cfg = n1.config(secret)
	cfg.Bind = addr
	n1.start(t, cfg)
	d := waitAllAlive(t, []*testNode{n1, n2}, []*testNode{n1, n2}, waitLong)
	t.Logf("the rejoin loop (every %v) joined the late seed within %v", every, d.Round(time.Millisecond))
}

func TestMembershipLeaveThenShutdown(t *testing.T) {
	nodes := startCluster(t, 1, nil)
	m := nodes[0].Membership
	if err := m.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := m.Leave(time.Second); err != nil {
		t.Fatalf("second Leave: %v", err)
	}
	if err := m.UpdateMeta(time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("UpdateMeta after Leave: err = %v, want ErrClosed", err)
	}
	for range 2 {
		if err := m.Shutdown(); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Leave(time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Leave after Shutdown: err = %v, want ErrClosed", err)
	}
	if err := m.UpdateMeta(time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("UpdateMeta after Shutdown: err = %v, want ErrClosed", err)
	}
}

func TestEventsOfASlowCallbackAreCoalescedPerNode(t *testing.T) {
	blocked, release := make(chan struct{}), make(chan struct{})
	rec := newRecorder()
	m := newMembership("self", func(e Event) {
		if e.Node.Name == "blocker" {
			close(blocked)
			<-release
		}
		rec.record(e)
	}, testLogger())
	m.startDeliver()
	defer m.stopGoroutines()
	node := func(name string, meta string) *memberlist.Node {
		return &memberlist.Node{Name: name, Addr: net.IPv4(127, 0, 0, 1), Port: 7703, Meta: []byte(meta)}
	}

	// flap is delivered before the callback gets slow.
	m.changed(node("flap", "v0"), true)
	rec.waitEvent(t, 0, waitLong, EventJoin, "flap", []byte("v0"))
	m.changed(node("blocker", ""), true)
	<-blocked

	// While the callback is stuck: 10 nodes change 100 times each, flap
	// leaves and comes back, ghost comes and goes unseen, gone joins,
	// changes and leaves.
	const nodes, rounds = 10, 100
	for r := range rounds {
		for i := range nodes {
			m.changed(node("a"+strconv.Itoa(i), "v"+strconv.Itoa(r)), true)
		}
	}
	m.changed(node("flap", "v0"), false)
	m.changed(node("flap", "v1"), true)
	m.changed(node("ghost", ""), true)
	m.changed(node("ghost", ""), false)
	m.changed(node("gone", "v0"), true)
	m.changed(node("gone", "v1"), true)
	m.changed(node("gone", "v1"), false)
	m.mu.Lock()
	queued, order := len(m.pending), len(m.order)
	m.mu.Unlock()
	if limit := nodes + 3; queued > limit || order > limit {
		t.Fatalf("%d nodes pending (%d in order) after %d changes, want at most %d", queued, order, nodes*rounds+7, limit)
	}
	close(release)

	want := map[string]string{"blocker": "", "flap": "v1"}
	for i := range nodes {
		want["a"+strconv.Itoa(i)] = "v" + strconv.Itoa(rounds-1)
	}
	rec.waitFor(t, waitLong, "the latest state of every node", func(_ []Event, view map[string]NodeInfo) bool {
		if len(view) != len(want) {
			return false
		}
		for name, meta := range want {
			if n, ok := view[name]; !ok || string(n.Meta) != meta {
				return false
			}
		}
		return true
	})
	rec.mu.Lock()
	var got []string
	for _, e := range rec.events {
		got = append(got, e.Kind.String()+" "+e.Node.Name+" "+string(e.Node.Meta))
	}
	rec.mu.Unlock()
	wantEvents := []string{"join flap v0", "join blocker "}
	for i := range nodes {
		wantEvents = append(wantEvents, "join a"+strconv.Itoa(i)+" v"+strconv.Itoa(rounds-1))
	}
	wantEvents = append(wantEvents, "leave flap v0", "join flap v1")
	if !slices.Equal(got, wantEvents) {
		t.Fatalf("events:\n%q\nwant:\n%q", got, wantEvents)
	}
}

// TestMembershipPartitionIsSeenAndHeals cuts n3 off. The majority must see
// it gone; after the heal the rejoin loop must bring it back. memberlist
// itself re-merges a partition shorter than GossipToTheDeadTime (30 s, the
// dead node gets gossip about its death and refutes it): the test turns
// that off to stand for a longer partition, which only the rejoin loop
// heals (design §4.1).
func TestMembershipPartitionIsSeenAndHeals(t *testing.T) {
	var faults Faults
	nodes := startCluster(t, 3, func(n *testNode, cfg *MembershipConfig) {
		cfg.WrapTransport = func(tr memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
			return faults.Transport(n.name, tr)
		}
		cfg.tune = func(c *memberlist.Config) { c.GossipToTheDeadTime = 0 }
	})
	majority, n3 := nodes[:2], nodes[2]
	marks := []int{majority[0].rec.mark(), majority[1].rec.mark()}
	n3mark := n3.rec.mark()
	start := time.Now()
	faults.Block("n3", "n1")
	faults.Block("n3", "n2")
	for i, o := range majority {
		o.rec.waitEvent(t, marks[i], 8*time.Second, EventLeave, "n3", nil)
		t.Logf("%s saw n3 cut off after %v", o.name, time.Since(start).Round(time.Millisecond))
	}
	waitAllAlive(t, majority, majority, waitLong)
	n3.rec.mu.Lock()
	var n3saw []string
	for _, e := range n3.rec.events[n3mark:] {
		n3saw = append(n3saw, e.Kind.String()+" "+e.Node.Name)
	}
	n3.rec.mu.Unlock()
	t.Logf("n3, isolated for %v, saw %q", time.Since(start).Round(time.Millisecond), n3saw)

	faults.Heal()
	d := waitAllAlive(t, nodes, nodes, DefaultRejoinInterval+2*time.Second)
	t.Logf("all three see three alive %v after the heal (rejoin every %v)", d.Round(time.Millisecond), DefaultRejoinInterval)
}
