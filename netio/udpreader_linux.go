package netio

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpReader reads datagrams in batches with recvmmsg and gives each one's
// source as a netip.AddrPort, allocating nothing per datagram (x/net's
// ReadBatch allocated a *net.UDPAddr for every one). Reader goroutine only.
type udpReader struct {
	rc    syscall.RawConn
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for IPv4 and IPv6 sources
	bufs  [][]byte

	// read's results, kept in fields so that the callback passed to
	// RawConn.Read does not escape a fresh closure per call.
	n   int
	err error
	fn  func(fd uintptr) bool
}

// mmsghdr is the kernel's struct mmsghdr: Go pads it as C does on 32- and
// 64-bit platforms.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// newUDPReader prepares batches of n datagrams of at most size bytes
// (both at least 1).
func newUDPReader(uc *net.UDPConn, n, size int) (*udpReader, error) {
	n, size = max(n, 1), max(size, 1)
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &udpReader{
		rc:    rc,
		hdrs:  make([]mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet6, n),
		bufs:  make([][]byte, n),
	}
	for i := range r.hdrs {
		r.bufs[i] = make([]byte, size)
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(size)
		h := &r.hdrs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
	}
	r.fn = r.recv
	return r, nil
}

// recv is the RawConn.Read callback: one recvmmsg; false asks the poller
// to wait for the socket to be readable.
func (r *udpReader) recv(fd uintptr) bool {
	for i := range r.hdrs {
		r.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet6
		r.hdrs[i].len = 0
	}
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			r.n, r.err = int(n), nil
		case unix.EAGAIN:
			return false
		case unix.EINTR:
			continue
		default:
			r.n, r.err = 0, errno
		}
		return true
	}
}

// read waits for and reads the next batch, returning how many datagrams
// it holds (possibly 0). Its errors are the socket's (net.ErrClosed once
// the socket is closed).
func (r *udpReader) read() (int, error) {
	if err := r.rc.Read(r.fn); err != nil {
		return 0, err
	}
	if r.err != nil {
		return 0, &net.OpError{Op: "recvmmsg", Net: "udp", Err: r.err}
	}
	return r.n, nil
}

// datagram returns the i-th datagram of the last batch (valid until the
// next read) and its source; ok is false for a datagram to drop: one
// larger than the buffer (not a KCP packet: the MTU is smaller), or from
// a source that is neither IPv4 nor IPv6. An IPv6 link-local source's zone
// is its interface index (see zoneName).
func (r *udpReader) datagram(i int) (p []byte, from netip.AddrPort, ok bool) {
	h := &r.hdrs[i]
	p = r.bufs[i][:h.len]
	if h.hdr.Flags&unix.MSG_TRUNC != 0 || h.hdr.Namelen == 0 {
		return p, netip.AddrPort{}, false
	}
	sa := &r.names[i]
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return p, netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port), true
	case unix.AF_INET6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			a = a.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10)) // link-local only: rare
		}
		return p, netip.AddrPortFrom(a, port), true
	}
	return p, netip.AddrPort{}, false
}

// zoneName turns the numeric zone the reader gives a link-local IPv6
// source into its interface's name, once per session: x/net's WriteBatch
// looks zones up by name, and a number made it list the interfaces again
// for every datagram sent.
func zoneName(ua *net.UDPAddr) {
	if ua.Zone == "" {
		return
	}
	if idx, err := strconv.Atoi(ua.Zone); err == nil {
		if ifi, err := net.InterfaceByIndex(idx); err == nil {
			ua.Zone = ifi.Name
		}
	}
}
