package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/coveyhq/covey/clientsdk"
	"github.com/coveyhq/covey/netio"
	"github.com/coveyhq/covey/session"
	"github.com/coveyhq/covey/wire"
)

// scrape returns the value of the metric line matching pattern (a regexp
// for the name and labels) on the admin listener's /metrics, or -1 if
// there is none.
func scrape(t *testing.T, srv *Server, pattern string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + srv.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + pattern + ` ([0-9.e+-]+)$`).FindSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestMetricsMove scrapes /metrics before and after real traffic over both
// transports and checks that the counters moved by what was done.
func TestMetricsMove(t *testing.T) {
	srv := startServer(t)
	ctx := testCtx(t)
	if v := scrape(t, srv, `covey_deliveries_total`); v != 0 {
		t.Fatalf("deliveries before any traffic = %v", v)
	}
	a := dialSDK(t, srv, "tcp", "a")
	b := dialSDK(t, srv, "kcp", "b")
	id, err := a.Create(ctx, 7, 4, 0, nil)
	must(t, err)
	must(t, b.Join(ctx, 7, id))
	for range 5 {
		must(t, a.Broadcast(ctx, 7, []byte("x")))
	}
	waitEvent(t, b, func(e clientsdk.BroadcastReceived) bool { return true })
	wantStatus(t, b.Join(ctx, 7, id), session.ErrAlreadyInSession)

	checks := []struct {
		pattern string
		want    float64
	}{
		{`covey_connections\{transport="tcp"\}`, 1},
		{`covey_connections\{transport="kcp"\}`, 1},
		{`covey_sessions\{type="7"\}`, 1},
		{`covey_session_members`, 2},
		{`covey_commands_total\{cmd="Broadcast",status="ok"\}`, 5},
		{`covey_commands_total\{cmd="Join",status="already_in_a_session_of_this_type"\}`, 1},
		{`covey_commands_total\{cmd="SignIn",status="ok"\}`, 2},
		{`covey_command_duration_seconds_count\{cmd="Broadcast"\}`, 5},
	}
	for _, c := range checks {
		if got := scrape(t, srv, c.pattern); got != c.want {
			t.Errorf("%s = %v, want %v", c.pattern, got, c.want)
		}
	}
	// 5 broadcasts to b, and a MemberJoined to a.
	if got := scrape(t, srv, `covey_deliveries_total`); got < 6 {
		t.Errorf("covey_deliveries_total = %v, want >= 6", got)
	}
	for _, name := range []string{`covey_bytes_in_total`, `covey_bytes_out_total`, `covey_frames_in_total`} {
		if got := scrape(t, srv, name); got <= 0 {
			t.Errorf("%s = %v", name, got)
		}
	}
	if got := scrape(t, srv, `go_goroutines`); got <= 0 {
		t.Errorf("go_goroutines = %v: runtime metrics missing", got)
	}
}

// TestPprofFlag checks that profiles are served only when asked for, and
// only on the admin listener.
func TestPprofFlag(t *testing.T) {
	for _, on := range []bool{false, true} {
		srv := startServer(t, func(c *Config) { c.Pprof = on })
		if got := httpStatus(t, srv.AdminAddr(), "/debug/pprof/"); (got == http.StatusOK) != on {
			t.Errorf("pprof %v: admin status %d", on, got)
		}
		if got := httpStatus(t, srv.HTTPAddr(), "/debug/pprof/"); got != http.StatusNotFound {
			t.Errorf("pprof %v: public status %d, want 404", on, got)
		}
	}
	cfg := DefaultConfig()
	cfg.Pprof = true
	if _, err := New(cfg); !errors.Is(err, ErrPprofNoAdmin) {
		t.Errorf("pprof without an admin listener: New = %v, want ErrPprofNoAdmin", err)
	}
}

// TestMaxConnsRefused fills a node's only place: a second client is
// refused with a ServerOffline Bye on TCP, and the refusal shows in
// /metrics.
func TestMaxConnsRefused(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.MaxConns = 1 })
	dialSDK(t, srv, "tcp", "a")
	if got := scrape(t, srv, `covey_connections_refused_total\{transport="tcp"\}`); got != 0 {
		t.Fatalf("refused before the node was full = %v", got)
	}
	_, err := clientsdk.Dial(testCtx(t), clientsdk.Config{Network: "tcp", Addr: srv.addrOf("tcp"), UserID: "b"})
	var bye *clientsdk.ByeError
	if !errors.As(err, &bye) || bye.Status != wire.StatusServerOffline {
		t.Fatalf("second dial: %v, want a Bye with StatusServerOffline", err)
	}
	if got := scrape(t, srv, `covey_connections_refused_total\{transport="tcp"\}`); got != 1 {
		t.Errorf(`covey_connections_refused_total{transport="tcp"} = %v, want 1`, got)
	}
	if got := scrape(t, srv, `covey_connections_refused_total\{transport="kcp"\}`); got != 0 {
		t.Errorf(`covey_connections_refused_total{transport="kcp"} = %v, want 0`, got)
	}
	if got := scrape(t, srv, `covey_connections\{transport="tcp"\}`); got != 1 {
		t.Errorf(`covey_connections{transport="tcp"} = %v, want 1`, got)
	}
}

// waitMetric polls /metrics until the line matching pattern has the value
// want, and fails at the test timeout.
func waitMetric(t *testing.T, srv *Server, pattern string, want float64) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		got := scrape(t, srv, pattern)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", pattern, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func disconnects(reason string) string {
	return `covey_disconnects_total\{reason="` + reason + `"\}`
}

// TestDisconnectsByReason closes connections in each way a live node can
// see over TCP and checks covey_disconnects_total by reason.
func TestDisconnectsByReason(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.Heartbeat = 500 * time.Millisecond }) // idle after 1.5s
	for reason := range disconnectReasons {
		if got := scrape(t, srv, disconnects(disconnectLabels[reason])); got != 0 {
			t.Fatalf("%s before any connection = %v", disconnectLabels[reason], got)
		}
	}
	addr := srv.addrOf("tcp")

	// client_bye: the SDK's Close sends a Bye.
	dialSDK(t, srv, "tcp", "leaver").Close()
	waitMetric(t, srv, disconnects("client_bye"), 1)

	// peer_closed: the socket closed without a Bye.
	r := dialRaw(t, "tcp", addr)
	r.signIn("closer")
	r.c.Close()
	waitMetric(t, srv, disconnects("peer_closed"), 1)

	// replaced: the same user signs in again.
	first := dialSDK(t, srv, "tcp", "twice")
	dialSDK(t, srv, "tcp", "twice")
	<-first.Done()
	waitMetric(t, srv, disconnects("replaced"), 1)

	// auth_failed: a token in dev mode.
	dialRaw(t, "tcp", addr).call(wire.CmdSignIn, (&wire.SignInRequest{MinVersion: 1, MaxVersion: 1, Token: "v1.x.y.z"}).Append(nil))
	waitMetric(t, srv, disconnects("auth_failed"), 1)

	// protocol_error: a reply sent to the server, then a command before
	// sign-in.
	bad := dialRaw(t, "tcp", addr)
	bad.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Flags: wire.FlagReply, Seq: 1}, nil))
	bad.expectBye()
	dialRaw(t, "tcp", addr).call(wire.CmdCreate, nil)
	waitMetric(t, srv, disconnects("protocol_error"), 2)

	// idle_timeout: signed in, then silent for three heartbeats.
	dialRaw(t, "tcp", addr).signIn("silent")
	waitMetric(t, srv, disconnects("idle_timeout"), 1)

	for _, reason := range []string{"slow_consumer", "shutting_down", "server_full", "io_error", "other"} {
		if got := scrape(t, srv, disconnects(reason)); got != 0 {
			t.Errorf("%s = %v, want 0", disconnects(reason), got)
		}
	}
}

// TestShutdownCountsShuttingDown: connections open at Shutdown are counted
// as shutting_down (read from the counters: /metrics is gone by then).
func TestShutdownCountsShuttingDown(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TCPAddr, cfg.KCPAddr, cfg.HTTPAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0", "", ""
	cfg.Logger = discardLogger()
	srv, err := New(cfg)
	must(t, err)
	must(t, srv.Start())
	for _, network := range transports {
		c, err := clientsdk.Dial(testCtx(t), clientsdk.Config{Network: network, Addr: srv.addrOf(network), UserID: network})
		must(t, err)
		defer c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	must(t, srv.Shutdown(ctx))
	if got := srv.metrics.closed[closeShuttingDown].Load(); got != 2 {
		t.Errorf("shutting_down = %d, want 2", got)
	}
}

// TestDisconnectReasonOf maps each error netio passes to OnClose (built
// as netio builds them) to its reason, without allocating.
func TestDisconnectReasonOf(t *testing.T) {
	closedWith := func(st wire.Status) error { return fmt.Errorf("%w: %w", netio.ErrClosedByServer, st) }
	cases := []struct {
		err  error
		want disconnectReason
	}{
		{closedWith(wire.StatusOK), closeClientBye},
		{netio.ErrPeerClosed, closePeerClosed},
		{fmt.Errorf("%w: %w", netio.ErrPeerClosed, syscall.ECONNRESET), closeIOError},
		{netio.ErrIdle, closeIdle},
		{netio.ErrPreAuthTimeout, closeSignInTimeout},
		{netio.ErrSlowConsumer, closeSlowConsumer},
		{closedWith(wire.StatusReplaced), closeReplaced},
		{netio.ErrServerClosed, closeShuttingDown},
		{netio.ErrTooLarge, closeProtocolError},
		{netio.ErrBadFrame, closeProtocolError},
		{closedWith(wire.StatusBadRequest), closeProtocolError},
		{closedWith(wire.StatusUnauthenticated), closeProtocolError},
		{closedWith(wire.StatusUnknownCommand), closeProtocolError},
		{closedWith(wire.StatusAuthFailed), closeAuthFailed},
		{closedWith(wire.StatusServerOffline), closeServerFull},
		{closedWith(wire.StatusInternal), closeOther},
		{errors.New("something else"), closeOther},
	}
	for _, c := range cases {
		if got := disconnectReasonOf(c.err); got != c.want {
			t.Errorf("%v: %s, want %s", c.err, disconnectLabels[got], disconnectLabels[c.want])
		}
		if n := testing.AllocsPerRun(100, func() { disconnectReasonOf(c.err) }); n != 0 {
			t.Errorf("%v: %v allocations", c.err, n)
		}
	}
}

// TestSessionLifecycleMetrics follows a session through /metrics:
// created, left empty (waiting for its TTL), deleted.
func TestSessionLifecycleMetrics(t *testing.T) {
	srv := startServer(t)
	ctx := testCtx(t)
	a := dialSDK(t, srv, "tcp", "a")
	for _, name := range []string{`covey_sessions_created_total`, `covey_sessions_deleted_total`, `covey_sessions_empty`} {
		if got := scrape(t, srv, name); got != 0 {
			t.Fatalf("%s before any session = %v", name, got)
		}
	}
	id, err := a.Create(ctx, 2, 4, time.Minute, nil)
	must(t, err)
	_, err = a.Create(ctx, 3, 4, 0, nil)
	must(t, err)
	must(t, a.Leave(ctx, 2, id))
	for name, want := range map[string]float64{`covey_sessions_created_total`: 2, `covey_sessions_deleted_total`: 0, `covey_sessions_empty`: 1} {
		if got := scrape(t, srv, name); got != want {
			t.Errorf("after two creates and a leave: %s = %v, want %v", name, got, want)
		}
	}
	must(t, srv.Sessions().Delete(ctx, id))
	for name, want := range map[string]float64{`covey_sessions_created_total`: 2, `covey_sessions_deleted_total`: 1, `covey_sessions_empty`: 0} {
		if got := scrape(t, srv, name); got != want {
			t.Errorf("after deleting the empty one: %s = %v, want %v", name, got, want)
		}
	}
}

// TestBuildInfo: covey_build_info is 1 with the Go version and a version
// and revision (devel and unknown in a test binary).
func TestBuildInfo(t *testing.T) {
	srv := startServer(t)
	pattern := `covey_build_info\{go_version="` + regexp.QuoteMeta(runtime.Version()) + `",revision="[^"]+",version="[^"]+"\}`
	if got := scrape(t, srv, pattern); got != 1 {
		t.Errorf("%s = %v, want 1", pattern, got)
	}
}
