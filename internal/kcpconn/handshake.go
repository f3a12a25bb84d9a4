package kcpconn

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"slices"
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

// maxCookies is how many Challenges' cookies the handshake answers at
// once: the server may answer two ConnectRequests (the first answer was
// slow), and a Challenge may be forged.
const maxCookies = 4

// candidate is one Challenge's cookie with the keys it gives.
type candidate struct {
	cookie     []byte
	seal       *secure.Sealer // nil for plaintext
	open       *secure.Opener
	resp       []byte // its ChallengeResponse
	acceptable bool   // a ChallengeResponse for it was sent
}

// handshake runs the packet layer's handshake on c's socket: a
// ConnectRequest every ResendInterval until a Challenge, then a
// ChallengeResponse for each cookie received (up to maxCookies, the
// latest) every ResendInterval until an Accept for one of them (or a
// Data packet that opens under one's keys, if the Accept was lost).
// Neither a Challenge nor a Reject is authenticated: a cookie that is
// not the server's gets no Accept and changes nothing, and a Reject ends
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
	// Version 2 with a ticket: a nonce of the client's own goes into the
	// keys, so that a Challenge recorded on the path and replayed here
	// gives keys of a connection that never was.
	var clientNonce [secure.ClientNonceSize]byte
	req := secure.AppendConnectRequest(make([]byte, 0, secure.ConnectRequestSize), t)
	if ticket != nil {
		_, _ = rand.Read(clientNonce[:]) // crypto/rand.Read never fails
		req = secure.AppendConnectRequest2(req[:0], t, &clientNonce)
	}
	var cands []*candidate
	var rejected error     // the first Reject, returned at rejectBy if nothing better came
	var rejectBy time.Time // zero until a Reject came
	var sent time.Time
	choose := func(k *candidate) { c.seal, c.open, c.packets = k.seal, k.open, true }
	// send sends what is due: the ConnectRequest until a Challenge came,
	// then a ChallengeResponse for each cookie.
	send := func() error {
		if len(cands) == 0 {
			_, err := c.uc.Write(req)
			return err
		}
		for _, k := range cands {
			if _, err := c.uc.Write(k.resp); err != nil {
				return err
			}
			k.acceptable = true
		}
		return nil
	}
	for {
		until := deadline
		if rejected != nil {
			until = minTime(until, rejectBy)
		}
		p, err := c.exchange(ctx, send, &sent, until)
		switch {
		case errors.Is(err, ErrHandshakeTimeout) && rejected != nil:
			return rejected
		case err != nil:
			return err
		}
		switch p[0] {
		case secure.PacketChallenge:
			ck, err := secure.ConsumeChallenge(p)
			if err != nil || slices.ContainsFunc(cands, func(k *candidate) bool { return bytes.Equal(k.cookie, ck) }) {
				continue
			}
			k := &candidate{cookie: bytes.Clone(ck)}
			if ticket != nil {
				keys := secure.DeriveKeys2(&ticket.Key, secure.CookieNonce(k.cookie), clientNonce[:])
				k.seal, k.open = secure.NewSealer(&keys.ClientToServer), secure.NewOpener(&keys.ServerToClient)
				keys = secure.Keys{}
			}
			k.resp = secure.AppendChallengeResponse(nil, c.kcp.Conv(), k.cookie)
			if len(cands) == maxCookies {
				cands = cands[1:]
			}
			cands = append(cands, k)
			sent = time.Time{} // answer it at once
		case secure.PacketAccept:
			n, err := secure.ConsumeAccept(p)
			if err != nil {
				continue
			}
			for _, k := range cands {
				if k.acceptable && bytes.Equal(n, secure.CookieNonce(k.cookie)) {
					choose(k)
					return nil
				}
			}
		case secure.PacketReject:
			if err := rejectError(p); err != nil && rejected == nil {
				rejected, rejectBy = err, time.Now().Add(rejectGrace)
			}
		case secure.PacketData, secure.PacketPlainData:
			// The server accepted and already sent data (the Accept was
			// lost): the datagram is the connection's first, under the
			// keys of the cookie it opens with.
			for _, k := range cands {
				if !k.acceptable {
					continue
				}
				c.open = k.open
				if seg := c.unwrap(p); seg != nil {
					choose(k)
					c.input(seg)
					return nil
				}
			}
			c.open = nil
		}
	}
}

// exchange returns the next datagram that comes (at least 1 byte, in
// c.pkt), calling send whenever ResendInterval has passed since it last
// did (*sent; at once if zero), or the error that ends the handshake:
// ErrHandshakeTimeout at deadline, ctx's error once it is done, or the
// socket's (ECONNREFUSED: no server at the address).
func (c *Conn) exchange(ctx context.Context, send func() error, sent *time.Time, deadline time.Time) ([]byte, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		now := time.Now()
		if !now.Before(deadline) {
			return nil, ErrHandshakeTimeout
		}
		if now.Sub(*sent) >= ResendInterval {
			if err := send(); err != nil {
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
