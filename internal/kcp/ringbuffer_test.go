package kcp

import (
	"slices"
	"testing"
)

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

// TestRingFrom iterates from every offset of a ring whose elements are
// contiguous or wrapped around the end of its array, and stops early
// when asked.
func TestRingFrom(t *testing.T) {
	for _, popped := range []int{0, 5, 13} {
		r := NewRingBuffer[int](16)
		for range popped {
			r.Push(-1)
			r.Pop()
		}
		for i := range 10 {
			r.Push(i)
		}
		for skip := -1; skip <= 11; skip++ {
			var got []int
			for v := range r.From(skip) {
				got = append(got, *v)
			}
			var want []int
			for i := max(skip, 0); i < 10; i++ {
				want = append(want, i)
			}
			if !slices.Equal(got, want) {
				t.Errorf("popped %d, skip %d: %v, want %v", popped, skip, got, want)
			}
		}
		n := 0
		for range r.From(2) {
			n++
			if n == 3 {
				break
			}
		}
		if n != 3 {
			t.Errorf("popped %d: early stop after %d", popped, n)
		}
	}
}
