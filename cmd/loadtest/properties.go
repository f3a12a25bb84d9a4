package main

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coveyhq/covey/wire"
)

// counterKey is the session property the properties scenario races on.
const counterKey = "counter"

// runProperties runs the properties scenario: in every session, all
// members race to increment counterKey by compare-and-set until the window
// ends; then each session's counter must equal its successful updates.
// A compare-and-set is sent; a successful one is delivered; latencies are
// the compare-and-set round trips, lost races included.
func (d *driver) runProperties(ctx context.Context) error {
	d.connectAll(ctx, nil)
	d.formSessions(ctx, []wire.KeyValue{{Key: counterKey, Value: wire.IntValue(0)}})
	if d.joinedPlayers() == 0 {
		return errNothingToMeasure
	}
	// Per session: successful updates, and updates whose outcome is
	// unknown (no reply): each may or may not have been applied.
	success := make([]atomic.Int64, len(d.sessions))
	unknown := make([]atomic.Int64, len(d.sessions))
	var conflicts atomic.Uint64

	d.beginWindow()
	end := time.Now().Add(d.cfg.Duration)
	var wg sync.WaitGroup
	for _, p := range d.players {
		if !p.joined {
			continue
		}
		wg.Go(func() {
			for time.Now().Before(end) && ctx.Err() == nil {
				switch d.update(ctx, p) {
				case updateDone:
					success[p.sess.idx].Add(1)
				case updateRaced:
					conflicts.Add(1)
				case updateUnknown:
					unknown[p.sess.idx].Add(1)
				case updateStop:
					return
				}
			}
		})
	}
	wg.Wait()
	d.stats.freeze()
	d.endWindow()

	pr := &PropertiesResult{Conflicts: conflicts.Load()}
	for _, s := range d.sessions {
		if s.joinedCount() == 0 {
			continue
		}
		ok, unk := success[s.idx].Load(), unknown[s.idx].Load()
		pr.Updates += uint64(ok)
		final, err := d.readCounter(ctx, s)
		if err != nil {
			d.stats.addError(kindUnverified)
			pr.Unverified++
			continue
		}
		if final < ok || final > ok+unk {
			d.stats.addError(kindMismatch)
			pr.Mismatches++
		}
		pr.Verified++
	}
	d.res.Properties = pr
	d.res.Sent, d.res.Delivered = d.stats.sentTotal(), d.stats.delivered()
	d.res.Connected = int(d.connected.Load())
	d.res.Joined = d.joinedPlayers()
	return nil
}

// updateOutcome is the result of one increment attempt.
type updateOutcome uint8

const (
	updateDone    updateOutcome = iota // the compare-and-set succeeded
	updateRaced                        // another member changed the counter first
	updateFailed                       // an error before the compare-and-set, or a refusal
	updateUnknown                      // the compare-and-set got no reply: it may have been applied
	updateStop                         // the connection is gone
)

// update reads the counter and compare-and-sets it to one more.
func (d *driver) update(ctx context.Context, p *player) updateOutcome {
	cctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
	defer cancel()
	v, err := opGetInt(cctx, p.c, counterKey)
	if err != nil {
		d.stats.countError(err)
		if errors.Is(err, errClosed) {
			return updateStop
		}
		return updateFailed
	}
	t0 := time.Now()
	err = opCompareAndSetInt(cctx, p.c, counterKey, v, v+1)
	lat := time.Since(t0)
	switch {
	case err == nil:
		d.stats.completed(p.idx, true, lat)
		return updateDone
	case errors.Is(err, wire.StatusCompareFailed):
		d.stats.completed(p.idx, false, lat)
		return updateRaced
	}
	d.stats.completed(p.idx, false, -1)
	d.stats.countError(err)
	var st wire.Status
	if errors.As(err, &st) {
		return updateFailed // refused: not applied
	}
	return updateUnknown // timed out or disconnected: a later read stops the loop
}

// readCounter reads a session's final counter through any of its members
// still connected.
func (d *driver) readCounter(ctx context.Context, s *session) (int64, error) {
	err := errClosed
	for _, p := range s.members {
		if !p.joined || !p.c.alive() {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
		var v int64
		v, err = opGetInt(cctx, p.c, counterKey)
		cancel()
		if err == nil {
			return v, nil
		}
	}
	return 0, err
}
