// Package rate is a token bucket, the budget of the per-connection and
// per-user limits: a Bucket refills at a steady rate up to its burst and
// is drawn on by what it limits.
package rate

import "time"

// Limit is a bucket's refill rate and capacity. The zero Limit is no
// limit.
type Limit struct {
	PerSecond float64 // refill rate; <= 0 means unlimited
	Burst     float64 // capacity; at least one draw's worth
}

// PerMinute returns the limit of n per minute with a burst of burst.
func PerMinute(n, burst float64) Limit { return Limit{PerSecond: n / 60, Burst: burst} }

// Bucket is a token bucket. Its zero value is full. It is not safe for
// concurrent use: the caller's lock (or the single goroutine that owns
// the connection) guards it.
type Bucket struct {
	used float64 // tokens drawn and not yet refilled
	last int64   // unix nanoseconds of the last draw
}

// Take draws n tokens at now under limit l and reports whether they were
// there; when they were not, nothing is drawn.
func (b *Bucket) Take(l Limit, now time.Time, n float64) bool {
	if l.PerSecond <= 0 {
		return true
	}
	t := now.UnixNano()
	if b.last != 0 {
		b.used -= float64(t-b.last) / 1e9 * l.PerSecond
		if b.used < 0 {
			b.used = 0
		}
	}
	b.last = t
	if b.used+n > l.Burst {
		return false
	}
	b.used += n
	return true
}
