// Package kcptune holds the KCP settings Covey uses for games on both ends
// of a connection, so that the server, the client SDK, the load test
// driver and the tests cannot drift apart. The measured reasons are in
// shared/reference/libraries.md: nodelay with fast resend and no
// congestion window, ACKs without delay, a 1200-byte MTU, no FEC, stream
// mode because frames are length-prefixed as on TCP.
package kcptune

import (
	"time"

	"github.com/xtaci/kcp-go/v5"

	ikcp "github.com/coveyhq/covey/internal/kcp"
)

// Settings, as on the server and in PROTOCOL.md.
const (
	DefaultInterval = 10 * time.Millisecond // KCP update interval
	Resend          = 2                     // fast retransmit after 2 skipped ACKs
	Window          = 128                   // send and receive window, in segments
	MTU             = 1200                  // fits any path without fragmentation
)

// Tune applies the game settings to a kcp-go session s (the tests use
// kcp-go as an independent client and server to check compatibility) with the given update interval
// (DefaultInterval if zero). Call it before the session carries data.
func Tune(s *kcp.UDPSession, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	s.SetStreamMode(true)
	s.SetWriteDelay(false)
	s.SetNoDelay(1, int(interval/time.Millisecond), Resend, 1)
	s.SetWindowSize(Window, Window)
	s.SetMtu(MTU)
	s.SetACKNoDelay(true)
}

// Dial opens a kcp-go session to addr (no FEC, no block crypt) tuned with
// DefaultInterval. Covey's own clients use package kcpconn instead.
func Dial(addr string) (*kcp.UDPSession, error) {
	s, err := kcp.DialWithOptions(addr, nil, 0, 0)
	if err != nil {
		return nil, err
	}
	Tune(s, DefaultInterval)
	return s, nil
}

// TuneCore applies the same settings to a bare KCP state machine (the
// server's engine and kcpconn): stream mode, nodelay with Resend and no
// congestion window, Window, MTU. Both flush after every send and every
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
