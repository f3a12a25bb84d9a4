package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// churnCounts are the churn scenario's own figures.
type churnCounts struct {
	connects, created, joins, kicks, leaves atomic.Uint64
}

// runChurn runs the churn scenario: Clients players in groups of Members,
// each group looping connect, create, join, kick, leave, disconnect until
// the window ends. The groups start RampBatch players' worth at a time;
// the window starts when all have started and the rounds of the ramp are
// not counted, nor what completes after the window. Every request counts
// as sent when it completes, and as delivered if it succeeded; the
// latencies are the joins'.
func (d *driver) runChurn(ctx context.Context) error {
	m := d.cfg.Members
	groups := len(d.players) / m
	var counts churnCounts
	var end atomic.Int64 // Stats clock
	end.Store(1<<63 - 1)
	perBatch := max(1, d.cfg.RampBatch/m)
	var wg sync.WaitGroup
	for g := range groups {
		if g > 0 && g%perBatch == 0 {
			time.Sleep(100 * time.Millisecond) // let the batch connect
		}
		wg.Go(func() {
			ps := d.players[g*m : (g+1)*m]
			for d.stats.now() < end.Load() && ctx.Err() == nil {
				d.churnRound(ctx, ps, &counts)
			}
		})
	}
	d.stats.reset()
	c0 := counts.snapshot()
	d.beginWindow()
	end.Store(d.stats.now() + int64(d.cfg.Duration))
	sleepUntil(ctx, time.Now().Add(d.cfg.Duration))
	d.stats.freeze()
	c1 := counts.snapshot()
	d.setPhase(phaseDrain) // the last rounds finish, uncounted
	wg.Wait()
	d.endWindow()

	d.res.Sent, d.res.Delivered = d.stats.sentTotal(), d.stats.delivered()
	secs := d.cfg.Duration.Seconds()
	c := &ChurnResult{
		Connects:        c1.connects - c0.connects,
		SessionsCreated: c1.created - c0.created,
		Joins:           c1.joins - c0.joins,
		Kicks:           c1.kicks - c0.kicks,
		Leaves:          c1.leaves - c0.leaves,
	}
	c.SessionsPerSec = float64(c.SessionsCreated) / secs
	c.ConnectsPerSec = float64(c.Connects) / secs
	d.res.Churn = c
	return nil
}

// churnSnapshot is a reading of churnCounts.
type churnSnapshot struct{ connects, created, joins, kicks, leaves uint64 }

func (c *churnCounts) snapshot() churnSnapshot {
	return churnSnapshot{c.connects.Load(), c.created.Load(), c.joins.Load(), c.kicks.Load(), c.leaves.Load()}
}

// churnRound is one round of a churn group: its players connect, the
// first creates a session, the others join it, the creator kicks the last
// one, the others leave, and all disconnect. A player whose step fails
// skips the rest of its steps.
func (d *driver) churnRound(ctx context.Context, ps []*player, counts *churnCounts) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() {
			p.c = nil
			if err := d.connect(ctx, p, nil); err != nil {
				d.stats.countError(err)
				return
			}
			counts.connects.Add(1)
		})
	}
	wg.Wait()
	defer func() {
		for _, p := range ps {
			wg.Go(func() { d.disconnect(p) })
		}
		wg.Wait()
	}()

	owner := ps[0]
	if owner.c == nil {
		return
	}
	// do runs one request of player p and counts it, with its latency if
	// timed (a failure's latency is never recorded).
	do := func(p *player, timed bool, f func(ctx context.Context) error) bool {
		cctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
		defer cancel()
		t0 := time.Now()
		err := f(cctx)
		lat := time.Duration(-1)
		if timed && err == nil {
			lat = time.Since(t0)
		}
		d.stats.completed(p.idx, err == nil, lat)
		d.stats.countError(err)
		return err == nil
	}
	var id string
	if !do(owner, false, func(ctx context.Context) (err error) {
		id, err = opCreate(ctx, owner.c, len(ps), nil)
		return err
	}) {
		return
	}
	counts.created.Add(1)
	var members []*player
	for _, p := range ps[1:] {
		if p.c == nil {
			continue
		}
		if !do(p, true, func(ctx context.Context) error { return opJoin(ctx, p.c, id) }) {
			continue
		}
		counts.joins.Add(1)
		members = append(members, p)
	}
	if len(members) > 0 {
		last := members[len(members)-1]
		if do(owner, false, func(ctx context.Context) error { return opKick(ctx, owner.c, last.user) }) {
			counts.kicks.Add(1)
			members = members[:len(members)-1]
		}
	}
	for _, p := range append(members, owner) {
		if do(p, false, func(ctx context.Context) error { return opLeave(ctx, p.c, id) }) {
			counts.leaves.Add(1)
		}
	}
}
