package server

import (
	"runtime"
	"testing"
	"time"

	"github.com/coveyhq/covey/wire"
)

// TestOverloadedKCPShedsFanOuts runs a server whose KCP front end counts
// as overloaded from its second read on (an overload wait of 1 ns, which
// every datagram's wait in the socket exceeds): Broadcast and MessageTo
// from a KCP player are answered Overloaded, fire-and-forget ones too,
// and deliver nothing; its other commands run, it still receives what a
// TCP player broadcasts, and the TCP player's own fan-outs run.
func TestOverloadedKCPShedsFanOuts(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the KCP socket's timestamps are read on Linux only")
	}
	srv := startServer(t, func(c *Config) { c.KCPOverloadWait = time.Nanosecond })
	alice := dialRaw(t, "kcp", srv.addrOf("kcp"))
	alice.signIn("alice")
	create := wire.CreateRequest{Type: 1, MaxMembers: 4}
	f := alice.call(wire.CmdCreate, create.Append(nil))
	var created wire.CreateReply
	if f.Status != wire.StatusOK || created.Consume(f.Payload) != nil {
		t.Fatalf("create: %v", f.Status)
	}
	bob := dialRaw(t, "tcp", srv.addrOf("tcp"))
	bob.signIn("bob")
	ref := wire.SessionRef{Type: 1, SessionID: created.SessionID}
	if f := bob.call(wire.CmdJoin, ref.Append(nil)); f.Status != wire.StatusOK {
		t.Fatalf("join: %v", f.Status)
	}

	before := srv.table.Stats().Deliveries
	bc := wire.BroadcastRequest{Type: 1, Msg: []byte("hi")}
	if f := alice.call(wire.CmdBroadcast, bc.Append(nil)); f.Status != wire.StatusOverloaded {
		t.Fatalf("KCP broadcast: %v, want Overloaded", f.Status)
	}
	alice.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdBroadcast}, bc.Append(nil))) // seq 0
	if f := alice.reply(0); f.Status != wire.StatusOverloaded || f.Cmd != wire.CmdBroadcast {
		t.Fatalf("fire-and-forget KCP broadcast: %v %v, want an Overloaded reply", f.Cmd, f.Status)
	}
	mt := wire.MessageToRequest{Type: 1, Recipients: []string{"bob"}, Msg: []byte("psst")}
	if f := alice.call(wire.CmdMessageTo, mt.Append(nil)); f.Status != wire.StatusOverloaded {
		t.Fatalf("KCP MessageTo: %v, want Overloaded", f.Status)
	}
	if n := srv.table.Stats().Deliveries; n != before {
		t.Fatalf("%d deliveries after refused fan-outs", n-before)
	}
	if f := alice.call(wire.CmdGetMemberIDs, (&wire.TypeRequest{Type: 1}).Append(nil)); f.Status != wire.StatusOK {
		t.Fatalf("KCP GetMemberIDs while overloaded: %v", f.Status)
	}

	if f := bob.call(wire.CmdBroadcast, bc.Append(nil)); f.Status != wire.StatusOK {
		t.Fatalf("TCP broadcast: %v", f.Status)
	}
	for {
		p, err := alice.next()
		if err != nil {
			t.Fatalf("alice waiting for bob's broadcast: %v", err)
		}
		if p.Flags&wire.FlagPush != 0 && p.Cmd == wire.CmdBroadcastReceived {
			break
		}
	}
	if srv.net.Stats().KCPOverloads == 0 {
		t.Error("KCPOverloads = 0")
	}
}
