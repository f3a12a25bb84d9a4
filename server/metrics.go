package server

import (
	"errors"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/coveyhq/covey/netio"
	"github.com/coveyhq/covey/wire"
)

// Command slots: one per built-in command, plus "unknown" (an undefined
// ver-0 command) and "app" (every application command), so that counting
// a command is an array index and an atomic add, with no map or label
// lookup per frame.
const (
	slotConn    = 0 // 0x0001..0x0003 -> 1..3
	slotSession = 3 // 0x0101..0x0117 -> 4..26
	slotUnknown = slotSession + int(wire.CmdDeleteProperty-wire.CmdCreate) + 2
	slotApp     = slotUnknown + 1
	cmdSlots    = slotApp + 1
	statusSlots = 64 // statuses >= 63 share the last slot
)

func cmdSlot(ver uint8, cmd wire.Cmd) int {
	switch {
	case ver != 0:
		return slotApp
	case cmd >= wire.CmdSignIn && cmd <= wire.CmdBye:
		return slotConn + int(cmd)
	case cmd >= wire.CmdCreate && cmd <= wire.CmdDeleteProperty:
		return slotSession + int(cmd-wire.CmdCreate+1)
	}
	return slotUnknown
}

func slotName(slot int) string {
	switch {
	case slot == slotApp:
		return "app"
	case slot == slotUnknown:
		return "unknown"
	case slot <= slotSession:
		return wire.Cmd(slot - slotConn).String()
	}
	return wire.Cmd(int(wire.CmdCreate) - 1 + slot - slotSession).String()
}

// statusLabels are the status label values: the status text in
// snake_case ("session_full").
var statusLabels = func() (l [statusSlots]string) {
	for i := range l {
		l[i] = strings.ReplaceAll(wire.Status(i).String(), " ", "_")
	}
	return l
}()

// metrics holds the server's own counters and exports them, with the
// session table's and the front ends', to Prometheus at scrape time.
type metrics struct {
	srv *Server

	commands [cmdSlots][statusSlots]atomic.Uint64
	latency  [cmdSlots]prometheus.Observer
	hist     *prometheus.HistogramVec

	conns       [3]atomic.Int64 // by netio.Transport
	opened      [3]atomic.Uint64
	slow        atomic.Uint64
	closed      [disconnectReasons]atomic.Uint64 // by disconnectReason
	build       [3]string                        // version, go_version, revision
	signIns     [signInFailures]atomic.Uint64    // refused sign-ins, by signInFailure
	forwarded   atomic.Uint64                    // client commands sent to the node owning their session
	rateLimited atomic.Uint64                    // requests refused by a connection's rate limits
	floodCut    atomic.Uint64                    // connections closed for flooding (Limits.FloodBurst)
	descs       map[string]*prometheus.Desc
	registry    *prometheus.Registry
}

func newMetrics(s *Server) *metrics {
	m := &metrics{srv: s, registry: prometheus.NewRegistry()}
	m.hist = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "covey_command_duration_seconds",
		Help:    "Time to run a client command on the server, from decoded frame to queued reply.",
		Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.025},
	}, []string{"cmd"})
	for slot := 1; slot < cmdSlots; slot++ {
		m.latency[slot] = m.hist.WithLabelValues(slotName(slot))
	}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	m.descs = map[string]*prometheus.Desc{
		"conns":          d("covey_connections", "Open client connections.", "transport"),
		"opened":         d("covey_connections_opened_total", "Client connections accepted.", "transport"),
		"refused":        d("covey_connections_refused_total", "Client connections refused because the node was full (max connections, the open-file bound on TCP, the handshake budget on KCP; TCP: closed on accept; KCP: first segment dropped, each retransmission counted).", "transport"),
		"sessions":       d("covey_sessions", "Sessions held by this node.", "type"),
		"members":        d("covey_session_members", "Memberships across this node's sessions."),
		"deliveries":     d("covey_deliveries_total", "Frames handed to session members' connections (broadcasts, messages, events)."),
		"commands":       d("covey_commands_total", "Client commands handled, by command and reply status.", "cmd", "status"),
		"slow":           d("covey_slow_consumer_disconnects_total", "Connections closed because they did not read fast enough."),
		"closed":         d("covey_disconnects_total", "Client connections closed, by reason (client_bye, peer_closed, idle_timeout, signin_timeout, slow_consumer, replaced, shutting_down, protocol_error, auth_failed, server_full, io_error, other). Connections refused when full are in covey_connections_refused_total instead.", "reason"),
		"created":        d("covey_sessions_created_total", "Sessions created on this node."),
		"deleted":        d("covey_sessions_deleted_total", "Sessions deleted on this node (empty TTL ran out, or deleted by the application)."),
		"empty":          d("covey_sessions_empty", "Sessions with no member, waiting for their empty TTL."),
		"build":          d("covey_build_info", "1, labelled with the Covey version, the Go version and the VCS revision of the binary.", "version", "go_version", "revision"),
		"signInFail":     d("covey_signin_failures_total", "Sign-ins refused, by reason (malformed, both, expired, bad_token, user_id_in_token_mode, no_token, token_in_dev_mode, bad_user_id, bad_version, replayed, replay_guard_full, credentials_on_ticket, not_encrypted, flooding).", "reason"),
		"rateLimited":    d("covey_rate_limited_total", "Client requests refused with RateLimited by their connection's command or byte rate."),
		"floodCut":       d("covey_flooding_disconnects_total", "Client connections closed for sending on after RateLimited, past their flood burst."),
		"forwarded":      d("covey_forwarded_commands_total", "Client commands sent to the node that owns their session."),
		"clusterMembers": d("covey_cluster_members", "Nodes the cluster membership counts alive, this one included (1 for a single node)."),
		"presence":       d("covey_presence_records", "Users this node holds presence records for, as their directory (about users/nodes on a settled cluster)."),
		"linkUp":         d("covey_mesh_link_up", "1 while the mesh link to the peer is up.", "peer"),
		"meshPending":    d("covey_mesh_pending_bytes", "Bytes queued on the mesh link to the peer, not yet sent.", "peer"),
		"meshFramesIn":   d("covey_mesh_frames_in_total", "Mesh frames received from the peer after its handshake.", "peer"),
		"meshFramesOut":  d("covey_mesh_frames_out_total", "Mesh frames sent to the peer after the handshake.", "peer"),
		"meshCalls":      d("covey_mesh_calls_total", "Requests to the peer answered, failed or timed out.", "peer"),
		"meshCallTime":   d("covey_mesh_call_seconds_total", "Summed round trip of the requests to the peer (divide by covey_mesh_calls_total for the mean).", "peer"),
		"meshLost":       d("covey_mesh_peer_lost_total", "Times the peer was lost (link closed or silent, or gone from the membership) and its state cleaned up.", "peer"),
		"framesIn":       d("covey_frames_in_total", "Frames received from clients."),
		"bytesIn":        d("covey_bytes_in_total", "Bytes received from clients, as on the wire."),
		"bytesOut":       d("covey_bytes_out_total", "Bytes written to clients, as on the wire."),
		"kcpDrops":       d("covey_kcp_socket_drops_total", "Datagrams the kernel dropped at the KCP socket because the server did not read them in time (its receive buffer was full; Linux only)."),
		"kcpDatagrams":   d("covey_kcp_datagrams_total", "Datagrams the KCP port read (in) and sent (out).", "dir"),
		"kcpReads":       d("covey_kcp_reads_total", "Reads (recvmmsg batches of up to 64) of the KCP port that returned datagrams: covey_kcp_datagrams_total{dir=\"in\"} per read near 64 means the reader is behind."),
		"kcpResent":      d("covey_kcp_retransmits_total", "KCP segments the node sent again (lost, or acknowledged later than the retransmission timeout)."),
		"kcpOverloads":   d("covey_kcp_overloads_total", "Times the KCP front end fell behind its socket by more than its overload wait; while it is, Broadcast and MessageTo from KCP clients are answered Overloaded (counted in covey_commands_total)."),
	}
	m.build = buildInfo()
	m.registry.MustRegister(m, m.hist)
	m.registry.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// observe counts one command and its latency. Called on the connection's
// network goroutine; lock-free.
func (m *metrics) observe(ver uint8, cmd wire.Cmd, status wire.Status, start time.Time) {
	slot := cmdSlot(ver, cmd)
	m.commands[slot][min(int(status), statusSlots-1)].Add(1)
	m.latency[slot].Observe(time.Since(start).Seconds())
}

// connOpened and connClosed track connections by transport (TCP = 1,
// KCP = 2 index the arrays).
func (m *metrics) connOpened(t netio.Transport) {
	m.conns[t%3].Add(1)
	m.opened[t%3].Add(1)
}

func (m *metrics) connClosed(t netio.Transport, why disconnectReason) {
	m.conns[t%3].Add(-1)
	m.closed[why].Add(1)
	if why == closeSlowConsumer {
		m.slow.Add(1)
	}
}

// disconnectReason is why a connection closed: the label of
// covey_disconnects_total. A bounded set: add a reason here.
type disconnectReason uint8

const (
	closeClientBye     disconnectReason = iota // the client sent Bye
	closePeerClosed                            // the client closed the connection without a Bye
	closeIdle                                  // nothing received for three heartbeats
	closeSignInTimeout                         // not signed in within Config.PreAuthTimeout
	closeSlowConsumer                          // its outbound queue overflowed, or its input while held (netio.ErrInboundHeld)
	closeReplaced                              // the user signed in on another connection
	closeShuttingDown                          // the node shut down
	closeProtocolError                         // bad frame, frame too large, bad request, command before sign-in
	closeAuthFailed                            // sign-in refused
	closeServerFull                            // closed with StatusServerOffline
	closeIOError                               // the socket failed
	closeOther                                 // closed by application code with another status
	disconnectReasons
)

var disconnectLabels = [disconnectReasons]string{
	closeClientBye:     "client_bye",
	closePeerClosed:    "peer_closed",
	closeIdle:          "idle_timeout",
	closeSignInTimeout: "signin_timeout",
	closeSlowConsumer:  "slow_consumer",
	closeReplaced:      "replaced",
	closeShuttingDown:  "shutting_down",
	closeProtocolError: "protocol_error",
	closeAuthFailed:    "auth_failed",
	closeServerFull:    "server_full",
	closeIOError:       "io_error",
	closeOther:         "other",
}

// disconnectReasonOf maps the error netio passes to OnClose (see
// netio.Handler) to a reason. It does not allocate: errors.Is on netio's
// sentinels, then the status given to Conn.Close.
func disconnectReasonOf(err error) disconnectReason {
	switch {
	case errors.Is(err, netio.ErrIdle):
		return closeIdle
	case errors.Is(err, netio.ErrPreAuthTimeout):
		return closeSignInTimeout
	case errors.Is(err, netio.ErrSlowConsumer), errors.Is(err, netio.ErrInboundHeld):
		return closeSlowConsumer
	case errors.Is(err, netio.ErrTooLarge), errors.Is(err, netio.ErrBadFrame):
		return closeProtocolError
	case errors.Is(err, netio.ErrServerClosed):
		return closeShuttingDown
	case err == netio.ErrPeerClosed:
		return closePeerClosed
	case errors.Is(err, netio.ErrPeerClosed):
		return closeIOError // wraps the socket's error
	case errors.Is(err, netio.ErrClosedByServer):
		st, _ := closeStatus(err)
		switch st {
		case wire.StatusOK:
			return closeClientBye
		case wire.StatusReplaced:
			return closeReplaced
		case wire.StatusShuttingDown:
			return closeShuttingDown
		case wire.StatusSlowConsumer:
			return closeSlowConsumer
		case wire.StatusAuthFailed:
			return closeAuthFailed
		case wire.StatusServerOffline:
			return closeServerFull
		case wire.StatusBadRequest, wire.StatusTooLarge, wire.StatusUnknownCommand, wire.StatusUnauthenticated, wire.StatusBadVersion:
			return closeProtocolError
		}
	}
	return closeOther
}

// closeStatus finds the wire.Status in the error tree of a Conn.Close
// error. Unlike errors.As it takes no pointer, so nothing escapes.
func closeStatus(err error) (wire.Status, bool) {
	for err != nil {
		switch e := err.(type) {
		case wire.Status:
			return e, true
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				if st, ok := closeStatus(inner); ok {
					return st, true
				}
			}
			return 0, false
		case interface{ Unwrap() error }:
			err = e.Unwrap()
		default:
			return 0, false
		}
	}
	return 0, false
}

// buildInfo returns the label values of covey_build_info: Covey's module
// version ("devel" when built from a checkout, or when unknown), the Go
// version, and the binary's vcs.revision ("unknown" without one).
func buildInfo() [3]string {
	version, revision := "devel", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		mod := &bi.Main
		for _, dep := range bi.Deps { // a game that embeds the server
			if mod.Path != coveyModule && dep.Path == coveyModule {
				mod = dep
			}
		}
		if mod.Path == coveyModule && mod.Version != "" && mod.Version != "(devel)" {
			version = mod.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				revision = s.Value
			}
		}
	}
	return [3]string{version, runtime.Version(), revision}
}

const coveyModule = "github.com/coveyhq/covey"

// signInFailed counts a refused sign-in. Lock-free.
func (m *metrics) signInFailed(why signInFailure) { m.signIns[why].Add(1) }

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range m.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it reads the counters.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	gauge := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(m.descs[name], prometheus.GaugeValue, v, labels...)
	}
	counter := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(m.descs[name], prometheus.CounterValue, v, labels...)
	}
	for _, t := range []netio.Transport{netio.TCP, netio.KCP} {
		gauge("conns", float64(m.conns[t%3].Load()), t.String())
		counter("opened", float64(m.opened[t%3].Load()), t.String())
	}
	st := m.srv.table.Stats()
	for typ, n := range st.SessionsByType {
		gauge("sessions", float64(n), strconv.Itoa(int(typ)))
	}
	gauge("members", float64(st.Members))
	counter("deliveries", float64(st.Deliveries))
	var frames uint64 // every frame is counted as one command
	for slot := 1; slot < cmdSlots; slot++ {
		for status := range statusSlots {
			if n := m.commands[slot][status].Load(); n != 0 {
				counter("commands", float64(n), slotName(slot), statusLabels[status])
				frames += n
			}
		}
	}
	counter("slow", float64(m.slow.Load()))
	counter("forwarded", float64(m.forwarded.Load()))
	counter("rateLimited", float64(m.rateLimited.Load()))
	counter("floodCut", float64(m.floodCut.Load()))
	for why := range disconnectReasons {
		counter("closed", float64(m.closed[why].Load()), disconnectLabels[why])
	}
	counter("created", float64(st.Created))
	counter("deleted", float64(st.Deleted))
	gauge("empty", float64(st.Empty))
	gauge("build", 1, m.build[:]...)
	for why := range signInFailures {
		counter("signInFail", float64(m.signIns[why].Load()), signInFailureInfo[why].label)
	}
	counter("framesIn", float64(frames))
	if node := m.srv.node; node != nil {
		gauge("clusterMembers", float64(node.Members()))
		gauge("presence", float64(node.DirectoryRecords()))
		for _, p := range node.Peers() {
			up := 0.0
			if p.LinkUp {
				up = 1
			}
			gauge("linkUp", up, p.Name)
			gauge("meshPending", float64(p.Pending), p.Name)
			counter("meshFramesIn", float64(p.FramesIn), p.Name)
			counter("meshFramesOut", float64(p.FramesOut), p.Name)
			counter("meshCalls", float64(p.Calls), p.Name)
			counter("meshCallTime", p.CallTime.Seconds(), p.Name)
			counter("meshLost", float64(p.Lost), p.Name)
		}
	} else {
		gauge("clusterMembers", 1)
	}
	if m.srv.net != nil {
		ns := m.srv.net.Stats()
		counter("bytesIn", float64(ns.BytesIn))
		counter("bytesOut", float64(ns.BytesOut))
		counter("refused", float64(ns.RefusedTCP), netio.TCP.String())
		counter("refused", float64(ns.RefusedKCP), netio.KCP.String())
		counter("kcpDrops", float64(ns.KCPSocketDrops))
		counter("kcpOverloads", float64(ns.KCPOverloads))
		counter("kcpDatagrams", float64(ns.KCPDatagramsIn), "in")
		counter("kcpDatagrams", float64(ns.KCPDatagramsOut), "out")
		counter("kcpReads", float64(ns.KCPReads))
		counter("kcpResent", float64(ns.KCPResent))
	}
}
