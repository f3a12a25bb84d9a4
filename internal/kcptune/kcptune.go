// Package kcptune holds the KCP settings Covey uses for games on both ends
// of a connection, so that the server, the client SDK, the load test
// driver and the tests cannot drift apart. The measured reasons are in
// shared/reference/libraries.md: nodelay with fast resend and no
// congestion window, ACKs without delay, a 1200-byte MTU, no FEC, stream
// mode because frames are length-prefixed as on TCP.
package kcptune

import (
	"time"

	ikcp "github.com/coveyhq/covey/internal/kcp"
)

// Settings, as on the server and in PROTOCOL.md.
const (
	DefaultInterval = 10 * time.Millisecond // KCP update interval
	Resend          = 2                     // fast retransmit after 2 skipped ACKs
	Window          = 128                   // send and receive window, in segments
	MTU             = 1200                  // fits any path without fragmentation
)

// TuneCore applies the settings to a bare KCP state machine (the server's
// engine and kcpconn; package kcptest applies them to kcp-go for the
// tests): stream mode, nodelay with Resend and no congestion window,
// Window, MTU. Both flush after every send and every
// batch of input themselves, which is kcp-go's SetWriteDelay(false) and
// SetACKNoDelay(true).
func TuneCore(k *ikcp.KCP, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	k.SetStreamMode(true)
	k.NoDelay(1, int(interval/time.Millisecond), Resend, 1)
	k.WndSize(Window, Window)
	k.SetMtu(MTU)
}
