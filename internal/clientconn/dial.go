package clientconn

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/coveyhq/covey/internal/kcpconn"
	"github.com/coveyhq/covey/secure"
	"github.com/coveyhq/covey/wire"
)

// handshakeTimeout bounds an encrypted TCP handshake when the context of
// Dial has no deadline.
const handshakeTimeout = 5 * time.Second

// Dial opens a transport connection to addr within ctx: network "tcp", or
// anything else for KCP (package kcpconn, with the settings PROTOCOL.md
// recommends). With a ticket (a parsed connect token) the connection is
// encrypted (PROTOCOL.md, Transport security); without one it is
// plaintext. The handshake runs within ctx's deadline (5 s if it has
// none): on TCP [SecureTCP]'s hello, only with a ticket; on KCP always,
// the UDP packet layer's ConnectRequest and Challenge. A server that
// refuses the handshake gives a [*ByeError] with its status and reason
// (on KCP from its Reject). It is safe for concurrent use.
func Dial(ctx context.Context, network, addr string, ticket *secure.ClientTicket) (net.Conn, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, handshakeTimeout)
		defer cancel()
	}
	if network == "tcp" {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil || ticket == nil {
			return nc, err
		}
		deadline, _ := ctx.Deadline()
		sc, err := SecureTCP(nc, ticket, deadline)
		if err != nil {
			nc.Close()
			return nil, err
		}
		return sc, nil
	}
	c, err := kcpconn.DialTicket(ctx, addr, ticket)
	var rej *kcpconn.RejectError
	if errors.As(err, &rej) {
		return nil, &ByeError{Status: wire.Status(rej.Status), Reason: rej.Reason}
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}
