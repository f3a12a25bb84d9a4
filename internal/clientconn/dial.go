package clientconn

import (
	"context"
	"net"
	"time"

	"github.com/coveyhq/covey/internal/kcpconn"
	"github.com/coveyhq/covey/secure"
)

// handshakeTimeout bounds an encrypted TCP handshake when the context of
// Dial has no deadline.
const handshakeTimeout = 5 * time.Second

// Dial opens a transport connection to addr within ctx: network "tcp", or
// anything else for KCP (package kcpconn, with the settings PROTOCOL.md
// recommends; a KCP dial sends nothing, so ctx bounds only the address
// resolution). On TCP with a ticket (a parsed connect token), the
// connection is encrypted: Dial runs [SecureTCP] within ctx's deadline
// (5 s if it has none) and returns its errors, a [*ByeError] when the
// server refuses the ticket. Without one, or on KCP (which does not take
// a ticket yet), the connection is plaintext. It is safe for concurrent
// use.
func Dial(ctx context.Context, network, addr string, ticket *secure.ClientTicket) (net.Conn, error) {
	if network == "tcp" {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil || ticket == nil {
			return nc, err
		}
		deadline, ok := ctx.Deadline()
		if !ok {
			deadline = time.Now().Add(handshakeTimeout)
		}
		sc, err := SecureTCP(nc, ticket, deadline)
		if err != nil {
			nc.Close()
			return nil, err
		}
		return sc, nil
	}
	c, err := kcpconn.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return c, nil
}
