package server

import (
	"sync"
	"time"
)

// maxBarred bounds the users a node bars at once (floodBar): 64 Ki
// entries of a user ID and a time, at most about 12 MiB.
const maxBarred = 1 << 16

// floodBar remembers the users whose connection was closed for flooding
// (Limits.FloodBurst) and refuses their sign-ins for Limits.FloodBarTime,
// so that reconnecting does not buy a flooder a new burst every time: a
// connection's buckets start full. Sign-ins and cuts are rare, so one
// mutex guards it. In a cluster each node bars on its own. Safe for
// concurrent use.
type floodBar struct {
	mu    sync.Mutex
	until map[string]time.Time
}

// bar refuses uid's sign-ins until now+d. When maxBarred users are barred
// it first forgets those whose time is up; if none is, uid is not barred
// (the bar is a brake, not a guarantee: the connection was cut anyway).
func (b *floodBar) bar(uid string, now time.Time, d time.Duration) {
	if d <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.until == nil {
		b.until = make(map[string]time.Time)
	}
	if len(b.until) >= maxBarred {
		for u, t := range b.until {
			if !now.Before(t) {
				delete(b.until, u)
			}
		}
		if len(b.until) >= maxBarred {
			return
		}
	}
	b.until[uid] = now.Add(d)
}

// barred reports whether uid may not sign in at now, and for how long.
func (b *floodBar) barred(uid string, now time.Time) (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.until[uid]
	switch {
	case !ok:
		return 0, false
	case !now.Before(t):
		delete(b.until, uid)
		return 0, false
	}
	return t.Sub(now), true
}
