package kcp

import (
	"bytes"
	"testing"
)

// TestStreamModeRefusesFragments: B in stream mode gets a message of 200
// fragments from A in message mode. Upstream stores them, and since B's
// receive queue holds at most 128 segments, the message is never
// assembled and nothing after it can be read. Input must refuse the first
// fragment with InputFragment and store nothing; stream-mode data from
// the same peer still flows.
func TestStreamModeRefusesFragments(t *testing.T) {
	p := newPair()
	p.a.SetStreamMode(false)
	p.a.WndSize(256, 256)
	msg := bytes.Repeat([]byte("x"), 200)
	p.a.mss = 1 // 200 fragments of one byte: frg 199 down to 0
	if rc := p.a.Send(msg); rc != 0 {
		t.Fatalf("Send = %d", rc)
	}
	p.a.Flush(false)
	if len(p.queue) == 0 {
		t.Fatal("A sent nothing")
	}
	refused := 0
	for _, d := range p.queue {
		if rc := d.to.Input(d.p, true, true); rc == InputFragment {
			refused++
		} else if rc < 0 {
			t.Fatalf("Input = %d, want InputFragment or success", rc)
		}
	}
	p.queue = p.queue[:0]
	if refused == 0 {
		t.Fatal("no datagram refused")
	}
	if n := p.b.rcv_buf.Len() + p.b.rcv_queue.Len(); n != 0 {
		t.Fatalf("B stored %d fragments", n)
	}

	// The same peer in stream mode: frg 0 only, and accepted.
	q := newPair()
	q.a.Send([]byte("hello"))
	q.a.Flush(false)
	for _, d := range q.queue {
		if rc := d.to.Input(d.p, true, true); rc != 0 {
			t.Fatalf("stream-mode Input = %d", rc)
		}
	}
	buf := make([]byte, 16)
	if n := q.b.Recv(buf); string(buf[:max(n, 0)]) != "hello" {
		t.Fatalf("Recv = %d %q", n, buf[:max(n, 0)])
	}
}
