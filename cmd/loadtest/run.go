package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/coveyhq/covey/auth"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/coveyhq/covey/internal/procstat"
)

// closeConcurrency bounds how many connections close at once at the end.
const closeConcurrency = 256

// errNothingToMeasure is returned when no player could take part.
var errNothingToMeasure = errors.New("loadtest: no player connected and joined: nothing to measure")

// player is one simulated player. Its fields are set up before any
// goroutine that reads them starts, except c and joined, which the ramp
// sets and which only the driver's own goroutine reads afterwards (and a
// sender's mu guards for the others, see sender).
type player struct {
	idx  int    // index in the run: the sender index in payloads
	user string // user ID
	addr string

	sess *session // broadcast, max, properties: its session
	slot int      // its index in sess.members
	t    *tracker // broadcast, max: what it received
	snd  *sender  // broadcast, max: what it sent

	c      *conn // nil until connected; nil if it could not connect
	joined bool  // it created or joined its session
}

// session is one session of the broadcast, max or properties scenarios.
type session struct {
	idx     int
	id      string
	members []*player
}

// Phases of a run, for the progress line.
const (
	phaseRamp  = "ramp"
	phaseRun   = "run"
	phaseDrain = "drain"
	phaseDone  = "done"
)

// driver runs one scenario. Its methods run on the goroutine that called
// run unless they say otherwise.
type driver struct {
	cfg      Config
	signer   *auth.Signer // issues the players' tokens; nil in development mode
	stats    *Stats
	players  []*player
	sessions []*session

	connected atomic.Int64 // players connected now
	phase     atomic.Pointer[string]

	// The measurement window.
	winStart     time.Time
	winDriverCPU time.Duration
	winServer    procstat.Sample   // summed over cfg.ServerPIDs
	winServers   []procstat.Sample // each of cfg.ServerPIDs
	rssPeak      atomic.Uint64     // of the sum, sampled by the progress goroutine during the window

	res *Result
}

// run runs the scenario cfg describes and returns its result. The result
// is returned with a nil error even when it shows errors or losses; the
// error is for runs that could not take place at all.
func run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	d := newDriver(cfg)
	for _, pid := range cfg.ServerPIDs {
		if _, err := d.readProcess(pid); err != nil {
			return nil, fmt.Errorf("loadtest: -server-pid %d: %w", pid, err)
		}
	}
	stop := make(chan struct{})
	var progressDone sync.WaitGroup
	progressDone.Go(func() { d.progress(stop) })
	defer func() {
		close(stop)
		progressDone.Wait()
	}()
	defer d.closeAll()

	var err error
	switch cfg.Scenario {
	case scenarioBroadcast, scenarioMax:
		err = d.runMessaging(ctx)
	case scenarioChurn:
		err = d.runChurn(ctx)
	case scenarioProperties:
		err = d.runProperties(ctx)
	case scenarioIdle:
		err = d.runIdle(ctx)
	}
	d.setPhase(phaseDone)
	if err != nil {
		return nil, err
	}
	d.res.ErrorsByKind, d.res.Errors = d.stats.errors()
	d.res.Latency = d.stats.latency()
	if d.res.DurationS > 0 {
		d.res.DeliveredPerSec = float64(d.res.Delivered) / d.res.DurationS
	}
	if d.res.ServerCPUS != nil && *d.res.ServerCPUS > 0 {
		v := float64(d.res.Delivered) / *d.res.ServerCPUS
		d.res.DeliveriesPerServerCPUS = &v
	}
	return d.res, nil
}

// newDriver lays out the players and sessions of cfg.
func newDriver(cfg Config) *driver {
	if cfg.readProcess == nil {
		cfg.readProcess = procstat.Read
	}
	d := &driver{cfg: cfg, stats: newStats(cfg.Progress != nil)}
	if cfg.Secret != "" {
		d.signer, _ = auth.NewSigner([]byte(cfg.Secret)) // check() saw its length
	}
	d.setPhase(phaseRamp)
	runID := make([]byte, 3)
	rand.Read(runID)
	prefix := "lt-" + hex.EncodeToString(runID) + "-"

	n := cfg.players()
	d.players = make([]*player, n)
	for i := range d.players {
		d.players[i] = &player{idx: i, user: prefix + strconv.Itoa(i)}
	}
	group := 1 // players that share an address under -spread session
	switch cfg.Scenario {
	case scenarioBroadcast, scenarioMax, scenarioProperties:
		group = cfg.Members
		d.sessions = make([]*session, cfg.Sessions)
		for j := range d.sessions {
			s := &session{idx: j, members: d.players[j*cfg.Members : (j+1)*cfg.Members]}
			d.sessions[j] = s
			for k, p := range s.members {
				p.sess, p.slot = s, k
				if cfg.Scenario != scenarioProperties {
					p.t = newTracker(cfg.Members)
					p.snd = newSender(p, cfg)
				}
			}
		}
	case scenarioChurn:
		group = cfg.Members
	}
	if cfg.Spread == spreadPlayer {
		group = 1
	}
	for i, p := range d.players {
		p.addr = cfg.Addrs[i/group%len(cfg.Addrs)]
	}

	d.res = &Result{
		Scenario:  cfg.Scenario,
		Transport: cfg.Transport,
		Addrs:     cfg.Addrs,
		Clients:   n,

		ServerPIDs: cfg.ServerPIDs,
	}
	switch cfg.Scenario {
	case scenarioBroadcast, scenarioMax, scenarioProperties:
		d.res.Sessions, d.res.Members = cfg.Sessions, cfg.Members
	case scenarioChurn:
		d.res.Members = cfg.Members
	}
	switch cfg.Scenario {
	case scenarioBroadcast:
		d.res.Rate, d.res.Size = cfg.Rate, cfg.Size
	case scenarioMax:
		d.res.Window, d.res.Size = cfg.Window, cfg.Size
	}
	return d
}

func (d *driver) setPhase(p string) { d.phase.Store(&p) }

// connectAll connects every player, RampBatch at a time: the players of
// a batch dial and sign in concurrently, and the next batch starts when
// they are all done, so that thousands of connects do not storm the
// server's accept queue. A player that cannot connect keeps a nil conn and
// its error is counted. The ramp is bounded by RampTimeout.
func (d *driver) connectAll(ctx context.Context, setup func(p *player)) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.RampTimeout)
	defer cancel()
	for i := 0; i < len(d.players) && ctx.Err() == nil; i += d.cfg.RampBatch {
		var wg sync.WaitGroup
		for _, p := range d.players[i:min(i+d.cfg.RampBatch, len(d.players))] {
			wg.Go(func() {
				if err := d.connect(ctx, p, setup); err != nil {
					d.stats.countError(err)
				}
			})
		}
		wg.Wait()
	}
}

// connect dials and signs in p, sets p.c and the conn's callbacks (setup,
// if not nil, adds its own: it sees p with p.c set) and starts the conn.
// It may run on any goroutine, one at a time per player.
func (d *driver) connect(ctx context.Context, p *player, setup func(p *player)) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
	defer cancel()
	dc := dialConfig{
		Network:    d.cfg.Transport,
		Addr:       p.addr,
		UserID:     p.user,
		ReadBuffer: d.readBuffer(),
	}
	if d.signer != nil {
		// A token per connection, as a backend hands out: it outlives any
		// run (reconnects of churn get a new one).
		tok, err := d.signer.Issue(p.user, time.Now().Add(time.Hour))
		if err != nil {
			return err
		}
		dc.Token, dc.Plaintext, dc.UserID = tok, d.cfg.Plaintext, ""
	}
	c, err := dial(ctx, dc)
	if err != nil {
		return err
	}
	c.onError = d.stats.countError
	c.onFail = d.stats.countError
	c.onDown = func() { d.connected.Add(-1) }
	p.c = c
	if setup != nil {
		setup(p)
	}
	d.connected.Add(1)
	c.start()
	return nil
}

// readBuffer returns the size of each connection's reads: large where
// messages flow, small where thousands of connections mostly wait.
func (d *driver) readBuffer() int {
	switch d.cfg.Scenario {
	case scenarioBroadcast, scenarioMax:
		return 16 << 10
	}
	return 2 << 10
}

// disconnect closes p's connection gracefully, if it has one.
func (d *driver) disconnect(p *player) {
	if p.c != nil {
		p.c.close()
	}
}

// closeAll closes every connection, closeConcurrency at a time.
func (d *driver) closeAll() {
	sem := make(chan struct{}, closeConcurrency)
	var wg sync.WaitGroup
	for _, p := range d.players {
		if p.c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			d.disconnect(p)
		})
	}
	wg.Wait()
}

// readProcess reads one server process (cfg.readProcess).
func (d *driver) readProcess(pid int) (procstat.Sample, error) { return d.cfg.readProcess(pid) }

// readServers reads every process of cfg.ServerPIDs, one after the other:
// each one's CPU time and RSS, in the order of the PIDs, and their sum.
// It fails if one of them cannot be read (it exited). With no PID it
// returns zeros. It may run on any goroutine.
func (d *driver) readServers() (sum procstat.Sample, each []procstat.Sample, err error) {
	each = make([]procstat.Sample, len(d.cfg.ServerPIDs))
	for i, pid := range d.cfg.ServerPIDs {
		s, err := d.readProcess(pid)
		if err != nil {
			return procstat.Sample{}, nil, fmt.Errorf("loadtest: server %d: %w", pid, err)
		}
		each[i] = s
		sum.CPU += s.CPU
		sum.RSS += s.RSS
	}
	return sum, each, nil
}

// beginWindow starts the measurement window: it reads the servers' and
// the driver's CPU time.
func (d *driver) beginWindow() {
	if len(d.cfg.ServerPIDs) > 0 {
		if s, each, err := d.readServers(); err == nil {
			d.winServer, d.winServers = s, each
			d.rssPeak.Store(s.RSS)
		}
	}
	d.winDriverCPU = procstat.SelfCPU()
	d.winStart = time.Now()
	d.setPhase(phaseRun)
}

// endWindow ends the measurement window and puts its duration and the CPU
// and memory figures in the result: the servers' summed, and each one's
// when there are several. Without a server figure from the start of the
// window, or if a server cannot be read now, there are none.
func (d *driver) endWindow() {
	d.res.DurationS = d.cfg.Duration.Seconds()
	d.res.ElapsedS = time.Since(d.winStart).Seconds()
	d.res.DriverCPUS = (procstat.SelfCPU() - d.winDriverCPU).Seconds()
	if len(d.cfg.ServerPIDs) == 0 || d.winServers == nil {
		return
	}
	s, each, err := d.readServers()
	if err != nil {
		return
	}
	cpu := (s.CPU - d.winServer.CPU).Seconds()
	peak := max(d.rssPeak.Load(), s.RSS)
	d.res.ServerCPUS = &cpu
	d.res.ServerRSSBytes = &s.RSS
	d.res.ServerRSSPeakBytes = &peak
	if len(each) > 1 {
		d.res.Servers = make([]ServerResult, len(each))
		for i, e := range each {
			d.res.Servers[i] = ServerResult{PID: d.cfg.ServerPIDs[i], CPUS: (e.CPU - d.winServers[i].CPU).Seconds(), RSSBytes: e.RSS}
		}
	}
}

// progress reports, every second until stop is closed, a progress line on
// cfg.Progress and samples the server's RSS for its peak. It runs on its
// own goroutine.
func (d *driver) progress(stop <-chan struct{}) {
	w := d.cfg.Progress
	tty := isTerminal(w)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	scratch := hdr.New(histLowest, histHighest, histDigits)
	start := time.Now()
	var lastSent, lastDelivered uint64
	for {
		select {
		case <-stop:
			if tty {
				fmt.Fprintln(w)
			}
			return
		case <-t.C:
		}
		phase := *d.phase.Load()
		if len(d.cfg.ServerPIDs) > 0 && (phase == phaseRun || phase == phaseDrain) {
			if s, _, err := d.readServers(); err == nil && s.RSS > d.rssPeak.Load() {
				d.rssPeak.Store(s.RSS)
			}
		}
		if w == nil {
			continue // only the RSS peak to sample
		}
		sent, delivered := d.stats.sentTotal(), d.stats.delivered()
		p99 := d.stats.tickLatency(99, scratch)
		_, errs := d.stats.errors()
		line := fmt.Sprintf("%6.1fs %-5s connected %d/%d  sent %d/s  delivered %d/s  p99 %s  errors %d",
			time.Since(start).Seconds(), phase, d.connected.Load(), len(d.players),
			sent-min(lastSent, sent), delivered-min(lastDelivered, delivered), fmtLatency(p99), errs)
		lastSent, lastDelivered = sent, delivered
		if tty {
			fmt.Fprint(w, "\r\033[K"+line)
		} else {
			fmt.Fprintln(w, line)
		}
	}
}

// isTerminal reports whether w is a terminal, where the progress line
// rewrites itself instead of scrolling.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// fmtLatency formats a latency with a precision that suits it.
func fmtLatency(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return strconv.FormatInt(d.Microseconds(), 10) + "µs"
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + "ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
}

// sleepUntil waits until t or ctx's end, and reports whether t came.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
