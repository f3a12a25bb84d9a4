package cluster

import (
	"context"
	"time"

	"github.com/coveyhq/covey/netio"
	"github.com/coveyhq/covey/wire"
)

// OnOpen takes a new peer connection: a dialed one carries its link as
// state already and starts the handshake; an accepted one gets a link
// that waits for the dialer's hello.
func (n *Node) OnOpen(nc *netio.Conn) {
	l, _ := nc.State().(*link)
	if l == nil {
		l = newLink(n, false)
		nc.SetState(l)
	}
	l.nc = nc
	l.opened = time.Now()
	n.mu.Lock()
	n.handshaking[l] = struct{}{}
	n.mu.Unlock()
	if l.dialed {
		l.open()
	}
}

// OnClose cleans up after a peer connection: if it was the link to its
// peer, the peer is lost (Table.NodeLost), and calls in flight on it fail
// with StatusUnavailable.
func (n *Node) OnClose(nc *netio.Conn, err error) {
	l, _ := nc.State().(*link)
	if l == nil {
		return
	}
	l.mu.Lock()
	name := l.peer
	l.mu.Unlock()
	n.mu.Lock()
	delete(n.handshaking, l)
	n.mu.Unlock()
	wasUp := l.close()
	if !wasUp || name == "" {
		return
	}
	n.mu.Lock()
	p := n.peers[name]
	n.mu.Unlock()
	if p != nil {
		why := "link closed"
		if err != nil {
			why = err.Error()
		}
		n.lose(p, l, 0, why)
	}
}

// OnFrame handles one frame from a peer connection, on its event loop.
func (n *Node) OnFrame(nc *netio.Conn, f wire.Frame) {
	l, _ := nc.State().(*link)
	if l == nil {
		return
	}
	if !l.isUp() {
		l.handshake(f)
		return
	}
	l.stats.framesIn.Add(1)
	if f.Ver == 0 && f.Cmd == wire.CmdBye {
		nc.Close(wire.StatusOK, "peer said goodbye")
		return
	}
	if f.Ver != 0 || !f.Cmd.IsMesh() {
		if f.Flags&(wire.FlagReply|wire.FlagPush) == 0 {
			l.reply(f, wire.StatusUnknownCommand, nil)
		}
		nc.Close(wire.StatusUnknownCommand, "not a mesh command")
		return
	}
	if f.Flags&wire.FlagReply != 0 {
		l.replied(f)
		return
	}
	switch f.Cmd {
	case wire.CmdFanout:
		v, err := wire.ConsumeFanout(f.Payload)
		if err != nil {
			nc.Close(wire.StatusBadRequest, "malformed Fanout")
			return
		}
		l.targets = l.targets[:0]
		for uid, ok := v.Targets.Next(); ok; uid, ok = v.Targets.Next() {
			l.targets = append(l.targets, uid)
		}
		n.table.DeliverLocal(l.targets, v.Frame)
		clear(l.targets)

	case wire.CmdRemoved:
		var r wire.Removed
		if err := r.Consume(f.Payload); err != nil {
			nc.Close(wire.StatusBadRequest, "malformed Removed")
			return
		}
		n.table.ReleaseSlot(r.UID, r.Type, r.SessionID)

	case wire.CmdExec:
		if v, ok := wire.ConsumeExecView(f.Payload); ok {
			if st, ran := n.exec.ExecInline(l.peer, &v); ran {
				l.reply(f, st, nil)
				return
			}
		}
		var e wire.Exec
		if err := e.Consume(f.Payload); err != nil {
			l.reply(f, wire.StatusBadRequest, nil)
			return
		}
		seq := f.Seq
		n.exec.ExecRemote(l.peer, &e, func(st wire.Status, payload []byte) {
			if seq != 0 {
				l.sendReply(wire.CmdExec, seq, st, payload)
			}
		})

	case wire.CmdDeliverToUser:
		var d wire.DeliverToUser
		if err := d.Consume(f.Payload); err != nil {
			l.reply(f, wire.StatusBadRequest, nil)
			return
		}
		l.reply(f, wire.StatusOf(n.table.DeliverInvite(d.UID, d.Frame)), nil)

	case wire.CmdPresenceClaim, wire.CmdPresenceAssert, wire.CmdPresenceRelease, wire.CmdPresenceLookup, wire.CmdUserTakeover:
		n.onPresence(l, f)

	case wire.CmdPeerPing:
		l.reply(f, wire.StatusOK, nil)

	default:
		l.reply(f, wire.StatusUnknownCommand, nil)
	}
}

// softPending is the backlog of a link past which new client requests
// for that peer are answered StatusUnavailable at once instead of
// queued behind it (fan-out from owners still queues, up to netio's
// PeerMaxOutbound, past which the link is closed and the peer lost).
const softPending = 8 << 20

// epoch is the epoch of every session in this version: sessions do not
// move between nodes yet, so none is fenced.
const epoch = 1

// reply answers request f on the link (nothing for seq 0).
func (l *link) reply(f wire.Frame, st wire.Status, payload []byte) {
	if f.Seq != 0 {
		l.sendReply(f.Cmd, f.Seq, st, payload)
	}
}

// sendReply sends the reply to request seq of cmd; one over what the
// other node accepts goes as StatusTooLarge, with no payload.
func (l *link) sendReply(cmd wire.Cmd, seq uint32, st wire.Status, payload []byte) {
	if !l.fits(len(payload)) {
		l.n.log.Warn("mesh reply over the peer's frame limit: answered TooLarge", "peer", l.peer, "cmd", cmd, "bytes", len(payload), "max", l.peerMax)
		st, payload = wire.StatusTooLarge, nil
	}
	l.nc.Send(wire.Header{Cmd: cmd, Flags: wire.FlagReply, Seq: seq, Status: st}, payload)
	l.stats.framesOut.Add(1)
}

// Fanout implements session.Remote: one Fanout frame to node, encoded
// into a pooled buffer and copied into the link's outbound queue. A
// Fanout over what node accepts is split by targets (a session with many
// members there); a client frame too large for node even alone is not
// sent, and logged: node's limit is below this node's client limit.
func (n *Node) Fanout(node, sessionID string, uids []string, frame []byte) {
	l := n.upLink(node)
	if l == nil {
		return // node lost or not yet linked: its clean-up handles the members
	}
	for len(uids) > 0 {
		k := fanoutFit(sessionID, uids, frame, l.peerMax)
		if k == 0 {
			n.log.Warn("fan-out frame over the peer's frame limit, not sent", "peer", node, "session", sessionID, "bytes", len(frame), "max", l.peerMax)
			return
		}
		n.fanout(l, sessionID, uids[:k], frame)
		uids = uids[k:]
	}
}

// fanoutFit returns how many of uids, from the first, fit in one Fanout
// of at most limit bytes of payload: all of them, as a rule.
func fanoutFit(sessionID string, uids []string, frame []byte, limit uint32) int {
	if uint64(wire.FanoutSize(sessionID, uids, frame)) <= uint64(limit) {
		return len(uids)
	}
	// Halve until it fits: the first frame's size decides, and a split is
	// rare (tens of thousands of bytes of user IDs on one node).
	k := len(uids) / 2
	for k > 0 && uint64(wire.FanoutSize(sessionID, uids[:k], frame)) > uint64(limit) {
		k /= 2
	}
	return k
}

// fanout sends one Fanout frame on l.
func (n *Node) fanout(l *link, sessionID string, uids []string, frame []byte) {
	b := n.bufs.Get().(*[]byte)
	*b = wire.AppendFanoutFrame((*b)[:0], sessionID, epoch, uids, frame)
	l.nc.Deliver(*b)
	l.stats.framesOut.Add(1)
	n.putBuf(b)
}

// Removed implements session.Remote.
func (n *Node) Removed(node, sessionID string, typ uint8, uid string, reason wire.RemovedReason) {
	l := n.upLink(node)
	if l == nil {
		return
	}
	b := n.bufs.Get().(*[]byte)
	r := wire.Removed{SessionID: sessionID, Type: typ, UID: uid, Reason: reason}
	*b = r.Append((*b)[:0])
	l.nc.Send(wire.Header{Cmd: wire.CmdRemoved, Flags: wire.FlagPush}, *b)
	l.stats.framesOut.Add(1)
	n.putBuf(b)
}

// Disconnected implements session.Remote: an Exec of OpDisconnect with
// no reply.
func (n *Node) Disconnected(node, sessionID string, typ uint8, uid string) {
	l := n.upLink(node)
	if l == nil {
		return
	}
	ref := wire.SessionRef{Type: typ, SessionID: sessionID}
	e := wire.Exec{SessionID: sessionID, Epoch: epoch, Caller: wire.Member{UID: uid}, Op: wire.OpDisconnect, Payload: ref.Append(nil)}
	n.send(l, wire.CmdExec, &e, nil)
}

// Reconnected implements session.Remote: an Exec of OpMemberMove, from
// this node to itself, with no reply.
func (n *Node) Reconnected(node, sessionID string, typ uint8, uid, sid string) {
	l := n.upLink(node)
	if l == nil {
		return
	}
	e := memberMove(wire.SessionRef{Type: typ, SessionID: sessionID}, uid, sid, n.cfg.Name)
	n.send(l, wire.CmdExec, &e, nil)
}

// memberMove is the Exec of OpMemberMove telling the owner of ref that
// member uid, connected to from until now, is connected to the sender
// with connection sid.
func memberMove(ref wire.SessionRef, uid, sid, from string) wire.Exec {
	return wire.Exec{SessionID: ref.SessionID, Epoch: epoch, Caller: wire.Member{UID: uid, SID: sid}, Op: wire.OpMemberMove,
		Payload: wire.AppendString(ref.Append(nil), from)}
}

// Exec sends a command to the node owning its session (the server's
// forwarding path); done gets the owner's status and reply payload, or
// StatusUnavailable when that node is alive but cannot be reached now,
// or StatusSessionNotFound when no such node is alive.
func (n *Node) Exec(node string, e *wire.Exec, done func(wire.Status, []byte)) {
	l := n.upLink(node)
	switch {
	case l == nil && !n.alive(node):
		// No such node, or a lost one: its sessions are gone (a lost
		// node's state died with it), as on a single node.
		done(wire.StatusSessionNotFound, nil)
		return
	case l == nil || l.nc.Pending() > softPending:
		done(wire.StatusUnavailable, nil) // alive, but not linked now: retry
		return
	}
	n.send(l, wire.CmdExec, e, done)
}

// send encodes m and sends it as a request on l.
func (n *Node) send(l *link, cmd wire.Cmd, m interface{ Append([]byte) []byte }, done func(wire.Status, []byte)) {
	b := n.bufs.Get().(*[]byte)
	*b = m.Append((*b)[:0])
	l.request(cmd, *b, done)
	n.putBuf(b)
}

func (n *Node) putBuf(b *[]byte) {
	if cap(*b) <= 64<<10 {
		n.bufs.Put(b)
	}
}

// Call implements session.Remote: Exec, waiting for the reply.
func (n *Node) Call(ctx context.Context, node string, e *wire.Exec) ([]byte, error) {
	type result struct {
		st      wire.Status
		payload []byte
	}
	ch := make(chan result, 1)
	n.Exec(node, e, func(st wire.Status, payload []byte) {
		ch <- result{st, append([]byte(nil), payload...)}
	})
	select {
	case r := <-ch:
		if r.st != wire.StatusOK {
			return nil, r.st
		}
		return r.payload, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
