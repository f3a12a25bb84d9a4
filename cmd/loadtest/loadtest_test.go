package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coveyhq/covey/internal/procstat"
	"github.com/coveyhq/covey/server"
)

// testTimeout bounds each run of the driver in these tests.
const testTimeout = 30 * time.Second

// startServer runs an in-process dev-mode server on loopback ports chosen
// by the kernel and stops it at the end of the test.
func startServer(t *testing.T, mutate ...func(*server.Config)) *server.Server {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Limits = server.NoLimits() // the driver goes past any player's rates
	cfg.TCPAddr, cfg.KCPAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", ""
	cfg.Logger = slog.New(slog.DiscardHandler)
	for _, m := range mutate {
		m(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv
}

// testConfig returns a short run of scenario against srv over TCP.
func testConfig(srv *server.Server, scenario string) Config {
	cfg := DefaultConfig()
	cfg.Addrs = []string{srv.TCPAddr().String()}
	cfg.Scenario = scenario
	cfg.Sessions, cfg.Members = 2, 3
	cfg.Rate = 20
	cfg.Clients = 6
	cfg.Duration = time.Second
	cfg.RampBatch = 4
	cfg.CallTimeout = 5 * time.Second
	return cfg
}

// runTest runs cfg and fails the test if the run could not take place.
func runTest(t *testing.T, cfg Config) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	res, err := run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	res.writeSummary(&b)
	t.Logf("summary:\n%s", b.String())
	return res
}

// wantClean fails the test if res has errors or losses.
func wantClean(t *testing.T, res *Result) {
	t.Helper()
	if res.Errors != 0 || res.Lost != 0 || res.failed() {
		t.Errorf("errors %d %v, lost %d; want none", res.Errors, res.ErrorsByKind, res.Lost)
	}
}

func TestBroadcast(t *testing.T) {
	srv := startServer(t)
	for _, transport := range []string{"tcp", "kcp"} {
		t.Run(transport, func(t *testing.T) {
			cfg := testConfig(srv, scenarioBroadcast)
			cfg.Transport = transport
			if transport == "kcp" {
				cfg.Addrs = []string{srv.KCPAddr().String()}
			}
			res := runTest(t, cfg)
			wantClean(t, res)
			// 6 senders at 20/s for 1s: 120 messages, to 2 receivers each.
			if res.Sent < 110 || res.Sent > 126 {
				t.Errorf("sent %d, want about 120", res.Sent)
			}
			if res.Delivered != res.Sent*2 || res.Expected != res.Delivered {
				t.Errorf("sent %d, expected %d, delivered %d; want delivered = expected = 2 x sent", res.Sent, res.Expected, res.Delivered)
			}
			if l := res.Latency; l.P50 <= 0 || l.P50 > l.Max || l.Max > 500_000 {
				t.Errorf("latency %+v µs: not sane for loopback", l)
			}
			if res.Joined != 6 || res.Connected != 6 {
				t.Errorf("joined %d, connected %d; want 6 and 6", res.Joined, res.Connected)
			}
		})
	}
}

// TestDroppedMessageIsLost loses one message between the server and one
// of its two receivers (a relay drops the push): exactly one loss.
func TestDroppedMessageIsLost(t *testing.T) {
	srv := startServer(t)
	var dropped atomic.Int32
	relay := startRelay(t, srv.TCPAddr().String(), func(sender, seq uint32) relayAction {
		// Only at the first receiver it reaches.
		return relayAction{drop: sender == 0 && seq == 5 && dropped.Add(1) == 1}
	})
	cfg := testConfig(srv, scenarioBroadcast)
	cfg.Addrs = []string{relay.addr()}
	cfg.Drain = 300 * time.Millisecond // the lost message never comes
	res := runTest(t, cfg)
	if n := dropped.Load(); n != 2 {
		t.Fatalf("message 0/5 reached the relay %d times, want 2 (one per receiver)", n)
	}
	if res.Lost != 1 {
		t.Errorf("lost %d, want exactly 1", res.Lost)
	}
	if res.Delivered != res.Sent*2-1 || res.Expected != res.Sent*2 {
		t.Errorf("sent %d, expected %d, delivered %d; want expected = 2 x sent, one less delivered", res.Sent, res.Expected, res.Delivered)
	}
	if !res.failed() {
		t.Error("a run with a loss is not reported as failed")
	}
	if res.Errors != 0 {
		t.Errorf("errors %v; a loss is counted as lost, not as an error", res.ErrorsByKind)
	}
}

// TestDelayedMessageShowsInLatency holds one message for 50ms between the
// server and one receiver (a relay): the maximum shows it, the median not.
func TestDelayedMessageShowsInLatency(t *testing.T) {
	const delay = 50 * time.Millisecond
	srv := startServer(t)
	var held atomic.Int32
	relay := startRelay(t, srv.TCPAddr().String(), func(sender, seq uint32) relayAction {
		if sender == 0 && seq == 5 && held.Add(1) == 1 {
			return relayAction{delay: delay}
		}
		return relayAction{}
	})
	cfg := testConfig(srv, scenarioBroadcast)
	cfg.Addrs = []string{relay.addr()}
	res := runTest(t, cfg)
	wantClean(t, res)
	if held.Load() == 0 {
		t.Fatal("message 0/5 never reached the relay")
	}
	if res.Latency.Max < delay.Microseconds() {
		t.Errorf("max latency %dµs, want at least %v", res.Latency.Max, delay)
	}
	if res.Latency.P50 >= 20_000 {
		t.Errorf("p50 latency %dµs, want well under the delay", res.Latency.P50)
	}
}

func TestMax(t *testing.T) {
	srv := startServer(t)
	cfg := testConfig(srv, scenarioMax)
	cfg.Window = 4
	res := runTest(t, cfg)
	wantClean(t, res)
	if res.Sent < 100 {
		t.Errorf("sent %d messages in a second at saturation, want many more", res.Sent)
	}
	if res.Delivered != res.Sent*2 {
		t.Errorf("sent %d, delivered %d; want 2 x sent", res.Sent, res.Delivered)
	}
}

func TestProperties(t *testing.T) {
	srv := startServer(t)
	res := runTest(t, testConfig(srv, scenarioProperties))
	wantClean(t, res)
	pr := res.Properties
	if pr == nil || pr.Verified != 2 || pr.Mismatches != 0 || pr.Unverified != 0 {
		t.Fatalf("properties %+v; want 2 sessions verified, no mismatch", pr)
	}
	if pr.Updates == 0 || pr.Updates != res.Delivered {
		t.Errorf("updates %d, delivered %d; want equal and positive", pr.Updates, res.Delivered)
	}
	if res.Sent != pr.Updates+pr.Conflicts {
		t.Errorf("sent %d compare-and-sets, %d succeeded and %d conflicted", res.Sent, pr.Updates, pr.Conflicts)
	}
}

func TestChurn(t *testing.T) {
	srv := startServer(t)
	res := runTest(t, testConfig(srv, scenarioChurn))
	wantClean(t, res)
	c := res.Churn
	if c == nil || c.SessionsCreated == 0 || c.Joins == 0 || c.Kicks == 0 || c.Leaves == 0 {
		t.Fatalf("churn %+v; want sessions created, joins, kicks and leaves", c)
	}
	if res.Latency.Max == 0 {
		t.Error("no join latency recorded")
	}
	if res.Delivered > res.Sent || res.Delivered < c.Joins {
		t.Errorf("sent %d, delivered %d, joins %d: inconsistent", res.Sent, res.Delivered, c.Joins)
	}
}

// TestIdle measures this very process as the server: the in-process
// server lives in it.
func TestIdle(t *testing.T) {
	srv := startServer(t, func(c *server.Config) { c.Heartbeat = 200 * time.Millisecond })
	cfg := testConfig(srv, scenarioIdle)
	cfg.Clients = 5
	cfg.ServerPIDs = []int{os.Getpid()}
	res := runTest(t, cfg)
	wantClean(t, res)
	if res.Connected != 5 {
		t.Errorf("connected %d, want 5", res.Connected)
	}
	if res.Delivered == 0 || res.Latency.Max == 0 || res.Delivered > res.Sent {
		t.Errorf("sent %d pings, %d answered, latency %+v; want pings answered", res.Sent, res.Delivered, res.Latency)
	}
	if res.Idle == nil || res.ServerCPUS == nil || res.ServerRSSBytes == nil || res.Idle.RSSConnectedBytes == 0 {
		t.Errorf("idle %+v, server cpu %v rss %v; want server figures", res.Idle, res.ServerCPUS, res.ServerRSSBytes)
	}
}

// TestJSON runs the command as a user would, with -json, and checks that
// the file has every field the issue asks for.
func TestJSON(t *testing.T) {
	srv := startServer(t)
	path := filepath.Join(t.TempDir(), "result.json")
	var stdout, stderr bytes.Buffer
	code := mainExit([]string{
		"-addr", srv.TCPAddr().String(), "-scenario", "broadcast", "-sessions", "1", "-members", "2",
		"-rate", "10", "-duration", "1500ms", "-json", path, "-server-pid", strconv.Itoa(os.Getpid()),
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "lost 0") {
		t.Errorf("summary does not say lost 0:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "connected 2/2") {
		t.Errorf("no progress line on stderr:\n%s", stderr.String())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{
		"scenario", "transport", "clients", "sessions", "sent", "delivered", "lost", "errors",
		"delivered_per_sec", "latency_us", "server_cpu_s", "server_rss_bytes", "deliveries_per_server_cpu_s",
	} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON has no %q:\n%s", k, b)
		}
	}
	lat, _ := m["latency_us"].(map[string]any)
	for _, k := range []string{"p50", "p90", "p99", "p999", "max"} {
		if _, ok := lat[k].(float64); !ok {
			t.Errorf("latency_us has no number %q:\n%s", k, b)
		}
	}
	if m["scenario"] != "broadcast" || m["transport"] != "tcp" || m["lost"] != 0.0 || m["server_cpu_s"] == nil {
		t.Errorf("unexpected values:\n%s", b)
	}
	if _, ok := m["servers"]; ok {
		t.Errorf("one server PID, but a per-server list:\n%s", b)
	}
}

func TestFlags(t *testing.T) {
	var stderr bytes.Buffer
	cfg, path, err := parseFlags([]string{"-addr", "a:1, b:2", "-transport", "kcp", "-scenario", "max", "-window", "8", "-json", "x.json", "-quiet"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Addrs) != 2 || cfg.Addrs[1] != "b:2" || cfg.Transport != "kcp" || cfg.Window != 8 || path != "x.json" || cfg.Progress != nil {
		t.Errorf("parsed %+v, json %q", cfg, path)
	}
	for _, tc := range []struct {
		arg  string
		want []int
	}{{"7", []int{7}}, {"12, 34,56", []int{12, 34, 56}}} {
		cfg, _, err := parseFlags([]string{"-server-pid", tc.arg}, &stderr)
		if err != nil || !slices.Equal(cfg.ServerPIDs, tc.want) {
			t.Errorf("-server-pid %q: %v, %v; want %v", tc.arg, cfg.ServerPIDs, err, tc.want)
		}
	}
	for _, args := range [][]string{
		{"-transport", "udp"}, {"-scenario", "nope"}, {"-size", "8"}, {"-members", "1"},
		{"-scenario", "churn", "-clients", "2", "-members", "3"}, {"-duration", "0s"}, {"stray"},
		{"-server-pid", "x"}, {"-server-pid", ""}, {"-server-pid", "1,"}, {"-server-pid", "0"},
		{"-server-pid", "-3"}, {"-server-pid", "5,6,5"},
	} {
		if code := mainExit(args, &stderr, &stderr); code != 2 {
			t.Errorf("%q: exit status %d, want 2", args, code)
		}
	}
}

// TestSpread checks how players are laid out over several addresses.
func TestSpread(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Addrs = []string{"a", "b"}
	cfg.Sessions, cfg.Members = 2, 3
	d := newDriver(cfg)
	if got := d.players[0].addr + d.players[1].addr + d.players[2].addr + d.players[3].addr; got != "abab" {
		t.Errorf("spread player: %s, want abab", got)
	}
	cfg.Spread = spreadSession
	d = newDriver(cfg)
	if got := d.players[0].addr + d.players[2].addr + d.players[3].addr + d.players[5].addr; got != "aabb" {
		t.Errorf("spread session: %s, want aabb", got)
	}
}

// fakeProcess is a server process whose CPU time grows at cores CPU
// seconds per second of wall time and whose RSS is fixed.
type fakeProcess struct {
	cores float64
	rss   uint64
}

// TestServerFiguresAreSummed runs against fake server processes: the
// result's server CPU and RSS are their sums, and each has its own.
func TestServerFiguresAreSummed(t *testing.T) {
	srv := startServer(t)
	procs := map[int]fakeProcess{101: {0.25, 10 << 20}, 102: {0.5, 20 << 20}, 103: {0.125, 5 << 20}}
	start := time.Now()
	cfg := testConfig(srv, scenarioBroadcast)
	cfg.ServerPIDs = []int{101, 102, 103}
	cfg.readProcess = func(pid int) (procstat.Sample, error) {
		p := procs[pid]
		cpu := time.Duration(p.cores * float64(time.Since(start)))
		return procstat.Sample{CPU: cpu, RSS: p.rss}, nil
	}
	res := runTest(t, cfg)
	wantClean(t, res)
	if res.ServerCPUS == nil || res.ServerRSSBytes == nil || res.ServerRSSPeakBytes == nil {
		t.Fatalf("no server figures: %+v", res)
	}
	near := func(got, want float64) bool { return got > want*0.98 && got < want*1.02 }
	if want := 0.875 * res.ElapsedS; !near(*res.ServerCPUS, want) {
		t.Errorf("server CPU %.3fs over %.3fs, want the sum %.3fs", *res.ServerCPUS, res.ElapsedS, want)
	}
	if *res.ServerRSSBytes != 35<<20 || *res.ServerRSSPeakBytes != 35<<20 {
		t.Errorf("server RSS %d, peak %d; want the sum %d", *res.ServerRSSBytes, *res.ServerRSSPeakBytes, 35<<20)
	}
	if len(res.Servers) != 3 {
		t.Fatalf("servers %+v, want 3", res.Servers)
	}
	for i, s := range res.Servers {
		p := procs[cfg.ServerPIDs[i]]
		if s.PID != cfg.ServerPIDs[i] || s.RSSBytes != p.rss || !near(s.CPUS, p.cores*res.ElapsedS) {
			t.Errorf("server %d: %+v, want pid %d, cpu %.3fs, rss %d", i, s, cfg.ServerPIDs[i], p.cores*res.ElapsedS, p.rss)
		}
	}
	if want := float64(res.Delivered) / *res.ServerCPUS; res.DeliveriesPerServerCPUS == nil || *res.DeliveriesPerServerCPUS != want {
		t.Errorf("deliveries per server CPU-second %v, want %v", res.DeliveriesPerServerCPUS, want)
	}
}

// TestServerPIDGone fails a run, before it starts, whose server process
// cannot be read, naming it.
func TestServerPIDGone(t *testing.T) {
	srv := startServer(t)
	cfg := testConfig(srv, scenarioBroadcast)
	cfg.ServerPIDs = []int{os.Getpid(), 1 << 30} // above Linux's pid_max
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := run(ctx, cfg); err == nil || !strings.Contains(err.Error(), strconv.Itoa(1<<30)) {
		t.Errorf("run with a PID that does not exist: %v, want an error naming it", err)
	}
}

// TestServerPIDsFromFlag gives the command two real processes (this one,
// which runs the server, and an idle child): the JSON has both, each with
// its own figures, and their sums.
func TestServerPIDsFromFlag(t *testing.T) {
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Skip("no sleep command:", err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	srv := startServer(t)
	path := filepath.Join(t.TempDir(), "result.json")
	pids := []int{os.Getpid(), sleeper.Process.Pid}
	var stdout, stderr bytes.Buffer
	code := mainExit([]string{
		"-addr", srv.TCPAddr().String(), "-sessions", "1", "-members", "2", "-rate", "10", "-duration", "1s",
		"-quiet", "-json", path, "-server-pid", strconv.Itoa(pids[0]) + "," + strconv.Itoa(pids[1]),
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "2 servers") {
		t.Errorf("summary does not count the servers:\n%s", stdout.String())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.ServerPIDs, pids) || len(res.Servers) != 2 || res.ServerCPUS == nil || res.ServerRSSBytes == nil {
		t.Fatalf("server figures missing:\n%s", b)
	}
	var cpu float64
	var rss uint64
	for i, s := range res.Servers {
		if s.PID != pids[i] || s.RSSBytes == 0 {
			t.Errorf("server %d: %+v, want pid %d with its RSS", i, s, pids[i])
		}
		cpu += s.CPUS
		rss += s.RSSBytes
	}
	if *res.ServerCPUS != cpu || *res.ServerRSSBytes != rss {
		t.Errorf("server CPU %v, RSS %v; want the sums %v, %v", *res.ServerCPUS, *res.ServerRSSBytes, cpu, rss)
	}
	if res.Servers[0].CPUS <= 0 {
		t.Errorf("the process running the server used no CPU: %+v", res.Servers[0])
	}
}

// TestOverloadedIsNotLost runs the broadcast and max scenarios over KCP
// against a server that refuses every KCP fan-out after its first reads
// (an overload wait of 1 ns): the refusals are counted as errors, the
// refused messages are not expected by anyone, so nothing is lost, and in
// max a sender stops after a window of refusals.
func TestOverloadedIsNotLost(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the KCP socket's timestamps are read on Linux only")
	}
	srv := startServer(t, func(c *server.Config) { c.KCPOverloadWait = time.Nanosecond })
	for _, scenario := range []string{scenarioBroadcast, scenarioMax} {
		t.Run(scenario, func(t *testing.T) {
			cfg := testConfig(srv, scenario)
			cfg.Transport = "kcp"
			cfg.Addrs = []string{srv.KCPAddr().String()}
			res := runTest(t, cfg)
			refused := res.ErrorsByKind["overloaded"]
			if refused == 0 {
				t.Fatalf("no overloaded errors: %v", res.ErrorsByKind)
			}
			if res.Lost != 0 || res.Delivered != res.Expected {
				t.Errorf("expected %d, delivered %d, lost %d", res.Expected, res.Delivered, res.Lost)
			}
			if scenario == scenarioMax && refused > uint64(cfg.Window*cfg.Clients) {
				t.Errorf("max: %d refused, more than a window per sender (%d x %d)", refused, cfg.Window, cfg.Clients)
			}
		})
	}
}

// TestBackoffHoldsBack: with -backoff, a sender refused with Overloaded
// sends nothing for the backoff: its due messages are counted as
// held_back, the refusals are at most about one per backoff per sender,
// and nothing is lost.
func TestBackoffHoldsBack(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the KCP socket's timestamps are read on Linux only")
	}
	srv := startServer(t, func(c *server.Config) { c.KCPOverloadWait = time.Nanosecond })
	cfg := testConfig(srv, scenarioBroadcast)
	cfg.Transport = "kcp"
	cfg.Addrs = []string{srv.KCPAddr().String()}
	cfg.Backoff = 200 * time.Millisecond
	res := runTest(t, cfg)
	refused, held := res.ErrorsByKind["overloaded"], res.ErrorsByKind["held_back"]
	if held == 0 {
		t.Fatalf("nothing held back: %v", res.ErrorsByKind)
	}
	// 1 s at 20/s per sender: 20 due; a refusal pauses 200 ms (4 due), so
	// at most ~5 refusals, plus one or two in flight when one arrives.
	if limit := uint64(cfg.Clients * 8); refused > limit {
		t.Errorf("%d refusals from %d senders backing off 200 ms in 1 s, want at most %d", refused, cfg.Clients, limit)
	}
	if res.Lost != 0 || res.Delivered != res.Expected {
		t.Errorf("expected %d, delivered %d, lost %d", res.Expected, res.Delivered, res.Lost)
	}
}
