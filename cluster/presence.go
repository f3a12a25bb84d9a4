package cluster

import (
	"hash/fnv"
	"sync"

	"github.com/coveyhq/covey/netio"
	"github.com/coveyhq/covey/session"
	"github.com/coveyhq/covey/wire"
)

// The presence directory says which node each signed-in user is
// connected to. It is soft state, sharded over the nodes: the record of
// user uid lives on dir(uid), a rendezvous hash of uid over the nodes
// alive, and the node that holds the connection is the truth: it claims
// the user at sign-in, releases it at disconnect, and claims it again
// when the directory moves (a node joined or was lost). A user signing in
// on a second node takes over from the first (Bye Replaced there, the
// memberships move). See PROTOCOL.md, Mesh, and the package doc for what
// it does not promise during a partition.

// presence is this node's shard of the directory and the generations of
// its own users' claims.
type presence struct {
	mu   sync.Mutex
	recs map[string]presenceRec // uid -> record; this node is dir(uid)
	gens map[string]uint64      // uid -> gen of the claim of a user connected here
}

type presenceRec struct {
	node, sid string
	gen       uint64
}

// dirOf returns the node holding uid's presence record: the highest
// hash of (uid, node) over this node and the alive nodes that have a
// link up.
func (n *Node) dirOf(uid string) string {
	return dirAmong(uid, n.cfg.Name, n.directoryPeers())
}

// directoryPeers returns the other nodes that may be directories: alive,
// with a link up.
func (n *Node) directoryPeers() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var names []string
	for name, p := range n.peers {
		if p.alive && p.link != nil {
			names = append(names, name)
		}
	}
	return names
}

// dirAmong is dirOf over self and peers.
func dirAmong(uid, self string, peers []string) string {
	best, bestH := self, rendezvous(uid, self)
	for _, name := range peers {
		if h := rendezvous(uid, name); h > bestH || (h == bestH && name > best) {
			best, bestH = name, h
		}
	}
	return best
}

// dropForeignRecords forgets the records of users whose directory is now
// another node: their nodes claim them there again (reassert), and a
// record left here would be stale when the directory comes back, naming a
// node the user has left (it would refuse a new claim, and close the
// user's only connection with Bye Replaced) and never released, since
// releases go to the directory of the moment.
func (n *Node) dropForeignRecords() {
	peers := n.directoryPeers()
	n.pres.mu.Lock()
	defer n.pres.mu.Unlock()
	for uid := range n.pres.recs {
		if dirAmong(uid, n.cfg.Name, peers) != n.cfg.Name {
			delete(n.pres.recs, uid)
		}
	}
}

// DirectoryRecords returns how many users this node holds presence
// records for, as their directory.
func (n *Node) DirectoryRecords() int {
	n.pres.mu.Lock()
	defer n.pres.mu.Unlock()
	return len(n.pres.recs)
}

func rendezvous(uid, node string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(uid))
	h.Write([]byte{0})
	h.Write([]byte(node))
	return h.Sum64()
}

// claim records that uid signed in on node from with sid, here as its
// directory, and returns the record it replaces.
func (n *Node) claim(from, uid, sid string) wire.PresenceClaimReply {
	n.pres.mu.Lock()
	defer n.pres.mu.Unlock()
	prev := n.pres.recs[uid]
	gen := prev.gen + 1
	n.pres.recs[uid] = presenceRec{node: from, sid: sid, gen: gen}
	return wire.PresenceClaimReply{Gen: gen, PrevNode: prev.node, PrevSID: prev.sid, PrevGen: prev.gen}
}

// assert is claim for a user node from already had (re-asserted after
// the set of nodes changed): it is refused, keeping the record, when the
// record names another node that is up - the user signed in on both sides
// of a partition, and the asserting node must close its connection.
func (n *Node) assert(from, uid, sid string) (wire.PresenceClaimReply, bool) {
	n.pres.mu.Lock()
	prev := n.pres.recs[uid]
	n.pres.mu.Unlock()
	if prev.node != "" && prev.node != from && (prev.node == n.cfg.Name || n.upLink(prev.node) != nil) {
		return wire.PresenceClaimReply{}, false
	}
	return n.claim(from, uid, sid), true
}

// release forgets uid's record if it is still the claim of generation
// gen by node from.
func (n *Node) release(from, uid string, gen uint64) {
	n.pres.mu.Lock()
	defer n.pres.mu.Unlock()
	if r, ok := n.pres.recs[uid]; ok && r.node == from && r.gen == gen {
		delete(n.pres.recs, uid)
	}
}

// lookup returns uid's record in this node's shard.
func (n *Node) lookup(uid string) (presenceRec, bool) {
	n.pres.mu.Lock()
	defer n.pres.mu.Unlock()
	r, ok := n.pres.recs[uid]
	return r, ok && r.node != ""
}

// dropRecordsOf forgets the records of users connected to a lost node.
func (n *Node) dropRecordsOf(node string) {
	n.pres.mu.Lock()
	defer n.pres.mu.Unlock()
	for uid, r := range n.pres.recs {
		if r.node == node {
			delete(n.pres.recs, uid)
		}
	}
}

// SignIn claims user u, just signed in here, in the presence directory.
// If the user was connected to another node, that node closes its
// connection (Bye Replaced) and hands over its memberships, which then
// point here (OpMemberMove to each owner). done runs once, when that is
// settled or could not be (a node unreachable: the user is admitted
// anyway, and the directory converges when the nodes meet again); the
// server sends the sign-in reply then.
func (n *Node) SignIn(u *session.User, done func()) {
	uid, sid := u.ID, u.SID
	after := func(rep wire.PresenceClaimReply) {
		if !n.table.Online(uid) {
			// The connection closed while the claim was out: its
			// SignOut found no generation to release, so release now.
			n.releaseAt(uid, rep.Gen)
			done()
			return
		}
		n.pres.mu.Lock()
		n.pres.gens[uid] = rep.Gen
		n.pres.mu.Unlock()
		if rep.PrevNode == "" || rep.PrevNode == n.cfg.Name {
			done()
			return
		}
		n.takeOver(u, rep, done)
	}
	dir := n.dirOf(uid)
	if dir == n.cfg.Name {
		after(n.claim(n.cfg.Name, uid, sid))
		return
	}
	l := n.upLink(dir)
	if l == nil {
		done()
		return
	}
	m := wire.PresenceClaim{UID: uid, SID: sid}
	n.send(l, wire.CmdPresenceClaim, &m, func(st wire.Status, payload []byte) {
		var rep wire.PresenceClaimReply
		if st != wire.StatusOK || rep.Consume(payload) != nil {
			done()
			return
		}
		after(rep)
	})
}

// takeOver asks the node that had user u before to let it go, and moves
// the user's memberships here.
func (n *Node) takeOver(u *session.User, rep wire.PresenceClaimReply, done func()) {
	prev := rep.PrevNode
	l := n.upLink(prev)
	if l == nil {
		done()
		return
	}
	m := wire.UserTakeover{UID: u.ID, Gen: rep.Gen, NewSID: u.SID}
	n.send(l, wire.CmdUserTakeover, &m, func(st wire.Status, payload []byte) {
		var tr wire.UserTakeoverReply
		if st == wire.StatusOK && tr.Consume(payload) == nil {
			// The user may have left this node while the takeover was out
			// (signed in on a third node, which found nothing here to
			// take): prev has let the memberships go all the same, so
			// they are moved here and given up at once, as the user is
			// not here to hold them. They are lost to the user, who
			// would otherwise stay a member pointing at prev, or here,
			// where no one is connected.
			gone := !n.table.Online(u.ID)
			for _, ref := range tr.Sessions {
				n.moveMembership(u, prev, ref, gone)
			}
		}
		done()
	})
}

// moveMembership makes u's membership of ref, held by node prev until
// now, point here; with drop it then gives it up.
func (n *Node) moveMembership(u *session.User, prev string, ref wire.SessionRef, drop bool) {
	owner, err := session.IDNode(ref.SessionID)
	if err != nil {
		return
	}
	// The user may hold another session of that type here already (it
	// signed in on both sides of a partition and joined one on each):
	// then the membership moves and is given up at once, so that the user
	// stays in one session per type.
	held, ok := n.table.SessionIDByUser(ref.Type, u)
	conflict := drop || (ok && held != ref.SessionID)
	if !conflict {
		_ = n.table.HoldSlot(u.ID, ref.Type, ref.SessionID) // held already if owned here
	}
	if owner == n.cfg.Name {
		if n.table.MoveMember(ref.SessionID, u.ID, prev, u) == nil && conflict {
			_ = n.table.RemoveRemoteMember(ref.SessionID, u.ID, n.cfg.Name)
		}
		return
	}
	l := n.upLink(owner)
	if l == nil {
		return // the owner is lost: NodeLost frees the slot
	}
	e := memberMove(ref, u.ID, u.SID, prev)
	n.send(l, wire.CmdExec, &e, func(st wire.Status, _ []byte) {
		if st != wire.StatusOK && st != wire.StatusUnavailable && !conflict {
			n.table.ReleaseSlot(u.ID, ref.Type, ref.SessionID)
		}
	})
	if conflict {
		n.Disconnected(owner, ref.SessionID, ref.Type, u.ID) // after the move, on the same link
	}
}

// SignOut releases user u, whose connection here closed, from the
// presence directory.
//
// Call it after Table.Disconnect: a connection that a newer one on this
// node replaced releases nothing (the user is still connected here).
func (n *Node) SignOut(u *session.User) {
	if n.table.Online(u.ID) {
		return
	}
	n.pres.mu.Lock()
	gen, ok := n.pres.gens[u.ID]
	delete(n.pres.gens, u.ID)
	n.pres.mu.Unlock()
	if ok {
		n.releaseAt(u.ID, gen)
	}
}

// releaseAt releases the claim of generation gen of uid, by this node,
// at uid's directory.
func (n *Node) releaseAt(uid string, gen uint64) {
	dir := n.dirOf(uid)
	if dir == n.cfg.Name {
		n.release(n.cfg.Name, uid, gen)
		return
	}
	if l := n.upLink(dir); l != nil {
		m := wire.PresenceRelease{UID: uid, Gen: gen}
		l.nc.Send(wire.Header{Cmd: wire.CmdPresenceRelease, Flags: wire.FlagPush}, m.Append(nil))
		l.stats.framesOut.Add(1)
	}
}

// reassert claims again every user connected here whose directory is
// another node (after the set of nodes changed, records may have moved),
// after dropping the records this node no longer holds as directory.
// A directory that holds the user for another node, up (the user signed in
// on both sides of a partition that healed), refuses: the first claim
// after the heal keeps the user, and this node closes its connection
// with Bye Replaced, as for a second sign-in elsewhere.
func (n *Node) reassert() {
	n.dropForeignRecords()
	var users []*session.User
	n.table.OnlineUsers(func(u *session.User) { users = append(users, u) })
	for _, u := range users {
		after := func(rep wire.PresenceClaimReply, ok bool) {
			if !ok {
				n.replaced(u)
				return
			}
			n.pres.mu.Lock()
			n.pres.gens[u.ID] = rep.Gen
			n.pres.mu.Unlock()
		}
		dir := n.dirOf(u.ID)
		if dir == n.cfg.Name {
			after(n.assert(n.cfg.Name, u.ID, u.SID))
			continue
		}
		if l := n.upLink(dir); l != nil {
			m := wire.PresenceClaim{UID: u.ID, SID: u.SID}
			n.send(l, wire.CmdPresenceAssert, &m, func(st wire.Status, payload []byte) {
				var rep wire.PresenceClaimReply
				switch {
				case st == wire.StatusStale:
					after(rep, false)
				case st == wire.StatusOK && rep.Consume(payload) == nil:
					after(rep, true)
				}
			})
		}
	}
}

// replaced closes u's connection, if it is still the user's here, with
// Bye Replaced: another node holds the user.
func (n *Node) replaced(u *session.User) {
	n.pres.mu.Lock()
	delete(n.pres.gens, u.ID) // its record is the other node's: release nothing
	n.pres.mu.Unlock()
	if nc, ok := u.Conn.(*netio.Conn); ok {
		nc.Close(wire.StatusReplaced, "signed in on another node")
	}
}

// DeliverToUser implements session.Remote: it looks uid up in the
// directory and hands frame to the node it is connected to.
func (n *Node) DeliverToUser(uid string, frame []byte, done func(error)) {
	deliver := func(node string) {
		if node == n.cfg.Name {
			done(n.table.DeliverInvite(uid, frame))
			return
		}
		l := n.upLink(node)
		if l == nil {
			done(session.ErrUserNotFound)
			return
		}
		m := wire.DeliverToUser{UID: uid, Frame: frame}
		n.send(l, wire.CmdDeliverToUser, &m, func(st wire.Status, _ []byte) {
			switch st {
			case wire.StatusOK:
				done(nil)
			case wire.StatusRateLimited:
				done(session.ErrRateLimited)
			default:
				done(session.ErrUserNotFound)
			}
		})
	}
	dir := n.dirOf(uid)
	if dir == n.cfg.Name {
		r, ok := n.lookup(uid)
		if !ok {
			done(session.ErrUserNotFound)
			return
		}
		deliver(r.node)
		return
	}
	l := n.upLink(dir)
	if l == nil {
		done(session.ErrUserNotFound)
		return
	}
	m := wire.PresenceLookup{UID: uid}
	n.send(l, wire.CmdPresenceLookup, &m, func(st wire.Status, payload []byte) {
		var rep wire.PresenceLookupReply
		if st != wire.StatusOK || rep.Consume(payload) != nil {
			done(session.ErrUserNotFound)
			return
		}
		deliver(rep.Node)
	})
}

// onPresence handles the presence frames of an up link from peer.
func (n *Node) onPresence(l *link, f wire.Frame) {
	switch f.Cmd {
	case wire.CmdPresenceClaim:
		var m wire.PresenceClaim
		if m.Consume(f.Payload) != nil {
			l.reply(f, wire.StatusBadRequest, nil)
			return
		}
		rep := n.claim(l.peer, m.UID, m.SID)
		l.reply(f, wire.StatusOK, rep.Append(nil))
	case wire.CmdPresenceAssert:
		var m wire.PresenceClaim
		if m.Consume(f.Payload) != nil {
			l.reply(f, wire.StatusBadRequest, nil)
			return
		}
		rep, ok := n.assert(l.peer, m.UID, m.SID)
		if !ok {
			l.reply(f, wire.StatusStale, nil)
			return
		}
		l.reply(f, wire.StatusOK, rep.Append(nil))
	case wire.CmdPresenceRelease:
		var m wire.PresenceRelease
		if m.Consume(f.Payload) == nil {
			n.release(l.peer, m.UID, m.Gen)
		}
	case wire.CmdPresenceLookup:
		var m wire.PresenceLookup
		if m.Consume(f.Payload) != nil {
			l.reply(f, wire.StatusBadRequest, nil)
			return
		}
		r, ok := n.lookup(m.UID)
		if !ok {
			l.reply(f, wire.StatusUserNotFound, nil)
			return
		}
		rep := wire.PresenceLookupReply{Node: r.node, SID: r.sid, Gen: r.gen}
		l.reply(f, wire.StatusOK, rep.Append(nil))
	case wire.CmdUserTakeover:
		var m wire.UserTakeover
		if m.Consume(f.Payload) != nil {
			l.reply(f, wire.StatusBadRequest, nil)
			return
		}
		old, list, ok := n.table.MoveAway(m.UID)
		if !ok {
			l.reply(f, wire.StatusUserNotFound, nil)
			return
		}
		n.pres.mu.Lock()
		delete(n.pres.gens, m.UID)
		n.pres.mu.Unlock()
		rep := wire.UserTakeoverReply{Sessions: make([]wire.SessionRef, len(list))}
		for i, us := range list {
			rep.Sessions[i] = wire.SessionRef{Type: us.Type, SessionID: us.ID}
		}
		l.reply(f, wire.StatusOK, rep.Append(nil))
		if nc, ok := old.Conn.(*netio.Conn); ok {
			nc.Close(wire.StatusReplaced, "signed in on another node")
		}
	}
}
