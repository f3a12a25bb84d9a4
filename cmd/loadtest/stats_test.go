package main

import (
	"slices"
	"testing"
	"time"
)

func TestTrackerObserve(t *testing.T) {
	tr := newTracker(3)
	steps := []struct {
		slot int
		seq  uint32
		want outcome
	}{
		{0, 0, outcomeFresh},
		{0, 1, outcomeFresh},
		{0, 1, outcomeDuplicate},
		{0, 4, outcomeFresh}, // 2 and 3 lost
		{0, 2, outcomeOutOfOrder},
		{0, 3, outcomeOutOfOrder}, // older than the last
		{1, 5, outcomeFresh},      // 0-4 lost
		{2, 0, outcomeFresh},
	}
	for i, s := range steps {
		if got := tr.observe(s.slot, s.seq); got != s.want {
			t.Errorf("step %d: observe(%d, %d) = %d, want %d", i, s.slot, s.seq, got, s.want)
		}
	}
	if want := []uint32{5, 6, 1}; !slices.Equal(tr.next, want) {
		t.Errorf("next = %v, want %v", tr.next, want)
	}
	if want := []uint64{3, 1, 1}; !slices.Equal(tr.got, want) {
		t.Errorf("got = %v, want %v", tr.got, want)
	}
}

// receiveAll feeds tr the sequences of slot.
func receiveAll(tr *tracker, slot int, seqs ...uint32) *tracker {
	for _, s := range seqs {
		tr.observe(slot, s)
	}
	return tr
}

func TestTallySession(t *testing.T) {
	tests := []struct {
		name                      string
		members                   []memberView
		expected, delivered, lost uint64
	}{{
		name: "all delivered",
		members: []memberView{
			{joined: true, present: true, sent: 3, t: receiveAll(newTracker(2), 1, 0, 1)},
			{joined: true, present: true, sent: 2, t: receiveAll(newTracker(2), 0, 0, 1, 2)},
		},
		expected: 5, delivered: 5, lost: 0,
	}, {
		name: "a gap and a missing tail are lost",
		members: []memberView{
			{joined: true, present: true, sent: 5, t: receiveAll(newTracker(3), 1, 0)},
			{joined: true, present: true, sent: 1, t: receiveAll(newTracker(3), 0, 0, 2, 3)}, // 1 and 4 missing
			{joined: true, present: true, sent: 0, t: receiveAll(receiveAll(newTracker(3), 0, 0, 1, 2, 3, 4), 1, 0)},
		},
		expected: 5 + 1 + 5 + 1, delivered: 3 + 1 + 5 + 1, lost: 2,
	}, {
		name: "a receiver that left expects only up to the last message it got",
		members: []memberView{
			{joined: true, present: true, sent: 10, t: newTracker(2)},
			{joined: true, present: false, sent: 0, t: receiveAll(newTracker(2), 0, 0, 1, 3)}, // 2 lost, 4-9 not expected
		},
		expected: 4, delivered: 3, lost: 1,
	}, {
		// Sender 0 sent 0-9; 2, 5 and 8 were refused, the refusals back
		// when it had sent 0-3, 0-6 and 0-9 (bounds 4, 7 and 10). The
		// receiver left after 6 (next 7): 0-6 less 2 and 5 are expected;
		// bound 10 is past 7, and that refusal is not counted there.
		name: "a receiver that left does not expect the refusals known to be before its last message",
		members: []memberView{
			{joined: true, present: true, sent: 10, t: newTracker(2), refusedBy: []uint32{4, 7, 10}},
			{joined: true, present: false, sent: 0, t: receiveAll(newTracker(2), 0, 0, 1, 3, 4, 6)}, // 2 and 5 refused
		},
		expected: 5, delivered: 5, lost: 0,
	}, {
		name: "a refusal that came back after the receiver's last message counts as expected",
		members: []memberView{
			{joined: true, present: true, sent: 10, t: newTracker(2), refusedBy: []uint32{4, 8}},
			{joined: true, present: false, sent: 0, t: receiveAll(newTracker(2), 0, 0, 1, 3, 4, 6)}, // 2 and 5 refused
		},
		expected: 6, delivered: 5, lost: 1,
	}, {
		name: "more refusals than messages do not wrap",
		members: []memberView{
			{joined: true, present: true, sent: 1, t: newTracker(2), refusedBy: []uint32{0, 0, 0}},
			{joined: true, present: false, sent: 0, t: receiveAll(newTracker(2), 0, 0)},
		},
		expected: 1, delivered: 1, lost: 0,
	}, {
		name: "a member that never joined neither sends nor receives",
		members: []memberView{
			{joined: true, present: true, sent: 2, t: receiveAll(newTracker(3), 2, 0, 1)},
			{joined: false, t: newTracker(3)},
			{joined: true, present: true, sent: 2, t: receiveAll(newTracker(3), 0, 0, 1)},
		},
		expected: 4, delivered: 4, lost: 0,
	}, {
		name: "more received than counted sent (a write that failed midway) is not negative",
		members: []memberView{
			{joined: true, present: true, sent: 1, t: newTracker(2)},
			{joined: true, present: true, t: receiveAll(newTracker(2), 0, 0, 1)},
		},
		expected: 2, delivered: 2, lost: 0,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, d, l := tallySession(tc.members)
			if e != tc.expected || d != tc.delivered || l != tc.lost {
				t.Errorf("tally = expected %d, delivered %d, lost %d; want %d, %d, %d", e, d, l, tc.expected, tc.delivered, tc.lost)
			}
		})
	}
}

func TestStatsReceive(t *testing.T) {
	s := newStats(true)
	tr := newTracker(2)
	for seq, lat := range []time.Duration{time.Millisecond, 2 * time.Millisecond, 50 * time.Millisecond} {
		if o := s.receive(7, tr, 1, uint32(seq), lat); o != outcomeFresh {
			t.Fatalf("seq %d: outcome %d", seq, o)
		}
	}
	if o := s.receive(7, tr, 1, 2, time.Millisecond); o != outcomeDuplicate {
		t.Fatalf("duplicate: outcome %d", o)
	}
	if o := s.receive(7, tr, 1, 0, time.Millisecond); o != outcomeOutOfOrder {
		t.Fatalf("reordering: outcome %d", o)
	}
	if n := s.delivered(); n != 3 {
		t.Errorf("delivered = %d, want 3", n)
	}
	errs, total := s.errors()
	if total != 2 || errs[kindDuplicate] != 1 || errs[kindOutOfOrder] != 1 {
		t.Errorf("errors = %v (%d), want one duplicate and one out_of_order", errs, total)
	}
	l := s.latency()
	if l.Max < 49_900 || l.Max > 50_100 || l.P50 < 1_990 || l.P50 > 2_010 {
		t.Errorf("latency = %+v, want p50 ~2000µs, max ~50000µs", l)
	}
	s.freeze()
	if o := s.receive(7, tr, 1, 3, time.Millisecond); o != outcomeLate {
		t.Errorf("after freeze: outcome %d, want late", o)
	}
	if n := s.delivered(); n != 3 {
		t.Errorf("delivered after freeze = %d, want 3", n)
	}
}
