package server

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coveyhq/covey/wire"
)

// These tests pin PROTOCOL.md's "Command reference" for the session
// commands, over TCP against a live server: who gets which push, in which
// order relative to the replies, and the edge cases of invites, messages,
// session IDs and values. Pushes a request causes are queued before its
// reply, so each test reads frames in the exact order they must come.

// party signs in one raw client per user ID and puts them all in a new
// session of type 1 (the first creates it), with everything they were
// sent so far read. It returns the clients and the session ID.
func party(t *testing.T, srv *Server, uids ...string) ([]*rawClient, string) {
	t.Helper()
	cs := make([]*rawClient, len(uids))
	for i, uid := range uids {
		cs[i] = dialRaw(t, "tcp", srv.addrOf("tcp"))
		cs[i].signIn(uid)
	}
	id := cs[0].create(1, 8)
	for _, c := range cs[1:] {
		c.mustOK(wire.CmdJoin, (&wire.SessionRef{Type: 1, SessionID: id}).Append(nil))
	}
	for _, c := range cs {
		c.drain()
	}
	return cs, id
}

// create makes a session of type typ and returns its ID.
func (r *rawClient) create(typ uint8, maxMembers uint16) string {
	r.t.Helper()
	f := r.mustOK(wire.CmdCreate, (&wire.CreateRequest{Type: typ, MaxMembers: maxMembers}).Append(nil))
	var rep wire.CreateReply
	if err := rep.Consume(f.Payload); err != nil {
		r.t.Fatal(err)
	}
	return rep.SessionID
}

// mustOK sends a request and checks that the next frame is its OK reply:
// the request made nothing else be sent to this connection first.
func (r *rawClient) mustOK(cmd wire.Cmd, payload []byte) wire.Frame {
	r.t.Helper()
	return r.expectReply(cmd, r.request(0, cmd, payload), wire.StatusOK)
}

// status sends a request and returns the status of its reply, which must
// be the next frame.
func (r *rawClient) status(cmd wire.Cmd, payload []byte) wire.Status {
	r.t.Helper()
	seq := r.request(0, cmd, payload)
	f := r.frame()
	if f.Flags != wire.FlagReply || f.Cmd != cmd || f.Seq != seq {
		r.t.Fatalf("got %+v, want the reply to %v seq %d", f.Header, cmd, seq)
	}
	return f.Status
}

// drain reads and returns every frame queued to the connection so far:
// everything before the reply to a Ping sent now.
func (r *rawClient) drain() []wire.Frame {
	r.t.Helper()
	seq := r.request(0, wire.CmdPing, nil)
	var got []wire.Frame
	for {
		f := r.frame()
		if f.Flags == wire.FlagReply && f.Cmd == wire.CmdPing && f.Seq == seq {
			return got
		}
		got = append(got, f)
	}
}

// expectNothingQueued checks that nothing was sent to the connection that
// it has not read yet.
func (r *rawClient) expectNothingQueued() {
	r.t.Helper()
	if got := r.drain(); len(got) != 0 {
		r.t.Fatalf("%d unexpected frames, the first %+v", len(got), got[0].Header)
	}
}

// expectMemberEvent checks that the next frame is the push cmd about user
// uid in session id.
func (r *rawClient) expectMemberEvent(cmd wire.Cmd, id, uid string) {
	r.t.Helper()
	f := r.frame()
	var ev wire.MemberEvent
	if f.Flags != wire.FlagPush || f.Cmd != cmd || ev.Consume(f.Payload) != nil || ev.SessionID != id || ev.UserID != uid {
		r.t.Fatalf("got %+v (%+v), want %v about %s", f.Header, ev, cmd, uid)
	}
}

// expectMessage checks that the next frame is a MessagePush cmd from
// sender with msg.
func (r *rawClient) expectMessage(cmd wire.Cmd, sender, msg string) {
	r.t.Helper()
	f := r.frame()
	var m wire.MessagePush
	if f.Flags != wire.FlagPush || f.Cmd != cmd || m.Consume(f.Payload) != nil || m.SenderID != sender || string(m.Msg) != msg {
		r.t.Fatalf("got %+v (%+v), want %v from %s: %q", f.Header, m, cmd, sender, msg)
	}
}

// expectInvite checks that the next frame is an InviteReceived push and
// returns it.
func (r *rawClient) expectInvite() wire.InvitePush {
	r.t.Helper()
	f := r.frame()
	var inv wire.InvitePush
	if f.Flags != wire.FlagPush || f.Cmd != wire.CmdInviteReceived || inv.Consume(f.Payload) != nil {
		r.t.Fatalf("got %+v, want an InviteReceived push", f.Header)
	}
	return inv
}

func ref(id string) []byte { return (&wire.SessionRef{Type: 1, SessionID: id}).Append(nil) }

// TestKickPushes: the kicked user gets Kicked (about itself) and no
// MemberLeft; every remaining member, the kicker included, gets
// MemberLeft, the kicker before its Kick reply. No OwnerChanged.
func TestKickPushes(t *testing.T) {
	srv := startServer(t)
	cs, id := party(t, srv, "owner", "target", "other")
	owner, target, other := cs[0], cs[1], cs[2]
	seq := owner.request(0, wire.CmdKick, (&wire.KickRequest{Type: 1, UserID: "target"}).Append(nil))
	owner.expectMemberEvent(wire.CmdMemberLeft, id, "target")
	owner.expectReply(wire.CmdKick, seq, wire.StatusOK)
	owner.expectNothingQueued()
	target.expectMemberEvent(wire.CmdKicked, id, "target")
	target.expectNothingQueued()
	other.expectMemberEvent(wire.CmdMemberLeft, id, "target")
	other.expectNothingQueued()
	if st := target.status(wire.CmdGetMemberIDs, (&wire.TypeRequest{Type: 1}).Append(nil)); st != wire.StatusNotMember {
		t.Fatalf("the kicked user's GetMemberIDs: %v", st)
	}
}

// TestOwnerLeavePushes: the owner leaving gets only its reply; the others
// get MemberLeft, then OwnerChanged naming the longest-standing member.
func TestOwnerLeavePushes(t *testing.T) {
	srv := startServer(t)
	cs, id := party(t, srv, "first", "second", "third")
	cs[0].mustOK(wire.CmdLeave, ref(id))
	cs[0].expectNothingQueued()
	for _, c := range cs[1:] {
		c.expectMemberEvent(wire.CmdMemberLeft, id, "first")
		c.expectMemberEvent(wire.CmdOwnerChanged, id, "second")
		c.expectNothingQueued()
	}
}

// TestEmptySessionOwner: when the last member leaves, the session is kept
// with no owner (OwnerID ""); the next to join becomes its owner, with no
// OwnerChanged push (nor any other); later joiners are not owners.
func TestEmptySessionOwner(t *testing.T) {
	srv := startServer(t)
	cs, id := party(t, srv, "creator")
	creator := cs[0]
	creator.mustOK(wire.CmdLeave, ref(id))
	creator.expectNothingQueued()

	comer := dialRaw(t, "tcp", srv.addrOf("tcp"))
	comer.signIn("comer")
	f := comer.mustOK(wire.CmdGetSessionInfo, (&wire.SessionInfoRequest{SessionID: id}).Append(nil))
	var info wire.SessionInfo
	if err := info.Consume(f.Payload); err != nil || info.OwnerID != "" || info.CurrentMembers != 0 || len(info.MemberIDs) != 0 {
		t.Fatalf("empty session's info %+v (%v), want no owner and no members", info, err)
	}
	comer.mustOK(wire.CmdJoin, ref(id))
	comer.expectNothingQueued()
	f = comer.mustOK(wire.CmdIsOwner, (&wire.TypeRequest{Type: 1}).Append(nil))
	var owns wire.BoolReply
	if owns.Consume(f.Payload) != nil || !owns.Value {
		t.Fatal("the user who joined the empty session is not its owner")
	}

	creator.mustOK(wire.CmdJoin, ref(id))
	comer.expectMemberEvent(wire.CmdMemberJoined, id, "creator")
	comer.expectNothingQueued()
	f = creator.mustOK(wire.CmdGetMemberIDs, (&wire.TypeRequest{Type: 1}).Append(nil))
	var ids wire.StringsReply
	if ids.Consume(f.Payload) != nil || !slices.Equal(ids.Items, []string{"comer", "creator"}) {
		t.Fatalf("members %v, want the new owner first", ids.Items)
	}
}

// TestFailedAcceptKeepsInvite: an AcceptInvite refused (here SessionFull)
// leaves the invite in place; only a successful one uses it up.
func TestFailedAcceptKeepsInvite(t *testing.T) {
	srv := startServer(t)
	owner := dialRaw(t, "tcp", srv.addrOf("tcp"))
	owner.signIn("owner")
	id := owner.create(1, 2)
	guest := dialRaw(t, "tcp", srv.addrOf("tcp"))
	guest.signIn("guest")
	filler := dialRaw(t, "tcp", srv.addrOf("tcp"))
	filler.signIn("filler")

	owner.mustOK(wire.CmdInvite, (&wire.InviteRequest{Type: 1, Targets: []string{"guest"}}).Append(nil))
	guest.expectInvite()
	filler.mustOK(wire.CmdJoin, ref(id))
	if st := guest.status(wire.CmdAcceptInvite, ref(id)); st != wire.StatusSessionFull {
		t.Fatalf("accept into a full session: %v", st)
	}
	filler.mustOK(wire.CmdLeave, ref(id))
	guest.mustOK(wire.CmdAcceptInvite, ref(id)) // the same invite
	guest.mustOK(wire.CmdLeave, ref(id))
	if st := guest.status(wire.CmdAcceptInvite, ref(id)); st != wire.StatusNoInvite {
		t.Fatalf("accept after the invite was used: %v, want NoInvite", st)
	}
}

// TestInviteTTL: TTLSeconds 0 means 60 s; any other value is taken as it
// is, up to 65,535 s, with no cap. The push carries the expiry.
func TestInviteTTL(t *testing.T) {
	srv := startServer(t)
	owner := dialRaw(t, "tcp", srv.addrOf("tcp"))
	owner.signIn("owner")
	owner.create(1, 2)
	guest := dialRaw(t, "tcp", srv.addrOf("tcp"))
	guest.signIn("guest")
	for _, tc := range []struct {
		ttlSeconds uint16
		want       time.Duration
	}{{0, 60 * time.Second}, {1, time.Second}, {65535, 65535 * time.Second}} {
		before := time.Now().Truncate(time.Millisecond)
		owner.mustOK(wire.CmdInvite, (&wire.InviteRequest{Type: 1, Targets: []string{"guest"}, TTLSeconds: tc.ttlSeconds}).Append(nil))
		after := time.Now()
		exp := time.UnixMilli(int64(guest.expectInvite().ExpiresUnixMillis))
		if exp.Before(before.Add(tc.want)) || exp.After(after.Add(tc.want)) {
			t.Errorf("TTLSeconds %d: expires in %v, want %v", tc.ttlSeconds, exp.Sub(before), tc.want)
		}
	}
}

// TestReinviteReplacesExpiry: inviting a user again replaces the pending
// invite's expiry with the new one, even an earlier one; it is not
// extended.
func TestReinviteReplacesExpiry(t *testing.T) {
	srv := startServer(t)
	owner := dialRaw(t, "tcp", srv.addrOf("tcp"))
	owner.signIn("owner")
	id := owner.create(1, 4)
	guest := dialRaw(t, "tcp", srv.addrOf("tcp"))
	guest.signIn("guest")
	invite := func(ttlSeconds uint16) time.Time {
		owner.mustOK(wire.CmdInvite, (&wire.InviteRequest{Type: 1, Targets: []string{"guest"}, TTLSeconds: ttlSeconds}).Append(nil))
		return time.UnixMilli(int64(guest.expectInvite().ExpiresUnixMillis))
	}
	invite(600)
	short := invite(1)
	time.Sleep(time.Until(short) + 20*time.Millisecond)
	if st := guest.status(wire.CmdAcceptInvite, ref(id)); st != wire.StatusNoInvite {
		t.Fatalf("accept after the second, shorter invite expired: %v, want NoInvite", st)
	}
	invite(600)
	guest.mustOK(wire.CmdAcceptInvite, ref(id))
}

// TestMessageToRecipients: the sender may name itself (it gets the push,
// before its reply); an empty list succeeds and sends nothing; a
// recipient named several times gets the message once; one non-member
// in the list sends nothing to anyone.
func TestMessageToRecipients(t *testing.T) {
	srv := startServer(t)
	cs, _ := party(t, srv, "sender", "bob", "carol")
	sender, bob, carol := cs[0], cs[1], cs[2]
	msgTo := func(msg string, to ...string) []byte {
		return (&wire.MessageToRequest{Type: 1, Recipients: to, Msg: []byte(msg)}).Append(nil)
	}
	t.Run("to self", func(t *testing.T) {
		seq := sender.request(0, wire.CmdMessageTo, msgTo("me", "sender"))
		sender.expectMessage(wire.CmdMessageReceived, "sender", "me")
		sender.expectReply(wire.CmdMessageTo, seq, wire.StatusOK)
		bob.expectNothingQueued()
	})
	t.Run("to nobody", func(t *testing.T) {
		sender.mustOK(wire.CmdMessageTo, msgTo("void"))
		sender.expectNothingQueued()
		bob.expectNothingQueued()
		carol.expectNothingQueued()
	})
	t.Run("to a duplicate recipient", func(t *testing.T) {
		sender.mustOK(wire.CmdMessageTo, msgTo("once", "bob", "bob", "bob"))
		bob.expectMessage(wire.CmdMessageReceived, "sender", "once")
		bob.expectNothingQueued()
	})
	t.Run("with a non-member", func(t *testing.T) {
		if st := sender.status(wire.CmdMessageTo, msgTo("x", "bob", "ghost")); st != wire.StatusRecipientNotFound {
			t.Fatalf("status %v", st)
		}
		bob.expectNothingQueued()
	})
}

// TestSessionIDValidity: a session ID is a lowercase canonical UUID v4,
// '@', and a node name of 1 to 64 of [A-Za-z0-9._-] (so at most 101
// bytes). Anything else is InvalidSessionID; an ID of that shape that
// names no session here (another node, or gone) is SessionNotFound.
func TestSessionIDValidity(t *testing.T) {
	srv := startServer(t)
	c := dialRaw(t, "tcp", srv.addrOf("tcp"))
	c.signIn("asker")
	id := c.create(1, 2)
	uuid := id[:36]
	const other = "0b5a7c4e-3f0e-4c1a-9d52-0f6c2b7a1e90"
	for _, tc := range []struct {
		name, id string
		want     wire.Status
	}{
		{"existing", id, wire.StatusOK},
		{"empty", "", wire.StatusInvalidSessionID},
		{"no node", uuid, wire.StatusInvalidSessionID},
		{"empty node", uuid + "@", wire.StatusInvalidSessionID},
		{"uppercase hex", strings.ToUpper(uuid) + "@local", wire.StatusInvalidSessionID},
		{"braces", "{" + other + "}@local", wire.StatusInvalidSessionID},
		{"UUID version 1", "0b5a7c4e-3f0e-1c1a-9d52-0f6c2b7a1e90@local", wire.StatusInvalidSessionID},
		{"variant c", "0b5a7c4e-3f0e-4c1a-cd52-0f6c2b7a1e90@local", wire.StatusInvalidSessionID},
		{"node with a space", other + "@my node", wire.StatusInvalidSessionID},
		{"node with '@'", other + "@a@b", wire.StatusInvalidSessionID},
		{"65-byte node", other + "@" + strings.Repeat("n", 65), wire.StatusInvalidSessionID},
		{"trailing space", id + " ", wire.StatusInvalidSessionID},
		{"unknown UUID", other + "@local", wire.StatusSessionNotFound},
		{"another node", uuid + "@node-b", wire.StatusSessionNotFound},
		{"64-byte node, 101 bytes", other + "@" + strings.Repeat("N", 64), wire.StatusSessionNotFound},
		{"node of every class", other + "@A-z_0.9", wire.StatusSessionNotFound},
	} {
		st := c.status(wire.CmdGetSessionInfo, (&wire.SessionInfoRequest{SessionID: tc.id}).Append(nil))
		if st != tc.want {
			t.Errorf("%s (%q): %v, want %v", tc.name, tc.id, st, tc.want)
		}
	}
	// Join, Leave and AcceptInvite read IDs the same way, before the type.
	if st := c.status(wire.CmdJoin, (&wire.SessionRef{Type: 2, SessionID: strings.ToUpper(id)}).Append(nil)); st != wire.StatusInvalidSessionID {
		t.Errorf("Join with an invalid ID: %v", st)
	}
	if st := c.status(wire.CmdLeave, (&wire.SessionRef{Type: 2, SessionID: id}).Append(nil)); st != wire.StatusBadSessionType {
		t.Errorf("Leave with the wrong type: %v", st)
	}
}

// TestBadValueIsBadRequest: a Value with a tag outside 1-5, a Bool byte
// other than 0 or 1 (a bool value, CompareAndSet's HasOld), or a string
// that is not UTF-8 does not decode: BadRequest, nothing is stored, the
// connection stays open.
func TestBadValueIsBadRequest(t *testing.T) {
	srv := startServer(t)
	cs, _ := party(t, srv, "writer")
	c := cs[0]
	key := []byte{1, 1, 'k'} // Type 1, Key "k"
	cat := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	for _, tc := range []struct {
		name    string
		cmd     wire.Cmd
		payload []byte
	}{
		{"tag 0", wire.CmdSetProperty, cat(key, []byte{0})},
		{"tag 6", wire.CmdSetProperty, cat(key, []byte{6, 0, 0, 0, 0, 0, 0, 0, 1})},
		{"tag 0xff", wire.CmdSetPropertyIfNotExists, cat(key, []byte{0xff, 1})},
		{"bool byte 2", wire.CmdSetProperty, cat(key, []byte{1, 2})},
		{"bool byte 0xff", wire.CmdSetProperty, cat(key, []byte{1, 0xff})},
		{"second of two props", wire.CmdSetProperties, cat([]byte{1, 2, 1, 'a', 1, 1, 1, 'b', 7})},
		{"HasOld byte 2", wire.CmdCompareAndSetProperty, cat(key, []byte{2, 1, 1, 1, 1})},
		{"CompareAndSet New tag 9", wire.CmdCompareAndSetProperty, cat(key, []byte{0, 9})},
		{"string value not UTF-8", wire.CmdSetProperty, cat(key, []byte{5, 2, 'a', 0xff})},
	} {
		if st := c.status(tc.cmd, tc.payload); st != wire.StatusBadRequest {
			t.Errorf("%s: %v, want BadRequest", tc.name, st)
		}
	}
	f := c.mustOK(wire.CmdGetAllProperties, (&wire.TypeRequest{Type: 1}).Append(nil))
	var props wire.PropsReply
	if props.Consume(f.Payload) != nil || len(props.Props) != 0 {
		t.Fatalf("properties after refused writes: %+v", props.Props)
	}
	// A Create whose initial properties hold a bad value: BadRequest too.
	other := dialRaw(t, "tcp", srv.addrOf("tcp"))
	other.signIn("creator")
	create := []byte{2, 0, 4, 0, 0, 0, 1, 1, 'k', 0} // Type 2, MaxMembers 4, TTL 0, Flags 0, [k: tag 0]
	if st := other.status(wire.CmdCreate, create); st != wire.StatusBadRequest {
		t.Fatalf("Create with a bad value: %v", st)
	}
}

// TestCreateUndefinedFlagsRefused: a Create with a Flags bit other than
// Quiet (0x01) is BadRequest and creates nothing.
func TestCreateUndefinedFlagsRefused(t *testing.T) {
	srv := startServer(t)
	c := dialRaw(t, "tcp", srv.addrOf("tcp"))
	c.signIn("creator")
	for _, flags := range []wire.CreateFlags{0x02, 0x80, 0xff} {
		req := wire.CreateRequest{Type: 1, MaxMembers: 2, Flags: flags}
		if st := c.status(wire.CmdCreate, req.Append(nil)); st != wire.StatusBadRequest {
			t.Errorf("Flags %#x: %v, want BadRequest", flags, st)
		}
	}
	if n := srv.Sessions().Len(); n != 0 {
		t.Fatalf("%d sessions created by refused Creates", n)
	}
	c.create(1, 2) // Flags 0
	quiet := wire.CreateRequest{Type: 2, MaxMembers: 2, Flags: wire.CreateQuiet}
	c.mustOK(wire.CmdCreate, quiet.Append(nil))
}

// TestReplacedSignInKeepsMembershipsQuietly: a second sign-in of a user
// closes the first connection with a Bye Replaced; the user stays in its
// sessions, now on the new connection (its new SID in the member list),
// and the other members get no push about it.
func TestReplacedSignInKeepsMembershipsQuietly(t *testing.T) {
	srv := startServer(t)
	cs, id := party(t, srv, "owner", "player")
	owner, first := cs[0], cs[1]
	second := dialRaw(t, "tcp", srv.addrOf("tcp"))
	rep := second.signIn("player")
	first.expectByeNext(wire.StatusReplaced, "")
	owner.expectNothingQueued()

	f := second.mustOK(wire.CmdGetUserSessions, nil)
	var us wire.UserSessionsReply
	if us.Consume(f.Payload) != nil || len(us.Sessions) != 1 || us.Sessions[0].SessionID != id {
		t.Fatalf("the new connection's sessions: %+v", us.Sessions)
	}
	f = owner.mustOK(wire.CmdGetMemberSIDs, (&wire.TypeRequest{Type: 1}).Append(nil))
	var sids wire.StringsReply
	if sids.Consume(f.Payload) != nil || len(sids.Items) != 2 || sids.Items[1] != rep.SID {
		t.Fatalf("member SIDs %v, want the new connection's %s second", sids.Items, rep.SID)
	}
	owner.mustOK(wire.CmdBroadcast, (&wire.BroadcastRequest{Type: 1, Msg: []byte("hi")}).Append(nil))
	second.expectMessage(wire.CmdBroadcastReceived, "owner", "hi")
}
