package server

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coveyhq/covey/clientsdk"
	"github.com/coveyhq/covey/wire"
)

// The attack run's floods (issue 10), against a server with its default
// limits: bounded in count, on loopback.

// TestInviteSpamIsBounded: 329 pipelined 60 KB invites to one target
// disconnected it as a slow consumer before; now the target receives at
// most its invite budget (a burst of 20) and stays connected, and the
// inviter is told RateLimited.
func TestInviteSpamIsBounded(t *testing.T) {
	srv := startServer(t)
	ctx := testCtx(t)
	target := dialSDK(t, srv, "tcp", "target")
	spam := dialRaw(t, "tcp", srv.addrOf("tcp"))
	spam.signIn("spammer")
	spam.create(1, 4)
	req := (&wire.InviteRequest{Type: 1, Targets: []string{"target"}, Msg: make([]byte, 60<<10)}).Append(nil)
	var b []byte
	for seq := uint32(100); seq < 100+329; seq++ {
		b = wire.AppendFrame(b, wire.Header{Cmd: wire.CmdInvite, Seq: seq}, req)
	}
	spam.write(b)
	ok, limited := 0, 0
	for seq := uint32(100); seq < 100+329; seq++ {
		switch st := spam.reply(seq).Status; st {
		case wire.StatusOK:
			ok++
		case wire.StatusRateLimited:
			limited++
		default:
			t.Fatalf("invite %d: %v", seq, st)
		}
	}
	if ok > 21 || limited < 300 {
		t.Fatalf("%d invites delivered and %d refused, want at most the burst of 20 (+1 refill)", ok, limited)
	}
	got := 0
	for got < ok {
		waitEvent(t, target, func(clientsdk.InviteReceived) bool { return true })
		got++
	}
	if _, err := target.UserSessions(ctx); err != nil {
		t.Fatalf("the target was cut off: %v", err)
	}
}

// TestFloodingMemberLeavesBystandersWhole: one member pipelines
// broadcasts as fast as it can write them; it is rate limited, then, as
// it keeps sending after RateLimited, closed for flooding (a Bye
// RateLimited), and the members of another session broadcasting at a
// steady rate meanwhile lose nothing and see their messages in order.
// (Latency under the flood is BenchmarkBystanderUnderFlood's figure, not
// this test's.)
func TestFloodingMemberLeavesBystandersWhole(t *testing.T) {
	srv := startServer(t)
	ctx := testCtx(t)
	flooder := dialRaw(t, "tcp", srv.addrOf("tcp"))
	flooder.signIn("flooder")
	flooder.create(1, 8)

	a := dialSDK(t, srv, "tcp", "a")
	bob := dialSDK(t, srv, "tcp", "b")
	id, err := a.Create(ctx, 2, 4, 0, nil)
	must(t, err)
	must(t, bob.Join(ctx, 2, id))

	const floodFrames = 20000
	msg := (&wire.BroadcastRequest{Type: 1, Msg: make([]byte, 64)}).Append(nil)
	var flood []byte
	for range floodFrames {
		flood = wire.AppendFrame(flood, wire.Header{Cmd: wire.CmdBroadcast}, msg) // seq 0: fire-and-forget
	}
	start := time.Now()
	go func() {
		flooder.c.SetWriteDeadline(time.Now().Add(testTimeout))
		flooder.c.Write(flood) // fails once the server has closed it
	}()
	const steady = 100
	for i := range steady {
		must(t, a.Broadcast(ctx, 2, []byte{byte(i)}))
	}
	for i := range steady {
		e := waitEvent(t, bob, func(clientsdk.BroadcastReceived) bool { return true })
		if len(e.Msg) != 1 || e.Msg[0] != byte(i) {
			t.Fatalf("bystander message %d: got %v", i, e.Msg)
		}
	}
	bye := flooder.expectByeMsg()
	if bye.Status != wire.StatusRateLimited || bye.Reason != floodReason {
		t.Fatalf("the flooder got a Bye %v %q, want RateLimited %q", bye.Status, bye.Reason, floodReason)
	}
	if n := scrape(t, srv, "covey_flooding_disconnects_total"); n != 1 {
		t.Fatalf("covey_flooding_disconnects_total = %v", n)
	}
	// Refused before the cut: the flood burst, and what the command rate
	// (1,000 a second) refilled meanwhile; everything past the command
	// burst and its refill was refused, not run.
	limits := DefaultLimits()
	refilled := time.Since(start).Seconds() * limits.CommandsPerSecond
	if n := scrape(t, srv, "covey_rate_limited_total"); n < limits.FloodBurst || n > limits.FloodBurst+refilled+1 {
		t.Fatalf("%v requests refused before the cut, want the flood burst (%v) and at most %.0f refilled", n, limits.FloodBurst, refilled)
	}
}

// TestCreateLeaveLoopIsBounded: one player creates sessions that wait an
// hour for a member, each with 60 KB of properties, and leaves each at
// once, 400 times. Under the default limits it holds 16 of them (the
// empty-session budget: LimitExceeded after that, RateLimited past the
// create rate) and the node's heap grows by about their size; without
// limits the loop holds all 400, which the same bound does not cover, so
// the test would fail if the budget did not apply. The bound, from the
// limits: 16 sessions × (the properties' 60 KB, twice for the table's
// copies and their maps) plus 4 MiB of slack for the process.
func TestCreateLeaveLoopIsBounded(t *testing.T) {
	srv := startServer(t)
	ctx := testCtx(t)
	p := dialSDK(t, srv, "tcp", "hoarder")
	props := map[string]any{}
	for i := range 15 {
		props[fmt.Sprintf("k%02d", i)] = strings.Repeat("x", 4000)
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	held, limited, rated := 0, 0, 0
	for range 400 {
		id, err := p.Create(ctx, 1, 4, time.Hour, props)
		switch {
		case err == nil:
			held++
			must(t, p.Leave(ctx, 1, id))
		case errors.Is(err, wire.StatusLimitExceeded):
			limited++
		case errors.Is(err, wire.StatusRateLimited):
			rated++
		default:
			t.Fatalf("create: %v", err)
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if held != 16 || limited == 0 {
		t.Fatalf("held %d sessions (want the budget, 16), %d LimitExceeded, %d RateLimited", held, limited, rated)
	}
	const bound = 16*2*60_000 + 4<<20
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > bound {
		t.Fatalf("heap grew by %d bytes holding %d sessions, bound %d", grown, held, bound)
	}
	t.Logf("held %d, LimitExceeded %d, RateLimited %d; heap %+d bytes", held, limited, rated, int64(after.HeapAlloc)-int64(before.HeapAlloc))
}

// TestFloodCutBarsTheUser: after a connection is closed for flooding, its
// user's sign-ins on the node are refused with RateLimited until
// Limits.FloodBarTime has passed; other users sign in as before.
func TestFloodCutBarsTheUser(t *testing.T) {
	srv := startServer(t, func(c *Config) {
		c.Limits = Limits{CommandsPerSecond: 1, CommandBurst: 1, FloodBurst: 5, FloodBarTime: time.Hour}
	})
	flooder := dialRaw(t, "tcp", srv.addrOf("tcp"))
	flooder.signIn("flooder")
	var hs []wire.Header
	for range 20 {
		hs = append(hs, wire.Header{Cmd: wire.CmdPing})
	}
	flooder.write(frames(hs...))
	if bye := flooder.expectByeMsg(); bye.Status != wire.StatusRateLimited || bye.Reason != floodReason {
		t.Fatalf("Bye %v %q, want RateLimited %q", bye.Status, bye.Reason, floodReason)
	}
	again := dialRaw(t, "tcp", srv.addrOf("tcp"))
	req := wire.SignInRequest{MinVersion: 1, MaxVersion: 1, UserID: "flooder"}
	if f := again.call(wire.CmdSignIn, req.Append(nil)); f.Status != wire.StatusRateLimited {
		t.Fatalf("sign-in of the barred user: %v, want RateLimited", f.Status)
	}
	if bye := again.expectByeMsg(); !strings.HasPrefix(bye.Reason, "closed for flooding: sign in again in ") {
		t.Fatalf("Bye reason %q", bye.Reason)
	}
	other := dialRaw(t, "tcp", srv.addrOf("tcp"))
	other.signIn("someone-else")
	if n := scrape(t, srv, `covey_signin_failures_total\{reason="flooding"\}`); n != 1 {
		t.Fatalf("flooding sign-in failures: %v", n)
	}
}
