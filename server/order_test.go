package server

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/coveyhq/covey/wire"
)

type seqRecorder struct {
	mu   sync.Mutex
	seqs []uint32
}

func (r *seqRecorder) Send(h wire.Header, _ []byte) {
	r.mu.Lock()
	r.seqs = append(r.seqs, h.Seq)
	r.mu.Unlock()
}

// TestReplyOrder: late replies filled from many goroutines in any order,
// and replies known at once queued between them, leave in ticket order;
// a seq-0 success takes its turn and sends nothing; the bound holds.
func TestReplyOrder(t *testing.T) {
	var o replyOrder
	rec := &seqRecorder{}
	const n = 200
	tickets := make([]uint64, 0, n)
	var want []uint32
	for seq := uint32(1); seq <= n; seq++ {
		if seq%3 == 0 {
			o.queueReady(rec, wire.Header{Seq: seq}, nil)
			want = append(want, seq)
			continue
		}
		tk, ok := o.take()
		if !ok {
			t.Fatal("take refused under the bound")
		}
		tickets = append(tickets, tk)
		if seq%7 != 0 {
			want = append(want, seq)
		}
	}
	seqOf := func(i int) uint32 { return uint32(i + 1 + i/2) } // the i-th taken slot's seq
	var wg sync.WaitGroup
	for _, i := range rand.Perm(len(tickets)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seq := seqOf(i)
			o.fill(rec, tickets[i], seq%7 != 0, wire.Header{Seq: seq}, []byte("x"))
		}()
	}
	wg.Wait()
	if o.busy() {
		t.Fatal("slots left open")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.seqs) != len(want) {
		t.Fatalf("sent %d replies, want %d", len(rec.seqs), len(want))
	}
	for i := range want {
		if rec.seqs[i] != want[i] {
			t.Fatalf("reply %d has seq %d, want %d (order %v)", i, rec.seqs[i], want[i], rec.seqs[:i+1])
		}
	}

	for range maxLateReplies {
		if _, ok := o.take(); !ok {
			t.Fatal("take refused under the bound")
		}
	}
	if _, ok := o.take(); ok {
		t.Fatalf("more than %d late replies open", maxLateReplies)
	}
}
