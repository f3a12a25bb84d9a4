package server

import (
	"github.com/coveyhq/covey/wire"
)

// mesh is what the server needs of the cluster to run commands for
// sessions that other nodes own (cluster.Node implements it).
type mesh interface {
	// Exec sends e to node and calls done once with the owner's status
	// and reply payload, or with wire.StatusUnavailable when node cannot
	// be reached (at once, or when the link is lost or the call times
	// out). e is encoded before Exec returns: its slices may point into a
	// read buffer. done runs on any goroutine, must not block, and must
	// not keep reply after returning.
	Exec(node string, e *wire.Exec, done func(status wire.Status, reply []byte))
	// Disconnected tells node that local user uid is no longer in its
	// session sessionID (an Exec of OpDisconnect, no reply), behind what
	// was sent to node before on the same link.
	Disconnected(node, sessionID string, typ uint8, uid string)
}

// forwarded runs the first half of a command for a session that another
// node owns: it sends the command to the owner, whose reply will answer
// the client in its turn (replyOrder), and reports true. It reports false
// for every command that runs here: the session is local, the command
// addresses no session, or its payload is too broken to say which (the
// local path then answers it as a single node would).
//
// The session is found as on a single node: from the user's own session
// of the request's type (this node's user index is the authority for its
// users), or from the session ID in the request.
func (h *handler) forwarded(c *conn, f wire.Frame) bool {
	if h.mesh == nil {
		return false
	}
	t, u := h.table, c.user
	switch {
	case typedSessionCmd(f.Cmd):
		// Every one of these payloads starts with the session type.
		if len(f.Payload) == 0 {
			return false
		}
		id, node, remote, _ := t.UserSessionOwner(f.Payload[0], u)
		if !remote {
			return false
		}
		h.forward(c, f, node, id, f.Cmd, nil)
		return true

	case f.Cmd == wire.CmdGetSessionInfo:
		var r wire.SessionInfoRequest
		if r.Consume(f.Payload) != nil {
			return false
		}
		node, remote := t.Owner(r.SessionID)
		if !remote {
			return false
		}
		h.forward(c, f, node, r.SessionID, f.Cmd, nil)
		return true

	case f.Cmd == wire.CmdJoin || f.Cmd == wire.CmdAcceptInvite:
		var r wire.SessionRef
		if r.Consume(f.Payload) != nil {
			return false
		}
		node, remote := t.Owner(r.SessionID)
		if !remote {
			return false
		}
		// The user's type slot is taken here, before the owner is asked,
		// so that racing joins of one user cannot both succeed. If it is
		// taken already, the owner still answers what a single node
		// would (the session may not exist, or refuse the user for
		// another reason first), without joining.
		if t.HoldSlot(u.ID, r.Type, r.SessionID) != nil {
			op := wire.OpJoinHeld
			if f.Cmd == wire.CmdAcceptInvite {
				op = wire.OpAcceptHeld
			}
			h.forward(c, f, node, r.SessionID, op, nil)
			return true
		}
		h.forward(c, f, node, r.SessionID, f.Cmd, func(st wire.Status) {
			switch st {
			case wire.StatusOK:
				if id, ok := t.SessionIDByUser(r.Type, u); ok && id == r.SessionID {
					return
				}
				// The slot is gone: the user signed in on another node while
				// the join was out, and the move of its memberships may have
				// reached the owner before the join (they travel on other
				// links). Undo the member that points here.
			case wire.StatusUnavailable:
				// The call gave up (a timeout with the link up, or the link
				// lost), but the owner may still run, or have run, the join:
				// undo it there, behind the join on the same link, so that
				// the join failed, as the client is told. The owner frees
				// nothing here in answer (a Disconnected gets no Removed), so
				// a retry's slot is safe.
				t.ReleaseSlot(u.ID, r.Type, r.SessionID)
			default:
				t.ReleaseSlot(u.ID, r.Type, r.SessionID)
				return
			}
			h.mesh.Disconnected(node, r.SessionID, r.Type, u.ID)
		})
		return true

	case f.Cmd == wire.CmdLeave:
		var r wire.SessionRef
		if r.Consume(f.Payload) != nil {
			return false
		}
		node, remote := t.Owner(r.SessionID)
		if !remote {
			return false
		}
		h.forward(c, f, node, r.SessionID, f.Cmd, func(st wire.Status) {
			if st == wire.StatusOK || st == wire.StatusNotMember {
				t.ReleaseSlot(u.ID, r.Type, r.SessionID)
			}
		})
		return true
	}
	return false
}

// typedSessionCmd reports whether cmd acts on the caller's session of the
// type its payload starts with.
func typedSessionCmd(cmd wire.Cmd) bool {
	switch cmd {
	case wire.CmdBroadcast, wire.CmdMessageTo, wire.CmdKick, wire.CmdInvite,
		wire.CmdGetProperty, wire.CmdGetProperties, wire.CmdGetAllProperties,
		wire.CmdSetProperty, wire.CmdSetProperties, wire.CmdSetPropertyIfNotExists,
		wire.CmdIncrProperty, wire.CmdCompareAndSetProperty, wire.CmdDeleteProperty,
		wire.CmdGetMemberIDs, wire.CmdGetMemberSIDs, wire.CmdGetMemberData, wire.CmdIsOwner:
		return true
	}
	return false
}

// forward sends f's command, as op, to node, the owner of session id,
// and answers f with the owner's status and reply payload in f's turn.
// after, if set, sees the status first (on the goroutine the reply
// arrives on): it brings what this node keeps of the user's sessions (the
// type slots) in line with the outcome. Until it has, the connection is
// held (netio.Conn.Hold): the client's next request, a Create or a Join
// behind a Leave say, runs only then, and finds the slots as a single
// node would have left them.
//
// It is conn.later and the call in one closure, the only allocation of a
// forwarded command: the Exec is encoded before mesh.Exec returns, so it
// lives in the conn.
func (h *handler) forward(c *conn, f wire.Frame, node, id string, op wire.Cmd, after func(wire.Status)) {
	ticket, ok := c.order.take()
	if !ok {
		c.reply(f, wire.StatusUnavailable, nil)
		if after != nil {
			after(wire.StatusUnavailable)
		}
		return
	}
	nc, hdr := c.nc, wire.Header{Ver: f.Ver, Cmd: f.Cmd, Flags: wire.FlagReply, Seq: f.Seq}
	if after != nil {
		nc.Hold() // before Exec: done may run at once, on any goroutine
	}
	c.exec = wire.Exec{SessionID: id, Epoch: 1, Caller: wire.Member{UID: c.user.ID, SID: c.user.SID}, Op: op, Payload: f.Payload}
	h.metrics.forwarded.Add(1)
	h.mesh.Exec(node, &c.exec, func(st wire.Status, reply []byte) {
		if after != nil {
			after(st)
		}
		h := hdr
		h.Status = st
		c.order.fill(nc, ticket, h.Seq != 0 || st != wire.StatusOK, h, reply)
		if after != nil {
			nc.Release()
		}
	})
	c.exec = wire.Exec{} // it points into the read buffer
}
