package server

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coveyhq/covey/clientsdk"
	"github.com/coveyhq/covey/session"
	"github.com/coveyhq/covey/wire"
)

// TestIncrPropertyOverflowOverNetwork checks that a client sees
// StatusOverflow for an increment past either end of the int64 range,
// and that the value is unchanged.
func TestIncrPropertyOverflowOverNetwork(t *testing.T) {
	srv := startServer(t)
	for _, network := range transports {
		t.Run(network, func(t *testing.T) {
			ctx := testCtx(t)
			alice := dialSDK(t, srv, network, "alice-"+network)
			_, err := alice.Create(ctx, 1, 4, 0, map[string]any{"hi": int64(math.MaxInt64), "lo": int64(math.MinInt64)})
			must(t, err)
			_, err = alice.IncrProperty(ctx, 1, "hi", 1)
			wantStatus(t, err, wire.StatusOverflow)
			_, err = alice.IncrProperty(ctx, 1, "lo", -1)
			wantStatus(t, err, session.ErrOverflow)
			props, err := alice.GetAllProperties(ctx, 1)
			must(t, err)
			if props["hi"] != int64(math.MaxInt64) || props["lo"] != int64(math.MinInt64) {
				t.Fatalf("after refused increments: %v", props)
			}
		})
	}
}

// rawSetProperty sets key = value as r's user and returns the status.
func rawSetProperty(r *rawClient, key string, value wire.Value) wire.Status {
	r.t.Helper()
	req := wire.SetPropertyRequest{Type: 1, Key: key, Value: value}
	return r.call(wire.CmdSetProperty, req.Append(nil)).Status
}

// TestGetAllPropertiesWithinMaxPayload fills a session's properties to
// the size budget over the network, 4 KB values first as a client asking
// for 256 of them would, and checks that the write crossing the budget is
// refused with StatusPropertiesFull and that the GetAllProperties reply
// then fits the server's MaxPayload, at the default limit and at the
// smallest one.
func TestGetAllPropertiesWithinMaxPayload(t *testing.T) {
	for _, maxPayload := range []uint32{wire.DefaultMaxPayload, MinMaxPayload} {
		srv := startServer(t, func(c *Config) { c.MaxPayload = maxPayload })
		for _, network := range transports {
			t.Run(fmt.Sprintf("%s/%d", network, maxPayload), func(t *testing.T) {
				r := dialRaw(t, network, srv.addrOf(network))
				r.signIn("filler-" + network)
				create := wire.CreateRequest{Type: 1, MaxMembers: 4}
				if f := r.call(wire.CmdCreate, create.Append(nil)); f.Status != wire.StatusOK {
					t.Fatalf("create: %v", f.Status)
				}
				// 4 KB values; a quarter of the payload limit on a small
				// server, where a 4 KB value does not fit a request.
				big := wire.StringValue(strings.Repeat("v", min(4096, int(maxPayload)/4)))
				refused := false
				for i := range 256 {
					st := rawSetProperty(r, fmt.Sprintf("big%03d", i), big)
					if st == wire.StatusPropertiesFull {
						refused = true
						break
					}
					if st != wire.StatusOK {
						t.Fatalf("set big%03d: %v", i, st)
					}
				}
				if !refused {
					t.Fatal("256 big properties were all accepted")
				}
				// Top up with smaller values until nothing more fits.
				n := 0
				for _, l := range []int{1024, 256, 64, 16, 4, 1, 0} {
					for rawSetProperty(r, fmt.Sprintf("s%d", n), wire.StringValue(strings.Repeat("s", l))) == wire.StatusOK {
						n++
					}
				}
				f := r.call(wire.CmdGetAllProperties, (&wire.TypeRequest{Type: 1}).Append(nil))
				var rep wire.PropsReply
				if f.Status != wire.StatusOK || rep.Consume(f.Payload) != nil {
					t.Fatalf("GetAllProperties: %v", f.Status)
				}
				budget := int(maxPayload) - wire.PushReserve
				if len(f.Payload) > int(maxPayload) || len(f.Payload) > budget || len(f.Payload) < budget-8 {
					t.Fatalf("GetAllProperties replied %d bytes: want at most the budget %d (MaxPayload %d) and close to it",
						len(f.Payload), budget, maxPayload)
				}
				keys := &wire.PropertyKeysRequest{Type: 1, Keys: make([]string, 0, len(rep.Props))}
				for _, kv := range rep.Props {
					keys.Keys = append(keys.Keys, kv.Key)
				}
				if f := r.call(wire.CmdGetProperties, keys.Append(nil)); f.Status != wire.StatusOK || len(f.Payload) > budget {
					t.Fatalf("GetProperties of every key: %v, %d bytes", f.Status, len(f.Payload))
				}
			})
		}
	}
}

// TestDeletePropertyOverNetwork checks DeleteProperty through the SDK:
// the key is gone and the reply says whether it existed.
func TestDeletePropertyOverNetwork(t *testing.T) {
	srv := startServer(t)
	for _, network := range transports {
		t.Run(network, func(t *testing.T) {
			ctx := testCtx(t)
			alice := dialSDK(t, srv, network, "alice-"+network)
			outsider := dialSDK(t, srv, network, "outsider-"+network)
			_, err := alice.Create(ctx, 1, 4, 0, map[string]any{"map": "dust"})
			must(t, err)
			if existed, err := alice.DeleteProperty(ctx, 1, "map"); err != nil || !existed {
				t.Fatalf("DeleteProperty(map) = %v, %v", existed, err)
			}
			if _, ok, err := alice.GetProperty(ctx, 1, "map"); ok || err != nil {
				t.Fatalf("map after delete: %v, %v", ok, err)
			}
			if existed, err := alice.DeleteProperty(ctx, 1, "map"); err != nil || existed {
				t.Fatalf("DeleteProperty(map) again = %v, %v", existed, err)
			}
			_, err = outsider.DeleteProperty(ctx, 1, "map")
			wantStatus(t, err, session.ErrNotMember)
		})
	}
}

// changesUntil reads c's events until one for which done returns true and
// returns the PropertiesChanged events before it, in order.
func changesUntil(t *testing.T, c *clientsdk.Client, done func(clientsdk.Event) bool) []clientsdk.PropertiesChanged {
	t.Helper()
	var out []clientsdk.PropertiesChanged
	timeout := time.After(testTimeout)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("%s: events closed (%v)", c.UserID(), c.Err())
			}
			if done(ev) {
				return out
			}
			if pc, ok := ev.(clientsdk.PropertiesChanged); ok {
				out = append(out, pc)
			}
		case <-timeout:
			t.Fatalf("%s: timed out waiting for the end marker", c.UserID())
		}
	}
}

// marker returns a done function for changesUntil: a broadcast of msg.
func marker(msg string) func(clientsdk.Event) bool {
	return func(ev clientsdk.Event) bool {
		b, ok := ev.(clientsdk.BroadcastReceived)
		return ok && string(b.Msg) == msg
	}
}

// flush returns, for each client, the PropertiesChanged events it has
// received since the last flush: clients[0] and clients[1] each broadcast
// a marker, and every client reads up to the markers it gets. Every push
// queued before a marker reaches a client before it, so a push missing by
// then was never sent.
func flush(t *testing.T, ctx context.Context, typ uint8, step string, clients ...*clientsdk.Client) map[string][]clientsdk.PropertiesChanged {
	t.Helper()
	a, b := clients[0], clients[1]
	ma, mb := step+"/"+a.UserID(), step+"/"+b.UserID()
	must(t, a.Broadcast(ctx, typ, []byte(ma)))
	must(t, b.Broadcast(ctx, typ, []byte(mb)))
	out := map[string][]clientsdk.PropertiesChanged{}
	for _, c := range clients {
		var got []clientsdk.PropertiesChanged
		if c != a {
			got = append(got, changesUntil(t, c, marker(ma))...)
		}
		if c != b {
			got = append(got, changesUntil(t, c, marker(mb))...)
		}
		out[c.UserID()] = got
	}
	return out
}

// wantChanges fails the test unless got holds exactly want for each
// client.
func wantChanges(t *testing.T, step string, got, want map[string][]clientsdk.PropertiesChanged) {
	t.Helper()
	for id, w := range want {
		if !reflect.DeepEqual(got[id], w) {
			t.Fatalf("%s: %s received %+v, want %+v", step, id, got[id], w)
		}
	}
}

// TestLobbyReadyCheck is a 3-player lobby's ready check over each
// transport: alice creates, bob and carol join, and each sets ready_<id>;
// every other member receives a PropertiesChanged naming the writer with
// the value, and the writer none. Then a delete, an increment, refused
// writes (Overflow, PropertiesFull: no push), a server-side write (to
// everyone, no writer), and a quiet session that sends nothing.
func TestLobbyReadyCheck(t *testing.T) {
	for _, network := range transports {
		t.Run(network, func(t *testing.T) {
			srv := startServer(t)
			ctx := testCtx(t)
			alice := dialSDK(t, srv, network, "alice")
			bob := dialSDK(t, srv, network, "bob")
			carol := dialSDK(t, srv, network, "carol")
			id, err := alice.Create(ctx, 1, 3, 0, map[string]any{"map": "dust"})
			must(t, err)
			must(t, bob.Join(ctx, 1, id))
			must(t, carol.Join(ctx, 1, id))
			all := []*clientsdk.Client{alice, bob, carol}
			ready := func(writer string) clientsdk.PropertiesChanged {
				return clientsdk.PropertiesChanged{Type: 1, SessionID: id, Writer: writer, Props: map[string]any{"ready_" + writer: true}}
			}

			for _, c := range all {
				must(t, c.SetProperty(ctx, 1, "ready_"+c.UserID(), true))
			}
			wantChanges(t, "ready", flush(t, ctx, 1, "ready", all...), map[string][]clientsdk.PropertiesChanged{
				"alice": {ready("bob"), ready("carol")},
				"bob":   {ready("alice"), ready("carol")},
				"carol": {ready("alice"), ready("bob")},
			})
			props, err := carol.GetAllProperties(ctx, 1)
			must(t, err)
			if props["ready_alice"] != true || props["ready_bob"] != true || props["ready_carol"] != true {
				t.Fatalf("after the ready check: %v", props)
			}

			// Delete and increment.
			existed, err := alice.DeleteProperty(ctx, 1, "ready_alice")
			if err != nil || !existed {
				t.Fatalf("DeleteProperty = %v, %v", existed, err)
			}
			n, err := bob.IncrProperty(ctx, 1, "round", 1)
			must(t, err)
			unready := clientsdk.PropertiesChanged{Type: 1, SessionID: id, Writer: "alice", Props: map[string]any{}, Deleted: []string{"ready_alice"}}
			round := clientsdk.PropertiesChanged{Type: 1, SessionID: id, Writer: "bob", Props: map[string]any{"round": n}}
			wantChanges(t, "delete", flush(t, ctx, 1, "delete", all...), map[string][]clientsdk.PropertiesChanged{
				"alice": {round}, "bob": {unready}, "carol": {unready, round},
			})

			// Refused writes tell no one.
			must(t, alice.SetProperty(ctx, 1, "max", int64(math.MaxInt64)))
			_, err = bob.IncrProperty(ctx, 1, "max", 1)
			wantStatus(t, err, wire.StatusOverflow)
			// 15 x 4 KB and 3,940 bytes: a request within the 65,536-byte
			// payload limit, properties over the 65,280-byte budget.
			big := map[string]any{"big15": strings.Repeat("v", 3940)}
			for i := range 15 {
				big[fmt.Sprintf("big%02d", i)] = strings.Repeat("v", 4096)
			}
			wantStatus(t, carol.SetProperties(ctx, 1, big), wire.StatusPropertiesFull)
			_, existed = mustGet(t, ctx, carol, "big00")
			if existed {
				t.Fatal("a refused SetProperties stored a key")
			}
			_, err = bob.DeleteProperty(ctx, 1, "never")
			must(t, err)
			maxed := clientsdk.PropertiesChanged{Type: 1, SessionID: id, Writer: "alice", Props: map[string]any{"max": int64(math.MaxInt64)}}
			wantChanges(t, "refused", flush(t, ctx, 1, "refused", all...), map[string][]clientsdk.PropertiesChanged{
				"alice": nil, "bob": {maxed}, "carol": {maxed},
			})

			// The game's server code writes: everyone is told, no writer.
			s, ok := srv.Sessions().Session(id)
			if !ok {
				t.Fatal("session not found on the server")
			}
			must(t, s.SetProperty("phase", "countdown"))
			phase := clientsdk.PropertiesChanged{Type: 1, SessionID: id, Props: map[string]any{"phase": "countdown"}}
			wantChanges(t, "server", flush(t, ctx, 1, "server", all...), map[string][]clientsdk.PropertiesChanged{
				"alice": {phase}, "bob": {phase}, "carol": {phase},
			})

			// A quiet session sends none.
			qid, err := alice.Create(ctx, 2, 3, 0, nil, clientsdk.Quiet())
			must(t, err)
			must(t, bob.Join(ctx, 2, qid))
			must(t, alice.SetProperty(ctx, 2, "ready_alice", true))
			must(t, bob.SetProperties(ctx, 2, map[string]any{"ready_bob": true}))
			_, err = bob.DeleteProperty(ctx, 2, "ready_alice")
			must(t, err)
			qs, _ := srv.Sessions().Session(qid)
			must(t, qs.SetProperty("phase", "countdown"))
			wantChanges(t, "quiet", flush(t, ctx, 2, "quiet", alice, bob), map[string][]clientsdk.PropertiesChanged{
				"alice": nil, "bob": nil,
			})
			if v, ok, err := alice.GetProperty(ctx, 2, "ready_bob"); err != nil || !ok || v != true {
				t.Fatalf("a quiet session's property: %v, %v, %v", v, ok, err)
			}
		})
	}
}

func mustGet(t *testing.T, ctx context.Context, c *clientsdk.Client, key string) (any, bool) {
	t.Helper()
	v, ok, err := c.GetProperty(ctx, 1, key)
	must(t, err)
	return v, ok
}

// TestPropertiesChangedPushWithinMaxPayload writes a session's whole
// size budget in one SetProperties, from a user with the longest ID the
// server signs in, and checks that the other member's PropertiesChanged
// push fits the server's MaxPayload (the member's decoder refuses
// anything larger), at the default limit and at the smallest one.
func TestPropertiesChangedPushWithinMaxPayload(t *testing.T) {
	for _, maxPayload := range []uint32{wire.DefaultMaxPayload, MinMaxPayload} {
		srv := startServer(t, func(c *Config) { c.MaxPayload = maxPayload })
		for _, network := range transports {
			t.Run(fmt.Sprintf("%s/%d", network, maxPayload), func(t *testing.T) {
				writer := dialRaw(t, network, srv.addrOf(network))
				writer.signIn(strings.Repeat("w", 127) + network[:1])
				watcher := dialRaw(t, network, srv.addrOf(network))
				watcher.dec = wire.NewDecoder(wire.Config{MaxPayload: maxPayload})
				watcher.signIn("watcher-" + network)
				f := writer.call(wire.CmdCreate, (&wire.CreateRequest{Type: 1, MaxMembers: 2}).Append(nil))
				var created wire.CreateReply
				if f.Status != wire.StatusOK || created.Consume(f.Payload) != nil {
					t.Fatalf("create: %v", f.Status)
				}
				if f := watcher.call(wire.CmdJoin, (&wire.SessionRef{Type: 1, SessionID: created.SessionID}).Append(nil)); f.Status != wire.StatusOK {
					t.Fatalf("join: %v", f.Status)
				}
				// The longest keys and values that fit, down to a byte,
				// until the budget is full to the byte or nearly.
				budget := int(maxPayload) - wire.PushReserve
				var kvs []wire.KeyValue
				size := wire.SizeProps(nil)
				for l := 4096; l > 0; {
					kv := wire.KeyValue{Key: fmt.Sprintf("%0128d", len(kvs)), Value: wire.StringValue(strings.Repeat("v", l))}
					grow := wire.SizeProps([]wire.KeyValue{kv}) - 1 + wire.SizeUvarint(uint64(len(kvs)+1)) - wire.SizeUvarint(uint64(len(kvs)))
					if size+grow > budget {
						l /= 2
						continue
					}
					kvs = append(kvs, kv)
					size += grow
				}
				set := wire.SetPropertiesRequest{Type: 1, Props: kvs}
				if f := writer.call(wire.CmdSetProperties, set.Append(nil)); f.Status != wire.StatusOK {
					t.Fatalf("SetProperties of %d bytes: %v", size, f.Status)
				}
				for {
					f, err := watcher.next()
					if err != nil {
						t.Fatalf("watcher: %v (a push over MaxPayload %d?)", err, maxPayload)
					}
					if f.Cmd != wire.CmdPropertiesChanged {
						continue
					}
					var p wire.PropertiesChangedPush
					if p.Consume(f.Payload) != nil || len(p.Props) != len(kvs) || len(f.Payload) > int(maxPayload) {
						t.Fatalf("push of %d bytes with %d properties", len(f.Payload), len(p.Props))
					}
					return
				}
			})
		}
	}
}
