package server

import (
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
	slotSession = 3 // 0x0101..0x0116 -> 4..25
	slotUnknown = slotSession + int(wire.CmdAcceptInvite-wire.CmdCreate) + 2
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
	case cmd >= wire.CmdCreate && cmd <= wire.CmdAcceptInvite:
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

	conns    [3]atomic.Int64 // by netio.Transport
	opened   [3]atomic.Uint64
	slow     atomic.Uint64
	signIns  [signInFailures]atomic.Uint64 // refused sign-ins, by signInFailure
	descs    map[string]*prometheus.Desc
	registry *prometheus.Registry
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
		"conns":      d("covey_connections", "Open client connections.", "transport"),
		"opened":     d("covey_connections_opened_total", "Client connections accepted.", "transport"),
		"refused":    d("covey_connections_refused_total", "Client connections refused because the node was full (max connections, the open-file bound on TCP, the handshake budget on KCP; TCP: closed on accept; KCP: first segment dropped, each retransmission counted).", "transport"),
		"sessions":   d("covey_sessions", "Sessions held by this node.", "type"),
		"members":    d("covey_session_members", "Memberships across this node's sessions."),
		"deliveries": d("covey_deliveries_total", "Frames handed to session members' connections (broadcasts, messages, events)."),
		"commands":   d("covey_commands_total", "Client commands handled, by command and reply status.", "cmd", "status"),
		"slow":       d("covey_slow_consumer_disconnects_total", "Connections closed because they did not read fast enough."),
		"signInFail": d("covey_signin_failures_total", "Sign-ins refused, by reason (malformed, both, expired, bad_token, user_id_in_token_mode, no_token, token_in_dev_mode, bad_user_id).", "reason"),
		"framesIn":   d("covey_frames_in_total", "Frames received from clients."),
		"bytesIn":    d("covey_bytes_in_total", "Bytes received from clients, as on the wire."),
		"bytesOut":   d("covey_bytes_out_total", "Bytes written to clients, as on the wire."),
	}
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

func (m *metrics) connClosed(t netio.Transport, slowConsumer bool) {
	m.conns[t%3].Add(-1)
	if slowConsumer {
		m.slow.Add(1)
	}
}

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
	for why := range signInFailures {
		counter("signInFail", float64(m.signIns[why].Load()), signInFailureInfo[why].label)
	}
	counter("framesIn", float64(frames))
	if m.srv.net != nil {
		ns := m.srv.net.Stats()
		counter("bytesIn", float64(ns.BytesIn))
		counter("bytesOut", float64(ns.BytesOut))
		counter("refused", float64(ns.RefusedTCP), netio.TCP.String())
		counter("refused", float64(ns.RefusedKCP), netio.KCP.String())
	}
}
