package clientconn

import (
	"math"
	"net"
	"testing"

	"github.com/coveyhq/covey/wire"
)

// TestNextSeqWraps checks that seqs skip 0, the last ping's seq and seqs
// still waiting for a reply, across the uint32 wrap.
func TestNextSeqWraps(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := New(a, wire.NewDecoder(wire.DefaultConfig()), make([]byte, 64), Config{LastSeq: math.MaxUint32 - 1})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending[1] = &Call{}
	c.pingSeq = 2
	for _, want := range []uint32{math.MaxUint32, 3, 4} {
		if got := c.nextSeq(); got != want {
			t.Fatalf("nextSeq = %d, want %d", got, want)
		}
	}
}
