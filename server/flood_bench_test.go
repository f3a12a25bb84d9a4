package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coveyhq/covey/clientsdk"
	"github.com/coveyhq/covey/wire"
)

// BenchmarkBystanderUnderFlood is issue 10's bystander criterion: the
// latency of a session's broadcasts (one every millisecond, sender to the
// other member) with no other traffic, then while a member of another
// session writes fire-and-forget broadcasts as fast as the socket takes
// them, under the default limits: the server closes it for flooding
// (Limits.FloodBurst), and it connects again and floods on, for the
// whole phase. It reports both p99s and their ratio
// (p99-ratio; the goal is at most 2) and fails on any loss or reordering.
// Bounded: bystanderSamples messages per phase, the flood at most
// 40,000,000 frames (about 10 s at this machine's rate). Run it with -benchtime 1x on a quiet machine:
//
//	go test -run XXX -bench BystanderUnderFlood -benchtime 1x ./server
func BenchmarkBystanderUnderFlood(b *testing.B) {
	b.Run("one-connection", func(b *testing.B) { benchBystander(b, false) })
	b.Run("reconnecting", func(b *testing.B) { benchBystander(b, true) })
}

// benchBystander is BenchmarkBystanderUnderFlood with a flooder that
// floods one connection, or connects again each time it is cut.
func benchBystander(b *testing.B, reconnect bool) {
	for range b.N {
		srv := startServer(b)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		dial := func(uid string) *clientsdk.Client {
			c, err := clientsdk.Dial(ctx, clientsdk.Config{Addr: srv.addrOf("tcp"), UserID: uid})
			if err != nil {
				b.Fatal(err)
			}
			return c
		}
		a, bob := dial("a"), dial("b")
		id, err := a.Create(ctx, 2, 4, 0, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := bob.Join(ctx, 2, id); err != nil {
			b.Fatal(err)
		}
		base := bystanderP99(b, a, bob, bystanderSamples)

		// The flooder is a process of its own, as an attacker is: in the
		// bystanders' process its writes at link speed held their
		// goroutines off the CPU (flood p99 2-6 ms against 0.3-3 ms
		// alone, whatever the server did).
		cmd := exec.Command(os.Args[0], "-test.run=^TestFlooderProcess$")
		cmd.Env = append(os.Environ(), flooderEnv+"="+srv.addrOf("tcp"), "GOMAXPROCS=1", flooderReconnectEnv+"="+strconv.FormatBool(reconnect))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		var out strings.Builder
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		flood := bystanderP99(b, a, bob, bystanderSamples)
		if srv.metrics.floodCut.Load() == 0 {
			b.Fatalf("the flooder was never cut (%d requests refused)", srv.metrics.rateLimited.Load())
		}
		stdin.Close() // the flooder stops at the end of its input
		if err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
		b.Logf("the flooder: %s; cut %d times", strings.TrimSpace(out.String()), srv.metrics.floodCut.Load())
		b.ReportMetric(float64(base.Microseconds()), "base-p99-µs")
		b.ReportMetric(float64(flood.Microseconds()), "flood-p99-µs")
		b.ReportMetric(float64(flood)/float64(max(base, time.Microsecond)), "p99-ratio")
		a.Close()
		bob.Close()
		cancel()
	}
}

// flooderEnv, set to the server's TCP address, makes TestFlooderProcess
// the flooder of BenchmarkBystanderUnderFlood.
const flooderEnv = "COVEY_FLOODER_ADDR"

// flooderReconnectEnv says whether the flooder connects again when cut.
const flooderReconnectEnv = "COVEY_FLOODER_RECONNECT"

// TestFlooderProcess is BenchmarkBystanderUnderFlood's flooder when run
// with flooderEnv set, and does nothing otherwise: it floods the address
// until its standard input ends, then prints what it wrote.
func TestFlooderProcess(t *testing.T) {
	addr := os.Getenv(flooderEnv)
	if addr == "" {
		t.Skip("only BenchmarkBystanderUnderFlood runs it")
	}
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	chunks, conns := flood(addr, os.Getenv(flooderReconnectEnv) == "true", stop)
	fmt.Printf("%d chunks of 1,000 frames over %d connections\n", chunks, conns)
}

// flood is the flooder: it signs in, creates a session and writes
// fire-and-forget broadcasts as fast as the socket takes them, reading
// and dropping what the server answers; when the server closes it for
// flooding, it connects again if reconnect says so, until stop or 40,000
// chunks of 1,000 frames, and then waits for stop. It returns the chunks
// written and the connections used.
func flood(addr string, reconnect bool, stop <-chan struct{}) (chunks, conns int) {
	signIn := (&wire.SignInRequest{MinVersion: 1, MaxVersion: 1, UserID: "flooder"}).Append(nil)
	hello := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdSignIn, Seq: 1}, signIn)
	hello = wire.AppendFrame(hello, wire.Header{Cmd: wire.CmdCreate, Seq: 2}, (&wire.CreateRequest{Type: 1, MaxMembers: 8}).Append(nil))
	msg := (&wire.BroadcastRequest{Type: 1, Msg: make([]byte, 64)}).Append(nil)
	var chunk []byte
	for range 1000 {
		chunk = wire.AppendFrame(chunk, wire.Header{Cmd: wire.CmdBroadcast}, msg)
	}
	for chunks < 40000 && (reconnect || conns == 0) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			return chunks, conns
		}
		conns++
		go io.Copy(io.Discard, nc) // ends when nc closes
		nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err = nc.Write(hello)
		for err == nil && chunks < 40000 {
			select {
			case <-stop:
				nc.Close()
				return chunks, conns
			default:
			}
			if _, err = nc.Write(chunk); err == nil {
				chunks++
			}
		}
		nc.Close()
	}
	<-stop
	return chunks, conns
}

// bystanderSamples is the bystander's messages per phase: 2 s of them.
const bystanderSamples = 2000

// bystanderP99 sends n broadcasts from a, one a millisecond, and returns
// the p99 of the time until bob receives each; a loss or a message out of
// order fails b.
func bystanderP99(b *testing.B, a, bob *clientsdk.Client, n int) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lat := make([]time.Duration, 0, n)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for i := range n {
		<-tick.C
		sent := time.Now()
		if err := a.BroadcastAsync(2, []byte{byte(i)}); err != nil {
			b.Fatal(err)
		}
		for {
			select {
			case ev := <-bob.Events():
				e, ok := ev.(clientsdk.BroadcastReceived)
				if !ok {
					continue
				}
				if len(e.Msg) != 1 || e.Msg[0] != byte(i) {
					b.Fatalf("bystander message %d: got %v", i, e.Msg)
				}
				lat = append(lat, time.Since(sent))
			case <-ctx.Done():
				b.Fatalf("bystander message %d lost", i)
			}
			break
		}
	}
	slices.Sort(lat)
	return lat[len(lat)*99/100]
}
