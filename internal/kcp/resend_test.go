package kcp

import (
	"bytes"
	"testing"
	"time"
)

// dataSNs lists the sequence numbers of the data segments in a datagram.
func dataSNs(p []byte) []uint32 {
	var out []uint32
	for len(p) >= IKCP_OVERHEAD {
		n := IKCP_OVERHEAD + int(uint32(p[20])|uint32(p[21])<<8|uint32(p[22])<<16|uint32(p[23])<<24)
		if p[4] == IKCP_CMD_PUSH {
			out = append(out, uint32(p[12])|uint32(p[13])<<8|uint32(p[14])<<16|uint32(p[15])<<24)
		}
		p = p[min(n, len(p)):]
	}
	return out
}

// sentBy counts, in a pair, how often A sent each data segment.
func sentBy(p *pair, drop func(sn uint32, times int) bool) map[uint32]int {
	sent := map[uint32]int{}
	p.drop = func(fromA bool, seg []byte) bool {
		if !fromA {
			return false
		}
		lost := false
		for _, sn := range dataSNs(seg) {
			sent[sn]++
			lost = lost || drop(sn, sent[sn])
		}
		return lost
	}
	return sent
}

// TestFastRetransmitWithSkippedScans: A's first segment is lost; the
// flushes that send the next ones look only at the new segments (none is
// due by time), but B's ACKs of them skip the lost one, and it must go
// again after Resend (2) of them, as upstream's full scan does, long
// before its timeout.
func TestFastRetransmitWithSkippedScans(t *testing.T) {
	p := newPair()
	sent := sentBy(p, func(sn uint32, times int) bool { return sn == 0 && times == 1 })
	start := time.Now()
	for i := range 4 {
		p.a.Send(bytes.Repeat([]byte{byte('a' + i)}, 100))
		p.a.Flush(false)
		p.run()
		p.b.Flush(false) // B's ACKs
		p.run()
	}
	if sent[0] < 2 {
		t.Fatalf("segment 0 sent %d times after 3 later ones were acknowledged: no fast retransmit", sent[0])
	}
	if took := time.Since(start); took >= time.Duration(p.a.rx_rto)*time.Millisecond {
		t.Logf("took %v, past the RTO: the test proves less", took)
	}
	buf := make([]byte, 1200)
	got := 0
	for n := p.b.Recv(buf); n > 0; n = p.b.Recv(buf) {
		got += n
	}
	if got != 400 {
		t.Fatalf("B read %d bytes, want 400", got)
	}
}

// TestTimeoutRetransmitWithSkippedScans: A's only segment is lost and
// nothing else is sent. Flushes before its timeout send nothing; once it
// is due, a flush sends it again, and not before the minimum RTO (30 ms
// in nodelay mode) has passed.
func TestTimeoutRetransmitWithSkippedScans(t *testing.T) {
	p := newPair()
	sent := sentBy(p, func(sn uint32, times int) bool { return times == 1 })
	p.a.Send([]byte("lost once"))
	start := time.Now()
	p.a.Flush(false)
	p.run()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for sent[0] < 2 {
		if time.Since(start) > 2*time.Second {
			t.Fatalf("segment 0 sent %d times in 2 s: no timeout retransmission", sent[0])
		}
		<-tick.C
		p.a.Flush(false)
		p.run()
	}
	if took := time.Since(start); took < IKCP_RTO_NDL*time.Millisecond {
		t.Fatalf("retransmitted after %v, before the minimum RTO", took)
	}
	p.b.Flush(false)
	p.run()
	if p.a.WaitSnd() != 0 {
		t.Fatalf("%d segments still in flight after the retransmission was acknowledged", p.a.WaitSnd())
	}
}

// checkResendBound checks what lets flush look only at new segments: no
// unacknowledged segment in flight is due before ts_resend, and
// fastacked is set while one has been skipped by an ACK.
func checkResendBound(t *testing.T, k *KCP, step int) {
	t.Helper()
	for seg := range k.snd_buf.ForEach {
		if seg.acked == 1 || seg.xmit == 0 {
			continue
		}
		if _itimediff(seg.resendts, k.ts_resend) < 0 {
			t.Fatalf("step %d: segment %d due at %d, before ts_resend %d", step, seg.sn, seg.resendts, k.ts_resend)
		}
		if seg.fastack > 0 && !k.fastacked {
			t.Fatalf("step %d: segment %d skipped %d times, fastacked not set", step, seg.sn, seg.fastack)
		}
	}
}

// TestResendBoundHolds drives a pair through random sends, flushes and
// deliveries with a fifth of the datagrams lost each way, checking the
// bound after every step; then, losing nothing more, everything A sent
// must arrive in order.
func TestResendBoundHolds(t *testing.T) {
	p := newPair()
	rng := uint32(1)
	next := func(n uint32) uint32 { // xorshift: the same run every time
		rng ^= rng << 13
		rng ^= rng >> 17
		rng ^= rng << 5
		return rng % n
	}
	lossy := true
	p.drop = func(bool, []byte) bool { return lossy && next(5) == 0 }
	var want, got []byte
	buf := make([]byte, 64<<10)
	read := func() {
		for n := p.b.Recv(buf); n > 0; n = p.b.Recv(buf) {
			got = append(got, buf[:n]...)
		}
	}
	for step := range 3000 {
		switch next(4) {
		case 0:
			if p.a.WaitSnd() < 256 {
				msg := bytes.Repeat([]byte{byte(step)}, 1+int(next(3000)))
				want = append(want, msg...)
				p.a.Send(msg)
			}
		case 1:
			p.a.Flush(false)
		case 2:
			p.run()
		case 3:
			read()
			p.b.Flush(false)
		}
		checkResendBound(t, p.a, step)
	}
	lossy = false
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for len(got) < len(want) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d bytes after 10 s without loss", len(got), len(want))
		}
		<-tick.C
		p.a.Flush(false)
		p.run()
		read()
		p.b.Flush(false)
		p.run()
		checkResendBound(t, p.a, -1)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("data differs")
	}
	t.Logf("%d bytes, %d segments sent again", len(want), p.a.Resent())
}

// BenchmarkFlushFullWindow is a flush of a session whose window is full
// (128 segments in flight, none due), as the engine flushes it for each
// batch of frames and ACKs while its peer is slow: upstream looked at
// every segment in flight on each.
func BenchmarkFlushFullWindow(b *testing.B) {
	k := NewKCP(1, func([]byte, int) {})
	k.SetStreamMode(true)
	k.NoDelay(1, 10, 2, 1)
	k.WndSize(128, 128)
	k.SetMtu(1200)
	k.rx_rto = IKCP_RTO_MAX // nothing falls due while the benchmark runs
	k.rmt_wnd = 128         // as the peer announces
	for range 128 {
		k.Send(make([]byte, k.mss))
	}
	k.Flush(false)
	if k.snd_buf.Len() != 128 {
		b.Fatalf("%d segments in flight, want 128", k.snd_buf.Len())
	}
	b.ReportAllocs()
	for b.Loop() {
		k.Flush(false)
	}
}
