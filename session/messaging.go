package session

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/coveyhq/covey/wire"
)

// Broadcast sends msg to every member of session id as a push frame with
// the given ver and cmd, reliably and in order per sender (each member's
// Conn receives frames in the order Broadcast is called from one
// goroutine). Anyone holding the ID may broadcast. The frame is encoded once
// and the same bytes are handed to every member.
//
// Ver 0 is Covey's own command namespace: games use ver 1..255.
//
// Errors (Op OpSend): ErrInvalidSessionID, ErrSessionNotFound,
// ErrBadSessionType.
func (t *Table) Broadcast(ctx context.Context, typ uint8, id string, ver uint8, cmd uint16, msg []byte) error {
	if t.isRemote(id) {
		return t.remoteBroadcast(ctx, typ, id, ver, cmd, msg)
	}
	s, err := t.routeTyped(ctx, typ, id)
	if err != nil {
		return opErr(OpSend, id, err)
	}
	if !t.msgFits(msg) {
		return opErr(OpSend, id, ErrTooLarge)
	}
	sn := s.snap.Load()
	fb := t.getBuf()
	*fb = t.cfg.Wire.AppendFrame((*fb)[:0], wire.Header{Ver: ver, Cmd: wire.Cmd(cmd), Flags: wire.FlagPush}, msg)
	t.deliver(s.id, sn.members, *fb, nil)
	t.putBuf(fb)
	t.propagated(ver, cmd, msg, sn.sids)
	return nil
}

// BroadcastFrom sends msg from member u to every other member of u's
// session of type typ, as a BroadcastReceived push naming u. It is the
// built-in client broadcast.
//
// Errors (Op OpSend): ErrNotMember, ErrSessionNotFound.
func (t *Table) BroadcastFrom(ctx context.Context, typ uint8, u *User, msg []byte) error {
	if id, ok := t.remoteID(typ, u); ok {
		_, err := t.callAs(ctx, id, u, wire.CmdBroadcast, &wire.BroadcastRequest{Type: typ, Msg: msg})
		return opErr(OpSend, id, err)
	}
	s, err := t.memberSession(ctx, typ, u)
	if err != nil {
		return opErr(OpSend, "", err)
	}
	sn := s.snap.Load()
	if err := t.pushMessage(sn.members, wire.CmdBroadcastReceived, s, u.ID, msg, func(m *User) bool { return m.ID != u.ID }); err != nil {
		return opErr(OpSend, s.id, err)
	}
	t.propagated(0, uint16(wire.CmdBroadcast), msg, sn.sids)
	return nil
}

// MessageTo sends msg to the listed members of session id as a push frame
// with the given ver and cmd. senderUID names the sender for the caller's
// own bookkeeping; it need not be a member, and anyone holding the ID may
// send. Every recipient must be a member, or nothing is sent. A recipient
// listed twice receives the message once.
//
// Errors (Op OpSend): ErrInvalidSessionID, ErrSessionNotFound,
// ErrBadSessionType, ErrRecipientNotFound.
func (t *Table) MessageTo(ctx context.Context, typ uint8, id, senderUID string, recipientUIDs []string, ver uint8, cmd uint16, msg []byte) error {
	if t.isRemote(id) {
		return t.remoteMessageTo(ctx, typ, id, senderUID, recipientUIDs, ver, cmd, msg)
	}
	s, err := t.routeTyped(ctx, typ, id)
	if err != nil {
		return opErr(OpSend, id, err)
	}
	sn := s.snap.Load()
	if !allMembers(sn, recipientUIDs) {
		return opErr(OpSend, id, ErrRecipientNotFound)
	}
	if !t.msgFits(msg) {
		return opErr(OpSend, id, ErrTooLarge)
	}
	fb := t.getBuf()
	*fb = t.cfg.Wire.AppendFrame((*fb)[:0], wire.Header{Ver: ver, Cmd: wire.Cmd(cmd), Flags: wire.FlagPush}, msg)
	t.deliver(s.id, sn.members, *fb, func(m *User) bool { return contains(recipientUIDs, m.ID) })
	t.putBuf(fb)
	return nil
}

// MessageFrom sends msg from member u to the listed members of u's session
// of type typ, as a MessageReceived push naming u. It is the built-in client
// message.
//
// Errors (Op OpSend): ErrNotMember, ErrSessionNotFound, ErrRecipientNotFound.
func (t *Table) MessageFrom(ctx context.Context, typ uint8, u *User, recipientUIDs []string, msg []byte) error {
	if id, ok := t.remoteID(typ, u); ok {
		_, err := t.callAs(ctx, id, u, wire.CmdMessageTo, &wire.MessageToRequest{Type: typ, Recipients: recipientUIDs, Msg: msg})
		return opErr(OpSend, id, err)
	}
	s, err := t.memberSession(ctx, typ, u)
	if err != nil {
		return opErr(OpSend, "", err)
	}
	sn := s.snap.Load()
	if !allMembers(sn, recipientUIDs) {
		return opErr(OpSend, s.id, ErrRecipientNotFound)
	}
	return opErr(OpSend, s.id, t.pushMessage(sn.members, wire.CmdMessageReceived, s, u.ID, msg, func(m *User) bool { return contains(recipientUIDs, m.ID) }))
}

func allMembers(sn *snapshot, uids []string) bool {
	for _, uid := range uids {
		if sn.indexOf(uid) < 0 {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// SetOnBroadcastPropagate sets the hook called after a broadcast with the
// given ver and cmd was handed to the members: msg is the broadcast payload
// and memberSIDs the SIDs of the members at that moment (shared: do not
// modify either, and do not keep msg after returning: it may point into a
// network read buffer). It runs on the broadcasting goroutine and must not
// block.
// Built-in client broadcasts propagate as ver 0, cmd wire.CmdBroadcast.
// One hook per ver/cmd: it reports false if one was already set, or if fn
// is nil.
func (t *Table) SetOnBroadcastPropagate(ver uint8, cmd uint16, fn func(msg []byte, memberSIDs []string)) bool {
	if fn == nil {
		return false
	}
	key := uint32(ver)<<16 | uint32(cmd)
	t.propagateMu.Lock()
	defer t.propagateMu.Unlock()
	var next map[uint32]func([]byte, []string)
	if cur := t.propagate.Load(); cur != nil {
		if _, ok := (*cur)[key]; ok {
			return false
		}
		next = maps.Clone(*cur)
	} else {
		next = make(map[uint32]func([]byte, []string))
	}
	next[key] = fn
	t.propagate.Store(&next)
	return true
}

func (t *Table) propagated(ver uint8, cmd uint16, msg []byte, sids []string) {
	if hooks := t.propagate.Load(); hooks != nil {
		if fn := (*hooks)[uint32(ver)<<16|uint32(cmd)]; fn != nil {
			fn(msg, sids)
		}
	}
}

// InviteSpec is what an invite carries to its targets.
type InviteSpec struct {
	// Ver and Cmd tell the target's game client what kind of invite this is.
	Ver uint8
	Cmd uint16
	// Msg is the game's invitation message.
	Msg []byte
	// TTL is how long the invite may be accepted; zero means the table's
	// DefaultInviteTTL.
	TTL time.Duration
}

// Invite sends an invite to join session id from member u to each target
// user, who receives an InviteReceived push and may then AcceptInvite
// until the invite expires. An invite does not reserve a place: accepting
// fails if the session is full or gone by then.
//
// A target named twice is invited once. In a cluster, targets connected
// to other nodes are invited too: Invite then waits, bounded by ctx and
// the cluster's call timeout, until their nodes answered (event-loop
// callers use InviteAsync).
//
// Errors (Op OpInvite): ErrInvalidSessionID, ErrSessionNotFound,
// ErrBadSessionType, ErrNotMember (only members invite), ErrCannotInviteSelf
// (nothing is sent), ErrBadRequest (more than MaxInviteTargets targets),
// ErrTooLarge (the invite push would exceed the maximum payload),
// ErrUserNotFound (a target is not online: the other targets are still
// invited), ErrRateLimited (the inviter is over Config.InviteRate:
// nothing is sent; or a target is over Config.InviteReceiveRate: the
// other targets are still invited).
func (t *Table) Invite(ctx context.Context, typ uint8, id string, u *User, targetUIDs []string, spec InviteSpec) error {
	if t.isRemote(id) {
		return t.remoteInvite(ctx, typ, id, u, targetUIDs, spec)
	}
	ch := make(chan error, 1)
	t.InviteAsync(ctx, typ, id, u, targetUIDs, spec, func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return opErr(OpInvite, id, ctx.Err())
	}
}

// InviteAsync is Invite for callers that must not wait: done gets
// Invite's result, once, on the calling goroutine when every target is
// connected here (or none is anywhere), else on the goroutine of the last
// answer from another node.
func (t *Table) InviteAsync(ctx context.Context, typ uint8, id string, u *User, targetUIDs []string, spec InviteSpec, done func(error)) {
	s, err := t.routeTyped(ctx, typ, id)
	switch {
	case err != nil:
	case !s.IsMember(u.ID):
		err = ErrNotMember
	case contains(targetUIDs, u.ID):
		err = ErrCannotInviteSelf
	case len(targetUIDs) > t.cfg.MaxInviteTargets:
		err = ErrBadRequest
	}
	if err != nil {
		done(opErr(OpInvite, id, err))
		return
	}
	ttl := spec.TTL
	if ttl <= 0 {
		ttl = t.cfg.DefaultInviteTTL
	}
	expires := t.sched.now().Add(ttl)

	push := wire.InvitePush{
		Type: typ, SessionID: id, FromUserID: u.ID, Ver: spec.Ver, Cmd: wire.Cmd(spec.Cmd),
		ExpiresUnixMillis: uint64(expires.UnixMilli()), Msg: spec.Msg,
	}
	if !t.msgFits(spec.Msg) || !t.fits(push.Size()) {
		done(opErr(OpInvite, id, ErrTooLarge))
		return
	}
	payload := t.getBuf()
	*payload = push.Append((*payload)[:0])
	fb := t.getBuf()
	*fb = t.cfg.Wire.AppendFrame((*fb)[:0], wire.Header{Cmd: wire.CmdInviteReceived, Flags: wire.FlagPush}, *payload)
	defer t.putBuf(payload)
	defer t.putBuf(fb)

	distinct := 0
	for i, uid := range targetUIDs {
		if !slices.Contains(targetUIDs[:i], uid) {
			distinct++
		}
	}
	if !t.users.admitInvites(u.ID, distinct, t.sched.now(), &t.cfg) {
		done(opErr(OpInvite, id, ErrRateLimited)) // nothing sent
		return
	}

	var failed error
	fail := func(err error) { // a refused target outweighs one not found
		if failed == nil || err == ErrRateLimited {
			failed = err
		}
	}
	var elsewhere []string
	delivered := 0
	for i, uid := range targetUIDs {
		if slices.Contains(targetUIDs[:i], uid) {
			continue // one invite per target, however often it is named
		}
		target, ok := t.users.online(uid)
		if !ok {
			if t.remote == nil {
				fail(ErrUserNotFound)
			} else {
				elsewhere = append(elsewhere, uid)
			}
			continue
		}
		if !t.users.admitInvite(uid, t.sched.now(), &t.cfg) {
			fail(ErrRateLimited)
			continue
		}
		if err := s.addInvite(uid, expires); err != nil {
			t.deliveries.Add(uint64(delivered))
			done(opErr(OpInvite, id, err))
			return
		}
		if target.Conn != nil {
			target.Conn.Deliver(*fb)
			delivered++
		}
	}
	t.deliveries.Add(uint64(delivered))
	if len(elsewhere) == 0 {
		done(opErr(OpInvite, id, failed))
		return
	}
	// Targets not connected here: the invite is recorded first (so that
	// an accept racing the push finds it), then handed to the Remote,
	// which finds each target's node; a target found nowhere, or over its
	// budget of invites received there, loses its record again and makes
	// the result ErrUserNotFound (ErrRateLimited).
	for _, uid := range elsewhere {
		if err := s.addInvite(uid, expires); err != nil {
			done(opErr(OpInvite, id, err))
			return
		}
	}
	frame := slices.Clone(*fb)
	var mu sync.Mutex
	left := len(elsewhere)
	for _, uid := range elsewhere {
		t.remote.DeliverToUser(uid, frame, func(err error) {
			if err != nil {
				s.dropInvite(uid, expires)
			}
			mu.Lock()
			if err != nil {
				fail(err)
			}
			left--
			last, result := left == 0, failed
			mu.Unlock()
			if last {
				done(opErr(OpInvite, id, result))
			}
		})
	}
}

// dropInvite forgets uid's invite if it is still the one that expires
// at expires (an invite whose target was found nowhere).
func (s *Session) dropInvite(uid string, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.invites[uid]; ok && exp.Equal(expires) {
		delete(s.invites, uid)
	}
}

// addInvite records an invite for uid, dropping expired ones and, at the
// MaxInvites limit, the one closest to expiry.
func (s *Session) addInvite(uid string, expires time.Time) error {
	now := s.t.sched.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted {
		return ErrSessionNotFound
	}
	if s.invites == nil {
		s.invites = make(map[string]time.Time)
	}
	if _, ok := s.invites[uid]; !ok && len(s.invites) >= s.t.cfg.MaxInvites {
		maps.DeleteFunc(s.invites, func(_ string, exp time.Time) bool { return !now.Before(exp) })
		if len(s.invites) >= s.t.cfg.MaxInvites {
			var oldest string
			var oldestExp time.Time
			for k, exp := range s.invites {
				if oldest == "" || exp.Before(oldestExp) {
					oldest, oldestExp = k, exp
				}
			}
			delete(s.invites, oldest)
		}
	}
	s.invites[uid] = expires
	return nil
}

// hasInviteLocked reports whether uid holds an invite valid at now.
// s.mu must be held.
func (s *Session) hasInviteLocked(uid string, now time.Time) bool {
	exp, ok := s.invites[uid]
	return ok && now.Before(exp)
}

// deliver hands frame to every member of session id that want reports
// true for (every one if want is nil): to the Conn of each member
// connected here, and through the table's Remote to the members on other
// nodes, one Fanout per node (fanout). It counts the local deliveries
// with one atomic add; a member node counts its own (DeliverLocal).
func (t *Table) deliver(id string, members []*User, frame []byte, want func(*User) bool) {
	n := 0
	remote := false
	for _, m := range members {
		switch {
		case m.Conn != nil:
			if want == nil || want(m) {
				m.Conn.Deliver(frame)
				n++
			}
		case m.Node != "":
			remote = true
		}
	}
	t.deliveries.Add(uint64(n))
	if remote && t.remote != nil {
		t.fanout(id, members, frame, want)
	}
}

// fanout hands frame to the Remote once per other node that holds
// members of session id wanted by want, naming those members. It
// allocates nothing: the target lists are built in a pooled slice, which
// the Remote must not keep.
func (t *Table) fanout(id string, members []*User, frame []byte, want func(*User) bool) {
	sc := t.targets.Get().(*[]string)
	for i, m := range members {
		if m.Conn != nil || m.Node == "" || nodeSeen(members[:i], m.Node) {
			continue
		}
		targets := (*sc)[:0]
		for _, o := range members[i:] {
			if o.Conn == nil && o.Node == m.Node && (want == nil || want(o)) {
				targets = append(targets, o.ID)
			}
		}
		if len(targets) > 0 {
			t.remote.Fanout(m.Node, id, targets, frame)
		}
		clear(targets)
		*sc = targets[:0]
	}
	t.targets.Put(sc)
}

// nodeSeen reports whether a remote member of node is in members.
func nodeSeen(members []*User, node string) bool {
	for _, m := range members {
		if m.Conn == nil && m.Node == node {
			return true
		}
	}
	return false
}

// fits reports whether a payload of size bytes is within the wire's
// payload limit.
func (t *Table) fits(size int) bool { return size <= int(t.cfg.Wire.MaxPayload) }

// msgFits reports whether msg is within the message limit,
// wire.MaxMessageFor the payload limit: the push that carries it then
// fits the payload limit whatever the session and user IDs, so a client
// told the limit at sign-in never sees a message refused for its IDs.
func (t *Table) msgFits(msg []byte) bool {
	return len(msg) <= int(wire.MaxMessageFor(t.cfg.Wire.MaxPayload))
}

// pushMessage encodes a MessagePush once and delivers it to the members
// that want reports true for. It fails with ErrTooLarge, sending nothing,
// if msg is over the message limit (or, with a user ID longer than any
// the server signs in, the push over the payload limit).
func (t *Table) pushMessage(members []*User, cmd wire.Cmd, s *Session, senderID string, msg []byte, want func(*User) bool) error {
	p := wire.MessagePush{Type: s.typ, SessionID: s.id, SenderID: senderID, Msg: msg}
	size := p.Size()
	if !t.msgFits(msg) || !t.fits(size) {
		return ErrTooLarge
	}
	fb := t.getBuf()
	if size < t.cfg.Wire.CompressThreshold || t.cfg.Wire.CompressThreshold <= 0 {
		// Small pushes, the common case, are encoded straight into the
		// frame: one pass, no payload copy.
		*fb = wire.AppendMessagePushFrame((*fb)[:0], cmd, s.typ, s.id, senderID, msg)
	} else {
		payload := t.getBuf()
		*payload = p.Append((*payload)[:0])
		*fb = t.cfg.Wire.AppendFrame((*fb)[:0], wire.Header{Cmd: cmd, Flags: wire.FlagPush}, *payload)
		t.putBuf(payload)
	}
	t.deliver(s.id, members, *fb, want)
	t.putBuf(fb)
	return nil
}

// pushMemberEvent tells members that user uid joined, left, was kicked or
// became the owner of s.
func (t *Table) pushMemberEvent(members []*User, cmd wire.Cmd, s *Session, uid string) {
	if len(members) == 0 {
		return
	}
	payload := t.getBuf()
	ev := wire.MemberEvent{Type: s.typ, SessionID: s.id, UserID: uid}
	*payload = ev.Append((*payload)[:0])
	fb := t.getBuf()
	*fb = t.cfg.Wire.AppendFrame((*fb)[:0], wire.Header{Cmd: cmd, Flags: wire.FlagPush}, *payload)
	t.deliver(s.id, members, *fb, nil)
	t.putBuf(fb)
	t.putBuf(payload)
}

const maxPooledBuf = 64 << 10

func (t *Table) getBuf() *[]byte { return t.bufs.Get().(*[]byte) }

func (t *Table) putBuf(b *[]byte) {
	if cap(*b) <= maxPooledBuf {
		t.bufs.Put(b)
	}
}
