package kcpconn

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xtaci/kcp-go/v5"

	"github.com/coveyhq/covey/internal/kcptest"
	"github.com/coveyhq/covey/internal/kcptune"
)

const testTimeout = 20 * time.Second

// kcpServer is a kcp-go listener on 127.0.0.1 tuned as Covey's server
// (an independent KCP implementation to talk to), running serve on a
// goroutine of its own for each session it accepts.
func kcpServer(t *testing.T, serve func(s *kcp.UDPSession)) string {
	t.Helper()
	ln, err := kcp.ListenWithOptions("127.0.0.1:0", nil, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			s, err := ln.AcceptKCP()
			if err != nil {
				return
			}
			kcptest.Tune(s, 0)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer s.Close()
				s.SetDeadline(time.Now().Add(testTimeout))
				serve(s)
			}()
		}
	}()
	return ln.Addr().String()
}

// echoServer echoes every byte back.
func echoServer(t *testing.T) string {
	return kcpServer(t, func(s *kcp.UDPSession) { io.Copy(s, s) })
}

func dial(t *testing.T, addr string) *Conn {
	t.Helper()
	c, err := DialRaw(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testTimeout))
	return c
}

// roundTrip writes data in random pieces from one goroutine while
// reading it back with reads of readSize from this one, and checks the
// bytes.
func roundTrip(t *testing.T, c *Conn, data []byte, readSize int) {
	t.Helper()
	werr := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(1, 2))
		for p := data; len(p) > 0; {
			n := min(len(p), 1+rng.IntN(1<<20))
			if _, err := c.Write(p[:n]); err != nil {
				werr <- err
				return
			}
			p = p[n:]
		}
		werr <- nil
	}()
	got := make([]byte, 0, len(data))
	buf := make([]byte, readSize)
	for len(got) < len(data) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read after %d of %d bytes: %v", len(got), len(data), err)
		}
		got = append(got, buf[:n]...)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("echoed bytes differ from those sent")
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// TestEchoWithKCPGo streams 3 MiB through a kcp-go echo server: far more
// than the send window, in writes up to 1 MiB (over KCP's limit of 255
// segments, ~293 KiB, per Send), read back with a buffer smaller than a
// segment and with a large one.
func TestEchoWithKCPGo(t *testing.T) {
	addr := echoServer(t)
	for _, readSize := range []int{100, 64 << 10} {
		c := dial(t, addr)
		roundTrip(t, c, randomBytes(3<<20), readSize)
	}
}

// TestEchoThroughLoss drops one datagram in seven each way: every byte
// must still come back.
func TestEchoThroughLoss(t *testing.T) {
	var seen [2]atomic.Int64 // datagrams by direction
	var dropped atomic.Int64
	addr := kcptest.Relay(t, echoServer(t), func(toServer bool, _ []byte) bool {
		dir := 0
		if toServer {
			dir = 1
		}
		if seen[dir].Add(1)%7 == 0 {
			dropped.Add(1)
			return true
		}
		return false
	})
	c := dial(t, addr)
	roundTrip(t, c, randomBytes(1<<20), 4096)
	if dropped.Load() == 0 {
		t.Fatal("the relay dropped nothing: the test proved nothing")
	}
	t.Logf("%d datagrams dropped", dropped.Load())
}

// TestUpdaterRetransmits drops the client's first datagram while the
// client waits in Read: only the updater can send the data again.
func TestUpdaterRetransmits(t *testing.T) {
	var first atomic.Bool
	addr := kcptest.Relay(t, echoServer(t), func(toServer bool, _ []byte) bool {
		return toServer && first.CompareAndSwap(false, true)
	})
	c := dial(t, addr)
	roundTrip(t, c, []byte("hello"), 64)
}

// TestSurvivesOutage: after a first exchange (so that the RTO is loopback
// short), the client's next 25 datagrams are dropped, more than KCP's
// dead-link count of 20 transmissions of one segment (about 4 s): the
// connection must not give up on its own, and the echo arrives once the
// path is back.
func TestSurvivesOutage(t *testing.T) {
	var outage atomic.Bool
	var dropped atomic.Int32
	addr := kcptest.Relay(t, echoServer(t), func(toServer bool, _ []byte) bool {
		return toServer && outage.Load() && dropped.Add(1) <= 25
	})
	c := dial(t, addr)
	roundTrip(t, c, []byte("first"), 64)
	outage.Store(true)
	roundTrip(t, c, []byte("second"), 64)
	if n := dropped.Load(); n < 25 {
		t.Fatalf("only %d datagrams dropped: the outage did not last", n)
	}
}

// pushServer answers a client's first byte with data, then only
// acknowledges.
func pushServer(t *testing.T, data []byte) string {
	return kcpServer(t, func(s *kcp.UDPSession) {
		if _, err := io.ReadFull(s, make([]byte, 1)); err == nil {
			s.Write(data)
			io.Copy(io.Discard, s) // until closed
		}
	})
}

// TestWindowReopens: the server sends more than the client's receive
// window while the application does not read; once the client has
// advertised a zero window (and has nothing in flight, so no ACK or
// retransmission of its own could carry news), the application reads
// everything. The client must tell the server that its window reopened (a
// WINS segment) rather than leave it to its 7 s window probes.
func TestWindowReopens(t *testing.T) {
	data := randomBytes(200 << 10) // ~175 segments: more than the window of 128
	full := make(chan struct{})
	var fullOnce sync.Once
	var told, probed atomic.Bool
	addr := kcptest.Relay(t, pushServer(t, data), func(toServer bool, p []byte) bool {
		kcptest.Segments(p, func(sg kcptest.Segment) {
			switch {
			case toServer && sg.Wnd == 0:
				fullOnce.Do(func() { close(full) })
			case toServer && sg.Cmd == kcptest.CmdWins:
				told.Store(true)
			case !toServer && sg.Cmd == kcptest.CmdWask:
				probed.Store(true)
			}
		})
		return false
	})
	c := dial(t, addr)
	if _, err := c.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	// Take datagrams as Read does, without taking data out of KCP, until
	// the client advertises a zero window; then stop by the read deadline.
	fed := make(chan error, 1)
	go func() {
		pkt := make([]byte, packetMax)
		for {
			n, err := c.uc.Read(pkt)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					err = nil
				}
				fed <- err
				return
			}
			c.input(pkt[:n])
		}
	}()
	select {
	case <-full:
	case <-time.After(testTimeout):
		t.Fatal("the client never advertised a zero window")
	}
	c.uc.SetReadDeadline(time.Now())
	if err := <-fed; err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	inFlight := c.kcp.WaitSnd()
	c.mu.Unlock()
	if inFlight != 0 {
		t.Fatalf("the client's first byte is still unacknowledged (%d segments)", inFlight)
	}
	c.SetReadDeadline(time.Now().Add(testTimeout))
	got := make([]byte, len(data))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data differs")
	}
	if !told.Load() {
		t.Fatal("the client never sent a window update (WINS) after its window reopened")
	}
	if probed.Load() {
		t.Fatal("the server had to probe the window (WASK): the client did not tell it in time")
	}
}

// silentPeer is a UDP socket that reads and never answers.
func silentPeer(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().String()
}

// TestDeadlines: Read times out with no data, and Write times out once
// the send window is full and nothing is acknowledged.
func TestDeadlines(t *testing.T) {
	c := dial(t, silentPeer(t))
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read: %v, want a deadline error", err)
	}
	c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	data := make([]byte, 2*maxWaitSnd*kcptune.MTU)
	n, err := c.Write(data)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write: %d, %v, want a deadline error", n, err)
	}
	if n == 0 || n >= len(data) {
		t.Fatalf("Write wrote %d of %d bytes before its deadline, want part", n, len(data))
	}
}

// blockedHooks sets the test hooks to report on the returned channels
// when Read is about to wait for a datagram and Write for the window.
func blockedHooks(t *testing.T) (reading, waiting chan struct{}) {
	reading, waiting = make(chan struct{}, 16), make(chan struct{}, 16)
	testHookRead = func() { reading <- struct{}{} }
	testHookWaitWindow = func() { waiting <- struct{}{} }
	t.Cleanup(func() { testHookRead, testHookWaitWindow = nil, nil })
	return reading, waiting
}

func waitSignal(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(testTimeout):
		t.Fatalf("%s never happened", what)
	}
}

func wantErr(t *testing.T, ch chan error, want error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		if !errors.Is(err, want) {
			t.Fatalf("%s: %v, want %v", what, err, want)
		}
	case <-time.After(testTimeout):
		t.Fatalf("%s still blocked", what)
	}
}

// TestCloseWakesReadAndWrite: a Read waiting for data and a Write waiting
// for the window both return net.ErrClosed when the Conn is closed.
func TestCloseWakesReadAndWrite(t *testing.T) {
	c := dial(t, silentPeer(t))
	if _, err := c.Write(make([]byte, maxWaitSnd*kcptune.MTU)); err != nil {
		t.Fatal(err) // fills the window
	}
	reading, waiting := blockedHooks(t)
	rerr, werr := make(chan error, 1), make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 10)); rerr <- err }()
	go func() { _, err := c.Write(make([]byte, 10)); werr <- err }()
	waitSignal(t, reading, "Read waiting")
	waitSignal(t, waiting, "Write waiting for the window")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, rerr, net.ErrClosed, "Read after Close")
	wantErr(t, werr, net.ErrClosed, "Write after Close")
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v, want net.ErrClosed", err)
	}
}

// TestWriteDeadlineMoved: a Write waiting for the window with no deadline
// returns os.ErrDeadlineExceeded when the deadline is moved into the past,
// and so does any Write after it.
func TestWriteDeadlineMoved(t *testing.T) {
	c := dial(t, silentPeer(t))
	c.SetWriteDeadline(time.Time{})
	if _, err := c.Write(make([]byte, maxWaitSnd*kcptune.MTU)); err != nil {
		t.Fatal(err) // fills the window
	}
	_, waiting := blockedHooks(t)
	werr := make(chan error, 1)
	go func() { _, err := c.Write(make([]byte, 10)); werr <- err }()
	waitSignal(t, waiting, "Write waiting for the window")
	c.SetWriteDeadline(time.Now().Add(-time.Second))
	wantErr(t, werr, os.ErrDeadlineExceeded, "Write after the deadline moved")
	if _, err := c.Write([]byte{1}); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write past the deadline: %v", err)
	}
}

// TestWriteDeadlineKeepsACKs: once the write deadline has passed, Read
// still acknowledges what arrives. 290 KiB are written, then the deadline
// is set in the past, then the echo is read: the echo server's window is
// 128 segments (~150 KiB), so it can send it all only if ACKs go out.
func TestWriteDeadlineKeepsACKs(t *testing.T) {
	c := dial(t, echoServer(t))
	data := randomBytes(maxWaitSnd*kcptune.MTU - 10<<10)
	c.SetWriteDeadline(time.Time{})
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.SetWriteDeadline(time.Now().Add(-time.Second))
	got := make([]byte, len(data))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("echo differs")
	}
}

// TestManyConnsConcurrently runs 50 connections at once, under -race.
func TestManyConnsConcurrently(t *testing.T) {
	addr := echoServer(t)
	var wg sync.WaitGroup
	for i := range 50 {
		c := dial(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := randomBytes(8<<10 + i)
			if _, err := c.Write(data); err != nil {
				t.Error(err)
				return
			}
			got := make([]byte, len(data))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Error(err)
				return
			}
			if !bytes.Equal(got, data) {
				t.Error("echo differs")
			}
		}()
	}
	wg.Wait()
}

// FuzzInput feeds arbitrary datagrams to a Conn, as a hostile or broken
// peer could send them, then a well-formed first segment: nothing may
// panic, and reading what KCP then holds must end.
func FuzzInput(f *testing.F) {
	// Seeds: a data segment, an ACK and a window probe of conversation 7.
	seg := func(cmd byte, sn uint32, data string) []byte { return rawSegment(7, cmd, 0, sn, []byte(data)) }
	f.Add(seg(81, 0, "hello"))
	f.Add(seg(82, 0, ""))
	f.Add(seg(83, 0, ""))
	f.Add(append(seg(81, 1, "b"), seg(81, 0, "a")...))
	f.Add([]byte{})
	peer, err := net.ResolveUDPAddr("udp", silentPeer(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		uc, err := net.DialUDP("udp", nil, peer)
		if err != nil {
			t.Fatal(err)
		}
		c := newConn(uc, 7) // a known conversation ID
		defer c.Close()
		c.input(p)
		// Whatever p did, a well-formed first segment is then taken or
		// ignored as a duplicate, and reading what KCP holds ends.
		c.input(seg(81, 0, "x"))
		buf := make([]byte, 16)
		c.mu.Lock()
		defer c.mu.Unlock()
		for c.recvLocked(buf) > 0 {
		}
	})
}

// rawPeer returns a UDP socket on loopback standing in for the server,
// and a Conn dialled to it.
func rawPeer(t *testing.T) (net.PacketConn, *Conn) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc, dial(t, pc.LocalAddr().String())
}

// peerRead returns the next datagram the raw peer pc receives, failing
// the test with what it waited for if none comes within testTimeout.
func peerRead(t *testing.T, pc net.PacketConn, what string) []byte {
	t.Helper()
	pc.SetReadDeadline(time.Now().Add(testTimeout))
	buf := make([]byte, 2048)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no %s: %v", what, err)
	}
	return buf[:n]
}

// lastAckUna returns the una of the last ACK segment in datagram p, and
// whether it has one.
func lastAckUna(p []byte) (una uint32, ok bool) {
	kcptest.Segments(p, func(sg kcptest.Segment) {
		if sg.Cmd == kcptest.CmdAck {
			una, ok = sg.Una, true
		}
	})
	return una, ok
}

// rawSegment encodes one KCP segment: conv, cmd, frg, window 128, ts 0,
// sn, una 0, then len and data.
func rawSegment(conv uint32, cmd, frg byte, sn uint32, data []byte) []byte {
	b := []byte{byte(conv), byte(conv >> 8), byte(conv >> 16), byte(conv >> 24), cmd, frg, 128, 0, 0, 0, 0, 0}
	b = append(b, byte(sn), byte(sn>>8), byte(sn>>16), byte(sn>>24), 0, 0, 0, 0) // sn, una
	n := len(data)
	b = append(b, byte(n), byte(n>>8), byte(n>>16), byte(n>>24))
	return append(b, data...)
}

// TestAnswersWindowProbe: a window probe (WASK) from the peer is answered
// with a window update (WINS) at once, not with whatever the client sends
// next.
func TestAnswersWindowProbe(t *testing.T) {
	pc, c := rawPeer(t)
	c.input(rawSegment(c.kcp.Conv(), 83, 0, 0, nil)) // WASK
	var got []byte
	kcptest.Segments(peerRead(t, pc, "an answer to the probe"), func(sg kcptest.Segment) { got = append(got, sg.Cmd) })
	if !bytes.Contains(got, []byte{84}) {
		t.Fatalf("answer to the probe has segments %v, want a WINS (84)", got)
	}
}

// TestRefusedWhenNoServer: with no socket at the address, the connected
// socket gets ICMP "port unreachable", and Read fails with ECONNREFUSED
// instead of waiting for its deadline.
func TestRefusedWhenNoServer(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close() // nothing listens there now
	c := dial(t, addr)
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 16)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Read: %v, want ECONNREFUSED", err)
	}
}

// TestMessageModeServer: the server sends data, then a data segment with
// a fragment count (frg 1: message mode), while a Write waits for the
// window. The client is in stream mode, where a message of more fragments
// than its window would block the stream for good: Read must return the
// data, then fail with ErrMessageMode, not wait for its deadline; the
// waiting Write must fail with it too, and so must Writes after it.
func TestMessageModeServer(t *testing.T) {
	pc, c := rawPeer(t)
	c.SetWriteDeadline(time.Time{})
	if _, err := c.Write(make([]byte, maxWaitSnd*kcptune.MTU)); err != nil {
		t.Fatal(err) // fills the window: the peer never acknowledges
	}
	_, waiting := blockedHooks(t)
	werr := make(chan error, 1)
	go func() { _, err := c.Write([]byte("more")); werr <- err }()
	waitSignal(t, waiting, "Write waiting for the window")
	conv := c.kcp.Conv()
	data := rawSegment(conv, 81, 0, 0, []byte("ok")) // PUSH sn 0
	frag := rawSegment(conv, 81, 1, 1, []byte("x"))  // PUSH frg 1, sn 1
	if _, err := pc.WriteTo(append(data, frag...), c.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "ok" {
		t.Fatalf("Read = %q, %v; want the data before the fragment", buf[:n], err)
	}
	if _, err := c.Read(buf); !errors.Is(err, ErrMessageMode) {
		t.Fatalf("Read: %v, want ErrMessageMode", err)
	}
	wantErr(t, werr, ErrMessageMode, "the waiting Write")
	if _, err := c.Write([]byte("more")); !errors.Is(err, ErrMessageMode) {
		t.Fatalf("Write after: %v, want ErrMessageMode", err)
	}
}

// TestAcksShareADatagram: the ACKs of three data segments that arrive
// back to back wait for the updater's pass and go out together, in one
// datagram (KCP sends the last ACK, whose una covers the others), with
// no Write to carry them.
func TestAcksShareADatagram(t *testing.T) {
	pc, c := rawPeer(t)
	conv := c.kcp.Conv()
	for sn := range uint32(3) {
		c.input(rawSegment(conv, 81, 0, sn, []byte{'a' + byte(sn)})) // PUSH
	}
	if una, ok := lastAckUna(peerRead(t, pc, "ACK")); !ok || una != 3 {
		t.Fatalf("first datagram: an ACK %v with una %d, want one with una 3 (all three received)", ok, una)
	}
}

// TestCloseSendsWaitingAcks: Close sends the ACKs still waiting for
// AckDelay (those of the server's Bye, as a client closes right after
// reading it): the updater does not run for a closed Conn.
func TestCloseSendsWaitingAcks(t *testing.T) {
	pc, c := rawPeer(t)
	c.input(rawSegment(c.kcp.Conv(), 81, 0, 0, []byte("bye"))) // PUSH
	c.Close()
	if una, ok := lastAckUna(peerRead(t, pc, "ACK after Close")); !ok || una != 1 {
		t.Fatalf("after Close: an ACK %v with una %d, want one with una 1", ok, una)
	}
}
