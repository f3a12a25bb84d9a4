package server

import (
	"fmt"
	"math"
	"strings"
	"testing"

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
