package main

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/coveyhq/covey/internal/procstat"
)

// idleSettle is how long the idle scenario waits after the ramp before it
// reads the server's memory, so that the connections' setup is done.
const idleSettle = time.Second

// runIdle runs the idle scenario: Clients connections that only send
// their heartbeat pings. With ServerPIDs it measures the servers' memory
// per connection (their RSS after the ramp less before it, summed) and
// their CPU per connection over the window. Each ping is sent; each reply is delivered,
// with the round trip as its latency.
func (d *driver) runIdle(ctx context.Context) error {
	var before procstat.Sample
	if len(d.cfg.ServerPIDs) > 0 {
		before, _, _ = d.readServers()
	}
	// Only pings sent in the window count, and their replies.
	var windowStart atomic.Int64 // Stats clock
	windowStart.Store(1<<63 - 1)
	d.connectAll(ctx, func(p *player) {
		p.c.onPing = func() {
			if d.stats.now() >= windowStart.Load() {
				d.stats.sent.Add(1)
			}
		}
		p.c.onPong = func(rtt time.Duration) {
			if d.stats.now()-int64(rtt) >= windowStart.Load() {
				d.stats.record(p.idx, rtt)
			}
		}
	})
	connected := int(d.connected.Load())
	if connected == 0 {
		return errNothingToMeasure
	}
	sleepUntil(ctx, time.Now().Add(idleSettle))
	d.beginWindow()
	windowStart.Store(d.stats.now())
	after := d.winServer
	sleepUntil(ctx, time.Now().Add(d.cfg.Duration))
	d.stats.freeze()
	d.res.Sent = d.stats.sent.Load()
	d.endWindow()

	d.res.Delivered = d.stats.delivered()
	d.res.Connected = int(d.connected.Load())
	ir := &IdleResult{}
	if d.res.ServerCPUS != nil {
		ir.RSSBeforeBytes, ir.RSSConnectedBytes = before.RSS, after.RSS
		// Per connection from the peak over the window, not the RSS right
		// after the ramp: idle connections keep growing a little (buffers
		// taken lazily on the first heartbeats).
		if peak := max(after.RSS, *d.res.ServerRSSPeakBytes); peak > before.RSS {
			ir.RSSPerConnBytes = float64(peak-before.RSS) / float64(connected)
		}
		ir.CPUPerConnS = *d.res.ServerCPUS / float64(connected)
		ir.CPUPerConnPerSecUS = ir.CPUPerConnS / d.cfg.Duration.Seconds() * 1e6
	}
	d.res.Idle = ir
	return nil
}
