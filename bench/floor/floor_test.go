//go:build linux

package main

import (
	"strings"
	"testing"
	"time"
)

// TestFloorCounts runs the floor's server and client on loopback at a low
// rate: every message sent in the window reaches the other members of its
// group, and the report says so.
func TestFloorCounts(t *testing.T) {
	bound := make(chan string, 1)
	go serve("127.0.0.1:0", 2, 3, func(addr string) { bound <- addr }) // runs until the test binary exits
	var addr string
	select {
	case addr = <-bound:
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	r := runClient(clientConfig{addr: addr, loops: 2, groups: 2, members: 3, rate: 20,
		warmup: 200 * time.Millisecond, window: time.Second})
	// 6 members at 20/s for 1 s: about 120 messages, each to 2 others.
	if r.sent < 100 || r.sent > 130 {
		t.Errorf("sent %d, want about 120", r.sent)
	}
	if r.expected != 2*r.sent || r.received != r.expected {
		t.Errorf("sent %d, expected %d, received %d; want received = expected = 2 x sent", r.sent, r.expected, r.received)
	}
	if r.latency.TotalCount() != r.received || r.latency.Max() <= 0 || r.latency.Max() > 1_000_000 {
		t.Errorf("latency: %d values, max %dµs", r.latency.TotalCount(), r.latency.Max())
	}
	var b strings.Builder
	r.print(&b)
	if !strings.Contains(b.String(), "received") {
		t.Errorf("report %q", b.String())
	}
	t.Log(b.String())
}
