package main

import (
	"context"
	"sync"

	"github.com/coveyhq/covey/wire"
)

// formSessions creates and fills the sessions: in each, the first member
// that is connected creates it (with props), then the other connected
// members join, one after the other. Sessions are formed concurrently,
// about RampBatch players' worth at a time. A member whose request fails
// is left out (its error is counted); if the creation fails, the next
// member tries. Bounded by RampTimeout.
func (d *driver) formSessions(ctx context.Context, props []wire.KeyValue) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.RampTimeout)
	defer cancel()
	sem := make(chan struct{}, max(1, d.cfg.RampBatch/d.cfg.Members))
	var wg sync.WaitGroup
	for _, s := range d.sessions {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			d.formSession(ctx, s, props)
		})
	}
	wg.Wait()
}

// formSession forms one session; see formSessions.
func (d *driver) formSession(ctx context.Context, s *session, props []wire.KeyValue) {
	for _, p := range s.members {
		if p.c == nil || ctx.Err() != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
		var err error
		if s.id == "" {
			s.id, err = opCreate(cctx, p.c, d.cfg.Members, props)
		} else {
			err = opJoin(cctx, p.c, s.id)
		}
		cancel()
		if err != nil {
			d.stats.countError(err)
			continue
		}
		p.joined = true
	}
}

// joinedPlayers returns how many players joined their session.
func (d *driver) joinedPlayers() int {
	n := 0
	for _, p := range d.players {
		if p.joined {
			n++
		}
	}
	return n
}
