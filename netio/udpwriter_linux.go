package netio

import (
	"errors"
	"net"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// udpWriter sends batches of datagrams with one sendmmsg each, through
// its own message headers and socket addresses (allocating nothing per
// datagram). One goroutine at a time: each txBatch has its own.
//
// The system call is made with RawSyscall (see mmsg for why and at what
// price).
type udpWriter struct {
	rc    syscall.RawConn
	inet6 bool // the socket is IPv6 (IPv4 destinations are v4-mapped)
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for IPv4 and IPv6 destinations

	// send's arguments and results, kept in fields so that the callback
	// passed to RawConn.Write does not escape a fresh closure per call.
	n    int
	sent int
	err  error
	fn   func(fd uintptr) bool
}

// newBatchConn returns the batchConn of one goroutine's txBatch on uc: a
// udpWriter of n datagrams.
func newBatchConn(uc *net.UDPConn, n int) (batchConn, error) { return newUDPWriter(uc, n) }

// newUDPWriter prepares batches of at most n datagrams (at least 1) for
// uc.
func newUDPWriter(uc *net.UDPConn, n int) (*udpWriter, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	// The socket's own family: Go reports the address of a dual-stack
	// socket bound to a v4-mapped address as IPv4.
	var sa unix.Sockaddr
	var serr error
	if err := rc.Control(func(fd uintptr) { sa, serr = unix.Getsockname(int(fd)) }); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, os.NewSyscallError("getsockname", serr)
	}
	_, inet6 := sa.(*unix.SockaddrInet6)
	n = max(n, 1)
	w := &udpWriter{
		rc:    rc,
		inet6: inet6,
		hdrs:  make([]mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet6, n),
	}
	for i := range w.hdrs {
		h := &w.hdrs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&w.names[i]))
		h.Iov = &w.iovs[i]
		h.SetIovlen(1)
	}
	w.fn = w.send
	return w, nil
}

// errAddrFamily is a destination the socket cannot reach: an IPv6 address
// from an IPv4 socket, or no *net.UDPAddr.
var errAddrFamily = errors.New("netio: destination address not of the socket's family")

// WriteBatch sends the first datagrams of ms (each one's Buffers[0] to its
// Addr, a *net.UDPAddr; further Buffers and the flags are ignored, as
// txBatch uses neither) with one sendmmsg, as many as fit in the writer's
// batch, and returns how many the kernel took; it sends at least one or
// fails. A datagram whose address does not fit the socket fails alone
// (with ms[0]) or ends the batch before it, as one the kernel refuses.
func (w *udpWriter) WriteBatch(ms []ipv4.Message, _ int) (int, error) {
	n := 0
	for _, m := range ms[:min(len(ms), len(w.hdrs))] {
		ua, _ := m.Addr.(*net.UDPAddr)
		nl, ok := putSockaddr(&w.names[n], ua, w.inet6)
		if !ok {
			break
		}
		h := &w.hdrs[n]
		h.hdr.Namelen = nl
		h.len = 0
		b := m.Buffers[0]
		raceReadRange(b) // what the kernel reads, as x/net tells the race detector
		w.iovs[n].Base = unsafe.SliceData(b)
		w.iovs[n].SetLen(len(b))
		n++
	}
	if n == 0 {
		if len(ms) == 0 {
			return 0, nil
		}
		return 0, errAddrFamily
	}
	w.n = n
	if err := w.rc.Write(w.fn); err != nil {
		return 0, err
	}
	return w.sent, w.err
}

// send is the RawConn.Write callback: one sendmmsg of w.n datagrams;
// false asks the poller to wait until the socket is writable (its buffer
// was full).
func (w *udpWriter) send(fd uintptr) bool {
	n, errno := mmsg(unix.SYS_SENDMMSG, fd, w.hdrs[:w.n])
	switch errno {
	case 0:
		w.sent, w.err = n, nil
	case unix.EAGAIN:
		return false
	default:
		w.sent, w.err = 0, &net.OpError{Op: "sendmmsg", Net: "udp", Err: errno}
	}
	return true
}

// putSockaddr writes ua as the socket address of an IPv6 (inet6) or IPv4
// socket into sa and returns its length; false if ua cannot be reached
// from that socket. On an IPv6 socket an IPv4 address is v4-mapped, and a
// zone (an interface's index or name) becomes the scope ID.
func putSockaddr(sa *unix.RawSockaddrInet6, ua *net.UDPAddr, inet6 bool) (uint32, bool) {
	if ua == nil || ua.Port < 0 || ua.Port > 0xffff {
		return 0, false
	}
	port := [2]byte{byte(ua.Port >> 8), byte(ua.Port)} // network byte order
	if !inet6 {
		ip4 := ua.IP.To4()
		if ip4 == nil {
			return 0, false
		}
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*s4 = unix.RawSockaddrInet4{Family: unix.AF_INET}
		*(*[2]byte)(unsafe.Pointer(&s4.Port)) = port
		copy(s4.Addr[:], ip4)
		return unix.SizeofSockaddrInet4, true
	}
	ip16 := ua.IP.To16()
	if ip16 == nil {
		return 0, false
	}
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Scope_id: scopeID(ua.Zone)}
	*(*[2]byte)(unsafe.Pointer(&sa.Port)) = port
	copy(sa.Addr[:], ip16)
	return unix.SizeofSockaddrInet6, true
}

// scopeID is the interface index of an IPv6 zone: the reader gives zones
// as numbers (a link-local source's interface index); a name is looked up.
// An unknown name is 0 (the kernel then refuses a link-local destination).
func scopeID(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if idx, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(idx)
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}
