package rate

import (
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	l := Limit{PerSecond: 10, Burst: 5}
	var b Bucket
	now := time.Unix(1000, 0)
	for i := range 5 {
		if !b.Take(l, now, 1) {
			t.Fatalf("draw %d of the burst refused", i)
		}
	}
	if b.Take(l, now, 1) {
		t.Fatal("draw past the burst allowed")
	}
	now = now.Add(100 * time.Millisecond) // one token back
	if !b.Take(l, now, 1) || b.Take(l, now, 1) {
		t.Fatal("refill is not 10 per second")
	}
	now = now.Add(time.Hour) // refills to the burst, not past it
	for range 5 {
		if !b.Take(l, now, 1) {
			t.Fatal("not refilled to the burst")
		}
	}
	if b.Take(l, now, 1) {
		t.Fatal("refilled past the burst")
	}
	if b.Take(l, now.Add(time.Hour), 6) {
		t.Fatal("a draw larger than the burst allowed")
	}
	var free Bucket
	for range 1000 {
		if !free.Take(Limit{}, now, 1e9) {
			t.Fatal("the zero Limit limited")
		}
	}
}
