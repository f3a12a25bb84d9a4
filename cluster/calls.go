package cluster

import (
	"slices"
	"time"

	"github.com/coveyhq/covey/wire"
)

// call is a request in flight on a link.
type call struct {
	seq  uint32
	done func(wire.Status, []byte) // nil once answered or expired
	sent time.Time
}

// callQueue holds a link's calls in flight in the order they were made,
// which is the order of their seqs (consecutive: every call takes the next
// one, but for the 0 the link skips when its counter wraps) and of their
// deadlines (every call has the node's CallTimeout).
// Replies mostly come in that order too, so taking one is usually a pop
// from the front; one that comes out of turn leaves a hole, dropped when
// it reaches the front. A map cost a hashed insert and delete per call on
// the forwarding path. Guarded by the link's mu.
type callQueue struct {
	q    []call // q[head:] in flight or holes
	head int
}

// push adds a call whose seq is one past the previous call's.
func (cq *callQueue) push(c call) { cq.q = append(cq.q, c) }

// take removes and returns the call with seq.
func (cq *callQueue) take(seq uint32) (call, bool) {
	live := cq.q[cq.head:]
	if len(live) == 0 {
		return call{}, false
	}
	i := int(seq - live[0].seq) // consecutive seqs; wraps with them
	if i >= len(live) || live[i].seq != seq {
		// Where the counter wrapped, the link skipped seq 0: the calls
		// after it sit one place earlier than the difference says.
		i = slices.IndexFunc(live, func(c call) bool { return c.seq == seq })
	}
	if i < 0 || live[i].done == nil {
		return call{}, false
	}
	c := live[i]
	live[i] = call{seq: seq}
	cq.trim()
	return c, true
}

// expire removes the calls sent before cutoff and appends them to late.
func (cq *callQueue) expire(cutoff time.Time, late []call) []call {
	for i := cq.head; i < len(cq.q) && cq.q[i].sent.Before(cutoff); i++ {
		if cq.q[i].done != nil {
			late = append(late, cq.q[i])
			cq.q[i] = call{seq: cq.q[i].seq}
		}
	}
	cq.trim()
	return late
}

// drain removes every call and appends them to out.
func (cq *callQueue) drain(out []call) []call {
	for _, c := range cq.q[cq.head:] {
		if c.done != nil {
			out = append(out, c)
		}
	}
	*cq = callQueue{}
	return out
}

// len is the number of calls in flight.
func (cq *callQueue) len() int {
	n := 0
	for _, c := range cq.q[cq.head:] {
		if c.done != nil {
			n++
		}
	}
	return n
}

// trim drops the holes at the front, and reuses or shrinks the slice.
func (cq *callQueue) trim() {
	for cq.head < len(cq.q) && cq.q[cq.head].done == nil {
		cq.head++
	}
	switch {
	case cq.head == len(cq.q):
		cq.q, cq.head = cq.q[:0], 0
		if cap(cq.q) > 4096 {
			cq.q = nil // a burst is over: do not keep its array
		}
	case cq.head > len(cq.q)/2 && cq.head >= 64:
		n := copy(cq.q, cq.q[cq.head:])
		clear(cq.q[n:])
		cq.q, cq.head = cq.q[:n], 0
	}
}
