package stacks

import (
	"bytes"
	"testing"
)

// TestEachHasThisGoroutine: every element is one goroutine's trace, and
// the running and a parked goroutine are each in exactly one.
func TestEachHasThisGoroutine(t *testing.T) {
	started, block, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	defer func() { close(block); <-done }() // gone before a next run (-count) counts
	go parked(started, block, done)
	<-started
	self, other := 0, 0
	for _, g := range Each() {
		if !bytes.HasPrefix(g, []byte("goroutine ")) {
			t.Fatalf("element does not start a goroutine's trace: %.40q", g)
		}
		if hasFrame(g, "stacks.TestEachHasThisGoroutine(") {
			self++
		}
		if hasFrame(g, "stacks.parked(") {
			other++
		}
	}
	if self != 1 || other != 1 {
		t.Fatalf("this test's goroutine in %d traces, the parked one in %d; want 1 and 1", self, other)
	}
}

// hasFrame reports whether trace g has a frame (not a "created by" line)
// of a function whose name ends with fn.
func hasFrame(g []byte, fn string) bool {
	for _, line := range bytes.Split(g, []byte("\n")) {
		if !bytes.HasPrefix(line, []byte("created by")) && bytes.Contains(line, []byte(fn)) {
			return true
		}
	}
	return false
}

func parked(started, block, done chan struct{}) {
	defer close(done)
	close(started)
	<-block
}
