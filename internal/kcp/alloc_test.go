package kcp

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestSegmentHeapOrder pushes sequence numbers in random order, across the
// uint32 wrap, and pops them in sequence order.
func TestSegmentHeapOrder(t *testing.T) {
	h := newSegmentHeap()
	base := ^uint32(0) - 100 // wraps after 100
	rng := rand.New(rand.NewPCG(3, 4))
	order := rng.Perm(500)
	for _, i := range order {
		h.push(segment{sn: base + uint32(i)})
	}
	if !h.Has(base+7) || h.Has(base+500) {
		t.Fatal("Has")
	}
	for i := range 500 {
		if got := h.min().sn; got != base+uint32(i) {
			t.Fatalf("min %d = %d, want %d", i, got, base+uint32(i))
		}
		if got := h.pop().sn; got != base+uint32(i) {
			t.Fatalf("pop %d = %d, want %d", i, got, base+uint32(i))
		}
	}
	if h.Len() != 0 || len(h.marks) != 0 {
		t.Fatalf("left %d segments, %d marks", h.Len(), len(h.marks))
	}
}

// TestReceiveDoesNotAllocate feeds a receiver data segments, some out of
// order, and reads them: in the steady state receiving allocates nothing
// per segment (the heap and the buffer pool used to allocate about three
// times per segment).
func TestReceiveDoesNotAllocate(t *testing.T) {
	b := NewKCP(1, func([]byte, int) {})
	b.SetStreamMode(true)
	b.NoDelay(1, 10, 2, 1)
	b.WndSize(128, 128)
	b.SetMtu(1200)
	const segments = 2000
	datagrams := make([][]byte, segments)
	for sn := range datagrams {
		seg := segment{conv: 1, cmd: IKCP_CMD_PUSH, wnd: 128, sn: uint32(sn), data: bytes.Repeat([]byte{'m'}, 64)}
		d := make([]byte, IKCP_OVERHEAD+len(seg.data))
		copy(seg.encode(d), seg.data)
		datagrams[sn] = d
	}
	// Swap neighbours so that half the segments wait in the heap.
	for i := 0; i+1 < len(datagrams); i += 2 {
		datagrams[i], datagrams[i+1] = datagrams[i+1], datagrams[i]
	}
	buf := make([]byte, 4096)
	next := 0
	feed := func() {
		for range 2 {
			b.Input(datagrams[next], true, false)
			next++
		}
		for b.Recv(buf) > 0 {
		}
	}
	for range 100 { // warm up: pool, heap and map capacity
		feed()
	}
	runs := (len(datagrams) - next) / 2
	allocs := testing.AllocsPerRun(runs-1, feed)
	if allocs > 0.1 {
		t.Fatalf("%.2f allocations per two segments received", allocs)
	}
}
