package server

import (
	"testing"

	"github.com/coveyhq/covey/wire"
)

// TestConnectionRateLimits: a signed-in connection pipelining requests
// past its command burst gets RateLimited for the excess, which does not
// run; the bytes budget does the same for large requests; another
// connection is not affected.
func TestConnectionRateLimits(t *testing.T) {
	srv := startServer(t, func(c *Config) {
		c.Limits = Limits{CommandsPerSecond: 1, CommandBurst: 5, BytesPerSecond: 1, ByteBurst: 100 << 10}
	})
	flood := dialRaw(t, "tcp", srv.addrOf("tcp"))
	flood.signIn("flooder") // sign-in is not charged
	var hs []wire.Header
	for seq := uint32(1); seq <= 20; seq++ {
		hs = append(hs, wire.Header{Cmd: wire.CmdPing, Seq: seq})
	}
	flood.write(frames(hs...))
	// (the sign-in took seq 1 of rawClient's own counter; these frames are
	// written raw, so their seqs are the ones above, matched by reply.)
	ok, limited := 0, 0
	for seq := uint32(1); seq <= 20; seq++ {
		switch st := flood.reply(seq).Status; st {
		case wire.StatusOK:
			ok++
		case wire.StatusRateLimited:
			limited++
		default:
			t.Fatalf("seq %d: %v", seq, st)
		}
	}
	// The burst, and at most one refilled token (1 a second) while the
	// 20 frames were handled.
	if ok < 5 || ok > 6 || ok+limited != 20 {
		t.Fatalf("%d OK and %d RateLimited of 20 pipelined pings, want the burst of 5 (+1) OK", ok, limited)
	}
	if n := scrape(t, srv, "covey_rate_limited_total"); n != float64(limited) {
		t.Fatalf("covey_rate_limited_total = %v, want %d", n, limited)
	}

	bystander := dialRaw(t, "tcp", srv.addrOf("tcp"))
	bystander.signIn("bystander")
	if st := bystander.reply(bystander.request(0, wire.CmdPing, nil)).Status; st != wire.StatusOK {
		t.Fatalf("another connection got %v", st)
	}

	big := dialRaw(t, "tcp", srv.addrOf("tcp"))
	big.signIn("big")
	msg := make([]byte, 60<<10)
	req := (&wire.BroadcastRequest{Type: 1, Msg: msg}).Append(nil)
	first := big.request(0, wire.CmdBroadcast, req)  // 60 KiB of the 100 KiB burst: run (NotMember)
	second := big.request(0, wire.CmdBroadcast, req) // over it: refused
	if st := big.reply(first).Status; st != wire.StatusNotMember {
		t.Fatalf("first large request: %v, want NotMember (it ran)", st)
	}
	if st := big.reply(second).Status; st != wire.StatusRateLimited {
		t.Fatalf("second large request: %v, want RateLimited", st)
	}
}
