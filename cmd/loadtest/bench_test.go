package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coveyhq/covey/clientsdk"
	"github.com/coveyhq/covey/internal/procstat"
	"github.com/coveyhq/covey/wire"
)

// BenchmarkReceive measures the CPU a client spends per broadcast message
// it receives, for the driver's lean client and for clientsdk, which is
// what decided the driver's client. A feeder process (this test binary,
// re-run as TestFeederProcess: no Covey server, so that only the client's
// work differs, and another process, so that its CPU is not counted)
// writes BroadcastReceived frames round-robin to benchConns connections,
// in one of two ways:
//
//   - paced: one frame per write, benchRate frames per second in total, so
//     that each frame arrives on its own, as in a broadcast run at a modest
//     rate: every receipt costs a wake-up and a read;
//   - burst: benchBurst frames per write, as fast as the clients read, as
//     the server's coalesced writes arrive at saturation (max): the cost
//     per message is the client's own.
//
// The receiver decodes the driver's payload from each message.
//
// The metric cpu-ns/msg is this process's CPU time (getrusage: user and
// system) per message received. The "raw" client is the floor: a
// goroutine per connection that reads and splits frames and nothing else.
//
//	go test -run '^$' -bench Receive -benchtime 200000x ./cmd/loadtest
func BenchmarkReceive(b *testing.B) {
	for _, mode := range []string{"paced", "burst"} {
		for _, client := range []string{"raw", "lean", "sdk"} {
			b.Run(mode+"/"+client, func(b *testing.B) { benchmarkReceive(b, mode, client) })
		}
	}
}

func benchmarkReceive(b *testing.B, mode, client string) {
	f := startFeeder(b)
	var got atomic.Int64
	all := make(chan struct{}) // closed when b.N messages have arrived
	count := func(msg []byte) {
		if _, _, _, ok := parsePayload(msg); ok && got.Add(1) == int64(b.N) {
			close(all)
		}
	}
	for i := range benchConns {
		user := fmt.Sprintf("u%d", i)
		switch client {
		case "raw":
			c, err := dial(context.Background(), dialConfig{Network: "tcp", Addr: f.addr, UserID: user, ReadBuffer: 16 << 10})
			if err != nil {
				b.Fatal(err)
			}
			go func() {
				var buf []byte
				rbuf := make([]byte, 16<<10)
				for {
					n, err := c.nc.Read(rbuf)
					buf = append(buf, rbuf[:n]...)
					r := 0
					for {
						fr, m, _ := wire.Config{}.Split(buf[r:])
						if m == 0 {
							break
						}
						if msg, ok := consumeMessagePush(fr.Payload); ok {
							count(msg)
						}
						r += m
					}
					buf = buf[:copy(buf, buf[r:])]
					if err != nil {
						return
					}
				}
			}()
			b.Cleanup(func() { c.nc.Close() })
		case "lean":
			c, err := dial(context.Background(), dialConfig{Network: "tcp", Addr: f.addr, UserID: user, ReadBuffer: 16 << 10})
			if err != nil {
				b.Fatal(err)
			}
			c.onPush = func(fr wire.Frame) {
				if msg, ok := consumeMessagePush(fr.Payload); ok {
					count(msg)
				}
			}
			c.start()
			b.Cleanup(c.close)
		case "sdk":
			c, err := clientsdk.Dial(context.Background(), clientsdk.Config{Network: "tcp", Addr: f.addr, UserID: user})
			if err != nil {
				b.Fatal(err)
			}
			go func() {
				for ev := range c.Events() {
					if m, ok := ev.(clientsdk.BroadcastReceived); ok {
						count(m.Msg)
					}
				}
			}()
			b.Cleanup(func() { c.Close() })
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := procstat.SelfCPU()
	f.feed(b, b.N, mode)
	select {
	case <-all:
	case <-time.After(time.Minute):
	}
	cpu := procstat.SelfCPU() - cpu0
	b.StopTimer()
	if got.Load() < int64(b.N) {
		b.Fatalf("received %d of %d messages", got.Load(), b.N)
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/msg")
}

// Shape of BenchmarkReceive's traffic.
const (
	benchConns = 64
	benchRate  = 50_000 // paced: frames per second, all connections together
	benchBurst = 32     // burst: frames per write
)

// feederEnv, set in the environment, makes TestFeederProcess the feeder.
const feederEnv = "COVEY_LOADTEST_FEEDER"

// feeder is BenchmarkReceive's handle on the feeder process.
type feeder struct {
	addr string
	in   io.WriteCloser // "N\n": feed N frames
	out  *bufio.Reader  // "fed\n" when done
}

// startFeeder starts the feeder process and returns once it listens.
func startFeeder(b *testing.B) *feeder {
	cmd := exec.Command(os.Args[0], "-test.run=^TestFeederProcess$")
	cmd.Env = append(os.Environ(), feederEnv+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		in.Close() // the feeder exits at the end of its input
		cmd.Wait()
	})
	out := bufio.NewReader(stdout)
	addr, err := out.ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	return &feeder{addr: strings.TrimSpace(addr), in: in, out: out}
}

// feed has the feeder write n frames, once benchConns connections have
// signed in, and waits until it has.
func (f *feeder) feed(b *testing.B, n int, mode string) {
	if _, err := fmt.Fprintln(f.in, n, mode); err != nil {
		b.Fatal(err)
	}
	if _, err := f.out.ReadString('\n'); err != nil {
		b.Fatal(err)
	}
}

// TestFeederProcess is BenchmarkReceive's feeder when run with feederEnv
// set, and does nothing otherwise. It listens on loopback and prints its
// address; it signs in whoever connects; for each line "N mode" read from
// stdin, once benchConns connections have signed in, it writes N broadcast
// pushes of a 64-byte driver payload round-robin over them (see
// BenchmarkReceive for the modes), then prints "fed". It exits at the end
// of stdin.
func TestFeederProcess(t *testing.T) {
	if os.Getenv(feederEnv) == "" {
		t.Skip("only BenchmarkReceive runs it")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fmt.Println(ln.Addr())
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveFeederConn(c, func() {
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			})
		}
	}()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		nStr, mode, _ := strings.Cut(in.Text(), " ")
		n, err := strconv.Atoi(nStr)
		if err != nil {
			t.Fatal(err)
		}
		var cs []net.Conn
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			mu.Lock()
			cs = conns
			mu.Unlock()
			if len(cs) >= benchConns {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d connections signed in", len(cs), benchConns)
			}
		}
		feedFrames(cs[len(cs)-benchConns:], n, mode == "burst")
		fmt.Println("fed")
	}
}

// serveFeederConn answers c's sign-in (then calls signedIn) and its Bye,
// and discards the rest.
func serveFeederConn(c net.Conn, signedIn func()) {
	defer c.Close()
	dec := wire.NewDecoder(wire.Config{})
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		dec.Write(buf[:n])
		for {
			fr, derr := dec.Next()
			if derr != nil {
				break
			}
			switch fr.Cmd {
			case wire.CmdSignIn:
				rep := wire.SignInReply{Version: wire.ProtocolVersion, UserID: "u", SID: "s", HeartbeatMillis: 5000, MaxPayload: wire.DefaultMaxPayload}
				c.Write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdSignIn, Flags: wire.FlagReply, Seq: fr.Seq}, rep.Append(nil)))
				signedIn()
			case wire.CmdBye:
				c.Write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdBye, Flags: wire.FlagPush}, (&wire.Bye{}).Append(nil)))
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// feedFrames writes n broadcast pushes round-robin to conns: paced, one
// per write at benchRate per second, or in bursts of benchBurst per write
// as fast as they are read.
func feedFrames(conns []net.Conn, n int, burst bool) {
	msg := appendBroadcastFrame(nil, 0, 1, 0, 64)[wire.HeaderSize+2:] // the payload alone
	frame := wire.AppendMessagePushFrame(nil, wire.CmdBroadcastReceived, sessionType,
		"0b5a7c4e-3f0e-4c1a-9d52-0f6c2b7a1e90@local", "lt-000000-1", msg)
	if burst {
		var buf []byte
		for range benchBurst {
			buf = append(buf, frame...)
		}
		for i := 0; n > 0; i++ {
			k := min(n, benchBurst)
			conns[i%len(conns)].Write(buf[:k*len(frame)])
			n -= k
		}
		return
	}
	const batch = benchRate / 1000 // frames per millisecond
	start := time.Now()
	for i := range n {
		conns[i%len(conns)].Write(frame)
		if (i+1)%batch == 0 {
			time.Sleep(time.Until(start.Add(time.Duration(i+1) * time.Second / benchRate)))
		}
	}
}
