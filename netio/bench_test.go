package netio

import (
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coveyhq/covey/wire"
)

// BenchmarkTCPFanout delivers one 64-byte push to every connection per
// iteration, from one goroutine, as a session broadcast does; clients
// read and count bytes. It reports deliveries per second.
func BenchmarkTCPFanout(b *testing.B) {
	for _, clients := range []int{10, 200} {
		b.Run(strconv.Itoa(clients), func(b *testing.B) { benchFanout(b, clients) })
	}
}

func benchFanout(b *testing.B, clients int) {
	h := newTestHandler()
	h.onFrame = func(*Conn, wire.Frame) {}
	cfg := DefaultConfig()
	cfg.TCPAddr, cfg.Logger = "127.0.0.1:0", testLogger()
	s, err := Listen(cfg, h)
	if err != nil {
		b.Fatal(err)
	}
	var readers sync.WaitGroup
	defer func() { // shut down first: the readers return on EOF
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := s.Shutdown(ctx, ""); err != nil {
			b.Error(err)
		}
		readers.Wait()
	}()

	frame := wire.AppendFrame(nil, wire.Header{Ver: 1, Cmd: 6, Flags: wire.FlagPush}, make([]byte, 64-wire.HeaderSize))
	conns := make([]*Conn, clients)
	received := make([]atomic.Int64, clients)
	for i := range conns {
		nc, err := net.Dial("tcp", s.TCPAddr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		select {
		case conns[i] = <-h.opens:
		case <-time.After(waitFor):
			b.Fatal("no OnOpen")
		}
		readers.Add(1)
		go func() {
			defer readers.Done()
			buf := make([]byte, 64<<10)
			for {
				n, err := nc.Read(buf)
				received[i].Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
	}

	// Keep every client within 8192 frames (512 KB) of the producer so the
	// default 4 MiB budget is never reached.
	const lag = 8192
	minReceived := func() int64 {
		m := received[0].Load()
		for i := range received {
			m = min(m, received[i].Load())
		}
		return m
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(frame) * clients))
	b.ResetTimer()
	for n := range b.N {
		for _, c := range conns {
			c.Deliver(frame)
		}
		if n%1024 == 0 {
			for int64(n-lag)*int64(len(frame)) > minReceived() {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
	want := int64(b.N) * int64(len(frame))
	deadline := time.Now().Add(waitFor)
	for minReceived() < want {
		if time.Now().After(deadline) {
			b.Fatalf("clients received %d of %d bytes", minReceived(), want)
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)*float64(clients)/b.Elapsed().Seconds(), "deliveries/s")
	for _, c := range conns {
		if c.Closed() {
			b.Fatal("a connection was closed")
		}
	}
}
