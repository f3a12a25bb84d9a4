package clientconn

import (
	"context"
	"net"

	"github.com/coveyhq/covey/internal/kcptune"
)

// Dial opens a transport connection to addr: network "tcp", within ctx,
// or anything else for KCP, with the settings PROTOCOL.md recommends
// (kcptune; a KCP dial does not wait, so ctx is not consulted). It is safe
// for concurrent use.
func Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if network == "tcp" {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	s, err := kcptune.Dial(addr)
	if err != nil {
		return nil, err
	}
	return s, nil
}
