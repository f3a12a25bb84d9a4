package cluster

import (
	"testing"
	"time"

	"github.com/coveyhq/covey/wire"
)

// TestCallQueue: calls come out by seq in any order, once each, across the
// wrap of the seq counter; expire takes exactly the calls sent before the
// cutoff; holes do not keep the queue growing.
func TestCallQueue(t *testing.T) {
	var cq callQueue
	t0 := time.Unix(1000, 0)
	answered := map[uint32]int{}
	mk := func(seq uint32, sent time.Time) call {
		return call{seq: seq, sent: sent, done: func(wire.Status, []byte) { answered[seq]++ }}
	}
	// Seqs across the wrap, where the link skips 0.
	seqs := []uint32{^uint32(0) - 3, ^uint32(0) - 2, ^uint32(0) - 1, ^uint32(0), 1, 2}
	for i, s := range seqs {
		cq.push(mk(s, t0.Add(time.Duration(i)*time.Second)))
	}
	if cq.len() != len(seqs) {
		t.Fatalf("len = %d", cq.len())
	}
	for _, s := range []uint32{1, ^uint32(0) - 3, ^uint32(0) - 1} { // past the wrap, front, middle
		c, ok := cq.take(s)
		if !ok || c.seq != s {
			t.Fatalf("take(%d) = %+v, %v", s, c, ok)
		}
		c.done(wire.StatusOK, nil)
	}
	for _, s := range []uint32{1, ^uint32(0) - 3, 0, 7, 3} { // taken already, or never made
		if _, ok := cq.take(s); ok {
			t.Fatalf("take(%d) found a call", s)
		}
	}
	// Sent at t0+1 s, t0+3 s and t0+5 s (seq 2) remain: a cutoff of t0+4 s expires two.
	late := cq.expire(t0.Add(4*time.Second), nil)
	if len(late) != 2 || late[0].seq != ^uint32(0)-2 || late[1].seq != ^uint32(0) {
		t.Fatalf("expired %+v", late)
	}
	if cq.len() != 1 {
		t.Fatalf("len = %d after expiry, want 1", cq.len())
	}
	if c, ok := cq.take(2); !ok || c.seq != 2 {
		t.Fatalf("take(2) = %+v, %v", c, ok)
	}
	if len(cq.q) != 0 || cq.head != 0 {
		t.Fatalf("empty queue holds %d entries from %d", len(cq.q), cq.head)
	}

	// One call that stays unanswered while 100k others come and go: the
	// holes behind it are not compacted away (it is at the front), but
	// once it goes, the queue is empty again.
	cq.push(mk(10, t0))
	for s := uint32(11); s < 100_011; s++ {
		cq.push(mk(s, t0))
		if _, ok := cq.take(s); !ok {
			t.Fatalf("take(%d)", s)
		}
	}
	if _, ok := cq.take(10); !ok || len(cq.q) != 0 {
		t.Fatalf("after the slow call: %d entries", len(cq.q))
	}
	// Holes at the front are compacted while later calls stay.
	for s := uint32(200); s < 1200; s++ {
		cq.push(mk(s, t0))
	}
	for s := uint32(200); s < 1100; s++ {
		cq.take(s)
	}
	if len(cq.q) > 200 || cq.len() != 100 {
		t.Fatalf("%d entries for %d calls", len(cq.q), cq.len())
	}
	if got := cq.drain(nil); len(got) != 100 || got[0].seq != 1100 || cq.len() != 0 {
		t.Fatalf("drain: %d calls, first %d", len(got), got[0].seq)
	}
}
