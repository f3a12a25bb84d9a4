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
	"testing"
	"time"

	"github.com/xtaci/kcp-go/v5"

	"github.com/coveyhq/covey/internal/kcptune"
)

const testTimeout = 20 * time.Second

// echoServer is a kcp-go listener on 127.0.0.1 tuned as Covey's server,
// echoing every byte back: an independent KCP implementation to talk to.
func echoServer(t *testing.T) string {
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
			kcptune.Tune(s, 0)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer s.Close()
				s.SetDeadline(time.Now().Add(testTimeout))
				io.Copy(s, s)
			}()
		}
	}()
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) *Conn {
	t.Helper()
	c, err := Dial(context.Background(), addr)
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
			n := min(len(p), 1+rng.IntN(100<<10))
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
// than the send window, in writes up to 100 KiB (over KCP's 255-segment
// limit per Send), read back with a buffer smaller than a segment and
// with a large one.
func TestEchoWithKCPGo(t *testing.T) {
	addr := echoServer(t)
	for _, readSize := range []int{100, 64 << 10} {
		c := dial(t, addr)
		roundTrip(t, c, randomBytes(3<<20), readSize)
	}
}

// lossyRelay forwards datagrams between one client and target, dropping
// one in every `every` in each direction, deterministically.
func lossyRelay(t *testing.T, target string, every int) (addr string, dropped *atomic.Int64) {
	t.Helper()
	front, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp", nil, ta)
	if err != nil {
		t.Fatal(err)
	}
	dropped = new(atomic.Int64)
	var client atomic.Pointer[net.Addr]
	var wg sync.WaitGroup
	t.Cleanup(func() {
		front.Close()
		back.Close()
		wg.Wait()
	})
	wg.Add(2)
	go func() { // client -> server
		defer wg.Done()
		buf := make([]byte, 2048)
		for i := 1; ; i++ {
			n, from, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			client.Store(&from)
			if i%every == 0 {
				dropped.Add(1)
				continue
			}
			back.Write(buf[:n])
		}
	}()
	go func() { // server -> client
		defer wg.Done()
		buf := make([]byte, 2048)
		for i := 1; ; i++ {
			n, err := back.Read(buf)
			if err != nil {
				return
			}
			if i%every == 0 {
				dropped.Add(1)
				continue
			}
			if to := client.Load(); to != nil {
				front.WriteTo(buf[:n], *to)
			}
		}
	}()
	return front.LocalAddr().String(), dropped
}

// TestEchoThroughLoss drops one datagram in seven each way: every byte
// must still come back, which takes the updater's retransmissions.
func TestEchoThroughLoss(t *testing.T) {
	addr, dropped := lossyRelay(t, echoServer(t), 7)
	c := dial(t, addr)
	roundTrip(t, c, randomBytes(1<<20), 4096)
	if dropped.Load() == 0 {
		t.Fatal("the relay dropped nothing: the test proved nothing")
	}
	t.Logf("%d datagrams dropped", dropped.Load())
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

// TestCloseWakesReadAndWrite: a Read waiting for data and a Write waiting
// for the window both return net.ErrClosed when the Conn is closed.
func TestCloseWakesReadAndWrite(t *testing.T) {
	c := dial(t, silentPeer(t))
	if _, err := c.Write(make([]byte, maxWaitSnd*kcptune.MTU)); err != nil {
		t.Fatal(err) // fills the window
	}
	rerr, werr := make(chan error, 1), make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 10)); rerr <- err }()
	go func() { _, err := c.Write(make([]byte, 10)); werr <- err }()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]chan error{"Read": rerr, "Write": werr} {
		select {
		case err := <-ch:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("%s after Close: %v, want net.ErrClosed", name, err)
			}
		case <-time.After(testTimeout):
			t.Fatalf("%s still blocked after Close", name)
		}
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v, want net.ErrClosed", err)
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
// peer could send them, then checks that the Conn still reads well-formed
// data: no panic, no wedged state.
func FuzzInput(f *testing.F) {
	// Seeds: a data segment, an ACK and a window probe of conversation 7.
	seg := func(cmd byte, sn uint32, data string) []byte {
		b := []byte{7, 0, 0, 0, cmd, 0, 128, 0, 0, 0, 0, 0}
		b = append(b, byte(sn), byte(sn>>8), byte(sn>>16), byte(sn>>24), 0, 0, 0, 0)
		n := len(data)
		b = append(b, byte(n), byte(n>>8), byte(n>>16), byte(n>>24))
		return append(b, data...)
	}
	f.Add(seg(81, 0, "hello"))
	f.Add(seg(82, 0, ""))
	f.Add(seg(83, 0, ""))
	f.Add(append(seg(81, 1, "b"), seg(81, 0, "a")...))
	f.Add([]byte{})
	peer := silentPeer(f)
	f.Fuzz(func(t *testing.T, p []byte) {
		c, err := Dial(context.Background(), peer)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.kcp = newConn(c.uc, 7).kcp // a known conversation ID
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
