package session

import "time"

// tick is one running SetOnTick callback.
type tick struct {
	interval time.Duration
	fn       func(id string)
	timer    *timer // s.mu
}

// SetOnTick calls fn every interval on the table's scheduler goroutine for
// as long as the session exists or until StopAllTicks. A session may run
// several ticks with different intervals, but one per interval: SetOnTick
// reports false if interval already has one, if interval <= 0 or fn is nil,
// or if the session was deleted. A late tick is not made up for: the next
// one comes an interval after the late one ran. fn must not block.
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
	s.armLocked(tk)
	return true
}

// armLocked schedules tk's next run. s.mu must be held.
func (s *Session) armLocked(tk *tick) {
	tk.timer = s.t.sched.after(tk.interval, func() { s.runTick(tk) })
}

// runTick calls tk's callback, if tk still runs, and schedules the next.
func (s *Session) runTick(tk *tick) {
	s.mu.Lock()
	live := s.ticks[tk.interval] == tk
	s.mu.Unlock()
	if !live {
		return
	}
	tk.fn(s.id)
	s.mu.Lock()
	if s.ticks[tk.interval] == tk {
		s.armLocked(tk)
	}
	s.mu.Unlock()
}

// SetOnTickStop sets the callback called when the tick of the given
// interval stops (StopAllTicks or session deletion). One per interval: it
// reports false if one was already set, or if fn is nil.
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
// callbacks. It reports whether any tick was running.
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
// the ticks that were running, for the caller to call after unlocking.
// s.mu must be held.
func (s *Session) stopTicksLocked() []func(id string) {
	var stops []func(id string)
	for interval, tk := range s.ticks {
		s.t.sched.cancel(tk.timer)
		if stop := s.tickStops[interval]; stop != nil {
			stops = append(stops, stop)
		}
	}
	s.ticks = nil
	return stops
}
