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

func (r *seqRecorder) Close(wire.Status, string) {}

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

// TestReplyOrderQueueBound: replies known now queue behind a waiting one
// past maxLateReplies, in order, up to maxQueuedReplies in all; then
// queueReady refuses (the connection is closed), and closeWhenSent closes
// only once the queue is out.
func TestReplyOrderQueueBound(t *testing.T) {
	var o replyOrder
	rec := &closeRecorder{}
	tk, ok := o.take()
	if !ok {
		t.Fatal("take refused")
	}
	for seq := uint32(2); seq <= maxQueuedReplies; seq++ {
		if !o.queueReady(rec, wire.Header{Seq: seq}, nil) {
			t.Fatalf("queueReady refused reply %d, under maxQueuedReplies", seq)
		}
	}
	if o.queueReady(rec, wire.Header{Seq: maxQueuedReplies + 1}, nil) {
		t.Fatal("queueReady past maxQueuedReplies")
	}
	o.closeWhenSent(rec, wire.StatusOK, "bye")
	if len(rec.seqs) != 0 || rec.closed {
		t.Fatalf("sent %d and closed %v with the first reply still waiting", len(rec.seqs), rec.closed)
	}
	o.fill(rec, tk, true, wire.Header{Seq: 1}, nil)
	if len(rec.seqs) != maxQueuedReplies || !rec.closed {
		t.Fatalf("sent %d, closed %v; want %d then closed", len(rec.seqs), rec.closed, maxQueuedReplies)
	}
	for i, s := range rec.seqs {
		if s != uint32(i+1) {
			t.Fatalf("reply %d has seq %d", i, s)
		}
	}
}

// closeRecorder is a seqRecorder that notes its Close.
type closeRecorder struct {
	seqRecorder
	closed bool
}

func (r *closeRecorder) Close(wire.Status, string) {
	if len(r.seqs) == 0 {
		panic("closed before any reply was sent")
	}
	r.closed = true
}
