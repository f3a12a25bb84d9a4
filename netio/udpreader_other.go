//go:build !linux

package netio

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// udpReader reads one datagram at a time where recvmmsg is not available;
// see the Linux version for the contract.
type udpReader struct {
	uc   *net.UDPConn
	buf  []byte
	n    int
	from netip.AddrPort
}

func newUDPReader(uc *net.UDPConn, _, size int) (*udpReader, error) {
	return &udpReader{uc: uc, buf: make([]byte, size)}, nil
}

// read waits for the next datagram; it returns 1.
func (r *udpReader) read() (int, error) {
	n, from, err := r.uc.ReadFromUDPAddrPort(r.buf)
	if err != nil {
		return 0, err
	}
	r.n, r.from = n, from
	return 1, nil
}

// datagram returns the datagram read last and its source.
func (r *udpReader) datagram(int) ([]byte, netip.AddrPort, bool) {
	return r.buf[:r.n], r.from, true
}

// backlog reports nothing here: the kernel's timestamps and drop count
// are read on Linux only.
func (r *udpReader) backlog(int, int64) (time.Duration, uint32, bool) { return 0, 0, false }

// reusePort refuses: several KCP sockets on one address need Linux's
// SO_REUSEPORT (its spreading by source address); the front end runs
// with the one socket it has.
func reusePort(string, string, syscall.RawConn) error {
	return errors.New("several KCP readers need Linux (SO_REUSEPORT)")
}
