package netio

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"
)

// listenUDP opens a UDP socket on addr, or skips the test if the address
// family is not available here.
func listenUDP(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	uc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Skipf("%s: %v", addr, err)
	}
	t.Cleanup(func() { uc.Close() })
	uc.SetReadDeadline(time.Now().Add(waitFor))
	return uc
}

// TestUDPReaderSources sends datagrams from two sockets and reads them
// with a udpReader: every datagram arrives whole, with its sender's
// address, over IPv4 and IPv6 (loopback only: no wildcard bind).
func TestUDPReaderSources(t *testing.T) {
	for _, c := range []struct{ listen, from string }{
		{"127.0.0.1:0", "127.0.0.1:0"},
		{"[::1]:0", "[::1]:0"},
	} {
		t.Run(c.listen+"<-"+c.from, func(t *testing.T) {
			uc := listenUDP(t, c.listen)
			rd, err := newUDPReader(uc, 4, 64)
			if err != nil {
				t.Fatal(err)
			}
			to := uc.LocalAddr().(*net.UDPAddr).AddrPort()
			want := map[string]netip.AddrPort{}
			for i, text := range []string{"one", "two", "three", "four", "five"} {
				src := listenUDP(t, c.from)
				if i%2 == 1 {
					src = listenUDP(t, c.from) // a second sender
				}
				if _, err := src.WriteToUDPAddrPort([]byte(text), to); err != nil {
					t.Fatal(err)
				}
				want[text] = src.LocalAddr().(*net.UDPAddr).AddrPort()
			}
			for len(want) > 0 {
				n, err := rd.read()
				if err != nil {
					t.Fatal(err)
				}
				for i := range n {
					p, from, ok := rd.datagram(i)
					w, known := want[string(p)]
					if !ok || !known || from.Addr() != w.Addr() || from.Port() != w.Port() {
						t.Fatalf("datagram %q from %v (ok %v); want one of %v", p, from, ok, want)
					}
					delete(want, string(p))
				}
			}
		})
	}
}

// TestUDPReaderDoesNotAllocate: reading a datagram and its source
// allocates nothing (x/net's ReadBatch allocated an address per datagram).
func TestUDPReaderDoesNotAllocate(t *testing.T) {
	uc := listenUDP(t, "127.0.0.1:0")
	rd, err := newUDPReader(uc, 8, 64)
	if err != nil {
		t.Fatal(err)
	}
	src, err := net.DialUDP("udp", nil, uc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	msg := []byte("ping")
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := src.Write(msg); err != nil {
			t.Fatal(err)
		}
		n, err := rd.read()
		if err != nil || n != 1 {
			t.Fatalf("read = %d, %v", n, err)
		}
		if p, _, _ := rd.datagram(0); string(p) != "ping" {
			t.Fatalf("datagram %q", p)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per datagram sent and read", allocs)
	}
}

// TestUDPReaderClosed: a read waiting for a datagram ends with
// net.ErrClosed when the socket is closed.
func TestUDPReaderClosed(t *testing.T) {
	uc := listenUDP(t, "127.0.0.1:0")
	rd, err := newUDPReader(uc, 8, 64)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := rd.read(); done <- err }()
	uc.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(waitFor):
		t.Fatal("read did not end when the socket closed")
	}
}

// dualStackSocket opens an IPv6 socket that also takes IPv4 (as Go opens
// one for a wildcard address), bound to ::ffff:127.0.0.1 so that a test
// stays on loopback, or skips the test if that cannot be had here.
func dualStackSocket(t *testing.T) *net.UDPConn {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no IPv6: %v", err)
	}
	f := os.NewFile(uintptr(fd), "dual-stack")
	defer f.Close() // FilePacketConn holds a duplicate
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 0); err != nil {
		t.Skipf("IPV6_V6ONLY: %v", err)
	}
	mapped := netip.AddrFrom16(netip.MustParseAddr("::ffff:127.0.0.1").As16())
	if err := syscall.Bind(fd, &syscall.SockaddrInet6{Addr: mapped.As16()}); err != nil {
		t.Skipf("bind %v: %v", mapped, err)
	}
	pc, err := net.FilePacketConn(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	uc := pc.(*net.UDPConn)
	uc.SetReadDeadline(time.Now().Add(waitFor))
	return uc
}

// TestUDPReaderDualStack reads, on a dual-stack socket, a datagram from an
// IPv4 client: its source comes as an IPv4-mapped IPv6 address, as x/net
// gave it.
func TestUDPReaderDualStack(t *testing.T) {
	uc := dualStackSocket(t)
	rd, err := newUDPReader(uc, 4, 64)
	if err != nil {
		t.Fatal(err)
	}
	src := listenUDP(t, "127.0.0.1:0")
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uc.LocalAddr().(*net.UDPAddr).AddrPort().Port())
	if _, err := src.WriteToUDPAddrPort([]byte("v4"), to); err != nil {
		t.Fatal(err)
	}
	n, err := rd.read()
	if err != nil || n != 1 {
		t.Fatalf("read = %d, %v", n, err)
	}
	p, from, ok := rd.datagram(0)
	want := src.LocalAddr().(*net.UDPAddr).AddrPort()
	if !ok || string(p) != "v4" || !from.Addr().Is4In6() || from.Addr().Unmap() != want.Addr() || from.Port() != want.Port() {
		t.Fatalf("datagram %q from %v (ok %v); want \"v4\" from %v, IPv4-mapped", p, from, ok, want)
	}
	// The session's send address reaches the client through this socket.
	if _, err := uc.WriteTo([]byte("back"), net.UDPAddrFromAddrPort(from)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if m, _, err := src.ReadFromUDPAddrPort(buf); err != nil || string(buf[:m]) != "back" {
		t.Fatalf("reply %q, %v", buf[:m], err)
	}
}

// readerAndSender returns a socket on IPv4 loopback with a udpReader of
// batches of 4 datagrams of 64 bytes, and a socket that sends to it, at
// to.
func readerAndSender(t *testing.T) (uc *net.UDPConn, rd *udpReader, src *net.UDPConn, to netip.AddrPort) {
	t.Helper()
	uc = listenUDP(t, "127.0.0.1:0")
	rd, err := newUDPReader(uc, 4, 64)
	if err != nil {
		t.Fatal(err)
	}
	return uc, rd, listenUDP(t, "127.0.0.1:0"), uc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// TestUDPReaderDropsTruncated: a datagram larger than the buffer is
// reported as one to drop, not handed on cut.
func TestUDPReaderDropsTruncated(t *testing.T) {
	_, rd, src, to := readerAndSender(t)
	for _, p := range [][]byte{make([]byte, 100), []byte("fits")} {
		if _, err := src.WriteToUDPAddrPort(p, to); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for len(got) < 2 {
		n, err := rd.read()
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			p, _, ok := rd.datagram(i)
			got = append(got, fmt.Sprintf("%d/%v", len(p), ok))
		}
	}
	if got[0] != "64/false" || got[1] != "4/true" {
		t.Fatalf("datagrams %v, want the 100-byte one dropped (64/false) and 4/true", got)
	}
}

// TestUDPReaderBacklog reads datagrams that waited in the socket: the
// batch's wait is at least how long its first datagram sat there (a
// sleep makes it wait: it is what is measured), and the socket's drop
// count comes with the datagrams queued after a drop.
func TestUDPReaderBacklog(t *testing.T) {
	uc, rd, src, to := readerAndSender(t)
	send := func() {
		t.Helper()
		if _, err := src.WriteToUDPAddrPort([]byte("x"), to); err != nil {
			t.Fatal(err)
		}
	}
	send()
	const aged = 30 * time.Millisecond
	time.Sleep(aged)
	n, err := rd.read()
	if err != nil || n != 1 {
		t.Fatalf("read = %d, %v", n, err)
	}
	wait, drops, ok := rd.backlog(n, time.Now().UnixNano())
	if !ok {
		t.Fatal("no timestamp")
	}
	if wait < aged || wait > aged+5*time.Second {
		t.Errorf("wait %v, want at least %v", wait, aged)
	}
	if drops != 0 {
		t.Errorf("drops %d before any", drops)
	}

	// Overflow the smallest buffer the kernel allows, drain it, then one
	// more datagram carries the count.
	if err := uc.SetReadBuffer(1); err != nil {
		t.Fatal(err)
	}
	for range 500 {
		send()
	}
	// Nothing else sends: a batch short of 4 is the last. If the last is
	// exactly 4, the short deadline ends the next read.
	_ = uc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	for {
		if n, err := rd.read(); err != nil || n < 4 {
			break
		}
	}
	_ = uc.SetReadDeadline(time.Now().Add(waitFor))
	send()
	if n, err = rd.read(); err != nil || n != 1 {
		t.Fatalf("read = %d, %v", n, err)
	}
	if _, drops, _ = rd.backlog(n, time.Now().UnixNano()); drops == 0 {
		t.Error("no drops counted after overflowing the socket")
	}
}
