package main

import (
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Latency histogram range: 1 µs to 1 minute, 3 significant digits.
const (
	histLowest  = 1
	histHighest = int64(time.Minute / time.Microsecond)
	histDigits  = 3
	// statShards is the number of independently locked parts of Stats;
	// receiver (or player) i uses shard i % statShards.
	statShards = 16
)

// Stats is the accounting of a run: latency histograms, delivery counts
// and errors by kind. It is safe for concurrent use. Hot-path updates lock
// only one of statShards shards, chosen by the caller's key (a player
// index), so the readers of different connections rarely contend.
type Stats struct {
	origin time.Time // time 0 of the timestamps in message payloads

	sent atomic.Uint64 // messages sent, pings sent (requests: see statShard)

	shards [statShards]statShard

	errMu sync.Mutex
	errs  map[string]uint64
}

// statShard is one lock's worth of Stats. mu guards every field.
type statShard struct {
	mu        sync.Mutex
	frozen    bool           // receipts are no longer counted
	total     *hdr.Histogram // latencies, µs, since the last reset
	tick      *hdr.Histogram // latencies, µs, since the last tick; nil without progress lines
	delivered uint64
	requests  uint64   // requests sent, counted by completed
	_         [64]byte // keep shards on separate cache lines
}

// newStats returns empty Stats whose clock starts now; with ticks, they
// also keep the latencies since the last tickLatency (for progress lines).
func newStats(ticks bool) *Stats {
	s := &Stats{origin: time.Now(), errs: make(map[string]uint64)}
	for i := range s.shards {
		s.shards[i].total = hdr.New(histLowest, histHighest, histDigits)
		if ticks {
			s.shards[i].tick = hdr.New(histLowest, histHighest, histDigits)
		}
	}
	return s
}

// now returns the nanoseconds since s was created, from the monotonic
// clock: the timestamp written into message payloads.
func (s *Stats) now() int64 { return int64(time.Since(s.origin)) }

// outcome is what a receiver's tracker made of a message.
type outcome uint8

const (
	// outcomeFresh: the sequence expected next, or one after it (the
	// messages in between are lost). The message counts as delivered.
	outcomeFresh outcome = iota
	// outcomeDuplicate: the same sequence as the last one received.
	outcomeDuplicate
	// outcomeOutOfOrder: a sequence older than the last one received.
	outcomeOutOfOrder
	// outcomeLate: received after the accounting was frozen; ignored.
	outcomeLate
)

// tracker is one receiver's view of the senders of its session, by the
// sender's slot in the session (0 to members-1). It relies on each sender's
// messages arriving in order, as the server guarantees: a sequence past the
// one expected is a gap (the messages in between are lost), one before it
// a duplicate or a reordering. A tracker is guarded by the Stats shard of
// its receiver: it is only touched through Stats.receive and Stats.locked.
type tracker struct {
	next []uint32 // per sender: the sequence expected next (the highest received + 1)
	got  []uint64 // per sender: messages received, counted once each
}

func newTracker(members int) *tracker {
	return &tracker{next: make([]uint32, members), got: make([]uint64, members)}
}

// observe accounts for message seq from the sender in slot.
func (t *tracker) observe(slot int, seq uint32) outcome {
	n := t.next[slot]
	switch {
	case seq+1 == n:
		return outcomeDuplicate
	case seq < n:
		return outcomeOutOfOrder
	}
	t.next[slot] = seq + 1
	t.got[slot]++
	return outcomeFresh
}

// receive accounts for a broadcast message received by the receiver whose
// key (player index) is key and whose tracker is t: message seq from the
// sender in slot, latency lat. Duplicates and reorderings are counted as
// errors. It is called on the receiver's reader goroutine.
func (s *Stats) receive(key int, t *tracker, slot int, seq uint32, lat time.Duration) outcome {
	sh := &s.shards[key%statShards]
	sh.mu.Lock()
	if sh.frozen {
		sh.mu.Unlock()
		return outcomeLate
	}
	o := t.observe(slot, seq)
	if o == outcomeFresh {
		sh.recordLocked(lat)
	}
	sh.mu.Unlock()
	switch o {
	case outcomeDuplicate:
		s.addError(kindDuplicate)
	case outcomeOutOfOrder:
		s.addError(kindOutOfOrder)
	}
	return o
}

// record counts one delivery (a successful operation, a ping's reply) of
// latency lat under key.
func (s *Stats) record(key int, lat time.Duration) {
	sh := &s.shards[key%statShards]
	sh.mu.Lock()
	if !sh.frozen {
		sh.recordLocked(lat)
	}
	sh.mu.Unlock()
}

// completed counts one request of the player key that got its answer:
// as sent, and as delivered if ok. A latency lat >= 0 is recorded, as a
// delivery's latency or, if !ok, in the histograms only (a compare-and-set
// that lost its race still took a round trip). Counting both under one
// lock keeps sent >= delivered across a reset or a freeze.
func (s *Stats) completed(key int, ok bool, lat time.Duration) {
	sh := &s.shards[key%statShards]
	sh.mu.Lock()
	if !sh.frozen {
		sh.requests++
		if ok {
			sh.delivered++
		}
		if lat >= 0 {
			sh.latencyLocked(lat)
		}
	}
	sh.mu.Unlock()
}

// latencyMicros converts lat to the histograms' unit, clamped to their
// range.
func latencyMicros(lat time.Duration) int64 {
	return min(max(int64(lat/time.Microsecond), 0), histHighest)
}

// recordLocked counts a delivery; sh.mu must be held.
func (sh *statShard) recordLocked(lat time.Duration) {
	sh.latencyLocked(lat)
	sh.delivered++
}

// latencyLocked records a latency in the histograms; sh.mu must be held.
func (sh *statShard) latencyLocked(lat time.Duration) {
	us := latencyMicros(lat)
	sh.total.RecordValue(us)
	if sh.tick != nil {
		sh.tick.RecordValue(us)
	}
}

// addError counts one error of the given kind.
func (s *Stats) addError(kind string) {
	s.errMu.Lock()
	s.errs[kind]++
	s.errMu.Unlock()
}

// countError counts err under its kind (see errorKind), except errClosed:
// a call fails with it when its connection closes, and the connection's
// failure is counted once, by its onFail.
func (s *Stats) countError(err error) {
	if err == nil || errors.Is(err, errClosed) {
		return
	}
	s.addError(errorKind(err))
}

// errors returns the error counts by kind and their total.
func (s *Stats) errors() (map[string]uint64, uint64) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	var n uint64
	for _, v := range s.errs {
		n += v
	}
	return maps.Clone(s.errs), n
}

// locked runs f with every shard locked, so that f may read every tracker
// and counter consistently. f must not call other Stats methods but
// errors.
func (s *Stats) locked(f func()) {
	for i := range s.shards {
		s.shards[i].mu.Lock()
	}
	defer func() {
		for i := range s.shards {
			s.shards[i].mu.Unlock()
		}
	}()
	f()
}

// freeze stops the accounting of receipts: what arrives later is ignored,
// so that the figures read next are final.
func (s *Stats) freeze() {
	s.locked(func() {
		for i := range s.shards {
			s.shards[i].frozen = true
		}
	})
}

// reset zeroes the latencies, the deliveries and the sent counts: the start
// of the window for scenarios whose players are busy during the ramp.
// Errors are kept: those of the ramp are part of the run's result.
func (s *Stats) reset() {
	s.locked(func() {
		for i := range s.shards {
			sh := &s.shards[i]
			sh.total.Reset()
			if sh.tick != nil {
				sh.tick.Reset()
			}
			sh.delivered, sh.requests = 0, 0
		}
	})
	s.sent.Store(0)
}

// delivered returns the deliveries counted so far.
func (s *Stats) delivered() uint64 {
	return s.sumShards(func(sh *statShard) uint64 { return sh.delivered })
}

// sentTotal returns the messages, pings and requests sent so far.
func (s *Stats) sentTotal() uint64 {
	return s.sent.Load() + s.sumShards(func(sh *statShard) uint64 { return sh.requests })
}

// sumShards adds up field over the shards, each read under its lock.
func (s *Stats) sumShards(field func(*statShard) uint64) uint64 {
	var n uint64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += field(sh)
		sh.mu.Unlock()
	}
	return n
}

// tickLatency returns the latency percentile p (0-100) of the deliveries
// since its last call, and starts a new tick. Only the progress reporter
// calls it, and only with Stats made with ticks.
func (s *Stats) tickLatency(p float64, scratch *hdr.Histogram) time.Duration {
	scratch.Reset()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		scratch.Merge(sh.tick)
		sh.tick.Reset()
		sh.mu.Unlock()
	}
	return time.Duration(scratch.ValueAtQuantile(p)) * time.Microsecond
}

// Latency is a latency distribution summary, in microseconds.
type Latency struct {
	P50  int64 `json:"p50"`
	P90  int64 `json:"p90"`
	P99  int64 `json:"p99"`
	P999 int64 `json:"p999"`
	Max  int64 `json:"max"`
}

// latency summarizes every latency recorded since the last reset.
func (s *Stats) latency() Latency {
	h := hdr.New(histLowest, histHighest, histDigits)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		h.Merge(sh.total)
		sh.mu.Unlock()
	}
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		P50:  h.ValueAtQuantile(50),
		P90:  h.ValueAtQuantile(90),
		P99:  h.ValueAtQuantile(99),
		P999: h.ValueAtQuantile(99.9),
		Max:  h.Max(),
	}
}

// memberView is one member of a session as the loss tally sees it.
type memberView struct {
	joined  bool     // it joined the session: it sent and received
	present bool     // still connected when the tally is made
	sent    uint64   // messages it sent in the window that were written to the server
	t       *tracker // what it received, by sender slot
	// refusedBy is, per message of this member's that the server
	// refused, an upper bound (exclusive) of its sequence
	// (sender.refusedBy).
	refusedBy []uint32
}

// tallySession counts the messages the members of one session should have
// received, did receive, and lost. For a receiver still present, every
// message another member sent is expected; for one that disconnected,
// every message up to the last one it received from that sender (the rest
// were sent to a member no longer there), less the refused ones known to
// be among them: those whose refusal came back before the sender had sent
// past that last one (a refusal that came back later may be of a message
// before it or after it, and is counted as expected: the count can then
// show a loss that was a refusal, never hide one). lost = expected -
// delivered, per (receiver, sender) pair. The caller must hold the lock of every tracker
// (Stats.locked).
func tallySession(members []memberView) (expected, delivered, lost uint64) {
	for r, rv := range members {
		if !rv.joined {
			continue
		}
		for s, sv := range members {
			if s == r || !sv.joined {
				continue
			}
			got := rv.t.got[s]
			exp := sv.sent
			if !rv.present {
				next := rv.t.next[s]
				exp = uint64(next)
				for _, b := range sv.refusedBy {
					if b <= next && exp > 0 {
						exp--
					}
				}
			}
			exp = max(exp, got) // a partly failed write may have reached the server
			expected += exp
			delivered += got
			lost += exp - got
		}
	}
	return expected, delivered, lost
}
