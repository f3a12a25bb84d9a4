package session

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coveyhq/covey/wire"
)

func TestIDs(t *testing.T) {
	id, err := NewID("node-a")
	if err != nil {
		t.Fatal(err)
	}
	if node, err := IDNode(id); err != nil || node != "node-a" {
		t.Fatalf("IDNode(%q) = %q, %v", id, node, err)
	}
	other, _ := NewID("node-a")
	if other == id {
		t.Fatal("two IDs are equal")
	}
	for _, bad := range []string{
		"", "x", id[:36], id[:37], strings.ToUpper(id[:36]) + "@n",
		"0b5a7c4e-3f0e-1c1a-9d52-0f6c2b7a1e90@n", // version 1
		"0b5a7c4e-3f0e-4c1a-7d52-0f6c2b7a1e90@n", // wrong variant
		"0b5a7c4e+3f0e-4c1a-9d52-0f6c2b7a1e90@n",
		"0b5a7c4e-3f0e-4c1a-9d52-0f6c2b7a1e90@bad node",
		"0b5a7c4e-3f0e-4c1a-9d52-0f6c2b7a1e90@" + strings.Repeat("n", MaxNodeNameLen+1),
	} {
		if _, err := IDNode(bad); !errors.Is(err, ErrInvalidSessionID) {
			t.Errorf("IDNode(%q) err = %v", bad, err)
		}
	}
	if _, err := NewID("bad node"); !errors.Is(err, ErrInvalidSessionID) {
		t.Errorf("NewID(bad node) err = %v", err)
	}
	// The reference's "Failed to create session ID" (an invalid server
	// address) is refused when the table is made.
	if _, err := New(Config{Node: "bad node"}); !errors.Is(err, ErrInvalidSessionID) {
		t.Errorf("New with a bad node name: %v", err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = IDNode(id) }); n != 0 {
		t.Errorf("IDNode allocates %v times", n)
	}
}

func TestCreate(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, _ := player(tb, "alice")

	s := mustCreate(t, tb, alice, 1, 4)
	if node, _ := IDNode(s.ID()); node != "local" {
		t.Fatalf("session ID %q does not name the node", s.ID())
	}
	if got := s.MemberIDs(); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("members = %v", got)
	}
	if o, ok := s.Owner(); !ok || o.ID != "alice" {
		t.Fatalf("owner = %v, %v", o, ok)
	}
	if s.emptyTTL != MinEmptyTTL {
		t.Fatalf("TTL 0 became %v, want %v", s.emptyTTL, MinEmptyTTL)
	}
	if got, ok := tb.Session(s.ID()); !ok || got != s {
		t.Fatal("Session(id) does not find the session")
	}
	if tb.SessionID(1, alice) != s.ID() {
		t.Fatal("user index does not name the session")
	}

	t.Run("TTL kept when above minimum", func(t *testing.T) {
		u, _ := player(tb, "ttl")
		s, err := tb.Create(bg, u, Spec{Type: 9, MaxMembers: 2, EmptyTTL: 90 * time.Second})
		if err != nil || s.emptyTTL != 90*time.Second {
			t.Fatalf("ttl = %v, err %v", s.emptyTTL, err)
		}
	})
	t.Run("max members must exceed 1", func(t *testing.T) {
		for _, n := range []uint16{0, 1} {
			_, err := tb.Create(bg, alice, Spec{Type: 2, MaxMembers: n})
			wantErr(t, err, ErrBadMaxMembers, IsSessionError)
		}
	})
	t.Run("one session per type", func(t *testing.T) {
		_, err := tb.Create(bg, alice, Spec{Type: 1, MaxMembers: 4})
		wantErr(t, err, ErrAlreadyInSession, IsSessionError)
		s2 := mustCreate(t, tb, alice, 2, 4) // another type is fine
		if got := tb.UserSessions(alice); len(got) != 2 || got[1].ID != s2.ID() {
			t.Fatalf("UserSessions = %v", got)
		}
	})
	t.Run("offline", func(t *testing.T) {
		tb.SetOffline(true)
		defer tb.SetOffline(false)
		u, _ := player(tb, "late")
		_, err := tb.Create(bg, u, Spec{Type: 1, MaxMembers: 4})
		wantErr(t, err, ErrServerOffline, IsSessionError)
		if !tb.Offline() {
			t.Fatal("Offline() = false")
		}
	})
	t.Run("initial properties", func(t *testing.T) {
		u, _ := player(tb, "props")
		s, err := tb.Create(bg, u, Spec{Type: 1, MaxMembers: 4, Properties: map[string]any{"mode": "ctf", "lvl": uint8(3)}})
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := s.Property("lvl"); v != uint64(3) {
			t.Fatalf("lvl = %#v", v)
		}
		_, err = tb.Create(bg, u, Spec{Type: 3, MaxMembers: 4, Properties: map[string]any{"bad": []int{1}}})
		wantErr(t, err, ErrBadProperty, IsSessionError)
		if tb.SessionID(3, u) != "" {
			t.Fatal("failed create left the user in the index")
		}
	})
	t.Run("closed", func(t *testing.T) {
		tb2, _ := newTestTable(t)
		tb2.Close()
		u, _ := player(tb2, "x")
		_, err := tb2.Create(bg, u, Spec{Type: 1, MaxMembers: 2})
		wantErr(t, err, ErrClosed, IsSessionError)
	})
}

func TestJoin(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, aliceRec := player(tb, "alice")
	bob, _ := player(tb, "bob")
	carol, _ := player(tb, "carol")
	s := mustCreate(t, tb, alice, 1, 2)

	var joined []string
	if !s.SetOnJoined(func(id string, u *User) { joined = append(joined, u.ID) }) {
		t.Fatal("SetOnJoined refused")
	}
	mustJoin(t, tb, s, bob)
	if got := s.MemberIDs(); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Fatalf("members = %v", got)
	}
	if !slices.Equal(joined, []string{"bob"}) {
		t.Fatalf("OnJoined saw %v", joined)
	}
	evs := aliceRec.memberEvents(t, wire.CmdMemberJoined)
	if len(evs) != 1 || evs[0].UserID != "bob" || evs[0].SessionID != s.ID() || evs[0].Type != 1 {
		t.Fatalf("alice's MemberJoined pushes = %+v", evs)
	}

	wantErr(t, tb.Join(bg, 1, s.ID(), carol), ErrSessionFull, IsJoinError)
	wantErr(t, tb.Join(bg, 1, s.ID(), bob), ErrAlreadyInSession, IsJoinError)
	wantErr(t, tb.Join(bg, 1, "nope", carol), ErrInvalidSessionID, IsJoinError)
	wantErr(t, tb.Join(bg, 2, s.ID(), carol), ErrBadSessionType, IsJoinError)
	foreign, _ := NewID("elsewhere")
	wantErr(t, tb.Join(bg, 1, foreign, carol), ErrSessionNotFound, IsJoinError)
	missing, _ := NewID("local")
	wantErr(t, tb.Join(bg, 1, missing, carol), ErrSessionNotFound, IsJoinError)
	if tb.SessionID(1, carol) != "" {
		t.Fatal("failed joins left carol in the index")
	}

	t.Run("OnJoin veto", func(t *testing.T) {
		dave, _ := player(tb, "dave")
		s2 := mustCreate(t, tb, dave, 1, 8)
		var asked *User
		if !s2.SetOnJoin(func(id string, u *User) bool { asked = u; return u.ID != "carol" }) {
			t.Fatal("SetOnJoin refused")
		}
		if s2.SetOnJoin(func(string, *User) bool { return true }) {
			t.Fatal("second SetOnJoin accepted")
		}
		wantErr(t, tb.Join(bg, 1, s2.ID(), carol), ErrJoinRejected, IsJoinError)
		if asked == carol || asked.ID != "carol" {
			t.Fatal("OnJoin was not given a copy of the user")
		}
		if s2.IsMember("carol") || tb.SessionID(1, carol) != "" {
			t.Fatal("vetoed user became a member")
		}
	})
	t.Run("in another session of the type", func(t *testing.T) {
		erin, _ := player(tb, "erin")
		s3 := mustCreate(t, tb, erin, 1, 8)
		wantErr(t, tb.Join(bg, 1, s3.ID(), bob), ErrAlreadyInSession, IsJoinError)
	})
	t.Run("canceled context", func(t *testing.T) {
		ctx, cancel := contextWithCancel()
		cancel()
		if err := tb.Join(ctx, 1, s.ID(), carol); !IsJoinError(err) || err == nil {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestLeaveAndOwnerHandover(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, _ := player(tb, "alice")
	bob, bobRec := player(tb, "bob")
	carol, carolRec := player(tb, "carol")
	s := mustCreate(t, tb, alice, 1, 8)
	mustJoin(t, tb, s, bob)
	mustJoin(t, tb, s, carol)

	var left []string
	s.SetOnLeft(func(id string, u *User) { left = append(left, u.ID) })
	if err := tb.Leave(bg, 1, s.ID(), alice); err != nil {
		t.Fatal(err)
	}
	if o, _ := s.Owner(); o.ID != "bob" {
		t.Fatalf("owner after the owner left = %s, want bob (longest-standing)", o.ID)
	}
	if ok, err := tb.IsOwner(bg, 1, bob); !ok || err != nil {
		t.Fatalf("IsOwner(bob) = %v, %v", ok, err)
	}
	for _, rec := range []*recorder{bobRec, carolRec} {
		if evs := rec.memberEvents(t, wire.CmdOwnerChanged); len(evs) != 1 || evs[0].UserID != "bob" {
			t.Fatalf("OwnerChanged pushes = %+v", evs)
		}
		if evs := rec.memberEvents(t, wire.CmdMemberLeft); len(evs) != 1 || evs[0].UserID != "alice" {
			t.Fatalf("MemberLeft pushes = %+v", evs)
		}
	}
	if !slices.Equal(left, []string{"alice"}) {
		t.Fatalf("OnLeft saw %v", left)
	}
	if tb.SessionID(1, alice) != "" {
		t.Fatal("alice still indexed in the session")
	}

	// A non-owner leaving changes no owner.
	if err := tb.Leave(bg, 1, s.ID(), carol); err != nil {
		t.Fatal(err)
	}
	if got := bobRec.memberEvents(t, wire.CmdOwnerChanged); len(got) != 1 {
		t.Fatalf("OwnerChanged after a member left: %+v", got)
	}

	wantErr(t, tb.Leave(bg, 1, s.ID(), alice), ErrNotMember, IsLeaveError)
	wantErr(t, tb.Leave(bg, 1, "bad", alice), ErrInvalidSessionID, IsLeaveError)
	missing, _ := NewID("local")
	wantErr(t, tb.Leave(bg, 1, missing, alice), ErrSessionNotFound, IsLeaveError)
	wantErr(t, tb.Leave(bg, 7, s.ID(), bob), ErrBadSessionType, IsLeaveError)
}

func TestEmptySessionTTL(t *testing.T) {
	tb, clk := newTestTable(t)
	alice, _ := player(tb, "alice")
	s, err := tb.Create(bg, alice, Spec{Type: 1, MaxMembers: 4, EmptyTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	deleted := make(chan string, 1)
	s.SetOnDeleted(func(id string) { deleted <- id })
	tickStopped := make(chan string, 1)
	s.SetOnTick(time.Hour, func(string) {})
	s.SetOnTickStop(time.Hour, func(id string) { tickStopped <- id })

	// Empty, then re-joined before the TTL: survives.
	if err := tb.Leave(bg, 1, s.ID(), alice); err != nil {
		t.Fatal(err)
	}
	clk.advance(tb, 59*time.Second)
	mustJoin(t, tb, s, alice)
	clk.advance(tb, 2*time.Minute)
	if _, ok := tb.Session(s.ID()); !ok {
		t.Fatal("a session with a member was deleted")
	}

	// Empty past the TTL: deleted, ticks stopped, OnDeleted called.
	if err := tb.Leave(bg, 1, s.ID(), alice); err != nil {
		t.Fatal(err)
	}
	clk.advance(tb, 30*time.Second)
	select {
	case <-deleted:
		t.Fatal("deleted before its TTL")
	default:
	}
	clk.advance(tb, 31*time.Second)
	if id := waitFor(t, deleted, "OnDeleted"); id != s.ID() {
		t.Fatalf("OnDeleted(%q)", id)
	}
	waitFor(t, tickStopped, "OnTickStop at deletion")
	if _, ok := tb.Session(s.ID()); ok {
		t.Fatal("deleted session still found")
	}
	wantErr(t, tb.Join(bg, 1, s.ID(), alice), ErrSessionNotFound, IsJoinError)
	if err := s.SetProperty("k", 1); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("SetProperty on a deleted session: %v", err)
	}
	if tb.Len() != 0 {
		t.Fatalf("Len = %d", tb.Len())
	}
}

func TestDelete(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, aliceRec := player(tb, "alice")
	bob, bobRec := player(tb, "bob")
	s := mustCreate(t, tb, alice, 1, 4)
	mustJoin(t, tb, s, bob)
	deleted := make(chan string, 1)
	s.SetOnDeleted(func(id string) { deleted <- id })
	if err := tb.Delete(bg, s.ID()); err != nil {
		t.Fatal(err)
	}
	if id := waitFor(t, deleted, "OnDeleted"); id != s.ID() {
		t.Fatalf("OnDeleted(%q)", id)
	}
	for _, rec := range []*recorder{aliceRec, bobRec} {
		ps := rec.pushes(wire.CmdSessionDeleted)
		var p wire.SessionDeletedPush
		if len(ps) != 1 || p.Consume(ps[0].payload) != nil || p.SessionID != s.ID() || p.Type != 1 {
			t.Fatalf("SessionDeleted pushes = %+v", ps)
		}
	}
	if _, ok := tb.Session(s.ID()); ok || tb.SessionID(1, bob) != "" || s.MemberCount() != 0 {
		t.Fatal("deleted session or its memberships remain")
	}
	mustCreate(t, tb, bob, 1, 4) // bob is free to be in another session of the type
	wantErr(t, tb.Delete(bg, s.ID()), ErrSessionNotFound, IsMemberError)
	wantErr(t, tb.Delete(bg, "bad"), ErrInvalidSessionID, IsMemberError)
	checkIndexAgrees(t, tb)
}

func TestKick(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, aliceRec := player(tb, "alice")
	bob, bobRec := player(tb, "bob")
	carol, _ := player(tb, "carol")
	s := mustCreate(t, tb, alice, 1, 8)
	mustJoin(t, tb, s, bob)
	mustJoin(t, tb, s, carol)

	wantErr(t, tb.Kick(bg, 1, s.ID(), "alice"), ErrCannotKickSelf, IsKickError)
	wantErr(t, tb.Kick(bg, 1, s.ID(), "nobody"), ErrNotMember, IsKickError)
	wantErr(t, tb.Kick(bg, 1, "bad", "bob"), ErrInvalidSessionID, IsKickError)
	if err := tb.Kick(bg, 1, s.ID(), "bob"); err != nil {
		t.Fatal(err)
	}
	if s.IsMember("bob") || tb.SessionID(1, bob) != "" {
		t.Fatal("bob still a member after kick")
	}
	if evs := bobRec.memberEvents(t, wire.CmdKicked); len(evs) != 1 || evs[0].SessionID != s.ID() {
		t.Fatalf("bob's Kicked pushes = %+v", evs)
	}
	if evs := aliceRec.memberEvents(t, wire.CmdMemberLeft); len(evs) != 1 || evs[0].UserID != "bob" {
		t.Fatalf("alice's MemberLeft pushes = %+v", evs)
	}

	t.Run("as member", func(t *testing.T) {
		wantErr(t, tb.KickAsMember(bg, 1, bob, "carol"), ErrNotMember, IsKickError)
		wantErr(t, tb.KickAsMember(bg, 1, carol, "carol"), ErrCannotKickSelf, IsKickError)
		wantErr(t, tb.KickAsMember(bg, 1, carol, "alice"), ErrCannotKickSelf, IsKickError)
		mustJoin(t, tb, s, bob)
		if err := tb.KickAsMember(bg, 1, carol, "bob"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("as owner", func(t *testing.T) {
		mustJoin(t, tb, s, bob)
		wantErr(t, tb.KickAsOwner(bg, 1, carol, "bob"), ErrNotOwner, IsKickError)
		wantErr(t, tb.KickAsOwner(bg, 1, alice, "alice"), ErrCannotKickSelf, IsKickError)
		if err := tb.KickAsOwner(bg, 1, alice, "bob"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConnectDisconnect(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, _ := player(tb, "alice")
	bob, bobRec := player(tb, "bob")
	s := mustCreate(t, tb, alice, 1, 8)
	mustJoin(t, tb, s, bob)

	// A second sign-in replaces the connection and keeps the memberships.
	bob2Rec := newRecorder()
	bob2 := &User{ID: "bob", SID: "sid-bob-2", Conn: bob2Rec}
	if prev := tb.Connect(bob2); prev != bob {
		t.Fatalf("Connect returned %v, want the old bob", prev)
	}
	if s.MemberSID("bob") != "sid-bob-2" {
		t.Fatalf("member SID = %q", s.MemberSID("bob"))
	}
	before := bobRec.count()
	if err := tb.Broadcast(bg, 1, s.ID(), 1, 7, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if bobRec.count() != before || len(bob2Rec.pushes(7)) != 1 {
		t.Fatal("broadcast did not go to the new connection only")
	}
	// The replaced connection closing changes nothing.
	tb.Disconnect(bob)
	if !s.IsMember("bob") || !tb.Online("bob") {
		t.Fatal("disconnecting a replaced connection removed the user")
	}

	// The owner disconnecting hands ownership over.
	tb.Disconnect(alice)
	if s.IsMember("alice") || tb.Online("alice") {
		t.Fatal("alice still present after disconnect")
	}
	if o, _ := s.Owner(); o.ID != "bob" {
		t.Fatalf("owner = %s", o.ID)
	}
	if evs := bob2Rec.memberEvents(t, wire.CmdOwnerChanged); len(evs) != 1 || evs[0].UserID != "bob" {
		t.Fatalf("OwnerChanged = %+v", evs)
	}
}

func TestInvites(t *testing.T) {
	tb, clk := newTestTable(t)
	alice, _ := player(tb, "alice")
	bob, bobRec := player(tb, "bob")
	carol, carolRec := player(tb, "carol")
	outsider, _ := player(tb, "outsider")
	s := mustCreate(t, tb, alice, 1, 3)

	spec := InviteSpec{Ver: 2, Cmd: 40, Msg: []byte("come"), TTL: time.Minute}
	wantErr(t, tb.Invite(bg, 1, s.ID(), outsider, []string{"bob"}, spec), ErrNotMember, IsInviteError)
	wantErr(t, tb.Invite(bg, 1, s.ID(), alice, []string{"bob", "alice"}, spec), ErrCannotInviteSelf, IsInviteError)
	if len(bobRec.pushes(wire.CmdInviteReceived)) != 0 {
		t.Fatal("an invite refused for inviting self was still sent")
	}
	wantErr(t, tb.Invite(bg, 1, "bad", alice, []string{"bob"}, spec), ErrInvalidSessionID, IsInviteError)
	// One offline target: error, but the online one is still invited.
	wantErr(t, tb.Invite(bg, 1, s.ID(), alice, []string{"ghost", "bob"}, spec), ErrUserNotFound, IsInviteError)
	ps := bobRec.pushes(wire.CmdInviteReceived)
	if len(ps) != 1 {
		t.Fatalf("bob got %d invites", len(ps))
	}
	var inv wire.InvitePush
	if err := inv.Consume(ps[0].payload); err != nil {
		t.Fatal(err)
	}
	want := wire.InvitePush{Type: 1, SessionID: s.ID(), FromUserID: "alice", Ver: 2, Cmd: 40,
		ExpiresUnixMillis: uint64(clk.Now().Add(time.Minute).UnixMilli()), Msg: []byte("come")}
	if inv.SessionID != want.SessionID || inv.FromUserID != want.FromUserID || inv.Ver != 2 || inv.Cmd != 40 ||
		inv.ExpiresUnixMillis != want.ExpiresUnixMillis || string(inv.Msg) != "come" || inv.Type != 1 {
		t.Fatalf("invite push = %+v", inv)
	}

	// Accepting joins and uses the invite up.
	if err := tb.AcceptInvite(bg, 1, s.ID(), bob); err != nil {
		t.Fatal(err)
	}
	if !s.IsMember("bob") {
		t.Fatal("bob did not join by accepting")
	}
	tb.Leave(bg, 1, s.ID(), bob)
	wantErr(t, tb.AcceptInvite(bg, 1, s.ID(), bob), ErrNoInvite, IsAcceptError)
	wantErr(t, tb.AcceptInvite(bg, 1, s.ID(), carol), ErrNoInvite, IsAcceptError)

	// An expired invite is refused.
	if err := tb.Invite(bg, 1, s.ID(), alice, []string{"carol"}, InviteSpec{TTL: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if len(carolRec.pushes(wire.CmdInviteReceived)) != 1 {
		t.Fatal("carol got no invite")
	}
	clk.advance(tb, 11*time.Second)
	wantErr(t, tb.AcceptInvite(bg, 1, s.ID(), carol), ErrNoInvite, IsAcceptError)

	// An invite does not reserve a place.
	for _, id := range []string{"bob", "carol"} {
		if err := tb.Invite(bg, 1, s.ID(), alice, []string{id}, spec); err != nil {
			t.Fatal(err)
		}
	}
	mustJoin(t, tb, s, outsider)
	if err := tb.AcceptInvite(bg, 1, s.ID(), bob); err != nil {
		t.Fatal(err)
	}
	wantErr(t, tb.AcceptInvite(bg, 1, s.ID(), carol), ErrSessionFull, IsAcceptError)
}

func TestInviteLimit(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1, 0)}
	cfg := DefaultConfig()
	cfg.MaxInvites = 2
	tb, err := newTable(cfg, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	alice, _ := player(tb, "alice")
	s := mustCreate(t, tb, alice, 1, 8)
	for i, id := range []string{"a", "b", "c"} {
		player(tb, id)
		tb.Invite(bg, 1, s.ID(), alice, []string{id}, InviteSpec{TTL: time.Duration(i+1) * time.Minute})
	}
	s.mu.Lock()
	n, _, hasA := len(s.invites), 0, false
	_, hasA = s.invites["a"]
	s.mu.Unlock()
	if n != 2 || hasA {
		t.Fatalf("invites = %d (a kept: %v), want 2 with the oldest dropped", n, hasA)
	}
}

func TestBroadcastAndMessages(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, aliceRec := player(tb, "alice")
	bob, bobRec := player(tb, "bob")
	carol, carolRec := player(tb, "carol")
	s := mustCreate(t, tb, alice, 1, 8)
	mustJoin(t, tb, s, bob)
	mustJoin(t, tb, s, carol)

	var propagated [][]string
	if !tb.SetOnBroadcastPropagate(3, 9, func(msg []byte, sids []string) {
		propagated = append(propagated, append([]string{string(msg)}, sids...))
	}) {
		t.Fatal("SetOnBroadcastPropagate refused")
	}
	if tb.SetOnBroadcastPropagate(3, 9, func([]byte, []string) {}) {
		t.Fatal("second hook for the same ver/cmd accepted")
	}
	if err := tb.Broadcast(bg, 1, s.ID(), 3, 9, []byte("go")); err != nil {
		t.Fatal(err)
	}
	var first []byte
	for _, rec := range []*recorder{aliceRec, bobRec, carolRec} {
		ps := rec.pushes(9)
		if len(ps) != 1 || ps[0].ver != 3 || string(ps[0].payload) != "go" {
			t.Fatalf("broadcast pushes = %+v", ps)
		}
		rec.mu.Lock()
		raw := rec.raw[len(rec.raw)-1]
		rec.mu.Unlock()
		if first == nil {
			first = raw
		} else if string(raw) != string(first) {
			t.Fatal("members received different bytes")
		}
	}
	want := []string{"go", "sid-alice", "sid-bob", "sid-carol"}
	if len(propagated) != 1 || !slices.Equal(propagated[0], want) {
		t.Fatalf("propagate hook saw %v, want %v", propagated, want)
	}
	wantErr(t, tb.Broadcast(bg, 1, "bad", 3, 9, nil), ErrInvalidSessionID, IsSendError)
	missing, _ := NewID("local")
	wantErr(t, tb.Broadcast(bg, 1, missing, 3, 9, nil), ErrSessionNotFound, IsSendError)

	t.Run("from member", func(t *testing.T) {
		if err := tb.BroadcastFrom(bg, 1, bob, []byte("hey")); err != nil {
			t.Fatal(err)
		}
		if len(bobRec.pushes(wire.CmdBroadcastReceived)) != 0 {
			t.Fatal("the sender got its own broadcast")
		}
		for _, rec := range []*recorder{aliceRec, carolRec} {
			ps := rec.pushes(wire.CmdBroadcastReceived)
			var m wire.MessagePush
			if len(ps) != 1 || m.Consume(ps[0].payload) != nil || m.SenderID != "bob" || string(m.Msg) != "hey" || m.SessionID != s.ID() {
				t.Fatalf("BroadcastReceived = %+v (%+v)", ps, m)
			}
		}
		outsider, _ := player(tb, "outsider")
		wantErr(t, tb.BroadcastFrom(bg, 1, outsider, nil), ErrNotMember, IsSendError)
	})
	t.Run("message to", func(t *testing.T) {
		if err := tb.MessageTo(bg, 1, s.ID(), "alice", []string{"carol", "carol"}, 4, 5, []byte("psst")); err != nil {
			t.Fatal(err)
		}
		if len(carolRec.pushes(5)) != 1 || len(bobRec.pushes(5)) != 0 || len(aliceRec.pushes(5)) != 0 {
			t.Fatal("MessageTo reached the wrong members")
		}
		wantErr(t, tb.MessageTo(bg, 1, s.ID(), "alice", []string{"bob", "ghost"}, 4, 5, nil), ErrRecipientNotFound, IsSendError)
		if len(bobRec.pushes(5)) != 0 {
			t.Fatal("MessageTo with an unknown recipient sent to the others")
		}
		wantErr(t, tb.MessageTo(bg, 1, "bad", "alice", nil, 4, 5, nil), ErrInvalidSessionID, IsSendError)
		wantErr(t, tb.MessageTo(bg, 1, missing, "alice", nil, 4, 5, nil), ErrSessionNotFound, IsSendError)
	})
	t.Run("message from member", func(t *testing.T) {
		if err := tb.MessageFrom(bg, 1, alice, []string{"bob"}, []byte("dm")); err != nil {
			t.Fatal(err)
		}
		ps := bobRec.pushes(wire.CmdMessageReceived)
		var m wire.MessagePush
		if len(ps) != 1 || m.Consume(ps[0].payload) != nil || m.SenderID != "alice" || string(m.Msg) != "dm" {
			t.Fatalf("MessageReceived = %+v", ps)
		}
		if len(carolRec.pushes(wire.CmdMessageReceived)) != 0 {
			t.Fatal("a non-recipient got the message")
		}
		wantErr(t, tb.MessageFrom(bg, 1, alice, []string{"ghost"}, nil), ErrRecipientNotFound, IsSendError)
	})
}

func TestBroadcastCompressesLargePayloads(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, rec := player(tb, "alice")
	s := mustCreate(t, tb, alice, 1, 2)
	big := []byte(strings.Repeat("covey ", 400))
	if err := tb.Broadcast(bg, 1, s.ID(), 1, 1, big); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	raw := rec.raw[0]
	rec.mu.Unlock()
	h, _ := wire.ConsumeHeader(raw)
	if h.Flags&wire.FlagCompressed == 0 || int(h.Length) >= len(big) {
		t.Fatalf("a %d-byte repetitive broadcast was not compressed (flags %v, length %d)", len(big), h.Flags, h.Length)
	}
}

func TestMemberQueries(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, _ := player(tb, "alice")
	bob, _ := player(tb, "bob")
	outsider, _ := player(tb, "outsider")
	s := mustCreate(t, tb, alice, 1, 8)
	mustJoin(t, tb, s, bob)

	ids, err := tb.MemberIDs(bg, 1, bob)
	if err != nil || !slices.Equal(ids, []string{"alice", "bob"}) {
		t.Fatalf("MemberIDs = %v, %v", ids, err)
	}
	sids, err := tb.MemberSIDs(bg, 1, alice)
	if err != nil || !slices.Equal(sids, []string{"sid-alice", "sid-bob"}) {
		t.Fatalf("MemberSIDs = %v, %v", sids, err)
	}
	data, err := tb.MemberData(bg, 1, alice)
	if err != nil || len(data) != 2 || data[1].UserID != "bob" || data[1].Data["name"] != "Nbob" || data[1].Node != "local" {
		t.Fatalf("MemberData = %+v, %v", data, err)
	}
	data[1].Data["name"] = "changed"
	if again, _ := tb.MemberData(bg, 1, alice); again[1].Data["name"] != "Nbob" {
		t.Fatal("MemberData returned the member's own map")
	}
	if u := data[0].User(); u.ID != "alice" || u.SID != "sid-alice" || u.Conn != nil {
		t.Fatalf("MemberData.User() = %+v", u)
	}
	if ok, err := tb.IsOwner(bg, 1, alice); !ok || err != nil {
		t.Fatalf("IsOwner(alice) = %v, %v", ok, err)
	}
	if ok, err := tb.IsOwner(bg, 1, bob); ok || err != nil {
		t.Fatalf("IsOwner(bob) = %v, %v", ok, err)
	}
	info, err := tb.SessionInfo(bg, s.ID())
	if err != nil || info.ID != s.ID() || info.Type != 1 || info.MaxMembers != 8 || info.OwnerID != "alice" || !slices.Equal(info.MemberIDs, ids) {
		t.Fatalf("SessionInfo = %+v, %v", info, err)
	}
	wantErr(t, func() error { _, err := tb.SessionInfo(bg, "bad"); return err }(), ErrInvalidSessionID, IsMemberError)
	gone, _ := NewID("local")
	wantErr(t, func() error { _, err := tb.SessionInfo(bg, gone); return err }(), ErrSessionNotFound, IsMemberError)
	if id, ok := tb.SessionIDByUser(1, bob); !ok || id != s.ID() {
		t.Fatal("SessionIDByUser")
	}
	if _, ok := tb.SessionIDByUser(2, bob); ok || tb.SessionID(2, bob) != "" {
		t.Fatal("bob is in no session of type 2")
	}
	if got := tb.UserSessions(outsider); len(got) != 0 {
		t.Fatalf("UserSessions(outsider) = %v", got)
	}

	// Session-level accessors.
	if s.MemberSID("bob") != "sid-bob" || s.MemberSID("x") != "" || s.MemberNode("bob") != "local" || s.MemberNode("x") != "" {
		t.Fatal("MemberSID/MemberNode")
	}
	if !slices.Equal(s.MemberNodes(), []string{"local", "local"}) || s.MemberCount() != 2 {
		t.Fatal("MemberNodes/MemberCount")
	}
	us := s.MemberUsers()
	us[0].Data["name"] = "x"
	if s.MemberUsers()[0].Data["name"] != "Nalice" {
		t.Fatal("MemberUsers returned the members' own maps")
	}
	if !s.IsJoinAllowed(7) || s.IsJoinAllowed(8) {
		t.Fatal("IsJoinAllowed")
	}

	for name, call := range map[string]func() error{
		"MemberIDs":  func() error { _, err := tb.MemberIDs(bg, 1, outsider); return err },
		"MemberSIDs": func() error { _, err := tb.MemberSIDs(bg, 1, outsider); return err },
		"MemberData": func() error { _, err := tb.MemberData(bg, 1, outsider); return err },
	} {
		t.Run(name, func(t *testing.T) { wantErr(t, call(), ErrNotMember, IsMemberError) })
	}
	_, err = tb.IsOwner(bg, 1, outsider)
	wantErr(t, err, ErrNotMember, IsOwnerError)
}

func TestTicks(t *testing.T) {
	tb, clk := newTestTable(t)
	alice, _ := player(tb, "alice")
	s := mustCreate(t, tb, alice, 1, 4)

	fast, slow := make(chan string, 16), make(chan string, 16)
	if !s.SetOnTick(time.Second, func(id string) { fast <- id }) || !s.SetOnTick(5*time.Second, func(id string) { slow <- id }) {
		t.Fatal("SetOnTick refused")
	}
	if s.SetOnTick(time.Second, func(string) {}) || s.SetOnTick(0, func(string) {}) {
		t.Fatal("SetOnTick accepted a second callback for an interval, or a zero interval")
	}
	stopped := make(chan string, 4)
	if !s.SetOnTickStop(time.Second, func(id string) { stopped <- "1s" }) || !s.SetOnTickStop(5*time.Second, func(string) { stopped <- "5s" }) {
		t.Fatal("SetOnTickStop refused")
	}
	if s.SetOnTickStop(time.Second, func(string) {}) {
		t.Fatal("second SetOnTickStop accepted")
	}
	for i := 0; i < 5; i++ {
		clk.advance(tb, time.Second)
		if id := waitFor(t, fast, "1s tick"); id != s.ID() {
			t.Fatalf("tick for %q", id)
		}
	}
	waitFor(t, slow, "5s tick")
	if !s.StopAllTicks() {
		t.Fatal("StopAllTicks found nothing running")
	}
	got := []string{waitFor(t, stopped, "tick stop"), waitFor(t, stopped, "tick stop")}
	slices.Sort(got)
	if !slices.Equal(got, []string{"1s", "5s"}) {
		t.Fatalf("OnTickStop calls = %v", got)
	}
	if s.StopAllTicks() {
		t.Fatal("StopAllTicks with nothing running reported true")
	}
	// No tick after the stop: the scheduler has drained all that was due
	// once a fresh 1s tick fires after the clock moves.
	probe := make(chan string, 1)
	s.SetOnTick(2*time.Second, func(id string) { probe <- id })
	clk.advance(tb, 10*time.Second)
	waitFor(t, probe, "tick after restart")
	if len(fast) != 0 || len(slow) != 0 {
		t.Fatal("a stopped tick fired")
	}
}

// TestTickStopWaitsForRunningTick stops a tick from another goroutine
// while its callback runs, and from within the callback: OnTickStop must
// come after the callback has returned, both times.
func TestTickStopWaitsForRunningTick(t *testing.T) {
	for _, fromInside := range []bool{false, true} {
		tb, clk := newTestTable(t)
		alice, _ := player(tb, "alice")
		s := mustCreate(t, tb, alice, 1, 4)
		var mu sync.Mutex
		var order []string
		record := func(what string) {
			mu.Lock()
			order = append(order, what)
			mu.Unlock()
		}
		started, release, stopped := make(chan string, 1), make(chan struct{}), make(chan string, 1)
		s.SetOnTick(time.Second, func(id string) {
			started <- id
			if fromInside {
				s.StopAllTicks()
			} else {
				<-release
			}
			record("tick returns")
		})
		s.SetOnTickStop(time.Second, func(id string) {
			record("stop")
			stopped <- id
		})
		clk.advance(tb, time.Second)
		waitFor(t, started, "tick")
		if !fromInside {
			if !s.StopAllTicks() {
				t.Fatal("StopAllTicks found nothing running")
			}
			close(release)
		}
		waitFor(t, stopped, "tick stop")
		mu.Lock()
		got := slices.Clone(order)
		mu.Unlock()
		if !slices.Equal(got, []string{"tick returns", "stop"}) {
			t.Fatalf("from inside the callback %v: order %v, want the callback's return before OnTickStop", fromInside, got)
		}
	}
}

func TestOnCreate(t *testing.T) {
	tb, _ := newTestTable(t)
	var created []*Session
	if !tb.SetOnCreate(func(s *Session) { created = append(created, s) }) || tb.SetOnCreate(func(*Session) {}) {
		t.Fatal("SetOnCreate must accept exactly one hook")
	}
	alice, _ := player(tb, "alice")
	s := mustCreate(t, tb, alice, 1, 4)
	if len(created) != 1 || created[0] != s {
		t.Fatalf("OnCreate saw %v", created)
	}
	tb.Create(bg, alice, Spec{Type: 1, MaxMembers: 4}) // fails: already in a session of type 1
	if len(created) != 1 {
		t.Fatal("OnCreate called for a failed create")
	}
}

func TestHooksSetOnce(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, _ := player(tb, "alice")
	s := mustCreate(t, tb, alice, 1, 4)
	if !s.SetOnJoined(func(string, *User) {}) || s.SetOnJoined(func(string, *User) {}) {
		t.Fatal("SetOnJoined")
	}
	if !s.SetOnLeft(func(string, *User) {}) || s.SetOnLeft(func(string, *User) {}) {
		t.Fatal("SetOnLeft")
	}
	if !s.SetOnDeleted(func(string) {}) || s.SetOnDeleted(func(string) {}) {
		t.Fatal("SetOnDeleted")
	}
	if s.SetOnJoin(nil) {
		t.Fatal("nil hook accepted")
	}
}

func TestErrorsMatchWireStatus(t *testing.T) {
	err := error(&OpError{Op: OpJoin, SessionID: "x", Err: ErrSessionFull})
	if !errors.Is(err, wire.StatusSessionFull) || wire.StatusOf(err) != wire.StatusSessionFull {
		t.Fatal("session errors must be the wire statuses")
	}
	if !IsJoinError(err) || IsLeaveError(err) || IsJoinError(ErrSessionFull) {
		t.Fatal("family helpers")
	}
	if !strings.Contains(err.Error(), "join x") {
		t.Fatalf("message %q", err.Error())
	}
	for op := OpCreate; op <= OpPropertySet; op++ {
		if op.String() == "unknown" {
			t.Errorf("op %d has no name", op)
		}
	}
}

func TestStats(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, _ := player(tb, "alice")
	bob, _ := player(tb, "bob")
	s := mustCreate(t, tb, alice, 3, 4)
	mustJoin(t, tb, s, bob)
	mustCreate(t, tb, bob, 5, 4)
	st := tb.Stats()
	if st.SessionsByType[3] != 1 || st.SessionsByType[5] != 1 || len(st.SessionsByType) != 2 || st.Members != 3 {
		t.Fatalf("stats = %+v", st)
	}
	before := st.Deliveries
	tb.Broadcast(bg, 3, s.ID(), 1, 1, []byte("x")) // 2 members
	tb.BroadcastFrom(bg, 3, alice, []byte("y"))    // 1 other member
	if got := tb.Stats().Deliveries - before; got != 3 {
		t.Fatalf("deliveries counted %d, want 3", got)
	}
	tb.Leave(bg, 3, s.ID(), bob)
	tb.Delete(bg, s.ID())
	if st := tb.Stats(); st.SessionsByType[3] != 0 || st.Members != 1 {
		t.Fatalf("stats after leave and delete = %+v", st)
	}
}

// TestLifecycleCounters follows Stats' Created, Deleted and Empty through a
// session's life: created, left empty, re-joined, left empty past its TTL
// (deleted), and deleted at once with members or while empty.
func TestLifecycleCounters(t *testing.T) {
	tb, clk := newTestTable(t)
	alice, _ := player(tb, "alice")
	bob, _ := player(tb, "bob")
	want := func(step string, created, deleted uint64, empty int64) {
		t.Helper()
		if st := tb.Stats(); st.Created != created || st.Deleted != deleted || st.Empty != empty {
			t.Fatalf("%s: created %d, deleted %d, empty %d; want %d, %d, %d",
				step, st.Created, st.Deleted, st.Empty, created, deleted, empty)
		}
	}
	want("new table", 0, 0, 0)
	s := mustCreate(t, tb, alice, 1, 4)
	want("created", 1, 0, 0)
	mustJoin(t, tb, s, bob)
	tb.Leave(bg, 1, s.ID(), alice)
	want("one of two left", 1, 0, 0)
	tb.Disconnect(bob)
	want("the last member disconnected", 1, 0, 1)
	bob, _ = player(tb, "bob")
	mustJoin(t, tb, s, bob)
	want("re-joined", 1, 0, 0)

	deleted := make(chan string, 1)
	s.SetOnDeleted(func(id string) { deleted <- id })
	tb.Leave(bg, 1, s.ID(), bob)
	want("left empty", 1, 0, 1)
	clk.advance(tb, MinEmptyTTL+time.Second)
	waitFor(t, deleted, "deletion at the TTL")
	want("deleted at the TTL", 1, 1, 0)

	full := mustCreate(t, tb, alice, 2, 4)
	empty := mustCreate(t, tb, bob, 3, 4)
	tb.Leave(bg, 3, empty.ID(), bob)
	want("two more, one empty", 3, 1, 1)
	tb.Delete(bg, full.ID())
	tb.Delete(bg, empty.ID())
	want("both deleted", 3, 3, 0)
	if err := tb.Delete(bg, empty.ID()); err == nil {
		t.Fatal("a deleted session was deleted again")
	}
	want("deleted twice", 3, 3, 0)
}

// TestReviewRegressions covers failure modes found in review.
func TestReviewRegressions(t *testing.T) {
	t.Run("calls after Close do not panic", func(t *testing.T) {
		tb, _ := newTestTable(t)
		alice, _ := player(tb, "alice")
		bob, _ := player(tb, "bob")
		s := mustCreate(t, tb, alice, 1, 4)
		s.SetOnTick(time.Second, func(string) {})
		tb.Leave(bg, 1, s.ID(), alice) // schedules the empty TTL
		tb.Close()
		if err := tb.Join(bg, 1, s.ID(), bob); err != nil {
			t.Fatal(err)
		}
		s.StopAllTicks()
		if err := tb.Delete(bg, s.ID()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a failed accept keeps the invite", func(t *testing.T) {
		tb, _ := newTestTable(t)
		alice, _ := player(tb, "alice")
		bob, _ := player(tb, "bob")
		carol, _ := player(tb, "carol")
		s := mustCreate(t, tb, alice, 1, 2)
		must(t, tb.Invite(bg, 1, s.ID(), alice, []string{"carol"}, InviteSpec{}))
		mustJoin(t, tb, s, bob)
		wantErr(t, tb.AcceptInvite(bg, 1, s.ID(), carol), ErrSessionFull, IsAcceptError)
		must(t, tb.Leave(bg, 1, s.ID(), bob))
		must(t, tb.AcceptInvite(bg, 1, s.ID(), carol))
		wantErr(t, tb.AcceptInvite(bg, 1, s.ID(), carol), ErrAlreadyInSession, IsAcceptError)
		must(t, tb.Leave(bg, 1, s.ID(), carol))
		wantErr(t, tb.AcceptInvite(bg, 1, s.ID(), carol), ErrNoInvite, IsAcceptError) // used up
	})
	t.Run("duplicate and too many invite targets", func(t *testing.T) {
		tb, _ := newTestTable(t)
		alice, _ := player(tb, "alice")
		_, victim := player(tb, "victim")
		s := mustCreate(t, tb, alice, 1, 2)
		targets := make([]string, 50)
		for i := range targets {
			targets[i] = "victim"
		}
		must(t, tb.Invite(bg, 1, s.ID(), alice, targets, InviteSpec{}))
		if n := len(victim.pushes(wire.CmdInviteReceived)); n != 1 {
			t.Fatalf("a target named 50 times got %d invites", n)
		}
		many := make([]string, tb.cfg.MaxInviteTargets+1)
		for i := range many {
			many[i] = "u" + strings.Repeat("x", i)
		}
		wantErr(t, tb.Invite(bg, 1, s.ID(), alice, many, InviteSpec{}), ErrBadRequest, IsInviteError)
	})
	t.Run("pushes over the payload limit are refused", func(t *testing.T) {
		tb, _ := newTestTable(t)
		alice, _ := player(tb, "alice")
		bob, bobRec := player(tb, "bob")
		s := mustCreate(t, tb, alice, 1, 2)
		mustJoin(t, tb, s, bob)
		max := int(wire.MaxMessageFor(tb.cfg.Wire.MaxPayload))
		wantErr(t, tb.BroadcastFrom(bg, 1, alice, make([]byte, max+1)), ErrTooLarge, IsSendError)
		wantErr(t, tb.MessageFrom(bg, 1, alice, []string{"bob"}, make([]byte, max+1)), ErrTooLarge, IsSendError)
		wantErr(t, tb.Broadcast(bg, 1, s.ID(), 1, 1, make([]byte, max+1)), ErrTooLarge, IsSendError)
		wantErr(t, tb.MessageTo(bg, 1, s.ID(), "alice", []string{"bob"}, 1, 1, make([]byte, max+1)), ErrTooLarge, IsSendError)
		wantErr(t, tb.Invite(bg, 1, s.ID(), alice, []string{"bob"}, InviteSpec{Msg: make([]byte, max+1)}), ErrTooLarge, IsInviteError)
		if n := len(bobRec.pushes(wire.CmdBroadcastReceived)) + len(bobRec.pushes(wire.CmdMessageReceived)); n != 0 {
			t.Fatalf("%d oversized pushes were sent", n)
		}
		// A message of exactly the limit goes through, and its push is
		// within the payload limit.
		// within the payload limit (random bytes: compression cannot hide
		// the size).
		msg := make([]byte, max)
		rand.NewChaCha8([32]byte{1}).Read(msg)
		must(t, tb.BroadcastFrom(bg, 1, alice, msg))
		must(t, tb.MessageFrom(bg, 1, alice, []string{"bob"}, msg))
		got := append(bobRec.pushes(wire.CmdBroadcastReceived), bobRec.pushes(wire.CmdMessageReceived)...)
		if len(got) != 2 {
			t.Fatalf("%d pushes, want 2", len(got))
		}
		for _, p := range got {
			if len(p.payload) > int(tb.cfg.Wire.MaxPayload) {
				t.Fatalf("a push of %d bytes, over the %d limit", len(p.payload), tb.cfg.Wire.MaxPayload)
			}
		}
	})
	t.Run("empty TTL is capped", func(t *testing.T) {
		tb, _ := newTestTable(t)
		alice, _ := player(tb, "alice")
		s, err := tb.Create(bg, alice, Spec{Type: 1, MaxMembers: 2, EmptyTTL: 18 * time.Hour})
		must(t, err)
		if s.emptyTTL != tb.cfg.MaxEmptyTTL {
			t.Fatalf("TTL %v, want the cap %v", s.emptyTTL, tb.cfg.MaxEmptyTTL)
		}
	})
	t.Run("too many properties refused before locking", func(t *testing.T) {
		tb, _ := newTestTable(t)
		alice, _ := player(tb, "alice")
		s := mustCreate(t, tb, alice, 1, 2)
		big := make(map[string]any, tb.cfg.MaxProperties+1)
		for i := range tb.cfg.MaxProperties + 1 {
			big[strings.Repeat("k", 1+i%100)+string(rune('a'+i/100))] = i
		}
		// A value checkProperty refuses: checked first, it would make the
		// error ErrBadProperty.
		big["bad"] = []int{1}
		if err := s.SetProperties(big); !errors.Is(err, ErrTooManyProperties) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("an offline user's join is undone", func(t *testing.T) {
		tb, _ := newTestTable(t)
		alice, _ := player(tb, "alice")
		s := mustCreate(t, tb, alice, 1, 4)
		ghost := &User{ID: "ghost", Conn: newRecorder()} // never connected
		wantErr(t, tb.Join(bg, 1, s.ID(), ghost), ErrUserNotFound, IsJoinError)
		if s.IsMember("ghost") || tb.SessionID(1, ghost) != "" {
			t.Fatal("an offline user stayed a member")
		}
	})
	t.Run("a join that raced a newer sign-in follows the new connection", func(t *testing.T) {
		tb, _ := newTestTable(t)
		alice, _ := player(tb, "alice")
		s := mustCreate(t, tb, alice, 1, 4)
		old, _ := player(tb, "bob")
		newer := &User{ID: "bob", SID: "sid-bob-2", Conn: newRecorder()}
		s.SetOnJoin(func(string, *User) bool { tb.Connect(newer); return true }) // the sign-in lands mid-join
		mustJoin(t, tb, s, old)
		if s.MemberSID("bob") != "sid-bob-2" {
			t.Fatalf("member SID %q: the session kept the replaced connection", s.MemberSID("bob"))
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
