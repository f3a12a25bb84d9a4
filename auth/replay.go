package auth

import (
	"sync"
	"sync/atomic"
)

// DefaultReplayGuardCapacity is the number of live tokens a ReplayGuard
// remembers unless told otherwise: at 5-minute tokens, 3,495 sign-ins a
// second, for 54 MiB of heap when full (54 B a token,
// BenchmarkReplayGuardMemory).
const DefaultReplayGuardCapacity = 1 << 20

// replayShards is the number of locks a ReplayGuard spreads its tokens
// over: a power of two, well above the cores that verify at once.
const replayShards = 64

// ReplayGuard remembers the tokens that Verify accepted, each until its
// expiry, so that a Signer configured with it (SignerConfig.SingleUse)
// lets each token sign in once. Make one with NewReplayGuard; it is safe
// for concurrent use.
//
// It remembers at most its capacity of live tokens. When that many are
// live, Verify refuses every new token with ErrReplayGuardFull until some
// expire: forgetting a live token instead would let it sign in again. It
// remembers only tokens it accepts (signed with the secret and not
// expired), so it fills only as fast as the game backend has tokens issued
// and used: replaying a token adds nothing, and no one without the secret
// or the API key can add anything. Size it for the sign-ins one node sees
// over a token's lifetime.
//
// Expired tokens are forgotten (swept) by the Verify calls that land on
// their shard, and on every shard when the guard is full; there is no
// goroutine. Its memory, about 54 B a token, stays at the most tokens it
// has held (Go maps do not shrink): at most its capacity's.
//
// The guard is one process's memory. A restart forgets it: a token used
// before the restart signs in once more until it expires. In a cluster,
// each node has its own: a token used on one node can sign in once on
// each other node (where the sign-in then replaces the first connection),
// unless the game backend sends each player to one node.
type ReplayGuard struct {
	capacity int64
	live     atomic.Int64 // tokens remembered in all shards
	// clock is the latest time, in unix seconds, that use was called at.
	// It never goes back, so that a token swept as expired stays expired.
	clock  atomic.Int64
	shards [replayShards]replayShard
}

// replayShard is one lock's share of a ReplayGuard's tokens.
type replayShard struct {
	mu sync.Mutex
	// seen holds the ids of the tokens remembered, and byExpiry the same
	// tokens as a min-heap on expiry, so that a sweep pops exactly the
	// expired ones.
	seen     map[uint64]struct{}
	byExpiry []replayEntry
}

type replayEntry struct {
	expires int64 // unix seconds
	id      uint64
}

// NewReplayGuard returns a guard that remembers at most capacity live
// tokens (DefaultReplayGuardCapacity for 0 or less).
func NewReplayGuard(capacity int) *ReplayGuard {
	if capacity <= 0 {
		capacity = DefaultReplayGuardCapacity
	}
	g := &ReplayGuard{capacity: int64(capacity)}
	for i := range g.shards {
		g.shards[i].seen = make(map[uint64]struct{})
	}
	return g
}

// Capacity returns the most live tokens g remembers.
func (g *ReplayGuard) Capacity() int { return int(g.capacity) }

// Len returns the number of tokens g remembers, expired ones not yet
// swept included. It does not block.
func (g *ReplayGuard) Len() int { return int(g.live.Load()) }

// use remembers the token id, which expires at the unix second expires,
// at the unix second now, and returns nil if it was neither remembered
// already (ErrReplayed) nor expired (ErrExpired), and there was room
// (ErrReplayGuardFull). It locks one shard at a time, never two.
func (g *ReplayGuard) use(id uint64, expires, now int64) error {
	for c := g.clock.Load(); now > c && !g.clock.CompareAndSwap(c, now); c = g.clock.Load() {
	}
	sh := &g.shards[id%replayShards]
	for swept := false; ; swept = true {
		sh.mu.Lock()
		// Read the clock under the lock: a token that another call swept
		// from this shard is expired at any clock read after that sweep.
		now = g.clock.Load()
		g.forget(sh.sweep(now))
		if expires <= now {
			sh.mu.Unlock()
			return ErrExpired
		}
		if _, ok := sh.seen[id]; ok {
			sh.mu.Unlock()
			return ErrReplayed
		}
		if g.live.Add(1) <= g.capacity {
			sh.add(replayEntry{expires: expires, id: id})
			sh.mu.Unlock()
			return nil
		}
		g.live.Add(-1)
		sh.mu.Unlock()
		if swept {
			return ErrReplayGuardFull
		}
		// Full: expired tokens in other shards may make room.
		for i := range g.shards {
			o := &g.shards[i]
			o.mu.Lock()
			g.forget(o.sweep(now))
			o.mu.Unlock()
		}
	}
}

// forget counts n tokens swept. An atomic add only when there are some,
// as most calls sweep none.
func (g *ReplayGuard) forget(n int64) {
	if n > 0 {
		g.live.Add(-n)
	}
}

// sweep forgets the tokens that expire at or before now and returns how
// many. sh.mu must be held.
func (sh *replayShard) sweep(now int64) int64 {
	n := int64(0)
	for len(sh.byExpiry) > 0 && sh.byExpiry[0].expires <= now {
		delete(sh.seen, sh.byExpiry[0].id)
		last := len(sh.byExpiry) - 1
		sh.byExpiry[0] = sh.byExpiry[last]
		sh.byExpiry = sh.byExpiry[:last]
		sh.down(0)
		n++
	}
	return n
}

// add remembers e. sh.mu must be held.
func (sh *replayShard) add(e replayEntry) {
	sh.seen[e.id] = struct{}{}
	sh.byExpiry = append(sh.byExpiry, e)
	// Sift up.
	h := sh.byExpiry
	for i := len(h) - 1; i > 0; {
		parent := (i - 1) / 2
		if h[parent].expires <= h[i].expires {
			break
		}
		h[parent], h[i] = h[i], h[parent]
		i = parent
	}
}

// down sifts the entry at i down the heap. sh.mu must be held.
func (sh *replayShard) down(i int) {
	h := sh.byExpiry
	for {
		least := i
		if l := 2*i + 1; l < len(h) && h[l].expires < h[least].expires {
			least = l
		}
		if r := 2*i + 2; r < len(h) && h[r].expires < h[least].expires {
			least = r
		}
		if least == i {
			return
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
}
