package kcp

import "testing"

// TestRingClearZeroes checks that a ring emptied by Discard or Clear, with
// its elements wrapped around the end of its array or not, holds no value
// in any slot: Clear zeroes only the occupied ones and relies on that.
func TestRingClearZeroes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		popped int // elements pushed and popped first, to move head
		held   int // then pushed and left in the ring
		empty  func(t *testing.T, r *RingBuffer[*int])
	}{
		{"discard, contiguous", 2, 5, func(t *testing.T, r *RingBuffer[*int]) { r.Discard(r.Len()) }},
		{"discard, wrapped", 12, 10, func(t *testing.T, r *RingBuffer[*int]) { r.Discard(r.Len()) }},
		{"clear, contiguous", 0, 7, func(t *testing.T, r *RingBuffer[*int]) { r.Clear() }},
		{"clear, wrapped", 13, 9, func(t *testing.T, r *RingBuffer[*int]) { r.Clear() }},
		{"clear after growing", 5, 40, func(t *testing.T, r *RingBuffer[*int]) { r.Clear() }},
		{"partial discard, wrapped, then clear", 12, 10, func(t *testing.T, r *RingBuffer[*int]) {
			r.Discard(r.Len() - 2)
			if r.Len() != 2 {
				t.Fatalf("Len %d after discarding all but 2", r.Len())
			}
			r.Clear()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRingBuffer[*int](16)
			v := new(int)
			for range tc.popped {
				r.Push(v)
				r.Pop()
			}
			for range tc.held {
				r.Push(v)
			}
			if r.Len() != tc.held {
				t.Fatalf("Len %d, want %d", r.Len(), tc.held)
			}
			tc.empty(t, r)
			if r.Len() != 0 {
				t.Fatalf("Len %d after emptying", r.Len())
			}
			for i, e := range r.elements {
				if e != nil {
					t.Fatalf("slot %d of %d still holds a value", i, len(r.elements))
				}
			}
			// Still a working ring.
			for range 3 {
				r.Push(v)
			}
			if got, ok := r.Pop(); !ok || got != v || r.Len() != 2 {
				t.Fatalf("after emptying: Pop %v %v, Len %d", got, ok, r.Len())
			}
		})
	}
}

// BenchmarkRingDiscardAll is a session's send buffer at low load: one
// segment in flight in a ring grown to twice the window, acknowledged.
func BenchmarkRingDiscardAll(b *testing.B) {
	r := NewRingBuffer[segment](IKCP_WND_SND * 2)
	for range 255 { // grow it as a 128-segment window does
		r.Push(segment{})
	}
	r.Clear()
	for b.Loop() {
		r.Push(segment{sn: 1})
		r.Discard(1)
	}
}
