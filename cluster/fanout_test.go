package cluster

import (
	"slices"
	"strconv"
	"testing"

	"github.com/coveyhq/covey/wire"
)

// TestFanoutFitSplitsByTargets: Node.Fanout sends uids in the runs
// fanoutFit gives: every run's Fanout within the limit, the runs in
// order and together every target; 0 when the frame alone is too large.
func TestFanoutFitSplitsByTargets(t *testing.T) {
	const id = "0b6e7f0c-6a51-4d5e-9d3c-8f2b8b0f6f9e@n1"
	frame := make([]byte, 4000)
	var uids []string
	for i := range 700 {
		uids = append(uids, "player-with-a-long-name-"+strconv.Itoa(i))
	}
	for _, limit := range []uint32{1 << 20, 16 << 10, 8 << 10, 4200} {
		var got []string
		runs := 0
		for rest := uids; len(rest) > 0; {
			k := fanoutFit(id, rest, frame, limit)
			if k == 0 {
				t.Fatalf("limit %d: no target fits, with %d left", limit, len(rest))
			}
			if n := wire.FanoutSize(id, rest[:k], frame); n > int(limit) {
				t.Fatalf("limit %d: a Fanout of %d bytes", limit, n)
			}
			got = append(got, rest[:k]...)
			rest = rest[k:]
			runs++
		}
		if !slices.Equal(got, uids) {
			t.Fatalf("limit %d: the runs do not make up the targets in order", limit)
		}
		t.Logf("limit %d: %d targets in %d Fanouts", limit, len(uids), runs)
		if limit == 1<<20 && runs != 1 {
			t.Fatalf("a Fanout that fits was split into %d", runs)
		}
	}
	if k := fanoutFit(id, uids, frame, 4000); k != 0 {
		t.Fatalf("a frame over the limit alone: %d targets fit, want 0", k)
	}
}
