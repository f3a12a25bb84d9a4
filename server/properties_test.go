package server

import (
	"math"
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
