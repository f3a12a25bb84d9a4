//go:build linux

// Command floor measures what the broadcast benchmark costs the kernel
// alone on this machine: a fan-out server and a client that do only the
// system calls of Covey's TCP path (epoll, one read per readable socket,
// one write per destination per pass of the loop) and nothing else (no
// framing beyond fixed-size messages, no sessions, no Go net package). Its
// latency and CPU are the floor under any server and driver sharing the
// same cores: see bench/README.md.
//
//	floor -mode server &
//	floor -mode client -server-pid $! -rate 50
//
// The client opens -groups × -members connections; each sends -rate
// messages a second at the same staggered phases as cmd/loadtest, and the
// server writes every message to the other members of its group.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/coveyhq/covey/internal/procstat"
)

// msgSize is the size of every message: a 12-byte header and a 64-byte
// payload, as in the load test. The first 8 bytes carry the send time.
const msgSize = 76

func main() {
	mode := flag.String("mode", "", "server or client")
	addr := flag.String("addr", "127.0.0.1:7790", "server address")
	loops := flag.Int("loops", runtime.GOMAXPROCS(0), "epoll loops")
	groups := flag.Int("groups", 100, "client: groups (sessions)")
	members := flag.Int("members", 8, "client: members per group")
	rate := flag.Float64("rate", 50, "client: messages per second per member")
	duration := flag.Duration("duration", 20*time.Second, "client: measured window")
	warmup := flag.Duration("warmup", 2*time.Second, "client: sending before the window")
	serverPID := flag.Int("server-pid", 0, "client: the server's pid, for its CPU time")
	flag.Parse()
	switch *mode {
	case "server":
		serve(*addr, *loops, *members, func(bound string) { log.Printf("floor server on %s", bound) })
	case "client":
		r := runClient(clientConfig{addr: *addr, loops: *loops, groups: *groups, members: *members,
			rate: *rate, warmup: *warmup, window: *duration, serverPID: *serverPID})
		r.print(os.Stdout)
	default:
		log.Fatal("-mode server or -mode client")
	}
}

// loop is one epoll loop's state.
type loop struct {
	epfd int
}

func newLoop() *loop {
	epfd, err := syscall.EpollCreate1(0)
	if err != nil {
		log.Fatal(err)
	}
	return &loop{epfd: epfd}
}

func (l *loop) add(fd int) {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
	if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		log.Fatal(err)
	}
}

// run reads every readable socket once per pass and hands onMsg each
// complete message; after the pass it calls flush.
func (l *loop) run(onMsg func(fd int, m []byte), flush func()) {
	runtime.LockOSThread()
	events := make([]syscall.EpollEvent, 256)
	buf := make([]byte, 64<<10)
	partial := map[int][]byte{}
	for {
		n, err := syscall.EpollWait(l.epfd, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			r, err := syscall.Read(fd, buf)
			if r <= 0 {
				if err == syscall.EAGAIN {
					continue
				}
				syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
				continue
			}
			b := buf[:r]
			if p := partial[fd]; len(p) > 0 {
				b = append(p, b...)
				delete(partial, fd)
			}
			for len(b) >= msgSize {
				onMsg(fd, b[:msgSize])
				b = b[msgSize:]
			}
			if len(b) > 0 {
				partial[fd] = append([]byte(nil), b...)
			}
		}
		flush()
	}
}

// serve accepts members connections per group (each says its index
// first) and fans every message out to the rest of its group.
// ready is called with the bound address once the server listens. Each
// member gets one byte once its whole group is connected.
func serve(addr string, loops, members int, ready func(bound string)) {
	lfd := listen(addr)
	sa, err := syscall.Getsockname(lfd)
	if err != nil {
		log.Fatal(err)
	}
	in4 := sa.(*syscall.SockaddrInet4)
	ready(netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port)).String())
	var mu sync.Mutex
	groupOf := map[int][]int{} // fd -> the other members' fds
	byIndex := map[int]int{}   // member index -> fd
	ls := make([]*loop, loops)
	for i := range ls {
		ls[i] = newLoop()
		l := ls[i]
		out := map[int][]byte{}
		var dirty []int
		// A group no longer changes once its members have their go byte:
		// each loop keeps what it looked up, and locks only for a new fd.
		known := map[int][]int{}
		go l.run(func(fd int, m []byte) {
			others, ok := known[fd]
			if !ok {
				mu.Lock()
				others = groupOf[fd]
				mu.Unlock()
				if others != nil {
					known[fd] = others
				}
			}
			for _, o := range others {
				if len(out[o]) == 0 {
					dirty = append(dirty, o)
				}
				out[o] = append(out[o], m...)
			}
		}, func() {
			for _, o := range dirty {
				// Straight from this loop, even to another loop's socket: no
				// hand-off, which makes the floor a little lower still.
				if n, err := syscall.Write(o, out[o]); err != nil && err != syscall.EPIPE {
					log.Printf("write: %v", err)
				} else if err == nil && n < len(out[o]) {
					log.Fatalf("short write (%d of %d bytes): the framing is lost", n, len(out[o]))
				}
				out[o] = out[o][:0]
			}
			dirty = dirty[:0]
		})
	}
	for n := 0; ; n++ {
		fd, _, err := syscall.Accept(lfd)
		if err != nil {
			log.Fatal(err)
		}
		var idx [4]byte
		if err := readFull(fd, idx[:]); err != nil {
			syscall.Close(fd)
			continue
		}
		setup(fd)
		i := int(binary.BigEndian.Uint32(idx[:]))
		mu.Lock()
		byIndex[i] = fd
		base := i - i%members
		complete := true
		for j := base; j < base+members; j++ {
			if _, ok := byIndex[j]; !ok {
				complete = false
			}
		}
		if complete {
			for j := base; j < base+members; j++ {
				var others []int
				for k := base; k < base+members; k++ {
					if k != j {
						others = append(others, byIndex[k])
					}
				}
				groupOf[byIndex[j]] = others
			}
			for j := base; j < base+members; j++ {
				syscall.Write(byIndex[j], []byte{1}) // go
			}
		}
		mu.Unlock()
		ls[n%loops].add(fd)
	}
}

// sockaddr parses host:port (IPv4).
func sockaddr(addr string) *syscall.SockaddrInet4 {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		log.Fatalf("address %q: want IPv4 host:port", addr)
	}
	return &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
}

// listen opens a blocking listening socket: raw, so that Go's poller does
// not watch it.
func listen(addr string) int {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err := syscall.Bind(fd, sockaddr(addr)); err != nil {
		log.Fatal(err)
	}
	if err := syscall.Listen(fd, 1024); err != nil {
		log.Fatal(err)
	}
	return fd
}

// dial connects a blocking raw socket.
func dial(addr string) int {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	if err := syscall.Connect(fd, sockaddr(addr)); err != nil {
		log.Fatal(err)
	}
	return fd
}

// setup makes fd non-blocking with TCP_NODELAY, as gnet and Go do.
func setup(fd int) {
	if err := syscall.SetNonblock(fd, true); err != nil {
		log.Fatal(err)
	}
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
}

// readFull reads len(b) bytes from a blocking fd.
func readFull(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Read(fd, b)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("eof")
		}
		b = b[n:]
	}
	return nil
}

// clientConfig is the client's flags.
type clientConfig struct {
	addr                   string
	loops, groups, members int
	rate                   float64
	warmup, window         time.Duration
	serverPID              int
}

// result is what the client measured over the window.
type result struct {
	cfg                      clientConfig
	sent, received, expected int64
	latency                  *hdr.Histogram // µs
	clientCPU, serverCPU     time.Duration
}

func (r *result) print(w io.Writer) {
	c, secs := r.cfg, r.cfg.window.Seconds()
	fmt.Fprintf(w, "floor: %d×%d @%g/s, %d loops: sent %d, received %d of %d (%.0f/s)\n",
		c.groups, c.members, c.rate, c.loops, r.sent, r.received, r.expected, float64(r.received)/secs)
	l := r.latency
	fmt.Fprintf(w, "latency µs: p50 %d  p90 %d  p99 %d  p99.9 %d  max %d\n",
		l.ValueAtQuantile(50), l.ValueAtQuantile(90), l.ValueAtQuantile(99), l.ValueAtQuantile(99.9), l.Max())
	fmt.Fprintf(w, "cpu: client %.0f%% of a core, server %.0f%% of a core (%.2f µs per delivery together)\n",
		100*r.clientCPU.Seconds()/secs, 100*r.serverCPU.Seconds()/secs,
		(r.clientCPU+r.serverCPU).Seconds()*1e6/float64(max(r.received, 1)))
}

// runClient connects every member, waits for the server's go, sends for
// warmup+window and counts what was sent in the window and arrived.
func runClient(cfg clientConfig) *result {
	n := cfg.groups * cfg.members
	fds := make([]int, n)
	ls := make([]*loop, cfg.loops)
	for i := range ls {
		ls[i] = newLoop()
	}
	for i := range n {
		fd := dial(cfg.addr)
		var idx [4]byte
		binary.BigEndian.PutUint32(idx[:], uint32(i))
		if _, err := syscall.Write(fd, idx[:]); err != nil {
			log.Fatal(err)
		}
		fds[i] = fd
	}
	for _, fd := range fds { // blocking: each group's go
		if err := readFull(fd, make([]byte, 1)); err != nil {
			log.Fatal(err)
		}
		setup(fd)
	}
	for i, fd := range fds {
		ls[i%cfg.loops].add(fd)
	}
	origin := time.Now()
	start := int64(cfg.warmup)
	end := start + int64(cfg.window)
	// Each loop records into its own histogram; the lock is uncontended
	// until the merge at the end.
	hists := make([]*hdr.Histogram, cfg.loops)
	locks := make([]sync.Mutex, cfg.loops)
	var received atomic.Int64
	for i, l := range ls {
		h := hdr.New(1, int64(10*time.Second/time.Microsecond), 3)
		hists[i] = h
		mu := &locks[i]
		go l.run(func(_ int, m []byte) {
			ts := int64(binary.BigEndian.Uint64(m))
			if ts < start || ts >= end {
				return
			}
			mu.Lock()
			h.RecordValue(min(max((int64(time.Since(origin))-ts)/1000, 1), h.HighestTrackableValue()))
			mu.Unlock()
			received.Add(1)
		}, func() {})
	}
	interval := int64(float64(time.Second) / cfg.rate)
	const pacers = 4
	var wg sync.WaitGroup
	var sent atomic.Int64
	for k := range pacers {
		wg.Go(func() {
			msg := make([]byte, msgSize)
			type slot struct {
				fd    int
				phase int64
			}
			var mine []slot
			for i := k; i < n; i += pacers {
				mine = append(mine, slot{fds[i], interval * int64(i) / int64(n)})
			}
			if len(mine) == 0 {
				return
			}
			i, cycle := 0, int64(0)
			for {
				now := int64(time.Since(origin))
				due := cycle*interval + mine[i].phase
				for due <= now {
					if due >= end {
						return
					}
					ts := int64(time.Since(origin))
					binary.BigEndian.PutUint64(msg, uint64(ts))
					if n, err := syscall.Write(mine[i].fd, msg); err != nil {
						log.Printf("send: %v", err)
					} else if n < len(msg) {
						log.Fatalf("short send (%d of %d bytes): the framing is lost", n, len(msg))
					} else if ts >= start && ts < end {
						sent.Add(1)
					}
					if i++; i == len(mine) {
						i, cycle = 0, cycle+1
					}
					due = cycle*interval + mine[i].phase
				}
				time.Sleep(max(time.Duration(due-now), time.Millisecond)) // pacing
			}
		})
	}
	time.Sleep(cfg.warmup) // the window starts
	cpu0, srv0 := procstat.SelfCPU(), serverCPU(cfg.serverPID)
	wg.Wait()
	r := &result{cfg: cfg, sent: sent.Load(), expected: sent.Load() * int64(cfg.members-1)}
	r.clientCPU, r.serverCPU = procstat.SelfCPU()-cpu0, serverCPU(cfg.serverPID)-srv0 // over the window
	// The drain: what was sent in the window may still be on its way.
	for deadline := time.Now().Add(2 * time.Second); received.Load() < r.expected && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	r.received = received.Load()
	r.latency = hdr.New(1, int64(10*time.Second/time.Microsecond), 3)
	for i, h := range hists {
		locks[i].Lock()
		r.latency.Merge(h)
		locks[i].Unlock()
	}
	return r
}

// serverCPU returns the CPU time of pid (0 if pid is 0 or unreadable).
func serverCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	smp, _ := procstat.Read(pid)
	return smp.CPU
}
