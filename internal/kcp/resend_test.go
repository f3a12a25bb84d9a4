package kcp

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
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

// stepClock replaces the KCPs' clock, for the test, by one that moves
// only when the test moves it.
func stepClock(t *testing.T) *uint32 {
	now := uint32(1000)
	saved := currentMs
	currentMs = func() uint32 { return now }
	t.Cleanup(func() { currentMs = saved })
	return &now
}

// TestFastRetransmitWithSkippedScans: A's first segment is lost; the
// flushes that send the next ones look only at the new segments (the
// clock stands still, so none is due by time), but B's ACKs of them skip
// the lost one, and it must go again after Resend (2) of them, as
// upstream's full scan does.
func TestFastRetransmitWithSkippedScans(t *testing.T) {
	stepClock(t)
	p := newPair()
	sent := sentBy(p, func(sn uint32, times int) bool { return sn == 0 && times == 1 })
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
// nothing else is sent. Flushes a millisecond apart send nothing before
// its RTO (200 ms, the default while no RTT has been measured); the
// first one at it sends the segment again.
func TestTimeoutRetransmitWithSkippedScans(t *testing.T) {
	now := stepClock(t)
	p := newPair()
	sent := sentBy(p, func(sn uint32, times int) bool { return times == 1 })
	p.a.Send([]byte("lost once"))
	p.a.Flush(false)
	p.run()
	start := *now
	for sent[0] < 2 {
		if *now-start > 2*IKCP_RTO_DEF {
			t.Fatalf("segment 0 sent %d times in %d ms: no timeout retransmission", sent[0], *now-start)
		}
		*now++
		p.a.Flush(false)
		p.run()
	}
	if took := *now - start; took != IKCP_RTO_DEF {
		t.Fatalf("retransmitted after %d ms, want at its RTO, %d ms", took, IKCP_RTO_DEF)
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
		if seg.acked == 1 {
			continue
		}
		if seg.xmit == 0 { // segments enter snd_buf only in flush, which sends them
			t.Fatalf("step %d: segment %d in flight never sent", step, seg.sn)
		}
		if _itimediff(seg.resendts, k.ts_resend) < 0 {
			t.Fatalf("step %d: segment %d due at %d, before ts_resend %d", step, seg.sn, seg.resendts, k.ts_resend)
		}
		if seg.fastack > 0 && !k.fastacked {
			t.Fatalf("step %d: segment %d skipped %d times, fastacked not set", step, seg.sn, seg.fastack)
		}
	}
}

// TestResendBoundHolds drives a pair through random sends, flushes,
// deliveries and clock steps with a fifth of the datagrams lost each way,
// checking the bound after every step; then, losing nothing more and the
// clock moving 5 ms per round, everything A sent must arrive in order
// within 10 s of it.
func TestResendBoundHolds(t *testing.T) {
	now := stepClock(t)
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
		switch next(5) {
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
		case 4:
			*now += next(50)
		}
		checkResendBound(t, p.a, step)
	}
	lossy = false
	for round := 0; len(got) < len(want); round++ {
		if round == 2000 {
			t.Fatalf("%d of %d bytes after 10 s without loss", len(got), len(want))
		}
		*now += 5
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

// cloneRing copies a ring and its segments (their data is shared: flush
// only reads it).
func cloneRing(r *RingBuffer[segment]) *RingBuffer[segment] {
	c := *r
	c.elements = append([]segment(nil), r.elements...)
	return &c
}

// cloneForFlush copies what flush reads or writes, with an output that
// collects the datagrams in out.
func cloneForFlush(k *KCP, out *[][]byte) *KCP {
	c := *k
	c.snd_buf = cloneRing(k.snd_buf)
	c.snd_queue = cloneRing(k.snd_queue)
	c.acklist = append([]ackItem(nil), k.acklist...)
	c.buffer = make([]byte, len(k.buffer))
	c.output = func(b []byte, n int) { *out = append(*out, bytes.Clone(b[:n])) }
	return &c
}

// sendState is what flush leaves behind on the sending side.
func sendState(k *KCP) string {
	var segs []segment
	for s := range k.snd_buf.ForEach {
		x := *s
		x.data = nil
		segs = append(segs, x)
	}
	return fmt.Sprintf("%+v q=%d una=%d nxt=%d cwnd=%d ss=%d incr=%d state=%d resent=%d probe=%d",
		segs, k.snd_queue.Len(), k.snd_una, k.snd_nxt, k.cwnd, k.ssthresh, k.incr, k.state, k.resent, k.probe)
}

// TestFlushAsUpstream compares, before every flush of a pair's sender, a
// copy flushed as here with a copy forced into upstream's full scan:
// the datagrams, byte for byte, and the sending state must be the same.
// The clock is stepped by the test: it starts near the uint32 wrap or
// anywhere, and moves by a few milliseconds, by idle gaps of minutes and
// once in a while by more than 2^31 ms; windows change and close; the
// upstream default mode (congestion window on) and another resend count
// are mixed in, Input's own flush on and off, 14-50% of the datagrams
// lost. It also checks that skipping happens at all.
func TestFlushAsUpstream(t *testing.T) {
	defer func(f func() uint32) { currentMs = f }(currentMs)
	partials := 0
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 7))
		now := uint32(0xffffffff - 20000 + uint32(rng.IntN(40000)))
		if seed%3 == 0 {
			now = rng.Uint32()
		}
		currentMs = func() uint32 { return now }
		p := newPair()
		switch seed % 4 {
		case 1:
			p.a.NoDelay(0, 20, 0, 0) // upstream's defaults: no fast resend, congestion window
		case 2:
			p.a.NoDelay(1, 10, 3, 0)
		}
		p.a.SetInputFlush(seed%2 == 1)
		loss := 2 + rng.IntN(6)
		p.drop = func(bool, []byte) bool { return rng.IntN(loss) == 0 }
		buf := make([]byte, 1<<20)
		for step := range 3000 {
			switch rng.IntN(7) {
			case 0:
				if p.a.WaitSnd() < 300 {
					p.a.Send(bytes.Repeat([]byte{byte(step)}, 1+rng.IntN(4000)))
				}
			case 1, 2:
				var want, got [][]byte
				ref := cloneForFlush(p.a, &want)
				ref.fastacked = true // a full scan, as upstream's every flush
				here := cloneForFlush(p.a, &got)
				if due := _itimediff(p.a.ts_resend, now); !p.a.fastacked && due > 0 && due <= IKCP_RTO_MAX && p.a.snd_buf.Len() > 0 {
					partials++
				}
				ref.flush(false)
				here.flush(false)
				if !reflect.DeepEqual(want, got) {
					t.Fatalf("seed %d step %d: %d datagrams, upstream's scan %d", seed, step, len(got), len(want))
				}
				if s1, s2 := sendState(ref), sendState(here); s1 != s2 {
					t.Fatalf("seed %d step %d: state differs\nupstream %s\nhere     %s", seed, step, s1, s2)
				}
				p.a.flush(false)
			case 3:
				p.run()
			case 4:
				for n := p.b.Recv(buf); n > 0; n = p.b.Recv(buf) {
				}
				p.b.Flush(false)
			case 5:
				now += uint32(rng.IntN(40))
			case 6:
				switch rng.IntN(20) {
				case 0:
					now += uint32(rng.IntN(200000)) // idle
					if rng.IntN(10) == 0 {
						now += 1<<31 + uint32(rng.IntN(200000))
					}
				case 1:
					p.a.WndSize(1+rng.IntN(128), 0)
				case 2:
					p.a.rmt_wnd = uint32(rng.IntN(3)) // a window closing
				default:
					now += uint32(rng.IntN(500))
				}
			}
		}
	}
	if partials == 0 {
		t.Fatal("no flush skipped a segment in flight: the test compares nothing")
	}
	t.Logf("%d flushes skipped segments in flight", partials)
}
