package kcpconn

import (
	"sync"
	"time"

	"github.com/coveyhq/covey/internal/kcptune"
)

// updater runs KCP's timers for every Conn of the process that has data
// in flight, every kcptune.DefaultInterval, on one goroutine. The
// goroutine starts with the first such Conn and exits when none is left,
// so an idle process runs nothing; a Conn joins the list from Write and
// leaves it once all it sent is acknowledged (or it stopped).
type updater struct {
	interval time.Duration

	mu      sync.Mutex
	conns   []*Conn
	running bool
}

var defaultUpdater = &updater{interval: kcptune.DefaultInterval}

// add puts c in the list, starting the goroutine if it is not running.
// The caller holds c.mu and has set c.active.
func (u *updater) add(c *Conn) {
	u.mu.Lock()
	u.conns = append(u.conns, c)
	start := !u.running
	u.running = true
	u.mu.Unlock()
	if start {
		go u.run()
	}
}

// run updates the listed connections every interval until the list is
// empty.
func (u *updater) run() {
	var batch []*Conn
	for {
		time.Sleep(u.interval)
		u.mu.Lock()
		batch, u.conns = u.conns, batch[:0]
		if len(batch) == 0 {
			u.running = false
			u.mu.Unlock()
			return
		}
		u.mu.Unlock()
		keep := batch[:0]
		for _, c := range batch {
			if c.update() {
				keep = append(keep, c)
			}
		}
		clear(batch[len(keep):])
		u.mu.Lock()
		u.conns = append(u.conns, keep...) // after those added meanwhile
		u.mu.Unlock()
		batch = keep[:0]
	}
}
