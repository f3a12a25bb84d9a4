package kcpconn

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/coveyhq/covey/secure"
)

// The handshake's timing (PROTOCOL.md, UDP packets).
const (
	// ResendInterval is how often the client repeats a ConnectRequest or
	// ChallengeResponse that has no answer yet.
	ResendInterval = 250 * time.Millisecond
	// HandshakeTimeout bounds the whole handshake.
	HandshakeTimeout = 5 * time.Second
)

// ErrHandshakeTimeout is DialTicket's error when the server answered
// neither the ConnectRequests nor the ChallengeResponses within
// HandshakeTimeout.
var ErrHandshakeTimeout = errors.New("kcpconn: no answer to the handshake")

// RejectError is DialTicket's error when the server refused the
// connection with a Reject: Status is a wire.Status (NotEncrypted for a
// plaintext request to a server that requires encryption, AuthFailed for
// a ticket that has expired or a server without encryption,
// ServerOffline for a full server), Reason the server's words.
type RejectError struct {
	Status uint16
	Reason string
}

func (e *RejectError) Error() string {
	return "kcpconn: the server rejected the connection: status " + strconv.Itoa(int(e.Status)) + ": " + e.Reason
}

// rejectGrace is how long the handshake waits on after a Reject for an
// answer that would proceed (a Challenge, or an Accept) before it returns
// the Reject: Rejects are not authenticated, and a sender that forges the
// server's address and guesses the client's port could otherwise end any
// dial with one. A genuine Reject costs its client this much more.
const rejectGrace = 300 * time.Millisecond

// handshake runs the packet layer's handshake on c's socket: a
// ConnectRequest every ResendInterval until a Challenge, then a
// ChallengeResponse every ResendInterval until an Accept for its cookie
// (or a Data packet that opens, if the Accept was lost). Neither a
// Challenge nor a Reject is authenticated: a later Challenge replaces the
// cookie of an earlier one (a forged one came first), and a Reject ends
// the handshake only if nothing better comes within rejectGrace. It sets
// up c's packet mode; c is not yet shared.
func (c *Conn) handshake(ctx context.Context, ticket *secure.ClientTicket) error {
	deadline := time.Now().Add(HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	defer c.uc.SetReadDeadline(time.Time{})
	var t []byte
	if ticket != nil {
		t = ticket.Ticket
	}
	c.obuf = make([]byte, 0, packetMax)
	c.ibuf = make([]byte, 0, packetMax)
	pkt := secure.AppendConnectRequest(make([]byte, 0, secure.ConnectRequestSize), t)
	var cookie []byte
	var rejected error     // the first Reject, returned at rejectBy if nothing better came
	var rejectBy time.Time // zero until a Reject came
	var sent time.Time
	for {
		until := deadline
		if rejected != nil {
			until = minTime(until, rejectBy)
		}
		p, err := c.exchange(ctx, pkt, &sent, until)
		switch {
		case errors.Is(err, ErrHandshakeTimeout) && rejected != nil:
			return rejected
		case err != nil:
			return err
		}
		switch p[0] {
		case secure.PacketChallenge:
			ck, err := secure.ConsumeChallenge(p)
			if err != nil || bytes.Equal(ck, cookie) {
				continue
			}
			cookie = bytes.Clone(ck)
			if ticket != nil {
				keys := secure.DeriveKeys(&ticket.Key, secure.CookieNonce(cookie))
				c.seal = secure.NewSealer(&keys.ClientToServer)
				c.open = secure.NewOpener(&keys.ServerToClient)
				keys = secure.Keys{}
			}
			pkt = secure.AppendChallengeResponse(nil, c.kcp.Conv(), cookie)
			sent = time.Time{} // answer it at once
		case secure.PacketAccept:
			if n, err := secure.ConsumeAccept(p); err == nil && cookie != nil && bytes.Equal(n, secure.CookieNonce(cookie)) {
				c.packets = true
				return nil
			}
		case secure.PacketReject:
			if err := rejectError(p); err != nil && rejected == nil {
				rejected, rejectBy = err, time.Now().Add(rejectGrace)
			}
		case secure.PacketData, secure.PacketPlainData:
			// The server accepted and already sent data (the Accept was
			// lost): the datagram is the connection's first.
			if cookie == nil {
				continue
			}
			if seg := c.unwrap(p); seg != nil {
				c.packets = true
				c.input(seg)
				return nil
			}
		}
	}
}

// exchange returns the next datagram that comes (at least 1 byte, in
// c.pkt), sending pkt whenever ResendInterval has passed since it last
// did (*sent; at once if zero), or the error that ends the handshake:
// ErrHandshakeTimeout at deadline, ctx's error once it is done, or the
// socket's (ECONNREFUSED: no server at the address).
func (c *Conn) exchange(ctx context.Context, pkt []byte, sent *time.Time, deadline time.Time) ([]byte, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		now := time.Now()
		if !now.Before(deadline) {
			return nil, ErrHandshakeTimeout
		}
		if now.Sub(*sent) >= ResendInterval {
			if _, err := c.uc.Write(pkt); err != nil {
				return nil, err
			}
			*sent = now
		}
		_ = c.uc.SetReadDeadline(minTime(sent.Add(ResendInterval), deadline))
		n, err := c.uc.Read(c.pkt)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return nil, err
		}
		if n > 0 {
			return c.pkt[:n], nil
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// rejectError returns the RejectError of a Reject, or nil for a
// malformed one.
func rejectError(p []byte) error {
	status, reason, err := secure.ConsumeReject(p)
	if err != nil {
		return nil
	}
	return &RejectError{Status: status, Reason: string(reason)}
}

// unwrap returns the KCP datagram of a Data packet that opens (a
// sub-slice of c.ibuf) or of a PlainData packet, whichever the
// connection uses, and nil for anything else: a forgery, a replay, a
// repeated Accept or a stray handshake packet. Reader only.
func (c *Conn) unwrap(p []byte) []byte {
	switch {
	case len(p) == 0:
	case c.open != nil && p[0] == secure.PacketData:
		seg, err := c.open.OpenPacket(c.ibuf[:0], p)
		if err != nil {
			return nil
		}
		return seg
	case c.open == nil && p[0] == secure.PacketPlainData:
		return p[1:]
	}
	return nil
}

// wrap returns a KCP datagram's packet, in c.obuf: a Data packet sealed
// with the client-to-server key, or a PlainData packet. It fails only
// when the sealer is exhausted. c.mu must be held.
func (c *Conn) wrap(seg []byte) ([]byte, error) {
	if c.seal != nil {
		return c.seal.AppendPacket(c.obuf[:0], secure.PacketData, seg)
	}
	return append(append(c.obuf[:0], secure.PacketPlainData), seg...), nil
}
