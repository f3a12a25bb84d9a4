package session

import (
	"container/heap"
	"sync"
	"time"
)

// scheduler runs timed work for the whole table on one goroutine: empty
// session TTLs and ticks. There is no goroutine or runtime timer per session.
// Callbacks run on the scheduler goroutine one after another; a callback that
// blocks delays every other timer of the table.
type scheduler struct {
	now func() time.Time

	mu      sync.Mutex
	items   timerHeap // s.mu
	wake    chan struct{}
	stopped bool // s.mu
	done    chan struct{}
	exited  chan struct{}
}

// timer is one scheduled call. Its fields belong to the scheduler.
type timer struct {
	at    time.Time
	fn    func()
	index int // position in the heap; -1 when not scheduled
}

func newScheduler(now func() time.Time) *scheduler {
	s := &scheduler{
		now:    now,
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	go s.run()
	return s
}

// after schedules fn to run once d from now and returns its timer, or nil if
// the scheduler is stopped. Safe for concurrent use; does not block.
func (s *scheduler) after(d time.Duration, fn func()) *timer {
	return s.at(s.now().Add(d), fn)
}

// at schedules fn to run once at the given time; see after.
func (s *scheduler) at(when time.Time, fn func()) *timer {
	t := &timer{at: when, fn: fn, index: -1}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	heap.Push(&s.items, t)
	first := t.index == 0
	s.mu.Unlock()
	if first {
		s.poke()
	}
	return t
}

// cancel unschedules t. It reports whether t was still pending; a timer
// whose callback already started is not stopped. A nil t is ignored.
func (s *scheduler) cancel(t *timer) bool {
	if t == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.index < 0 {
		return false
	}
	heap.Remove(&s.items, t.index)
	return true
}

// poke makes the run loop re-read the heap (after a new earliest timer, or a
// change of clock in tests).
func (s *scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// stop ends the run loop and waits for it; pending timers never fire.
func (s *scheduler) stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		<-s.exited
		return
	}
	s.stopped = true
	for _, t := range s.items {
		t.index = -1 // so that a later cancel sees it as not pending
	}
	s.items = nil
	s.mu.Unlock()
	close(s.done)
	<-s.exited
}

func (s *scheduler) run() {
	defer close(s.exited)
	rt := time.NewTimer(time.Hour)
	defer rt.Stop()
	for {
		wait := s.fireDue()
		rt.Reset(wait)
		select {
		case <-s.done:
			return
		case <-s.wake:
		case <-rt.C:
		}
	}
}

// fireDue runs every timer that is due and returns how long until the next.
func (s *scheduler) fireDue() time.Duration {
	for {
		s.mu.Lock()
		if len(s.items) == 0 {
			s.mu.Unlock()
			return time.Hour
		}
		next := s.items[0]
		if wait := next.at.Sub(s.now()); wait > 0 {
			s.mu.Unlock()
			return wait
		}
		heap.Pop(&s.items)
		s.mu.Unlock()
		next.fn()
	}
}

type timerHeap []*timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	n := len(old)
	t := old[n-1]
	old[n-1] = nil
	t.index = -1
	*h = old[:n-1]
	return t
}
