package session

import (
	"context"
	"hash/maphash"
	"slices"

	"github.com/coveyhq/covey/wire"
)

// Remote is how a Table reaches the other nodes of a cluster. The cluster
// package implements it; a Table without one (the default) is a single
// node, and members with a Node are then never reached.
//
// A Table calls a Remote from any goroutine, often from a network event
// loop and sometimes under a session's delivery lock (PropertiesChanged
// pushes are delivered under it to keep them in write order): no method may
// block, call back into the table, or keep a slice it was given after
// returning. What cannot be sent (the node is unreachable) is dropped: the
// cluster's failure handling then removes that node's members (see
// [Table.NodeLost]).
type Remote interface {
	// Fanout hands frame (one or more encoded frames) to the users uids,
	// all connected to node, as one message: the member node delivers it
	// to each of them that is still connected there (DeliverLocal).
	Fanout(node, sessionID string, uids []string, frame []byte)
	// Removed tells node that its user uid is no longer a member of
	// session sessionID, of type typ, for reason,
	// so that it frees the user's session slot of that type. It is sent
	// after any push about the removal, on the same path.
	Removed(node, sessionID string, typ uint8, uid string, reason wire.RemovedReason)
	// Disconnected tells the node that owns session sessionID that uid,
	// connected here, disconnected: the owner removes it as on a local
	// disconnect.
	Disconnected(node, sessionID string, typ uint8, uid string)
	// Reconnected tells the node that owns session sessionID that uid,
	// connected here, signed in again here with SID sid (a second sign-in
	// replaced its connection): the owner updates its member record.
	Reconnected(node, sessionID string, typ uint8, uid, sid string)
	// DeliverToUser finds the node user uid is connected to and hands it
	// frame (an invite push) for that user (DeliverInvite there); done
	// gets nil, ErrUserNotFound (also when no answer came in time) or
	// ErrRateLimited, once, on any goroutine.
	DeliverToUser(uid string, frame []byte, done func(error))
	// Call runs e on node (the owner of e.SessionID) and waits for its
	// reply payload, bounded by ctx and the cluster's call timeout; the
	// error is the owner's status (ErrUnavailable if it cannot be
	// reached) or ctx's. Unlike the other methods, it blocks: the table
	// calls it only from the session API's callers, never from a push.
	Call(ctx context.Context, node string, e *wire.Exec) ([]byte, error)
}

// SetRemote connects the table to the other nodes of a cluster. Call it
// once, before the table is used.
func (t *Table) SetRemote(r Remote) { t.remote = r }

// IsLocal reports whether session ID id names this node: its commands run
// here. An ID naming another node is run by that node, the session's
// owner (sessions do not move between nodes yet, so the node in the ID is
// the owner). A malformed ID is local: this node answers it
// (ErrInvalidSessionID).
func (t *Table) IsLocal(id string) bool {
	_, remote := t.Owner(id)
	return !remote
}

// Owner returns the node that owns session id and true when it is
// another node than this one; ("", false) when this node answers for id
// (its own, or a malformed ID). This node's IDs are recognized without
// parsing them.
func (t *Table) Owner(id string) (node string, remote bool) {
	if idOwnedBy(id, t.cfg.Node) {
		return "", false
	}
	node, err := IDNode(id)
	if err != nil || node == t.cfg.Node {
		return "", false
	}
	return node, true
}

// UserSessionOwner returns the ID of u's session of type typ (ok false if
// u has none) and, when another node owns it, that node with remote true.
// It is SessionIDByUser and Owner in one, without Owner's parse: the user
// index holds only IDs that were valid when recorded (this node's, or ones
// Owner parsed before joining), so the owner is what follows the '@'.
func (t *Table) UserSessionOwner(typ uint8, u *User) (id, node string, remote, ok bool) {
	id, ok = t.users.sessionOf(u.ID, typ)
	if !ok || idOwnedBy(id, t.cfg.Node) || len(id) <= uuidLen+1 || id[uuidLen] != '@' {
		return id, "", false, ok
	}
	return id, id[uuidLen+1:], true, true
}

// DeliverLocal hands frame to each user of uids that is connected to this
// node, and reports how many it reached; the others are skipped (they
// disconnected or moved since the owner sent it). It is how a member node
// delivers a Fanout from a session's owner.
func (t *Table) DeliverLocal(uids [][]byte, frame []byte) int {
	n := 0
	for _, uid := range uids {
		if u, ok := t.users.onlineBytes(uid); ok && u.Conn != nil {
			u.Conn.Deliver(frame)
			n++
		}
	}
	t.deliveries.Add(uint64(n))
	return n
}

// BroadcastFromNode is BroadcastFrom for member uid of session id, owned
// here, connected to node: the owner's half of a broadcast that node
// forwarded, taking the session and user IDs as the Exec carries them,
// without copying them. It reports false, doing nothing, unless id is a
// session of type typ here with uid a member that node holds; the caller
// then runs the general path, which tells which error applies. Where it
// reports true it has done what BroadcastFrom does, with its error.
func (t *Table) BroadcastFromNode(typ uint8, id, uid []byte, node string, msg []byte) (ran bool, err error) {
	if node == "" {
		return false, nil
	}
	// maphash.Bytes(b) is maphash.String(string(b)): t.shard's shard.
	sh := &t.shards[maphash.Bytes(t.seed, id)%uint64(len(t.shards))]
	sh.mu.RLock()
	s := sh.sessions[string(id)]
	sh.mu.RUnlock()
	if s == nil || s.typ != typ {
		return false, nil
	}
	sn := s.snap.Load()
	var from *User
	for _, m := range sn.members {
		if m.ID == string(uid) {
			from = m
			break
		}
	}
	if from == nil || from.Node != node {
		return false, nil
	}
	if err := t.pushMessage(sn.members, wire.CmdBroadcastReceived, s, from.ID, msg, func(m *User) bool { return m != from }); err != nil {
		return true, opErr(OpSend, s.id, err)
	}
	t.propagated(0, uint16(wire.CmdBroadcast), msg, sn.sids)
	return true, nil
}

// HoldSlot records, on this node (the user's), that local user uid is
// joining session id of type typ owned by another node, so that the user
// joins at most one session per type however many commands race: it fails
// with ErrAlreadyInSession if uid is in a session of that type, or joining
// one. Release it with ReleaseSlot if the owner refuses the join.
func (t *Table) HoldSlot(uid string, typ uint8, id string) error {
	return t.users.reserve(uid, typ, id)
}

// ReleaseSlot forgets that local user uid is in session id of type typ (a
// remote session it left, was refused or removed from). It does nothing
// if the user's slot of that type names another session.
func (t *Table) ReleaseSlot(uid string, typ uint8, id string) {
	t.users.release(uid, typ, id)
}

// RemoveRemoteMember removes member uid, connected to node, from session
// id owned here, as on a disconnect: the owner's half of a remote user's
// disconnect (Remote.Disconnected). It refuses (ErrNotMember) a member
// that node does not hold, so that a node can only remove its own users.
// node, which asked, gets no Removed for it.
func (t *Table) RemoveRemoteMember(id, uid, node string) error {
	s, err := t.route(context.Background(), id)
	if err != nil {
		return err
	}
	if s.MemberNode(uid) != node {
		return ErrNotMember
	}
	return t.remove(s, uid, removeAsked)
}

// NodeLost cleans up after node left the cluster or could not be reached
// for too long. Each session owned here loses its members connected to
// node, as on their disconnect (MemberLeft, OwnerChanged, OnLeft, empty
// TTL); each local user in a session owned by node loses that membership
// and gets a SessionDeleted push: the session lived in node's memory. It
// walks every session and every user: a node loss is rare.
func (t *Table) NodeLost(node string) {
	if node == t.cfg.Node || node == "" {
		return
	}
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		var hit []*Session
		for _, s := range sh.sessions {
			for _, m := range s.snap.Load().members {
				if m.Conn == nil && m.Node == node {
					hit = append(hit, s)
					break
				}
			}
		}
		sh.mu.RUnlock()
		for _, s := range hit {
			for _, m := range s.snap.Load().members {
				if m.Conn == nil && m.Node == node {
					_ = t.remove(s, m.ID, removeLost)
				}
			}
		}
	}
	for _, lost := range t.users.dropSessionsOf(node) {
		if lost.conn == nil {
			continue
		}
		fb := t.sessionDeletedFrame(lost.typ, lost.id)
		lost.conn.Deliver(*fb)
		t.deliveries.Add(1)
		t.putBuf(fb)
	}
}

// MoveAway hands user uid over to another node, where it just signed in:
// the user is no longer connected here (its old connection, returned,
// is for the caller to close: it no longer counts as the user's) and
// this node forgets its memberships of sessions owned elsewhere. Sessions
// owned here keep it as a member, still reached through the old
// connection until the new node's MoveMember. It returns every
// membership, for the new node to take over; ok is false if uid was not
// connected here.
func (t *Table) MoveAway(uid string) (old *User, memberships []UserSession, ok bool) {
	prev, all := t.users.moveAway(uid, t.cfg.Node)
	return prev, all, prev != nil
}

// MoveMember points member uid of session id, owned here, at its new
// connection to: a local User (Node "") with its Conn, or a record of a
// user connected to another node. from is the node the member record
// must name (this node's name for a local member): a move from anywhere
// else is refused with ErrNotMember, so that a node can only take over
// a member from the node that had it.
func (t *Table) MoveMember(id, uid, from string, to *User) error {
	s, err := t.route(context.Background(), id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sn := s.snap.Load()
	i := sn.indexOf(uid)
	if i < 0 || s.deleted || t.nodeOf(sn.members[i]) != from {
		return ErrNotMember
	}
	m := to.clone()
	m.ID = uid
	m.Data = sn.members[i].Data // the data it joined with
	members := slices.Clone(sn.members)
	members[i] = m
	s.snap.Store(newSnapshot(members))
	return nil
}

// OnlineUsers calls fn with each user connected to this node (for the
// cluster's presence, which re-asserts them when the directory moves).
// fn runs under a user shard lock: it must not call the table.
func (t *Table) OnlineUsers(fn func(u *User)) {
	for i := range t.users.shards {
		sh := &t.users.shards[i]
		sh.mu.Lock()
		for _, e := range sh.users {
			if e.online != nil {
				fn(e.online)
			}
		}
		sh.mu.Unlock()
	}
}

// DeliverInvite hands an invite push to user uid, connected here, within
// the user's budget of invites received (Config.InviteReceiveRate): the
// member node's half of an invite from another node. Errors:
// ErrUserNotFound, ErrRateLimited.
func (t *Table) DeliverInvite(uid string, frame []byte) error {
	u, ok := t.users.online(uid)
	if !ok || u.Conn == nil {
		return ErrUserNotFound
	}
	if !t.users.admitInvite(uid, t.sched.now(), &t.cfg) {
		return ErrRateLimited
	}
	u.Conn.Deliver(frame)
	t.deliveries.Add(1)
	return nil
}
