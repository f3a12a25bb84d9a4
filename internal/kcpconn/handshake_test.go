package kcpconn

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/coveyhq/covey/secure"
)

// fakeHandshakeServer answers each ConnectRequest with what answer
// returns (datagrams, in order; genuine makes a Challenge with a fresh
// cookie of its jar), and a ChallengeResponse with a genuine cookie with
// an Accept, for the first such cookie only (as a server with a live
// session drops the others); it runs until the test ends.
func fakeHandshakeServer(t *testing.T, answer func(genuine func() []byte) [][]byte) string {
	t.Helper()
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uc.Close() })
	jar := secure.NewCookieJar(0)
	go func() {
		var accepted []byte // the cookie of the session
		buf := make([]byte, 2048)
		for {
			n, from, err := uc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			p := buf[:n]
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			switch p[0] {
			case secure.PacketConnectRequest:
				genuine := func() []byte {
					return secure.AppendChallenge(nil, jar.AppendCookie(nil, from, &secure.CookieData{}, time.Now()))
				}
				for _, d := range answer(genuine) {
					uc.WriteToUDPAddrPort(d, from)
				}
			case secure.PacketChallengeResponse:
				_, cookie, err := secure.ConsumeChallengeResponse(p)
				if err != nil {
					continue
				}
				if _, err := jar.OpenCookie(cookie, from, time.Now()); err == nil {
					if accepted == nil {
						accepted = bytes.Clone(cookie)
					}
					if bytes.Equal(cookie, accepted) {
						uc.WriteToUDPAddrPort(secure.AppendAccept(nil, secure.CookieNonce(cookie)), from)
					}
				}
			}
		}
	}()
	return uc.LocalAddr().String()
}

// TestHandshakeOutlivesForgedAnswers: a Reject and a Challenge with a
// junk cookie, forged from the server's address ahead of its genuine
// Challenge, do not end or derail the handshake: the later genuine
// Challenge replaces the junk cookie, and the Reject is moot once the
// handshake proceeds.
func TestHandshakeOutlivesForgedAnswers(t *testing.T) {
	junk := make([]byte, secure.MinCookieSize+30)
	rand.Read(junk)
	addr := fakeHandshakeServer(t, func(genuine func() []byte) [][]byte {
		return [][]byte{secure.AppendReject(nil, 4, "forged"), secure.AppendChallenge(nil, junk), genuine()}
	})
	c, err := Dial(context.Background(), addr)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	c.Close()
}

// TestHandshakeReject: a Reject with nothing better behind it ends the
// dial with its status and reason, rejectGrace after it came.
func TestHandshakeReject(t *testing.T) {
	addr := fakeHandshakeServer(t, func(func() []byte) [][]byte {
		return [][]byte{secure.AppendReject(nil, 4, "ticket expired")}
	})
	start := time.Now()
	_, err := Dial(context.Background(), addr)
	var rej *RejectError
	if !errors.As(err, &rej) || rej.Status != 4 || rej.Reason != "ticket expired" {
		t.Fatalf("Dial: %v, want the Reject", err)
	}
	if took := time.Since(start); took < rejectGrace || took > HandshakeTimeout {
		t.Fatalf("the Reject ended the dial after %v, want rejectGrace (%v) or a little more", took, rejectGrace)
	}
}

// TestHandshakeTwoChallenges: a server that answered two ConnectRequests
// (the first answer was slow) sends two Challenges with different
// cookies and opens the session of the first ChallengeResponse it gets;
// the client answers both and takes the Accept of either.
func TestHandshakeTwoChallenges(t *testing.T) {
	addr := fakeHandshakeServer(t, func(genuine func() []byte) [][]byte {
		return [][]byte{genuine(), genuine()}
	})
	c, err := Dial(context.Background(), addr)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	c.Close()
}

// TestHandshakeReplayedChallenge: a man in the middle answers every
// ConnectRequest made with one ticket with the Challenge of the first
// (recorded) and every ChallengeResponse with its Accept, as a replay of
// that connection would. With the client's nonce in the keys (version 2),
// the second connection's Data packets do not open under the first's
// keys, so nothing is sealed twice under one key and counter. Found by a
// review: without the client's nonce both connections had the same keys.
func TestHandshakeReplayedChallenge(t *testing.T) {
	ct := secure.ClientTicket{Ticket: make([]byte, secure.MinTicketSize)}
	rand.Read(ct.Key[:])
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uc.Close() })
	jar := secure.NewCookieJar(0)
	type seen struct {
		keys secure.Keys // the keys the client derives for this connection
		data []byte      // its first Data packet
	}
	sessions := make(chan seen, 4)
	go func() {
		var cookie []byte // the recorded cookie
		var keys secure.Keys
		waiting := false
		buf := make([]byte, 2048)
		for {
			n, from, err := uc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			p := buf[:n]
			switch p[0] {
			case secure.PacketConnectRequest:
				v, tk, err := secure.ConsumeConnectRequest(p)
				if err != nil || len(tk) == 0 {
					continue
				}
				if cookie == nil {
					cookie = jar.AppendCookie(nil, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), &secure.CookieData{}, time.Now())
				}
				if v == secure.PacketVersion2 {
					keys = secure.DeriveKeys2(&ct.Key, secure.CookieNonce(cookie), secure.ConnectRequestNonce(p, tk))
				} else {
					keys = secure.DeriveKeys(&ct.Key, secure.CookieNonce(cookie))
				}
				waiting = true
				uc.WriteToUDPAddrPort(secure.AppendChallenge(nil, cookie), from)
			case secure.PacketChallengeResponse:
				uc.WriteToUDPAddrPort(secure.AppendAccept(nil, secure.CookieNonce(cookie)), from)
			case secure.PacketData:
				if waiting {
					waiting = false
					sessions <- seen{keys, bytes.Clone(p)}
				}
			}
		}
	}()
	session := func() seen {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := DialTicket(ctx, uc.LocalAddr().String(), &ct)
		if err != nil {
			t.Fatalf("DialTicket: %v", err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-sessions:
			return s
		case <-ctx.Done():
			t.Fatal("no Data packet from the client")
			return seen{}
		}
	}
	first, second := session(), session()
	if _, err := secure.NewOpener(&second.keys.ClientToServer).OpenPacket(nil, second.data); err != nil {
		t.Fatalf("the second connection's packet does not open under its own keys: %v", err)
	}
	if _, err := secure.NewOpener(&first.keys.ClientToServer).OpenPacket(nil, second.data); err == nil {
		t.Fatal("the replayed connection's packet opens under the recorded connection's keys: the same key and counters twice")
	}
}
