// Package kcptest holds what Covey's tests need around KCP: kcp-go, tuned
// with Covey's settings, as an independent client and server that proves
// the segments on the wire are compatible, a UDP relay that loses chosen
// datagrams, a reader of KCP segment headers, and the plaintext server
// side of the UDP packet layer for a kcp-go server.
//
// Only tests import it: kcp-go starts goroutines of its own (its timer
// scheduler) as soon as it is linked into a program, which Covey's server
// and clients must not carry.
package kcptest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtaci/kcp-go/v5"

	"github.com/coveyhq/covey/internal/kcptune"
	"github.com/coveyhq/covey/secure"
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
	Una  uint32 // the sender's next expected sn: everything before it was received
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
			Una:  binary.LittleEndian.Uint32(p[16:]),
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

// PlainPackets wraps a server's UDP socket in the plaintext side of
// Covey's UDP packet layer (PROTOCOL.md, UDP packets), for a kcp-go
// listener (kcp.ServeConn) that stands for a Covey server: ReadFrom
// answers every ConnectRequest with a Challenge and every
// ChallengeResponse with an Accept (it validates nothing: tests only),
// drops other handshake packets and returns the KCP datagram of each
// PlainData packet; WriteTo sends each datagram as a PlainData packet.
func PlainPackets(pc net.PacketConn) net.PacketConn {
	return &plainPackets{PacketConn: pc, server: true}
}

// DialPlain opens a kcp-go session to a Covey server's KCP port through
// the plaintext UDP packet layer, tuned: it runs the handshake (a
// ConnectRequest, then a ChallengeResponse, each repeated every 250 ms
// until answered, within 5 s), then carries the session's datagrams in
// PlainData packets. A Reject is an error.
func DialPlain(addr string) (*kcp.UDPSession, error) {
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	uc, err := net.ListenUDP("udp", nil)
	if err != nil {
		return nil, err
	}
	conv := rand.Uint32()
	deadline := time.Now().Add(5 * time.Second)
	ask := func(pkt []byte, want byte) ([]byte, error) {
		buf := make([]byte, 1500)
		for time.Now().Before(deadline) {
			if _, err := uc.WriteTo(pkt, ra); err != nil {
				return nil, err
			}
			uc.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
			for {
				n, _, err := uc.ReadFrom(buf)
				if err != nil {
					break // timeout: send again
				}
				switch {
				case n > 0 && buf[0] == want:
					return buf[:n], nil
				case n > 0 && buf[0] == secure.PacketReject:
					st, reason, _ := secure.ConsumeReject(buf[:n])
					return nil, fmt.Errorf("kcptest: rejected: status %d: %s", st, reason)
				}
			}
		}
		return nil, errors.New("kcptest: no answer to the handshake")
	}
	p, err := ask(secure.AppendConnectRequest(nil, nil), secure.PacketChallenge)
	if err == nil {
		var cookie []byte
		if cookie, err = secure.ConsumeChallenge(p); err == nil {
			_, err = ask(secure.AppendChallengeResponse(nil, conv, cookie), secure.PacketAccept)
		}
	}
	if err != nil {
		uc.Close()
		return nil, err
	}
	uc.SetReadDeadline(time.Time{})
	s, err := kcp.NewConn4(conv, ra, nil, 0, 0, true, &plainPackets{PacketConn: uc})
	if err != nil {
		uc.Close()
		return nil, err
	}
	Tune(s, 0)
	return s, nil
}

// plainPackets carries a kcp-go socket's datagrams in PlainData packets;
// a server's also answers the handshake (see PlainPackets).
type plainPackets struct {
	net.PacketConn
	server bool
	wmu    sync.Mutex
	wbuf   []byte
}

func (p *plainPackets) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := p.PacketConn.ReadFrom(b)
		if err != nil || n == 0 {
			return n, addr, err
		}
		switch {
		case b[0] == secure.PacketPlainData:
			return copy(b, b[1:n]), addr, nil
		case !p.server:
		case b[0] == secure.PacketConnectRequest:
			// A cookie of the smallest size (its nonce: bytes 8-19).
			cookie := make([]byte, secure.MinCookieSize)
			for i := range cookie {
				cookie[i] = byte(i)
			}
			p.PacketConn.WriteTo(secure.AppendChallenge(nil, cookie), addr)
		case b[0] == secure.PacketChallengeResponse:
			if _, cookie, err := secure.ConsumeChallengeResponse(b[:n]); err == nil {
				p.PacketConn.WriteTo(secure.AppendAccept(nil, secure.CookieNonce(cookie)), addr)
			}
		}
	}
}

func (p *plainPackets) WriteTo(b []byte, addr net.Addr) (int, error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.wbuf = append(append(p.wbuf[:0], secure.PacketPlainData), b...)
	if _, err := p.PacketConn.WriteTo(p.wbuf, addr); err != nil {
		return 0, err
	}
	return len(b), nil
}
