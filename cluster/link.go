package cluster

import (
	"crypto/hmac"
	"crypto/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coveyhq/covey/netio"
	"github.com/coveyhq/covey/wire"
)

// handshakeTimeout bounds a link's handshake.
const handshakeTimeout = 2 * time.Second

// linkState is where a link is in its life (see PROTOCOL.md, Mesh).
type linkState uint8

const (
	linkHello  linkState = iota // dialer: PeerHello sent; acceptor: waiting for it
	linkAuth                    // dialer: PeerAuth sent; acceptor: waiting for it
	linkUp                      // authenticated: any mesh frame
	linkClosed                  // closed, or replaced by a newer link to the same peer
)

// link is one mesh connection to another node: the state of a peer
// netio.Conn. Its handshake fields are used on the connection's own
// callbacks only; calls and state are guarded by mu, as completions and
// sends come from any goroutine.
type link struct {
	n      *Node
	nc     *netio.Conn
	dialed bool
	want   string // dialed: the node expected at the other end
	opened time.Time

	// Handshake, on the connection's callbacks only.
	dialerHello, acceptorHello []byte // the handshake transcript
	targets                    [][]byte

	stats *linkStats // the peer's, set when the link comes up

	// isUpNow mirrors state == linkUp for isUp, read per frame without mu.
	isUpNow atomic.Bool

	mu    sync.Mutex
	state linkState
	peer  string // the other node's name, known once its hello arrived
	boot  uint64
	// peerMax is the largest payload the other node accepts (its
	// PeerHello.MaxPayload); nothing larger is sent to it. Set with peer,
	// before the link is up; read without mu after.
	peerMax uint32
	seq     uint32
	calls   callQueue
	up      chan struct{} // closed when the link is up or closed (dialer waits)
	done    chan struct{} // closed when the link is closed
}

// closed returns a channel closed once the link is.
func (l *link) closed() <-chan struct{} { return l.done }

func newLink(n *Node, dialed bool) *link {
	return &link{n: n, dialed: dialed, opened: time.Now(), up: make(chan struct{}), done: make(chan struct{})}
}

// hello is this node's PeerHello with a fresh nonce.
func (n *Node) hello() wire.PeerHello {
	nonce := make([]byte, wire.MeshNonceLen)
	_, _ = rand.Read(nonce)
	return wire.PeerHello{Proto: wire.MeshProtocolVersion, Cluster: n.cfg.Cluster, Node: n.cfg.Name, Boot: n.boot, MaxPayload: n.maxPayload, Nonce: nonce}
}

// open starts a dialed link's handshake: it sends PeerHello (seq 1).
func (l *link) open() {
	h := l.n.hello()
	l.dialerHello = h.Append(nil)
	l.nc.Send(wire.Header{Cmd: wire.CmdPeerHello, Seq: 1}, l.dialerHello)
}

// handshake handles a frame of a link that is not up yet. Anything but
// the next handshake step closes it.
func (l *link) handshake(f wire.Frame) {
	n := l.n
	l.mu.Lock()
	st := l.state
	l.mu.Unlock()
	switch {
	case !l.dialed && st == linkHello && f.Cmd == wire.CmdPeerHello && f.Flags == 0:
		var ph wire.PeerHello
		if err := ph.Consume(f.Payload); err != nil {
			l.refuse(f, wire.StatusBadRequest, "malformed hello")
			return
		}
		if st, why := n.checkHello(&ph); why != "" {
			l.refuse(f, st, why)
			return
		}
		mine := n.hello()
		l.dialerHello, l.acceptorHello = append([]byte(nil), f.Payload...), mine.Append(nil)
		rep := wire.PeerHelloReply{Hello: mine, Proof: wire.MeshAcceptorProof(n.meshKey, l.dialerHello, l.acceptorHello)}
		l.setPeer(ph.Node, ph.Boot, ph.MaxPayload, linkAuth)
		l.nc.Send(wire.Header{Cmd: wire.CmdPeerHello, Flags: wire.FlagReply, Seq: f.Seq}, rep.Append(nil))

	case !l.dialed && st == linkAuth && f.Cmd == wire.CmdPeerAuth && f.Flags == 0:
		var pa wire.PeerAuth
		if err := pa.Consume(f.Payload); err != nil || !hmac.Equal(pa.Proof, wire.MeshDialerProof(n.meshKey, l.dialerHello, l.acceptorHello)) {
			l.refuse(f, wire.StatusAuthFailed, "bad proof")
			return
		}
		l.nc.Send(wire.Header{Cmd: wire.CmdPeerAuth, Flags: wire.FlagReply, Seq: f.Seq}, nil)
		n.linkUp(l)

	case l.dialed && st == linkHello && f.Cmd == wire.CmdPeerHello && f.Flags == wire.FlagReply:
		var rep wire.PeerHelloReply
		if err := rep.Consume(f.Payload); err != nil || f.Status != wire.StatusOK {
			l.fail(wire.StatusAuthFailed, "refused or malformed hello reply")
			return
		}
		if st, why := n.checkHello(&rep.Hello); why != "" {
			l.fail(st, why)
			return
		}
		if rep.Hello.Node != l.want {
			l.fail(wire.StatusAuthFailed, "not the node dialed")
			return
		}
		l.acceptorHello = rep.Hello.Append(nil)
		if !hmac.Equal(rep.Proof, wire.MeshAcceptorProof(n.meshKey, l.dialerHello, l.acceptorHello)) {
			l.fail(wire.StatusAuthFailed, "bad proof")
			return
		}
		l.setPeer(rep.Hello.Node, rep.Hello.Boot, rep.Hello.MaxPayload, linkAuth)
		pa := wire.PeerAuth{Proof: wire.MeshDialerProof(n.meshKey, l.dialerHello, l.acceptorHello)}
		l.nc.Send(wire.Header{Cmd: wire.CmdPeerAuth, Seq: 2}, pa.Append(nil))

	case l.dialed && st == linkAuth && f.Cmd == wire.CmdPeerAuth && f.Flags == wire.FlagReply:
		if f.Status != wire.StatusOK {
			l.fail(wire.StatusAuthFailed, "proof refused")
			return
		}
		n.linkUp(l)

	case f.Ver == 0 && f.Cmd == wire.CmdBye:
		l.nc.Close(wire.StatusOK, "peer said goodbye")
	default:
		l.fail(wire.StatusUnauthenticated, "unexpected frame during the handshake")
	}
}

// checkHello returns the status and reason a peer's hello is refused
// with, or "".
func (n *Node) checkHello(h *wire.PeerHello) (wire.Status, string) {
	switch {
	case h.Proto != wire.MeshProtocolVersion:
		return wire.StatusBadVersion, "mesh protocol version differs"
	case h.Cluster != n.cfg.Cluster:
		return wire.StatusAuthFailed, "another cluster"
	case h.Node == n.cfg.Name || !validNodeName(h.Node):
		return wire.StatusAuthFailed, "bad node name"
	case n.cfg.Faults != nil && n.cfg.Faults.Blocked(n.cfg.Name, h.Node):
		return wire.StatusAuthFailed, "blocked (fault injection)"
	}
	return 0, ""
}

func (l *link) setPeer(name string, boot uint64, maxPayload uint32, st linkState) {
	l.mu.Lock()
	l.peer, l.boot, l.peerMax = name, boot, maxPayload
	l.setStateLocked(st)
	l.mu.Unlock()
}

// fail closes a link whose handshake went wrong, with a Bye of status.
func (l *link) fail(status wire.Status, why string) {
	l.n.log.Warn("mesh link refused", "peer", l.nc.RemoteAddr().String(), "reason", why)
	l.nc.Close(status, why)
}

// refuse answers handshake request f with status, then fails the link.
func (l *link) refuse(f wire.Frame, status wire.Status, why string) {
	l.nc.Send(wire.Header{Cmd: f.Cmd, Flags: wire.FlagReply, Seq: f.Seq, Status: status}, nil)
	l.fail(status, why)
}

// isUp reports whether the link is up.
func (l *link) isUp() bool { return l.isUpNow.Load() }

// setStateLocked sets the link's state. l.mu must be held.
func (l *link) setStateLocked(st linkState) {
	l.state = st
	l.isUpNow.Store(st == linkUp)
}

// fits reports whether a payload of n bytes is within what the other node
// accepts: a larger frame would make it close the link.
func (l *link) fits(n int) bool { return uint64(n) <= uint64(l.peerMax) }

// request sends a request frame and arranges for done to get its reply
// (or StatusUnavailable when the link closes or the call expires;
// StatusTooLarge, unsent, when the payload is over what the other node
// accepts). A nil done sends the request with seq 0: no reply.
func (l *link) request(cmd wire.Cmd, payload []byte, done func(wire.Status, []byte)) {
	if !l.fits(len(payload)) {
		l.n.log.Warn("mesh request over the peer's frame limit, not sent", "peer", l.peer, "cmd", cmd, "bytes", len(payload), "max", l.peerMax)
		if done != nil {
			done(wire.StatusTooLarge, nil)
		}
		return
	}
	l.mu.Lock()
	if l.state != linkUp {
		l.mu.Unlock()
		if done != nil {
			done(wire.StatusUnavailable, nil)
		}
		return
	}
	var seq uint32
	if done != nil {
		l.seq++
		if l.seq == 0 {
			l.seq = 1
		}
		seq = l.seq
		l.calls.push(call{seq: seq, done: done, sent: time.Now()})
	}
	// Sent under mu, so that the frame is queued before a close can fail
	// the call (netio's Conn lock is a leaf).
	l.nc.Send(wire.Header{Cmd: cmd, Seq: seq}, payload)
	l.mu.Unlock()
	l.stats.framesOut.Add(1)
}

// replied completes the call a reply frame answers.
func (l *link) replied(f wire.Frame) {
	l.mu.Lock()
	c, ok := l.calls.take(f.Seq)
	l.mu.Unlock()
	if ok {
		l.stats.calls.Add(1)
		l.stats.callNanos.Add(uint64(time.Since(c.sent)))
		c.done(f.Status, f.Payload)
	}
}

// expire fails the calls sent more than timeout before now.
func (l *link) expire(now time.Time, timeout time.Duration) {
	l.mu.Lock()
	late := l.calls.expire(now.Add(-timeout), nil)
	l.mu.Unlock()
	for _, c := range late {
		c.done(wire.StatusUnavailable, nil)
	}
}

// close marks the link closed and fails its calls. It reports whether the
// link was up.
func (l *link) close() (wasUp bool) {
	l.mu.Lock()
	wasUp = l.state == linkUp
	if l.state == linkClosed {
		l.mu.Unlock()
		return false
	}
	l.setStateLocked(linkClosed)
	close(l.done)
	calls := l.calls.drain(nil)
	select {
	case <-l.up:
	default:
		close(l.up)
	}
	l.mu.Unlock()
	for _, c := range calls {
		c.done(wire.StatusUnavailable, nil)
	}
	return wasUp
}
