package kcp

import (
	"bytes"
	"testing"
	"time"
)

// pair is two KCP state machines wired to each other in memory: what one
// outputs the other gets as input, unless drop says otherwise.
type pair struct {
	a, b  *KCP
	drop  func(fromA bool, seg []byte) bool
	queue []datagram // output waiting for run: Input is kept out of output
}

// datagram is one output of a KCP, on its way to the other.
type datagram struct {
	to *KCP
	p  []byte
}

func newPair() *pair {
	p := &pair{drop: func(bool, []byte) bool { return false }}
	p.a = NewKCP(1, func(b []byte, n int) {
		if !p.drop(true, b[:n]) {
			p.queue = append(p.queue, datagram{p.b, bytes.Clone(b[:n])})
		}
	})
	p.b = NewKCP(1, func(b []byte, n int) {
		if !p.drop(false, b[:n]) {
			p.queue = append(p.queue, datagram{p.a, bytes.Clone(b[:n])})
		}
	})
	for _, k := range []*KCP{p.a, p.b} {
		k.SetStreamMode(true)
		k.NoDelay(1, 10, 2, 1)
		k.WndSize(128, 128)
		k.SetMtu(1200)
	}
	return p
}

// run delivers the datagrams in flight until none is left, answering a
// window probe at once as Covey's engines do.
func (p *pair) run() {
	for len(p.queue) > 0 {
		d := p.queue[0]
		p.queue = p.queue[1:]
		d.to.Input(d.p, true, true)
		if d.to.ProbePending() {
			d.to.Flush(false)
		}
	}
}

// cmds lists the commands of the segments in a datagram.
func cmds(p []byte) []byte {
	var out []byte
	for len(p) >= IKCP_OVERHEAD {
		out = append(out, p[4])
		n := IKCP_OVERHEAD + int(uint32(p[20])|uint32(p[21])<<8|uint32(p[22])<<16|uint32(p[23])<<24)
		p = p[min(n, len(p)):]
	}
	return out
}

// TestWindowProbeAfterLostUpdate: A sends more than B's receive window
// while B does not read, until all A sent is acknowledged and B's window
// is zero. B then reads, and its window update (WINS) is lost. A must ask
// (WASK) within a second, where upstream waits 7 s, and B must answer at
// once, so that the rest flows.
func TestWindowProbeAfterLostUpdate(t *testing.T) {
	p := newPair()
	var winsLost bool
	p.drop = func(fromA bool, seg []byte) bool {
		if !fromA && !winsLost && bytes.IndexByte(cmds(seg), IKCP_CMD_WINS) >= 0 {
			winsLost = true
			return true
		}
		return false
	}
	data := bytes.Repeat([]byte("probe"), 50_000) // 250 kB: 213 segments, more than B's window of 128
	if p.a.Send(data) < 0 {
		t.Fatal("Send refused the data")
	}
	p.a.Flush(false)
	p.run()
	if p.a.rmt_wnd != 0 || p.a.snd_buf.Len() != 0 || p.a.snd_queue.Len() == 0 {
		t.Fatalf("setup: A sees window %d with %d in flight and %d queued; want 0, 0, >0",
			p.a.rmt_wnd, p.a.snd_buf.Len(), p.a.snd_queue.Len())
	}

	got := make([]byte, 0, len(data))
	buf := make([]byte, 1200)
	for {
		n := p.b.Recv(buf)
		if n < 0 {
			break
		}
		got = append(got, buf[:n]...)
	}
	p.b.Flush(false) // the window update, lost
	p.run()
	if !winsLost {
		t.Fatal("B sent no window update after reading: the test proves nothing")
	}

	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond) // the engines' update interval
	defer tick.Stop()
	for len(got) < len(data) {
		if time.Since(start) > time.Second {
			t.Fatalf("%d of %d bytes after 1 s: A did not probe B's window", len(got), len(data))
		}
		<-tick.C
		p.a.Flush(false)
		p.run()
		for {
			n := p.b.Recv(buf)
			if n < 0 {
				break
			}
			got = append(got, buf[:n]...)
			p.b.Flush(false)
			p.run()
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data differs")
	}
	t.Logf("resumed %v after the lost update", time.Since(start))
}
