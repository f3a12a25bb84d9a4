package netio

import (
	"errors"
	"net"
	"net/netip"
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
