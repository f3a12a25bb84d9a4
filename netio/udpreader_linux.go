package netio

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// udpReader reads datagrams in batches with recvmmsg and gives each one's
// source as a netip.AddrPort, allocating nothing per datagram (x/net's
// ReadBatch allocated a *net.UDPAddr for every one). It also asks the
// kernel for each datagram's arrival time (SO_TIMESTAMPNS: how long the
// batch waited in the socket, see backlog) and for the socket's count of
// datagrams dropped for want of buffer space (SO_RXQ_OVFL). Reader
// goroutine only.
type udpReader struct {
	rc    syscall.RawConn
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for IPv4 and IPv6 sources
	bufs  [][]byte
	ctrl  [][]byte // each datagram's control messages
	drops uint32   // the last SO_RXQ_OVFL count seen

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

// udpControlSize holds a datagram's control messages: its timestamp and
// the drop count.
var udpControlSize = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))) + unix.CmsgSpace(4)

// newUDPReader prepares batches of n datagrams of at most size bytes
// (both at least 1). A socket that refuses the timestamp or drop-count
// options is read without them (backlog then reports nothing).
func newUDPReader(uc *net.UDPConn, n, size int) (*udpReader, error) {
	n, size = max(n, 1), max(size, 1)
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1)
	})
	r := &udpReader{
		rc:    rc,
		hdrs:  make([]mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet6, n),
		bufs:  make([][]byte, n),
		ctrl:  make([][]byte, n),
	}
	for i := range r.hdrs {
		r.bufs[i] = make([]byte, size)
		r.ctrl[i] = make([]byte, udpControlSize)
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(size)
		h := &r.hdrs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		h.Control = &r.ctrl[i][0]
	}
	r.fn = r.recv
	return r, nil
}

// recv is the RawConn.Read callback: one recvmmsg; false asks the poller
// to wait for the socket to be readable.
func (r *udpReader) recv(fd uintptr) bool {
	for i := range r.hdrs {
		r.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet6
		r.hdrs[i].hdr.SetControllen(udpControlSize)
		r.hdrs[i].len = 0
	}
	n, errno := mmsg(unix.SYS_RECVMMSG, fd, r.hdrs)
	switch errno {
	case 0:
		r.n, r.err = n, nil
	case unix.EAGAIN:
		return false
	default:
		r.n, r.err = 0, errno
	}
	return true
}

// mmsg makes one recvmmsg or sendmmsg (trap) of hdrs with MSG_DONTWAIT,
// again after EINTR, and returns how many messages it moved or its error.
//
// It uses RawSyscall, which does not tell the Go scheduler
// (entersyscall), where x/net's batches and package syscall's Syscall do.
// With MSG_DONTWAIT neither call waits for data or buffer space (EAGAIN,
// and then the netpoller waits): it is CPU work in the kernel (on
// loopback, the receivers' side of a delivery too), so the scheduler has
// little to hand off. Telling it cost, on every call made while the
// runtime was idle, waking its monitor thread (sysmon) from its long
// sleep, a futex wake and two context switches: at KCP 100x8 @10 the
// engine spent more in those than in Go code (bench/README.md, "System
// calls on the KCP path"). The price: the goroutine keeps its P for the
// whole call, which the kernel may still stretch (memory reclaim while
// allocating a buffer, a page fault), and a garbage collector's
// stop-the-world waits for it; a call moves at most kcpBatch datagrams.
func mmsg(trap, fd uintptr, hdrs []mmsghdr) (int, unix.Errno) {
	for {
		n, _, errno := unix.RawSyscall6(trap, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), unix.MSG_DONTWAIT, 0, 0)
		if errno != unix.EINTR {
			return int(n), errno
		}
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
// is its interface index (which udpWriter takes back as the scope ID).
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

// backlog reports, for the last batch of n datagrams (n > 0), how long
// its first datagram waited in the socket, as of now (unix nanoseconds),
// and how many datagrams the socket has dropped for want of buffer space
// since it was opened (cumulative, as the kernel counts it: it wraps at
// 2^32). ok is false if the kernel gave no timestamp; drops is then the
// last count seen.
func (r *udpReader) backlog(n int, now int64) (wait time.Duration, drops uint32, ok bool) {
	var at int64
	for _, i := range [2]int{0, n - 1} { // the first datagram's time, the last one's count
		h := &r.hdrs[i].hdr
		c := r.ctrl[i][:min(int(h.Controllen), len(r.ctrl[i]))]
		for len(c) >= unix.SizeofCmsghdr {
			m := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
			l := int(m.Len)
			if l < unix.SizeofCmsghdr || l > len(c) {
				break
			}
			data := c[unix.CmsgLen(0):l]
			switch {
			case m.Level != unix.SOL_SOCKET:
			case m.Type == unix.SO_TIMESTAMPNS && i == 0 && len(data) >= int(unsafe.Sizeof(unix.Timespec{})):
				ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
				at, ok = ts.Nano(), true
			case m.Type == unix.SO_RXQ_OVFL && len(data) >= 4:
				r.drops = *(*uint32)(unsafe.Pointer(&data[0]))
			}
			c = c[min(unix.CmsgSpace(l-unix.CmsgLen(0)), len(c)):]
		}
	}
	if ok {
		wait = time.Duration(max(now-at, 0))
	}
	return wait, r.drops, ok
}

// reusePort is a net.ListenConfig.Control that sets SO_REUSEPORT, so that
// several sockets bind one address (Config.KCPReaders).
func reusePort(_, _ string, rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	if serr != nil {
		return os.NewSyscallError("setsockopt SO_REUSEPORT", serr)
	}
	return nil
}
