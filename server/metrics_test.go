package server

import (
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"

	"github.com/coveyhq/covey/clientsdk"
	"github.com/coveyhq/covey/session"
	"github.com/coveyhq/covey/wire"
)

// scrape returns the value of the metric line matching pattern (a regexp
// for the name and labels), or -1 if there is none.
func scrape(t *testing.T, srv *Server, pattern string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + srv.HTTPAddr().String() + "/metrics")
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

// TestPprofFlag checks that profiles are served only when asked for.
func TestPprofFlag(t *testing.T) {
	for _, on := range []bool{false, true} {
		srv := startServer(t, func(c *Config) { c.Pprof = on })
		resp, err := http.Get("http://" + srv.HTTPAddr().String() + "/debug/pprof/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if (resp.StatusCode == http.StatusOK) != on {
			t.Errorf("pprof %v: status %d", on, resp.StatusCode)
		}
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
