package main

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coveyhq/covey/wire"
)

// Pacing of the broadcast scenario.
const (
	// maxPacers is how many goroutines drive the senders of the broadcast
	// scenario; each serves every maxPacers-th sender.
	maxPacers = 4
	// pacerGranularity is the shortest sleep of a pacer: the sends due
	// within it go out together.
	pacerGranularity = time.Millisecond
	// drainPoll is how often the drain checks whether every message has
	// arrived.
	drainPoll = 10 * time.Millisecond
)

// sender is the sending side of one player in the broadcast and max
// scenarios.
//
// mu orders the sender's messages: a sequence number is taken and the
// frame queued on the conn under it, so frames go out in sequence order.
// Lock order: a sender's mu, then its conn's mu. In the broadcast
// scenario one pacer goroutine drives each sender; in max, the reader
// goroutines of the receivers that complete its messages do.
type sender struct {
	p    *player
	size int
	// remaining counts, for each of the last len(remaining) sequences
	// (max only; by seq mod window), the receivers that still miss it.
	remaining []atomic.Int32
	completed atomic.Uint64 // max: messages every receiver has

	mu        sync.Mutex
	active    bool   // sending is allowed (the window is open)
	receivers int32  // the other members of its session
	seq       uint32 // the next sequence
	sent      uint64 // messages queued during the window
	// refusedBy holds, per message of those the server refused
	// (StatusOverloaded), seq when the refusal arrived: the refused
	// message's sequence is below it (a refusal does not say which
	// message it was). The tally of a receiver that left uses it. At
	// most one entry per message sent.
	refusedBy []uint32
	pauseEnd  int64  // Config.Backoff: no sending before this time (Stats clock)
	frame     []byte // the frame being queued, reused (its bytes are copied)
}

func newSender(p *player, cfg Config) *sender {
	s := &sender{p: p, size: cfg.Size}
	if cfg.Scenario == scenarioMax {
		s.remaining = make([]atomic.Int32, cfg.Window)
	}
	return s
}

// open allows sending to receivers other members.
func (s *sender) open(receivers int) {
	s.mu.Lock()
	s.active, s.receivers = receivers > 0, int32(receivers)
	s.mu.Unlock()
}

// close stops sending.
func (s *sender) close() {
	s.mu.Lock()
	s.active = false
	s.mu.Unlock()
}

// refusals returns a copy of refusedBy.
func (s *sender) refusals() []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.refusedBy)
}

// written returns the messages sent during the window that were written
// to the server and taken: those queued, less those lost with a failed
// connection and those the server refused.
func (s *sender) written() uint64 {
	s.mu.Lock()
	n := s.sent - uint64(len(s.refusedBy))
	s.mu.Unlock()
	if s.p.c != nil {
		n -= min(n, uint64(s.p.c.unsentMessages()))
	}
	return n
}

// sendLocked queues the next message, stamped now. s.mu must be held and
// s.active true. It reports whether the message was queued.
func (s *sender) sendLocked(d *driver) bool {
	if s.remaining != nil {
		// Before queuing: the receivers may answer at once.
		s.remaining[s.seq%uint32(len(s.remaining))].Store(s.receivers)
	}
	ts := d.stats.now()
	if ts < s.pauseEnd {
		d.stats.addError(kindHeldBack) // backing off (Config.Backoff): not sent
		return false
	}
	s.frame = appendBroadcastFrame(s.frame[:0], ts, uint32(s.p.idx), s.seq, s.size)
	if err := s.p.c.queueBroadcast(s.frame); err != nil {
		d.stats.countError(err)
		return false
	}
	s.seq++
	s.sent++
	d.stats.sent.Add(1)
	return true
}

// refuse accounts for a message the server refused with
// StatusOverloaded: it went to no receiver, so none expects it, and with
// Config.Backoff the sender pauses. In max it
// keeps its place in the window: the refusal (to a fire-and-forget
// broadcast) does not say which message it was, and freeing another's
// slot would break the window's accounting, so a sender stops once
// Window of its messages were refused (max measures a node within its
// capacity). It runs on the sender's reader goroutine.
func (s *sender) refuse(d *driver) {
	s.mu.Lock()
	s.refusedBy = append(s.refusedBy, s.seq)
	if b := d.cfg.Backoff; b > 0 {
		s.pauseEnd = d.stats.now() + int64(b)
	}
	s.mu.Unlock()
}

// fill sends until the sender has Window messages undelivered (max).
func (s *sender) fill(d *driver) {
	s.mu.Lock()
	for s.active && uint64(s.seq)-s.completed.Load() < uint64(len(s.remaining)) {
		if !s.sendLocked(d) {
			break
		}
	}
	s.mu.Unlock()
}

// delivered records that one more receiver has message seq (max); when
// it was the last one, the sender may send again. It runs on the reader
// goroutine of that receiver. Messages complete in sequence order, since
// every receiver gets them in that order, so completed messages free the
// oldest slots of remaining.
func (s *sender) delivered(d *driver, seq uint32) {
	if s.remaining[seq%uint32(len(s.remaining))].Add(-1) == 0 {
		s.completed.Add(1)
		s.fill(d)
	}
}

// onBroadcast is receiver p's onPush: it accounts for the driver's
// messages. It runs on p's reader goroutine.
func (d *driver) onBroadcast(p *player, f wire.Frame) {
	if f.Ver != 0 || f.Cmd != wire.CmdBroadcastReceived {
		return // members joining, and so on
	}
	msg, ok := consumeMessagePush(f.Payload)
	if !ok {
		d.stats.addError(kindBadMessage)
		return
	}
	ts, from, seq, ok := parsePayload(msg)
	base := p.idx - p.slot
	slot := int(from) - base
	if !ok || slot < 0 || slot >= len(p.sess.members) || slot == p.slot {
		d.stats.addError(kindBadMessage)
		return
	}
	lat := time.Duration(d.stats.now() - ts)
	if d.stats.receive(p.idx, p.t, slot, seq, lat) == outcomeFresh && d.cfg.Scenario == scenarioMax {
		p.sess.members[slot].snd.delivered(d, seq)
	}
}

// runMessaging runs the broadcast and max scenarios.
func (d *driver) runMessaging(ctx context.Context) error {
	d.connectAll(ctx, func(p *player) {
		p.c.onPush = func(f wire.Frame) { d.onBroadcast(p, f) }
		p.c.onError = func(err error) {
			if errors.Is(err, wire.StatusOverloaded) {
				p.snd.refuse(d)
			}
			d.stats.countError(err)
		}
	})
	d.formSessions(ctx, nil)
	var senders []*sender
	for _, s := range d.sessions {
		if s.joinedCount() < 2 {
			continue // nobody to send to
		}
		for _, p := range s.members {
			if p.joined {
				senders = append(senders, p.snd)
			}
		}
	}
	if len(senders) == 0 {
		return errNothingToMeasure
	}

	d.beginWindow()
	for _, s := range senders {
		s.open(s.p.sess.joinedCount() - 1)
	}
	start := d.stats.now()
	end := start + int64(d.cfg.Duration)
	if d.cfg.Scenario == scenarioMax {
		for _, s := range senders {
			s.fill(d)
		}
		sleepUntil(ctx, d.stats.origin.Add(time.Duration(end)))
	} else {
		d.pace(ctx, senders, start, end)
	}
	for _, s := range senders {
		s.close()
	}

	d.setPhase(phaseDrain)
	deadline := time.Now().Add(d.cfg.Drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, _, _, lost := d.tally(); lost == 0 {
			break
		}
		time.Sleep(drainPoll)
	}
	d.stats.freeze()
	d.endWindow()
	d.res.Sent, d.res.Expected, d.res.Delivered, d.res.Lost = d.tally()
	d.res.Connected = int(d.connected.Load())
	d.res.Joined = d.joinedPlayers()
	return nil
}

// joinedCount returns how many members joined s.
func (s *session) joinedCount() int {
	n := 0
	for _, p := range s.members {
		if p.joined {
			n++
		}
	}
	return n
}

// pace runs the broadcast scenario's senders from start to end (Stats
// clock): each sends Rate messages per second, at evenly staggered
// phases, from a few pacer goroutines. It returns when they have stopped.
func (d *driver) pace(ctx context.Context, senders []*sender, start, end int64) {
	interval := int64(float64(time.Second) / d.cfg.Rate)
	n := min(maxPacers, len(senders))
	var wg sync.WaitGroup
	for k := range n {
		var mine []*sender
		var phases []int64
		for i := k; i < len(senders); i += n {
			mine = append(mine, senders[i])
			phases = append(phases, interval*int64(i)/int64(len(senders)))
		}
		wg.Go(func() { d.pacer(ctx, mine, phases, interval, start, end) })
	}
	wg.Wait()
}

// pacer sends for senders, whose phases (offsets within each interval)
// are increasing: sender i's messages are due at start + phases[i] +
// c*interval for c = 0, 1, ... before end. The senders are served in due
// order, round-robin, so each send costs O(1) whatever their number. A
// pacer that falls behind catches up; timestamps are taken when a message
// is queued, so lateness does not show as latency.
func (d *driver) pacer(ctx context.Context, senders []*sender, phases []int64, interval, start, end int64) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	i, cycle := 0, int64(0)
	for {
		now := d.stats.now()
		due := start + cycle*interval + phases[i]
		for due <= now {
			if due >= end {
				return
			}
			s := senders[i]
			s.mu.Lock()
			if s.active {
				s.sendLocked(d)
			}
			s.mu.Unlock()
			if i++; i == len(senders) {
				i, cycle = 0, cycle+1
			}
			due = start + cycle*interval + phases[i]
		}
		if due >= end {
			return
		}
		timer.Reset(max(time.Duration(due-now), pacerGranularity))
		select {
		case <-timer.C:
		case <-ctx.Done():
			return
		}
	}
}

// tally counts, over every session, the messages sent (written to the
// server), expected, delivered and lost (see tallySession).
func (d *driver) tally() (sent, expected, delivered, lost uint64) {
	views := make([][]memberView, len(d.sessions))
	for i, s := range d.sessions {
		v := make([]memberView, len(s.members))
		for j, p := range s.members {
			v[j] = memberView{joined: p.joined, t: p.t}
			if p.joined {
				v[j].present = p.c.alive()
				v[j].sent = p.snd.written()
				v[j].refusedBy = p.snd.refusals()
				sent += v[j].sent
			}
		}
		views[i] = v
	}
	d.stats.locked(func() {
		for _, v := range views {
			e, g, l := tallySession(v)
			expected += e
			delivered += g
			lost += l
		}
	})
	return sent, expected, delivered, lost
}
