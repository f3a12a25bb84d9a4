package netio

import (
	"runtime"
	"testing"
	"time"

	"github.com/coveyhq/covey/wire"
)

// TestKCPLaggedNeedsALastingWait drives the overload state with the waits
// of successive batches: one long wait (a pause the reader drains at
// once) does not make the front end overloaded, nor does one after many
// under the limit; waits over the limit for the limit's length do, and
// it stays so until a batch waits less than half the limit.
func TestKCPLaggedNeedsALastingWait(t *testing.T) {
	const limit = 30 * time.Millisecond
	f := &kcpFront{s: &Server{cfg: Config{KCPOverloadWait: limit}}}
	ms := func(n int) int64 { return int64(n) * int64(time.Millisecond) }
	steps := []struct {
		at   int64
		wait time.Duration
		want bool
	}{
		{ms(100), 80 * time.Millisecond, false}, // a pause
		{ms(101), 2 * time.Millisecond, false},  // drained
		{ms(200), 40 * time.Millisecond, false}, // the lag starts
		{ms(210), 35 * time.Millisecond, false},
		{ms(231), 31 * time.Millisecond, true},  // 31 ms of lag
		{ms(240), 20 * time.Millisecond, true},  // not under half: still overloaded
		{ms(250), 14 * time.Millisecond, false}, // caught up
		{ms(260), 31 * time.Millisecond, false}, // a new lag
		{ms(275), 20 * time.Millisecond, false}, // under the limit: it did not last
		{ms(291), 30 * time.Millisecond, false}, // one batch over it, after a long time under it
		{ms(321), 30 * time.Millisecond, true},  // 30 ms of lag since
	}
	for i, st := range steps {
		f.lagged(st.wait, st.at)
		if got := f.overloaded.Load(); got != st.want {
			t.Fatalf("step %d (wait %v at %d ms): overloaded %v, want %v", i, st.wait, st.at/ms(1), got, st.want)
		}
	}
	if n := f.overloads.Load(); n != 2 {
		t.Errorf("overloads = %d, want 2", n)
	}

	off := &kcpFront{s: &Server{cfg: Config{KCPOverloadWait: -1}}}
	for i := range 10 {
		off.lagged(time.Second, ms(100+10*i))
	}
	if off.overloaded.Load() {
		t.Error("overloaded with a negative KCPOverloadWait")
	}
}

// TestKCPOverloadedFromSocketWaits runs a KCP server whose overload wait
// is 1 ns, which every datagram's wait in the socket exceeds: after two
// batches its client connections report Overloaded (measured from the
// kernel's timestamps), and TCP ones never do. With the check off, KCP
// ones do not either.
func TestKCPOverloadedFromSocketWaits(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the socket's timestamps are read on Linux only")
	}
	for _, wait := range []time.Duration{time.Nanosecond, -1} {
		h := newTestHandler()
		h.onFrame = func(c *Conn, f wire.Frame) {
			var b byte
			if c.Overloaded() {
				b = 1
			}
			c.Send(wire.Header{Ver: f.Ver, Cmd: f.Cmd, Flags: wire.FlagReply, Seq: f.Seq}, []byte{b})
		}
		s := startServer(t, h, func(c *Config) { c.KCPOverloadWait = wait })
		ping := func(cl *client, seq uint32) bool {
			t.Helper()
			cl.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: seq}, nil))
			for {
				f := cl.next()
				if f.Seq == seq && len(f.Payload) == 1 {
					return f.Payload[0] == 1
				}
			}
		}
		kc, _ := dial(t, s, h, KCP, dialOpts{})
		kc.next() // the dial's ping
		over := false
		for seq := uint32(2); seq < 10 && !over; seq++ {
			over = ping(kc, seq)
		}
		if over != (wait > 0) {
			t.Errorf("KCPOverloadWait %v: a KCP connection overloaded = %v, want %v", wait, over, wait > 0)
		}
		want := uint64(0)
		if wait > 0 {
			want = 1
		}
		if got := s.Stats().KCPOverloads; got != want {
			t.Errorf("KCPOverloadWait %v: KCPOverloads = %d, want %d", wait, got, want)
		}
		tc, _ := dial(t, s, h, TCP, dialOpts{})
		tc.next()
		if ping(tc, 2) {
			t.Errorf("KCPOverloadWait %v: a TCP connection is overloaded", wait)
		}
	}
}
