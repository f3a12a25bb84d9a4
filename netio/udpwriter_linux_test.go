package netio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// message is a datagram of p to addr, as txBatch builds them.
func message(p []byte, addr net.Addr) ipv4.Message {
	return ipv4.Message{Buffers: [][]byte{p}, Addr: addr}
}

// readDatagram reads one datagram from uc within 5 s.
func readDatagram(t *testing.T, uc *net.UDPConn) []byte {
	t.Helper()
	buf := make([]byte, 2048)
	if err := uc.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := uc.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// TestUDPWriterSendsBatch sends one batch to two receivers, over IPv4
// and IPv6 (loopback only: no wildcard bind, so v4-mapped destinations
// are left to TestPutSockaddr): every datagram arrives whole, in order,
// at its own destination, and WriteBatch says all were taken.
func TestUDPWriterSendsBatch(t *testing.T) {
	for _, c := range []struct{ from, to string }{
		{"127.0.0.1:0", "127.0.0.1:0"},
		{"[::1]:0", "[::1]:0"},
	} {
		t.Run(c.from+"->"+c.to, func(t *testing.T) {
			uc := listenUDP(t, c.from)
			w, err := newUDPWriter(uc, 8)
			if err != nil {
				t.Fatal(err)
			}
			a, b := listenUDP(t, c.to), listenUDP(t, c.to)
			aa, ba := a.LocalAddr().(*net.UDPAddr), b.LocalAddr().(*net.UDPAddr)
			ms := []ipv4.Message{
				message([]byte("to a, first"), aa),
				message(bytes.Repeat([]byte{0xa5}, 1200), ba),
				message([]byte("to a, second"), aa),
			}
			n, err := w.WriteBatch(ms, 0)
			if err != nil || n != len(ms) {
				t.Fatalf("WriteBatch = %d, %v; want %d, nil", n, err, len(ms))
			}
			if got := readDatagram(t, a); string(got) != "to a, first" {
				t.Errorf("a got %q first", got)
			}
			if got := readDatagram(t, a); string(got) != "to a, second" {
				t.Errorf("a got %q second", got)
			}
			if got := readDatagram(t, b); !bytes.Equal(got, ms[1].Buffers[0]) {
				t.Errorf("b got %d bytes, want the 1200 of 0xa5", len(got))
			}
		})
	}
}

// TestUDPWriterDualStack sends from a dual-stack socket to an IPv4
// receiver, whose address the reader would have given v4-mapped.
func TestUDPWriterDualStack(t *testing.T) {
	uc := dualStackSocket(t)
	w, err := newUDPWriter(uc, 8)
	if err != nil {
		t.Fatal(err)
	}
	if !w.inet6 {
		t.Fatal("a dual-stack socket taken for IPv4")
	}
	to := listenUDP(t, "127.0.0.1:0")
	ta := to.LocalAddr().(*net.UDPAddr)
	for _, addr := range []*net.UDPAddr{ta, {IP: net.ParseIP("::ffff:127.0.0.1"), Port: ta.Port}} {
		if n, err := w.WriteBatch([]ipv4.Message{message([]byte(addr.String()), addr)}, 0); n != 1 || err != nil {
			t.Fatalf("WriteBatch to %v = %d, %v", addr, n, err)
		}
		if got := readDatagram(t, to); string(got) != addr.String() {
			t.Errorf("got %q, want %q", got, addr.String())
		}
	}
}

// TestUDPWriterDoesNotAllocate: a batch costs no allocation.
func TestUDPWriterDoesNotAllocate(t *testing.T) {
	uc := listenUDP(t, "127.0.0.1:0")
	w, err := newUDPWriter(uc, 8)
	if err != nil {
		t.Fatal(err)
	}
	to := listenUDP(t, "127.0.0.1:0")
	ms := []ipv4.Message{message([]byte("ping"), to.LocalAddr()), message([]byte("pong"), to.LocalAddr())}
	buf := make([]byte, 64)
	allocs := testing.AllocsPerRun(100, func() {
		if n, err := w.WriteBatch(ms, 0); n != 2 || err != nil {
			t.Fatalf("WriteBatch = %d, %v", n, err)
		}
		for range 2 {
			if _, err := to.Read(buf); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per batch sent", allocs)
	}
}

// TestUDPWriterAddressFamily: from an IPv4 socket an IPv6 destination
// cannot be sent to: a batch stops before it, and a batch starting with
// it fails, so that the caller skips that datagram alone.
func TestUDPWriterAddressFamily(t *testing.T) {
	uc := listenUDP(t, "127.0.0.1:0")
	w, err := newUDPWriter(uc, 8)
	if err != nil {
		t.Fatal(err)
	}
	to := listenUDP(t, "127.0.0.1:0")
	v4 := to.LocalAddr().(*net.UDPAddr)
	v6 := &net.UDPAddr{IP: net.IPv6loopback, Port: v4.Port}
	ms := []ipv4.Message{message([]byte("1"), v4), message([]byte("2"), v6), message([]byte("3"), v4)}
	if n, err := w.WriteBatch(ms, 0); n != 1 || err != nil {
		t.Fatalf("batch with an IPv6 destination second = %d, %v; want 1, nil", n, err)
	}
	if n, err := w.WriteBatch(ms[1:], 0); n != 0 || !errors.Is(err, errAddrFamily) {
		t.Fatalf("batch starting with it = %d, %v; want 0, errAddrFamily", n, err)
	}
	if n, err := w.WriteBatch(ms[2:], 0); n != 1 || err != nil {
		t.Fatalf("the rest = %d, %v; want 1, nil", n, err)
	}
	for _, want := range []string{"1", "3"} {
		if got := readDatagram(t, to); string(got) != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if n, err := w.WriteBatch(nil, 0); n != 0 || err != nil {
		t.Errorf("empty batch = %d, %v", n, err)
	}
}

// TestPutSockaddr checks the socket addresses byte by byte: port in
// network order, v4-mapped IPv4 on an IPv6 socket, zones as scope IDs (an
// index as it is, an interface's name looked up), and what cannot be
// sent.
func TestPutSockaddr(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no lo: %v", err)
	}
	ap := func(s, zone string) *net.UDPAddr {
		ua := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(s))
		ua.Zone = zone
		return ua
	}
	for _, c := range []struct {
		name  string
		ua    *net.UDPAddr
		inet6 bool
		ok    bool
		len   uint32
		addr  []byte // the address bytes
		scope uint32
	}{
		{"v4 on v4", ap("192.0.2.7:4660", ""), false, true, unix.SizeofSockaddrInet4, []byte{192, 0, 2, 7}, 0},
		{"v4 on v6", ap("192.0.2.7:4660", ""), true, true, unix.SizeofSockaddrInet6,
			[]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7}, 0},
		{"v6", ap("[2001:db8::1]:4660", ""), true, true, unix.SizeofSockaddrInet6,
			[]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 0},
		{"numeric zone", ap("[fe80::1]:4660", "7"), true, true, unix.SizeofSockaddrInet6,
			[]byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 7},
		{"named zone", ap("[fe80::1]:4660", "lo"), true, true, unix.SizeofSockaddrInet6,
			[]byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint32(lo.Index)},
		{"unknown zone", ap("[fe80::1]:4660", "no-such-interface"), true, true, unix.SizeofSockaddrInet6,
			[]byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 0},
		{"v6 on v4", ap("[2001:db8::1]:4660", ""), false, false, 0, nil, 0},
		{"nil", nil, true, false, 0, nil, 0},
		{"port too large", &net.UDPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 70000}, false, false, 0, nil, 0},
	} {
		var sa unix.RawSockaddrInet6
		n, ok := putSockaddr(&sa, c.ua, c.inet6)
		if ok != c.ok || n != c.len {
			t.Errorf("%s: = %d, %v; want %d, %v", c.name, n, ok, c.len, c.ok)
			continue
		}
		if !ok {
			continue
		}
		if c.inet6 {
			if sa.Family != unix.AF_INET6 || sa.Port != portBytes(4660) || !bytes.Equal(sa.Addr[:], c.addr) || sa.Scope_id != c.scope {
				t.Errorf("%s: %+v", c.name, sa)
			}
			continue
		}
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa))
		if s4.Family != unix.AF_INET || s4.Port != portBytes(4660) || !bytes.Equal(s4.Addr[:], c.addr) {
			t.Errorf("%s: %+v", c.name, *s4)
		}
	}
}

// portBytes is port as it lies in a sockaddr's uint16 field: network
// byte order, read in the host's.
func portBytes(port uint16) uint16 {
	var v uint16
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&v))[:], port)
	return v
}

// TestUDPWriterPartial: a datagram the kernel refuses (port 0: EINVAL)
// ends the batch after those before it and then fails alone, as
// txBatch.send expects; a batch longer than the writer's is clipped; a
// closed socket fails without a system call.
func TestUDPWriterPartial(t *testing.T) {
	uc := listenUDP(t, "127.0.0.1:0")
	w, err := newUDPWriter(uc, 4)
	if err != nil {
		t.Fatal(err)
	}
	to := listenUDP(t, "127.0.0.1:0")
	ta := to.LocalAddr().(*net.UDPAddr)
	bad := &net.UDPAddr{IP: ta.IP, Port: 0}
	ms := []ipv4.Message{message([]byte("1"), ta), message([]byte("x"), bad), message([]byte("3"), ta)}
	if n, err := w.WriteBatch(ms, 0); n != 1 || err != nil {
		t.Fatalf("batch = %d, %v; want 1, nil", n, err)
	}
	if n, err := w.WriteBatch(ms[1:], 0); n != 0 || !errors.Is(err, unix.EINVAL) {
		t.Fatalf("refused datagram = %d, %v; want 0, EINVAL", n, err)
	}
	var many []ipv4.Message
	for i := range 6 {
		many = append(many, message([]byte{'a' + byte(i)}, ta))
	}
	if n, err := w.WriteBatch(many, 0); n != 4 || err != nil {
		t.Fatalf("6 datagrams to a writer of 4 = %d, %v; want 4, nil", n, err)
	}
	for _, want := range []string{"1", "a", "b", "c", "d"} {
		if got := readDatagram(t, to); string(got) != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	uc.Close()
	if n, err := w.WriteBatch(ms[:1], 0); n != 0 || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("closed socket = %d, %v; want 0, net.ErrClosed", n, err)
	}
}

// TestNamedZone: a Conn's address names a numeric zone's interface (as
// TCP's do) and leaves the session's own address, which the writer uses,
// with the index; a name, no zone or an unknown index stay as they are.
func TestNamedZone(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no lo: %v", err)
	}
	for _, c := range []struct{ zone, want string }{
		{strconv.Itoa(lo.Index), "lo"},
		{"lo", "lo"},
		{"", ""},
		{"99999", "99999"},
	} {
		ua := &net.UDPAddr{IP: net.ParseIP("fe80::1"), Port: 1, Zone: c.zone}
		got := namedZone(ua)
		if got.Zone != c.want || ua.Zone != c.zone || !got.IP.Equal(ua.IP) || got.Port != 1 {
			t.Errorf("zone %q: got %v (session's now %q), want zone %q", c.zone, got, ua.Zone, c.want)
		}
	}
}
