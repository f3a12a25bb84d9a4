package server

import (
	"sync"

	"github.com/coveyhq/covey/session"
	"github.com/coveyhq/covey/wire"
)

// ExecRemote implements cluster.Executor: the owner's half of a command that node peer forwarded
// for one of its users (forwarded, on that node): it runs the same code
// as for a local client, with a member record that names peer, and hands
// the status and reply payload to reply. It runs on the mesh link's
// event loop and never blocks.
//
// A node speaks only for its own users: a command naming a member that
// another node holds is refused with StatusNotMember.
func (h *handler) ExecRemote(peer string, e *wire.Exec, reply func(status wire.Status, payload []byte)) {
	u := &session.User{ID: e.Caller.UID, SID: e.Caller.SID, Node: peer, Data: propMap(e.Caller.Data)}
	t := h.table
	if !t.IsLocal(e.SessionID) {
		// Never relayed to a third node: the sender's view of the owner is
		// wrong, and a single hop is the rule (PROTOCOL.md, Mesh).
		reply(wire.StatusSessionNotFound, nil)
		return
	}
	switch e.Op {
	case wire.OpDisconnect:
		reply(wire.StatusOf(t.RemoveRemoteMember(e.SessionID, u.ID, peer)), nil)
		return
	case wire.OpMemberMove:
		// Payload: a SessionRef, then the String name of the node the
		// member was connected to.
		if len(e.Payload) < 1 {
			reply(wire.StatusBadRequest, nil)
			return
		}
		_, n, err := wire.ConsumeString(e.Payload[1:])
		if err != nil {
			reply(wire.StatusBadRequest, nil)
			return
		}
		from, m, err := wire.ConsumeString(e.Payload[1+n:])
		if err != nil || 1+n+m != len(e.Payload) {
			reply(wire.StatusBadRequest, nil)
			return
		}
		reply(wire.StatusOf(t.MoveMember(e.SessionID, u.ID, from, u)), nil)
		return
	case wire.OpAppBroadcast:
		var m wire.AppBroadcast
		if m.Consume(e.Payload) != nil {
			reply(wire.StatusBadRequest, nil)
			return
		}
		reply(wire.StatusOf(t.Broadcast(bg, m.Type, e.SessionID, m.Ver, uint16(m.Cmd), m.Msg)), nil)
		return
	case wire.OpAppMessageTo:
		var m wire.AppMessageTo
		if m.Consume(e.Payload) != nil {
			reply(wire.StatusBadRequest, nil)
			return
		}
		reply(wire.StatusOf(t.MessageTo(bg, m.Type, e.SessionID, m.Sender, m.Recipients, m.Ver, uint16(m.Cmd), m.Msg)), nil)
		return
	case wire.OpAppKick:
		var m wire.KickRequest
		if m.Consume(e.Payload) != nil {
			reply(wire.StatusBadRequest, nil)
			return
		}
		if u.ID != "" {
			if s, ok := t.Session(e.SessionID); !ok || s.MemberNode(u.ID) != peer {
				reply(wire.StatusNotMember, nil)
				return
			}
		}
		reply(wire.StatusOf(t.Kick(bg, m.Type, e.SessionID, m.UserID)), nil)
		return
	case wire.OpAppDelete:
		reply(wire.StatusOf(t.Delete(bg, e.SessionID)), nil)
		return
	case wire.OpAppMemberData:
		var m wire.TypeRequest
		if m.Consume(e.Payload) != nil {
			reply(wire.StatusBadRequest, nil)
			return
		}
		if heldElsewhere(t, e.SessionID, u.ID, peer) {
			reply(wire.StatusNotMember, nil)
			return
		}
		rep, err := t.NodeMemberData(bg, m.Type, u)
		if err != nil {
			reply(wire.StatusOf(err), nil)
			return
		}
		reply(wire.StatusOK, rep.Append(nil))
		return
	case wire.OpJoinHeld, wire.OpAcceptHeld:
		var r wire.SessionRef
		if r.Consume(e.Payload) != nil {
			reply(wire.StatusBadRequest, nil)
			return
		}
		reply(wire.StatusOf(t.JoinCheck(bg, r.Type, r.SessionID, u, e.Op == wire.OpAcceptHeld)), nil)
		return
	}
	if !remoteOp(e.Op) {
		reply(wire.StatusUnknownCommand, nil)
		return
	}
	if heldElsewhere(t, e.SessionID, u.ID, peer) {
		reply(wire.StatusNotMember, nil)
		return
	}
	c := execConns.Get().(*conn)
	c.user, c.execReply = u, reply
	h.builtin(c, wire.Frame{Header: wire.Header{Cmd: e.Op, Seq: 1}, Payload: e.Payload})
	// builtin keeps nothing of c once it returns: a reply that comes later
	// (an invite to other nodes) holds reply, not c.
	*c = conn{scratch: c.scratch[:0]}
	if cap(c.scratch) > 64<<10 {
		c.scratch = nil
	}
	execConns.Put(c)
}

// ExecInline implements cluster.Executor: it runs a forwarded broadcast
// at once from the Exec as it arrived, and reports false for every other
// command, and for a broadcast whose session or member this node does not
// hold as the Exec says, which ExecRemote then runs and answers.
func (h *handler) ExecInline(peer string, e *wire.ExecView) (wire.Status, bool) {
	if e.Op != wire.CmdBroadcast {
		return 0, false
	}
	var r wire.BroadcastRequest
	if r.Consume(e.Payload) != nil {
		return 0, false
	}
	ran, err := h.table.BroadcastFromNode(r.Type, e.SessionID, e.UID, peer, r.Msg)
	return wire.StatusOf(err), ran
}

// execConns are the conns of forwarded commands, reused: one per Exec
// would be an allocation of a few hundred bytes per forwarded broadcast.
var execConns = sync.Pool{New: func() any { return new(conn) }}

// remoteOp reports whether another node may forward client command cmd:
// the commands that act on one session (forwarded).
func remoteOp(cmd wire.Cmd) bool {
	switch cmd {
	case wire.CmdGetSessionInfo, wire.CmdJoin, wire.CmdAcceptInvite, wire.CmdLeave:
		return true
	}
	return typedSessionCmd(cmd)
}

// heldElsewhere reports whether uid is a member of session id, owned
// here, connected to another node than peer: peer may not speak for it.
func heldElsewhere(t *session.Table, id, uid, peer string) bool {
	s, ok := t.Session(id)
	if !ok {
		return false
	}
	n := s.MemberNode(uid)
	return n != "" && n != peer
}
