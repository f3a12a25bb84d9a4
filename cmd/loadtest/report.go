package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// Result is the outcome of a run, as written by -json. Counters cover the
// measurement window (and, for messages, the drain after it). Server
// figures are null without -server-pid; with several server processes
// (the nodes of a cluster) they are summed over them.
type Result struct {
	Scenario  string   `json:"scenario"`
	Transport string   `json:"transport"`
	Addrs     []string `json:"addrs"`
	// Clients is the number of players; Connected those still connected at
	// the end; Joined those that joined their session.
	Clients   int `json:"clients"`
	Connected int `json:"connected"`
	Joined    int `json:"joined,omitempty"`
	Sessions  int `json:"sessions"`
	Members   int `json:"members,omitempty"`

	Rate   float64 `json:"rate,omitempty"`   // messages per second per member (broadcast)
	Size   int     `json:"size,omitempty"`   // payload bytes (broadcast, max)
	Window int     `json:"window,omitempty"` // undelivered messages per sender (max)

	DurationS float64 `json:"duration_s"` // the measurement window
	ElapsedS  float64 `json:"elapsed_s"`  // the window plus the drain

	// Sent, Delivered and Lost: for broadcast and max, messages sent,
	// receipts (each message counts once per receiver), and receipts that
	// should have happened and did not; Expected = Delivered + Lost. For
	// the other scenarios see the package documentation.
	Sent      uint64 `json:"sent"`
	Expected  uint64 `json:"expected,omitempty"`
	Delivered uint64 `json:"delivered"`
	Lost      uint64 `json:"lost"`

	Errors       uint64            `json:"errors"`
	ErrorsByKind map[string]uint64 `json:"errors_by_kind"`

	DeliveredPerSec float64 `json:"delivered_per_sec"`
	Latency         Latency `json:"latency_us"`

	ServerPIDs              []int    `json:"server_pids,omitempty"`
	ServerCPUS              *float64 `json:"server_cpu_s"`
	ServerRSSBytes          *uint64  `json:"server_rss_bytes"`
	ServerRSSPeakBytes      *uint64  `json:"server_rss_peak_bytes"`
	DeliveriesPerServerCPUS *float64 `json:"deliveries_per_server_cpu_s,omitempty"`
	DriverCPUS              float64  `json:"driver_cpu_s"`
	// Servers has each server process's own figures, when there are
	// several: ServerCPUS is the sum of their CPUS, ServerRSSBytes of
	// their RSSBytes.
	Servers []ServerResult `json:"servers,omitempty"`

	Churn      *ChurnResult      `json:"churn,omitempty"`
	Properties *PropertiesResult `json:"properties,omitempty"`
	Idle       *IdleResult       `json:"idle,omitempty"`
}

// ServerResult is one server process's share of the server figures.
type ServerResult struct {
	PID      int     `json:"pid"`
	CPUS     float64 `json:"cpu_s"`     // over the window and the drain
	RSSBytes uint64  `json:"rss_bytes"` // at the end
}

// ChurnResult holds the churn scenario's own figures.
type ChurnResult struct {
	Connects        uint64  `json:"connects"`
	ConnectsPerSec  float64 `json:"connects_per_sec"`
	SessionsCreated uint64  `json:"sessions_created"`
	SessionsPerSec  float64 `json:"sessions_per_sec"`
	Joins           uint64  `json:"joins"`
	Kicks           uint64  `json:"kicks"`
	Leaves          uint64  `json:"leaves"`
}

// PropertiesResult holds the properties scenario's own figures.
type PropertiesResult struct {
	Updates    uint64 `json:"updates"`    // successful compare-and-sets
	Conflicts  uint64 `json:"conflicts"`  // compare-and-sets that lost a race
	Verified   int    `json:"verified"`   // sessions whose final counter was read
	Unverified int    `json:"unverified"` // sessions no member could read
	Mismatches int    `json:"mismatches"` // sessions whose counter is not their updates
}

// IdleResult holds the idle scenario's own figures (with -server-pid).
type IdleResult struct {
	RSSBeforeBytes     uint64  `json:"server_rss_before_bytes"`
	RSSConnectedBytes  uint64  `json:"server_rss_connected_bytes"`
	RSSPerConnBytes    float64 `json:"server_rss_per_conn_bytes"`
	CPUPerConnS        float64 `json:"server_cpu_s_per_conn"`
	CPUPerConnPerSecUS float64 `json:"server_cpu_us_per_conn_per_s"`
}

// failed reports whether the run found a correctness violation: lost,
// duplicated or reordered messages, or a property counter that does not
// match its updates.
func (r *Result) failed() bool {
	return r.Lost > 0 || r.ErrorsByKind[kindDuplicate] > 0 || r.ErrorsByKind[kindOutOfOrder] > 0 ||
		(r.Properties != nil && r.Properties.Mismatches > 0)
}

// writeJSON writes r to the file path, indented.
func (r *Result) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// writeSummary writes r for a person.
func (r *Result) writeSummary(w io.Writer) {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("scenario    %s over %s to %s\n", r.Scenario, r.Transport, strings.Join(r.Addrs, ","))
	switch r.Scenario {
	case scenarioBroadcast:
		p("shape       %d sessions x %d members, %g msgs/s each, %d-byte payloads\n", r.Sessions, r.Members, r.Rate, r.Size)
	case scenarioMax:
		p("shape       %d sessions x %d members, window %d, %d-byte payloads\n", r.Sessions, r.Members, r.Window, r.Size)
	case scenarioProperties:
		p("shape       %d sessions x %d members\n", r.Sessions, r.Members)
	case scenarioChurn:
		p("shape       %d players in groups of %d\n", r.Clients, r.Members)
	case scenarioIdle:
		p("shape       %d idle connections\n", r.Clients)
	}
	p("players     %d, %d connected at the end", r.Clients, r.Connected)
	if r.Joined > 0 {
		p(", %d joined", r.Joined)
	}
	p("\nwindow      %.1fs (%.1fs with the drain)\n", r.DurationS, r.ElapsedS)
	switch r.Scenario {
	case scenarioBroadcast, scenarioMax:
		p("messages    sent %d, expected %d receipts, delivered %d, lost %d\n", r.Sent, r.Expected, r.Delivered, r.Lost)
		p("throughput  %.0f deliveries/s\n", r.DeliveredPerSec)
	case scenarioChurn:
		c := r.Churn
		p("requests    sent %d, succeeded %d (%.0f/s)\n", r.Sent, r.Delivered, r.DeliveredPerSec)
		p("churn       %d sessions created (%.1f/s), %d connects (%.1f/s), %d joins, %d kicks, %d leaves\n",
			c.SessionsCreated, c.SessionsPerSec, c.Connects, c.ConnectsPerSec, c.Joins, c.Kicks, c.Leaves)
	case scenarioProperties:
		pr := r.Properties
		p("updates     %d compare-and-sets sent, %d succeeded (%.0f/s), %d lost a race\n", r.Sent, pr.Updates, r.DeliveredPerSec, pr.Conflicts)
		p("check       %d sessions verified, %d unverified, %d mismatches\n", pr.Verified, pr.Unverified, pr.Mismatches)
	case scenarioIdle:
		p("heartbeats  %d pings sent, %d answered\n", r.Sent, r.Delivered)
	}
	what := map[string]string{
		scenarioBroadcast: "delivery", scenarioMax: "delivery", scenarioChurn: "join",
		scenarioProperties: "compare-and-set", scenarioIdle: "ping",
	}[r.Scenario]
	l := r.Latency
	us := func(v int64) string { return fmtLatency(time.Duration(v) * time.Microsecond) }
	p("latency     %s: p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", what, us(l.P50), us(l.P90), us(l.P99), us(l.P999), us(l.Max))
	p("errors      %d", r.Errors)
	for _, k := range slices.Sorted(maps.Keys(r.ErrorsByKind)) {
		p("  %s=%d", k, r.ErrorsByKind[k])
	}
	p("\n")
	if r.ServerCPUS != nil {
		what := "server     "
		if len(r.Servers) > 1 {
			what = fmt.Sprintf("%d servers  ", len(r.Servers))
		}
		p("%s cpu %.2fs (%.0f%% of a core), rss %s final, %s peak", what,
			*r.ServerCPUS, 100**r.ServerCPUS/r.ElapsedS, fmtBytes(float64(*r.ServerRSSBytes)), fmtBytes(float64(*r.ServerRSSPeakBytes)))
		if r.DeliveriesPerServerCPUS != nil {
			p(", %.0f deliveries per cpu-second", *r.DeliveriesPerServerCPUS)
		}
		p("\n")
		for _, s := range r.Servers {
			p("  pid %-7d cpu %.2fs (%.0f%% of a core), rss %s\n", s.PID, s.CPUS, 100*s.CPUS/r.ElapsedS, fmtBytes(float64(s.RSSBytes)))
		}
	}
	if r.Idle != nil && r.ServerCPUS != nil {
		p("per conn    %s rss, %.1fµs cpu per second\n", fmtBytes(r.Idle.RSSPerConnBytes), r.Idle.CPUPerConnPerSecUS)
	}
	p("driver      cpu %.2fs", r.DriverCPUS)
	if r.Delivered > 0 && (r.Scenario == scenarioBroadcast || r.Scenario == scenarioMax) {
		p(" (%.2fµs per delivery)", r.DriverCPUS*1e6/float64(r.Delivered))
	}
	p("\n")
	if r.failed() {
		p("FAILED      correctness violation (lost, duplicated or reordered messages, or a property mismatch)\n")
	}
	io.WriteString(w, b.String())
}

// fmtBytes formats a byte count with a binary unit.
func fmtBytes(n float64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", n/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", n/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", n/(1<<10))
	}
	return fmt.Sprintf("%.0f B", n)
}
