package cluster_test

// The harness of TestNetns (netns_test.go): the namespace, the node
// processes, the SDK players and the bookkeeping of their broadcasts.
//
// The test body runs inside the namespace. The test binary that `go test`
// starts (the parent) checks what it needs, builds cmd/server, creates
// the namespace and runs itself again inside it with
// `ip netns exec NS <test binary> -test.run=^TestNetns$`, with childEnv
// set; that child starts the nodes, dials the players and runs the
// phases, and the parent copies its output into the test log. The
// re-exec is chosen over setns(2) on a locked OS thread because then
// every socket of the body (the SDK's, net/http's, whatever goroutine
// opens it) and every process it starts are in the namespace by
// construction; with setns only the sockets opened on the one locked
// thread would be.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coveyhq/covey/clientsdk"
)

// The child's environment.
const (
	childEnv  = "COVEY_NETNS_CHILD"  // the namespace's name: this process runs inside it
	serverEnv = "COVEY_NETNS_SERVER" // the path of the covey-server binary to run
)

// Timing of the scenario.
const (
	broadcastRate = 20              // broadcasts per second by each member of each session
	callTimeout   = 5 * time.Second // one SDK call
	childTimeout  = 3 * time.Minute // the whole run inside the namespace
	pollInterval  = 50 * time.Millisecond
)

// ---------------------------------------------------------------------
// The parent: prerequisites, the binary, the namespace.

// namespaceOrSkip checks that this machine can run the test, creates the
// namespace covey-test-<pid> with its loopback up and registers its
// removal (with every process still in it). It skips the test, saying
// why, when the test cannot run here.
func namespaceOrSkip(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping the multi-process cluster test")
	}
	if runtime.GOOS != "linux" {
		t.Skip("network namespaces are Linux only")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: it creates a network namespace (ip netns add)")
	}
	ip, err := tool("ip")
	if err != nil {
		t.Skip("needs iproute2's ip to create a network namespace: ", err)
	}
	nftPath, err := tool("nft")
	if err != nil {
		t.Skip("needs nft to partition the nodes (apt-get install nftables; .ci/run does): ", err)
	}
	ns := fmt.Sprintf("covey-test-%d", os.Getpid())
	if out, err := ipCmd("netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("ip netns add %s failed (no network namespaces here?): %v: %s", ns, err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { removeNamespace(t, ns) })
	if out, err := ipCmd("netns", "exec", ns, ip, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("bringing lo up in %s: %v: %s", ns, err, bytes.TrimSpace(out))
	}
	if out, err := ipCmd("netns", "exec", ns, nftPath, "list", "ruleset").CombinedOutput(); err != nil {
		t.Skipf("nftables does not work inside a namespace here: %v: %s", err, bytes.TrimSpace(out))
	}
	return ns
}

// tool returns the path of an administration command: from PATH, or
// from /usr/sbin or /sbin, which a non-login PATH may lack.
func tool(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if fi, serr := os.Stat(filepath.Join(dir, name)); serr == nil && fi.Mode()&0o111 != 0 {
			return filepath.Join(dir, name), nil
		}
	}
	return "", err
}

// ipCmd is exec.Command for ip (namespaceOrSkip found it).
func ipCmd(args ...string) *exec.Cmd {
	p, _ := tool("ip")
	return exec.Command(p, args...)
}

// removeNamespace kills what is left in namespace ns (the child and the
// nodes it started, if a failure left them running) and deletes it.
func removeNamespace(t *testing.T, ns string) {
	if out, err := ipCmd("netns", "pids", ns).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if out, err := ipCmd("netns", "del", ns).CombinedOutput(); err != nil {
		t.Errorf("ip netns del %s: %v: %s", ns, err, bytes.TrimSpace(out))
	}
}

// buildServer builds cmd/server into the test's temporary directory, once
// per run. It is built without -race: three race-instrumented nodes
// would not keep the scenario's timings on two cores.
func buildServer(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "covey-server")
	start := time.Now()
	cmd := exec.Command(goTool, "build", "-o", bin, "github.com/coveyhq/covey/cmd/server")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/server: %v\n%s", err, out)
	}
	t.Logf("built %s in %v", bin, time.Since(start).Round(time.Millisecond))
	declareInputs(t, goTool)
	return bin
}

// declareInputs opens the module's directories that cmd/server is built
// from, and go.mod and go.sum, so that go test's cache counts them as
// inputs of this test (it rechecks what a test opened inside the
// module): the cluster package does not import the server, and without
// this a cached pass would hide a change to it.
func declareInputs(t *testing.T, goTool string) {
	t.Helper()
	out, err := exec.Command(goTool, "list", "-deps",
		"-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}",
		"github.com/coveyhq/covey/cmd/server").Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/server: %v", err)
	}
	paths := strings.Fields(string(out))
	if mod, err := exec.Command(goTool, "env", "GOMOD").Output(); err == nil {
		if gomod := strings.TrimSpace(string(mod)); gomod != "" {
			paths = append(paths, gomod, strings.TrimSuffix(gomod, ".mod")+".sum")
		}
	}
	for _, p := range paths {
		if f, err := os.Open(p); err == nil {
			f.Close()
		}
	}
}

// runChild runs this test again inside namespace ns, with bin as the
// server, and copies its output into the test log line by line.
func runChild(t *testing.T, ns, bin string) {
	t.Helper()
	exe, err := os.Executable() // not /proc/self/exe: ip would resolve that to itself
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), childTimeout+30*time.Second)
	defer cancel()
	ip, _ := tool("ip")
	cmd := exec.CommandContext(ctx, ip, "netns", "exec", ns, exe,
		"-test.run=^TestNetns$", "-test.v=true", "-test.count=1", "-test.timeout="+childTimeout.String())
	cmd.Env = append(os.Environ(), childEnv+"="+ns, serverEnv+"="+bin)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			t.Log(sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	err = cmd.Wait()
	pw.Close()
	<-copied
	if err != nil {
		t.Fatalf("the scenario inside namespace %s failed (%v): see its output above", ns, err)
	}
}

// ---------------------------------------------------------------------
// The child: nodes.

// node is one covey-server process (restarted as a new process).
type node struct {
	name, ip string
	cmd      *exec.Cmd
	exited   chan struct{}
	start    int // index in h.logs[i] of the current process's first line
}

func (n *node) addr(port int) string { return n.ip + ":" + strconv.Itoa(port) }

// args are the flags of cluster.md §8.2: every listener on the node's own
// loopback address, every node a seed, dev mode (no secret: loopback).
func (n *node) args() []string {
	return []string{
		"-node", n.name,
		"-tcp", n.addr(7700), "-kcp", n.addr(7700), "-http", n.addr(7701),
		"-mesh", n.addr(7702), "-gossip", n.addr(7703),
		"-join", "127.0.0.1:7703,127.0.0.2:7703,127.0.0.3:7703",
	}
}

// logLine is a line a node wrote to stderr.
type logLine struct {
	at   time.Time
	text string
}

// nodeLog is a node's stderr: lines go to h.logs[i] as they are written.
type nodeLog struct {
	h    *harness
	i    int
	part []byte
}

func (w *nodeLog) Write(b []byte) (int, error) {
	now := time.Now()
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	w.part = append(w.part, b...)
	for {
		i := bytes.IndexByte(w.part, '\n')
		if i < 0 {
			break
		}
		w.h.logs[w.i] = append(w.h.logs[w.i], logLine{now, string(w.part[:i])})
		w.part = w.part[i+1:]
	}
	w.h.changedLocked()
	return len(b), nil
}

// startNode starts node i's process (the child is in the namespace, so
// is the process: no `ip netns exec` needed). It dies with the child
// (Pdeathsig), and is killed at the end of the test.
func (h *harness) startNode(t *testing.T, i int) {
	t.Helper()
	n := h.nodes[i]
	cmd := exec.Command(h.bin, n.args()...)
	cmd.Stderr = &nodeLog{h: h, i: i}
	cmd.Stdout = cmd.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	h.mu.Lock()
	n.start = len(h.logs[i])
	h.logs[i] = append(h.logs[i], logLine{time.Now(), "---- test: starting " + n.name + " " + strings.Join(n.args(), " ")})
	h.mu.Unlock()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", n.name, err)
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	go func() {
		err := cmd.Wait()
		h.mu.Lock()
		h.logs[i] = append(h.logs[i], logLine{time.Now(), fmt.Sprintf("---- test: %s exited: %v", n.name, err)})
		h.changedLocked()
		h.mu.Unlock()
		close(n.exited)
	}()
}

// killNode kills node i with SIGKILL (kill -9: no leave, no clean-up)
// and waits for the process to be gone.
func (h *harness) killNode(t *testing.T, i int) {
	t.Helper()
	n := h.nodes[i]
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %s: %v", n.name, err)
	}
	<-n.exited
}

// ready reports whether node i's /readyz answers 200.
func (h *harness) ready(i int) bool {
	resp, err := h.http.Get("http://" + h.nodes[i].addr(7701) + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// waitReady polls /readyz of the nodes (there is no event to wait on)
// until all answer 200, and fails the test at deadline.
func (h *harness) waitReady(t *testing.T, nodes []int, deadline time.Time) {
	t.Helper()
	for {
		var not []string
		for _, i := range nodes {
			if !h.ready(i) {
				not = append(not, h.nodes[i].name)
			}
		}
		if len(not) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 200 in time on %v", not)
		}
		time.Sleep(pollInterval)
	}
}

// linkUp reports whether node i's log says, since line from, that its
// link to node j is up: its last "mesh link up" or "node lost" line about
// j is the former. h.mu must be held.
func (h *harness) linkUpLocked(i, j, from int) bool {
	peer := "peer=" + h.nodes[j].name
	lines := h.logs[i]
	for k := len(lines) - 1; k >= from; k-- {
		l := lines[k].text
		up, lost := strings.Contains(l, `msg="mesh link up"`), strings.Contains(l, `msg="node lost"`)
		if (up || lost) && slices.Contains(strings.Fields(l), peer) {
			return up
		}
	}
	return false
}

// waitLinked waits until every node's log says, since its process
// started, that its link to every other node is up.
func (h *harness) waitLinked(t *testing.T, deadline time.Time) {
	t.Helper()
	var missing []string
	ok := h.waitUntil(deadline, func() bool {
		missing = missing[:0]
		for i, n := range h.nodes {
			for j := range h.nodes {
				if i != j && !h.linkUpLocked(i, j, n.start) {
					missing = append(missing, n.name+"->"+h.nodes[j].name)
				}
			}
		}
		return len(missing) == 0
	})
	if !ok {
		t.Fatalf("links not up in time: %v", missing)
	}
}

// waitLog waits until node i logs a line containing every one of parts
// after line from; it returns the line's time.
func (h *harness) waitLog(t *testing.T, i, from int, deadline time.Time, parts ...string) time.Time {
	t.Helper()
	var at time.Time
	ok := h.waitUntil(deadline, func() bool {
	lines:
		for _, l := range h.logs[i][from:] {
			for _, p := range parts {
				if !strings.Contains(l.text, p) {
					continue lines
				}
			}
			at = l.at
			return true
		}
		return false
	})
	if !ok {
		t.Fatalf("%s logged no line with %q in time", h.nodes[i].name, parts)
	}
	return at
}

// logCursor returns the number of lines each node logged so far.
func (h *harness) logCursor() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := make([]int, len(h.logs))
	for i, l := range h.logs {
		c[i] = len(l)
	}
	return c
}

// nft runs nft with args and ruleset on stdin, in the namespace (the
// child is in it).
func nft(t *testing.T, ruleset string, args ...string) {
	t.Helper()
	nftPath, err := tool("nft")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nftPath, args...)
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft %v: %v: %s", args, err, bytes.TrimSpace(out))
	}
}

// ---------------------------------------------------------------------
// The child: players and their broadcasts.

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
}

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
			if h.lax {
				h.asyncErrs[p.uid+": "+ev.Err.Error()]++
			} else {
				h.problemLocked("%s: async error outside a disruption: %v", p.uid, ev.Err)
			}
		case clientsdk.SessionDeleted:
			if p.active[ev.Type] == ev.SessionID {
				delete(p.active, ev.Type)
			}
		case clientsdk.MemberLeft:
			if ev.UserID == p.uid && p.active[ev.Type] == ev.SessionID {
				delete(p.active, ev.Type)
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

// ---------------------------------------------------------------------
// Sessions as the test expects them.

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

// dumpLogs writes every node's stderr into the test log.
func (h *harness) dumpLogs(t *testing.T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, lines := range h.logs {
		var b strings.Builder
		for _, l := range lines {
			b.WriteString(l.text)
			b.WriteByte('\n')
		}
		t.Logf("stderr of %s:\n%s", h.nodes[i].name, b.String())
	}
}
