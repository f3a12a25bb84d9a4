package server

import (
	"crypto/rand"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/coveyhq/covey/clientsdk"
	"github.com/coveyhq/covey/wire"
)

// TestSlowConsumerDisconnected has a member stop reading while another
// broadcasts to it: the server disconnects it (its session sees it leave),
// keeps serving the broadcaster, and does not pile up what it could not
// send.
func TestSlowConsumerDisconnected(t *testing.T) {
	const maxOutbound = 256 << 10
	for _, network := range transports {
		t.Run(network, func(t *testing.T) {
			srv := startServer(t, func(c *Config) { c.MaxOutbound = maxOutbound })
			ctx := testCtx(t)
			sender := dialSDK(t, srv, network, "sender")
			id, err := sender.Create(ctx, 1, 4, 0, nil)
			must(t, err)

			stalled := dialRaw(t, network, srv.addrOf(network))
			if tc, ok := stalled.c.(*net.TCPConn); ok {
				tc.SetReadBuffer(4 << 10) // fill up quickly
			}
			stalled.signIn("stalled")
			if f := stalled.call(wire.CmdJoin, (&wire.SessionRef{Type: 1, SessionID: id}).Append(nil)); f.Status != wire.StatusOK {
				t.Fatalf("join: %v", f.Status)
			}
			waitEvent(t, sender, func(e clientsdk.MemberJoined) bool { return e.UserID == "stalled" })
			// From here on the stalled client reads nothing.

			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)

			msg := make([]byte, 4096)
			rand.Read(msg)        // incompressible: pushes over 512 bytes are compressed
			const most = 64 << 20 // give up after 64 MiB: far past any buffer
			left := false
			deadline := time.After(testTimeout)
			for sent := 0; sent < most && !left; sent += 32 * len(msg) {
				for range 31 {
					if err := sender.BroadcastAsync(1, msg); err != nil {
						t.Fatal(err)
					}
				}
				if err := sender.Broadcast(ctx, 1, msg); err != nil { // paces the sender
					t.Fatal(err)
				}
				select {
				case ev := <-sender.Events():
					if e, ok := ev.(clientsdk.MemberLeft); ok && e.UserID == "stalled" {
						left = true
					}
				case <-deadline:
					t.Fatal("the stalled member was not disconnected in time")
				default:
				}
			}
			if !left {
				waitEvent(t, sender, func(e clientsdk.MemberLeft) bool { return e.UserID == "stalled" })
			}
			// The broadcaster is still served.
			if _, err := sender.MemberIDs(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if got := scrape(t, srv, `covey_disconnects_total\{reason="slow_consumer"\}`); got != 1 {
				t.Errorf(`covey_disconnects_total{reason="slow_consumer"} = %v, want 1`, got)
			}
			runtime.GC()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 16<<20 {
				t.Fatalf("heap grew by %d bytes while a slow consumer was fed", grew)
			}
		})
	}
}
