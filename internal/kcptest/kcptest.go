// Package kcptest holds what Covey's tests need around KCP: kcp-go, tuned
// with Covey's settings, as an independent client and server that proves
// the segments on the wire are compatible, a UDP relay that loses chosen
// datagrams, and a reader of KCP segment headers.
//
// Only tests import it: kcp-go starts goroutines of its own (its timer
// scheduler) as soon as it is linked into a program, which Covey's server
// and clients must not carry.
package kcptest

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtaci/kcp-go/v5"

	"github.com/coveyhq/covey/internal/kcptune"
)

// Tune applies Covey's KCP settings (package kcptune) to a kcp-go
// session, with the given update interval (kcptune.DefaultInterval if
// zero). Call it before the session carries data.
func Tune(s *kcp.UDPSession, interval time.Duration) {
	if interval <= 0 {
		interval = kcptune.DefaultInterval
	}
	s.SetStreamMode(true)
	s.SetWriteDelay(false)
	s.SetNoDelay(1, int(interval/time.Millisecond), kcptune.Resend, 1)
	s.SetWindowSize(kcptune.Window, kcptune.Window)
	s.SetMtu(kcptune.MTU)
	s.SetACKNoDelay(true)
}

// Dial opens a kcp-go session to addr (no FEC, no block crypt), tuned.
func Dial(addr string) (*kcp.UDPSession, error) {
	s, err := kcp.DialWithOptions(addr, nil, 0, 0)
	if err != nil {
		return nil, err
	}
	Tune(s, 0)
	return s, nil
}

// Segment commands, as on the wire.
const (
	CmdPush = 81 // data
	CmdAck  = 82
	CmdWask = 83 // window probe: tell me your window
	CmdWins = 84 // window update
)

// Overhead is the size of a KCP segment header.
const Overhead = 24

// Segment is the header of one KCP segment, as Segments reads it.
type Segment struct {
	Conv uint32
	Cmd  byte
	Wnd  uint16 // the sender's receive window
	Sn   uint32
}

// Segments calls f with the header of each KCP segment in datagram p,
// stopping at the first header that does not fit.
func Segments(p []byte, f func(Segment)) {
	for len(p) >= Overhead {
		f(Segment{
			Conv: binary.LittleEndian.Uint32(p),
			Cmd:  p[4],
			Wnd:  binary.LittleEndian.Uint16(p[6:]),
			Sn:   binary.LittleEndian.Uint32(p[12:]),
		})
		n := Overhead + int(binary.LittleEndian.Uint32(p[20:]))
		p = p[min(n, len(p)):]
	}
}

// Relay forwards datagrams between one client and target on 127.0.0.1
// until the test ends, and returns the address clients dial. drop sees
// every datagram (toServer gives its direction) and loses it by returning
// true; it runs on the relay's goroutines.
func Relay(t testing.TB, target string, drop func(toServer bool, p []byte) bool) string {
	t.Helper()
	front, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp", nil, ta)
	if err != nil {
		t.Fatal(err)
	}
	var client atomic.Pointer[net.Addr]
	var wg sync.WaitGroup
	t.Cleanup(func() {
		front.Close()
		back.Close()
		wg.Wait()
	})
	wg.Add(2)
	go func() { // client -> server
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			client.Store(&from)
			if !drop(true, buf[:n]) {
				back.Write(buf[:n])
			}
		}
	}()
	go func() { // server -> client
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, err := back.Read(buf)
			if err != nil {
				return
			}
			if to := client.Load(); to != nil && !drop(false, buf[:n]) {
				front.WriteTo(buf[:n], *to)
			}
		}
	}()
	return front.LocalAddr().String()
}
