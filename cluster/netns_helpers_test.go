package cluster_test

// The harness of TestNetns (netns_test.go): the namespace and the node
// processes. The players are in netns_players_test.go, the sessions and
// what is expected of them in netns_sessions_test.go.
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
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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
		t.Skipf("needs iproute2's ip to create a network namespace: %v", err)
	}
	nftPath, err := tool("nft")
	if err != nil {
		t.Skipf("needs nft to partition the nodes (apt-get install nftables; .ci/run does): %v", err)
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
		"-tcp", n.addr(7700), "-kcp", n.addr(7700), "-http", n.addr(7701), "-admin", n.addr(7709),
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
