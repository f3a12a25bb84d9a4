package session

import "time"

// tick is one running SetOnTick callback.
type tick struct {
	interval time.Duration
	fn       func(id string)
	timer    *timer // s.mu
	// running is set while fn runs (s.mu); a stop that comes then leaves
	// its OnTickStop callback in stop, for runTick to call when fn returns.
	running bool
	stop    func(id string)
}

// SetOnTick calls fn every interval on the table's scheduler goroutine for
// as long as the session exists or until StopAllTicks. A session may run
// several ticks with different intervals, but one per interval: SetOnTick
// reports false if interval already has one, if interval <= 0 or fn is nil,
// or if the session was deleted. Ticks keep their cadence (the n-th is due
// n intervals after SetOnTick, however long fn takes); a tick more than an
// interval late is not made up for: the missed ones are skipped and the
// next runs at once. fn must not block.
func (s *Session) SetOnTick(interval time.Duration, fn func(id string)) bool {
	if interval <= 0 || fn == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted || s.ticks[interval] != nil {
		return false
	}
	if s.ticks == nil {
		s.ticks = make(map[time.Duration]*tick)
	}
	tk := &tick{interval: interval, fn: fn}
	s.ticks[interval] = tk
	s.armLocked(tk, s.t.sched.now().Add(interval))
	return true
}

// armLocked schedules tk's next run at due. s.mu must be held.
func (s *Session) armLocked(tk *tick, due time.Time) {
	tk.timer = s.t.sched.at(due, func() { s.runTick(tk) })
}

// runTick calls tk's callback, if tk still runs, and schedules the next.
// If the tick is stopped while the callback runs, it calls the tick's
// OnTickStop callback when the callback returns.
func (s *Session) runTick(tk *tick) {
	s.mu.Lock()
	if s.ticks[tk.interval] != tk {
		s.mu.Unlock()
		return
	}
	tk.running = true
	s.mu.Unlock()
	tk.fn(s.id)
	s.mu.Lock()
	tk.running = false
	stop := tk.stop
	tk.stop = nil
	if s.ticks[tk.interval] == tk {
		// Due times come from the previous due time, not from when fn
		// returned, so a slow callback does not make the ticks drift.
		due := tk.timer.at.Add(tk.interval)
		if now := s.t.sched.now(); now.Sub(due) >= tk.interval {
			due = now // more than an interval behind: run once now, skip the rest
		}
		s.armLocked(tk, due)
	}
	s.mu.Unlock()
	if stop != nil {
		stop(s.id)
	}
}

// SetOnTickStop sets the callback called when the tick of the given
// interval stops (StopAllTicks or session deletion). One per interval: it
// reports false if one was already set, or if fn is nil.
//
// fn runs after the tick's last callback has returned. If that callback
// is running when the tick stops, fn runs on the scheduler goroutine when
// it returns, and so after whatever the callback did next: after OnDeleted
// if it deleted the session, after a new tick's start if it called
// SetOnTick again for the same interval.
func (s *Session) SetOnTickStop(interval time.Duration, fn func(id string)) bool {
	if fn == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tickStops[interval] != nil {
		return false
	}
	if s.tickStops == nil {
		s.tickStops = make(map[time.Duration]func(string))
	}
	s.tickStops[interval] = fn
	return true
}

// StopAllTicks stops every tick of the session and calls their OnTickStop
// callbacks. It reports whether any tick was running. No tick callback
// starts afterwards, and a tick's OnTickStop runs after its last callback:
// if that callback is still running on the scheduler goroutine (StopAllTicks
// called from another goroutine, or from the callback itself), OnTickStop
// runs on the scheduler goroutine when it returns, so StopAllTicks may
// return before it.
func (s *Session) StopAllTicks() bool {
	s.mu.Lock()
	running := len(s.ticks) > 0
	stops := s.stopTicksLocked()
	s.mu.Unlock()
	for _, stop := range stops {
		stop(s.id)
	}
	return running
}

// stopTicksLocked stops every tick and returns the OnTickStop callbacks of
// the ticks that were running, for the caller to call after unlocking;
// those of ticks whose callback is running are left to runTick. s.mu must
// be held.
func (s *Session) stopTicksLocked() []func(id string) {
	var stops []func(id string)
	for interval, tk := range s.ticks {
		s.t.sched.cancel(tk.timer)
		stop := s.tickStops[interval]
		switch {
		case stop == nil:
		case tk.running:
			tk.stop = stop
		default:
			stops = append(stops, stop)
		}
	}
	s.ticks = nil
	return stops
}
