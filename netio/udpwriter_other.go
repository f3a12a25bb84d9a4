//go:build !linux

package netio

import (
	"net"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// newBatchConn returns the batchConn of one goroutine's txBatch on uc:
// x/net's, which sends one datagram per system call where sendmmsg is not
// available.
func newBatchConn(uc *net.UDPConn, _ int) (batchConn, error) {
	if la, ok := uc.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() != nil {
		return ipv4.NewPacketConn(uc), nil
	}
	return ipv6BatchConn{ipv6.NewPacketConn(uc)}, nil
}

// ipv6BatchConn adapts ipv6.PacketConn (whose Message is the same type).
type ipv6BatchConn struct{ p *ipv6.PacketConn }

func (b ipv6BatchConn) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	return b.p.WriteBatch(ms, flags)
}
