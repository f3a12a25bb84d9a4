package clientconn

import (
	"context"
	"net"

	"github.com/coveyhq/covey/internal/kcpconn"
)

// Dial opens a transport connection to addr within ctx: network "tcp", or
// anything else for KCP (package kcpconn, with the settings PROTOCOL.md
// recommends; a KCP dial sends nothing, so ctx bounds only the address
// resolution). It is safe for concurrent use.
func Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if network == "tcp" {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	c, err := kcpconn.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return c, nil
}
