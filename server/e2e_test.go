package server

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/coveyhq/covey/clientsdk"
	"github.com/coveyhq/covey/session"
	"github.com/coveyhq/covey/wire"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// dialSDK signs a dev-mode player in through the SDK.
func dialSDK(t *testing.T, srv *Server, network, uid string) *clientsdk.Client {
	t.Helper()
	c, err := clientsdk.Dial(testCtx(t), clientsdk.Config{Network: network, Addr: srv.addrOf(network), UserID: uid})
	if err != nil {
		t.Fatalf("dial %s as %s: %v", network, uid, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitEvent reads c's events until one of type T for which match returns
// true arrives, and returns it. Other events are skipped.
func waitEvent[T clientsdk.Event](t *testing.T, c *clientsdk.Client, match func(T) bool) T {
	t.Helper()
	timeout := time.After(testTimeout)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("%s: events closed (%v) while waiting for %T", c.UserID(), c.Err(), *new(T))
			}
			if e, ok := ev.(T); ok && (match == nil || match(e)) {
				return e
			}
		case <-timeout:
			var zero T
			t.Fatalf("%s: timed out waiting for %T", c.UserID(), zero)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantStatus(t *testing.T, err error, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

// TestEndToEnd drives every built-in command and push through the SDK,
// over both transports.
func TestEndToEnd(t *testing.T) {
	for _, network := range transports {
		t.Run(network, func(t *testing.T) {
			srv := startServer(t)
			runEndToEnd(t, func(uid string) *clientsdk.Client { return dialSDK(t, srv, network, uid) })
		})
	}
}

// runEndToEnd is TestEndToEnd's scenario with players signed in by dial:
// alice creates the session, bob, carol and dave join it (the cluster
// tests place them on other nodes).
func runEndToEnd(t *testing.T, dial func(uid string) *clientsdk.Client) {
	ctx := testCtx(t)
	alice := dial("alice")
	bob := dial("bob")
	carol := dial("carol")

	// Create with properties; errors of create.
	id, err := alice.Create(ctx, 1, 3, time.Minute, map[string]any{"mode": "duel", "round": 1})
	must(t, err)
	_, err = alice.Create(ctx, 1, 3, 0, nil)
	wantStatus(t, err, session.ErrAlreadyInSession)
	_, err = bob.Create(ctx, 2, 1, 0, nil)
	wantStatus(t, err, session.ErrBadMaxMembers)
	_, err = bob.Create(ctx, 2, 4, 0, map[string]any{"bad": []int{1}})
	wantStatus(t, err, session.ErrBadProperty)

	// Invite, push, accept.
	err = alice.Invite(ctx, 1, []string{"bob", "ghost"}, clientsdk.InviteOptions{Ver: 3, Cmd: 30, Msg: []byte("join us"), TTL: time.Minute})
	wantStatus(t, err, session.ErrUserNotFound)
	inv := waitEvent(t, bob, func(e clientsdk.InviteReceived) bool { return e.SessionID == id })
	if inv.From != "alice" || inv.Ver != 3 || inv.Cmd != 30 || string(inv.Msg) != "join us" || inv.Type != 1 || time.Until(inv.Expires) <= 0 {
		t.Fatalf("invite = %+v", inv)
	}
	wantStatus(t, alice.Invite(ctx, 1, []string{"alice"}, clientsdk.InviteOptions{}), session.ErrCannotInviteSelf)
	wantStatus(t, carol.Invite(ctx, 1, []string{"bob"}, clientsdk.InviteOptions{}), session.ErrNotMember)
	wantStatus(t, carol.AcceptInvite(ctx, 1, id), session.ErrNoInvite)
	must(t, bob.AcceptInvite(ctx, 1, id))
	if e := waitEvent(t, alice, func(e clientsdk.MemberJoined) bool { return e.UserID == "bob" }); e.SessionID != id {
		t.Fatalf("MemberJoined = %+v", e)
	}

	// Expired invite.
	must(t, alice.Invite(ctx, 1, []string{"carol"}, clientsdk.InviteOptions{TTL: time.Second}))
	cinv := waitEvent(t, carol, func(e clientsdk.InviteReceived) bool { return e.SessionID == id })
	for time.Now().Before(cinv.Expires) { // the invite's own deadline, from the push
		time.Sleep(time.Until(cinv.Expires) + 10*time.Millisecond)
	}
	wantStatus(t, carol.AcceptInvite(ctx, 1, id), session.ErrNoInvite)

	// Join by ID; full.
	must(t, carol.Join(ctx, 1, id))
	dave := dial("dave")
	wantStatus(t, dave.Join(ctx, 1, id), session.ErrSessionFull)
	wantStatus(t, dave.Join(ctx, 1, "not-an-id"), session.ErrInvalidSessionID)
	if err := dave.Join(ctx, 1, id); !errors.Is(err, wire.StatusSessionFull) {
		t.Fatal("errors.Is must hold with the wire status too")
	}

	// Member queries.
	ids, err := bob.MemberIDs(ctx, 1)
	must(t, err)
	if !slices.Equal(ids, []string{"alice", "bob", "carol"}) {
		t.Fatalf("MemberIDs = %v", ids)
	}
	sids, err := bob.MemberSIDs(ctx, 1)
	must(t, err)
	if len(sids) != 3 || sids[1] != bob.SID() {
		t.Fatalf("MemberSIDs = %v (bob's SID %s)", sids, bob.SID())
	}
	members, err := carol.MemberData(ctx, 1)
	must(t, err)
	if len(members) != 3 || members[2].UserID != "carol" {
		t.Fatalf("MemberData = %+v", members)
	}
	info, err := dave.SessionInfo(ctx, id)
	must(t, err)
	if info.OwnerID != "alice" || info.MaxMembers != 3 || info.CurrentMembers != 3 || info.Type != 1 {
		t.Fatalf("SessionInfo = %+v", info)
	}
	if ok, err := alice.IsOwner(ctx, 1); !ok || err != nil {
		t.Fatalf("IsOwner(alice) = %v, %v", ok, err)
	}
	if ok, err := bob.IsOwner(ctx, 1); ok || err != nil {
		t.Fatalf("IsOwner(bob) = %v, %v", ok, err)
	}
	_, err = dave.IsOwner(ctx, 1)
	wantStatus(t, err, session.ErrNotMember)
	us, err := bob.UserSessions(ctx)
	must(t, err)
	if len(us) != 1 || us[0].SessionID != id || us[0].Type != 1 {
		t.Fatalf("UserSessions = %+v", us)
	}

	// Broadcast and messages.
	must(t, bob.Broadcast(ctx, 1, []byte("hello all")))
	for _, c := range []*clientsdk.Client{alice, carol} {
		e := waitEvent(t, c, func(e clientsdk.BroadcastReceived) bool { return string(e.Msg) == "hello all" })
		if e.Sender != "bob" || e.SessionID != id {
			t.Fatalf("BroadcastReceived = %+v", e)
		}
	}
	must(t, bob.BroadcastAsync(1, []byte("async")))
	waitEvent(t, alice, func(e clientsdk.BroadcastReceived) bool { return string(e.Msg) == "async" })
	must(t, dave.BroadcastAsync(1, []byte("not a member")))
	ae := waitEvent(t, dave, func(e clientsdk.AsyncError) bool { return true })
	wantStatus(t, ae.Err, session.ErrNotMember)
	must(t, alice.MessageTo(ctx, 1, []string{"carol"}, []byte("psst")))
	if e := waitEvent(t, carol, func(e clientsdk.MessageReceived) bool { return true }); e.Sender != "alice" || string(e.Msg) != "psst" {
		t.Fatalf("MessageReceived = %+v", e)
	}
	wantStatus(t, alice.MessageTo(ctx, 1, []string{"dave"}, []byte("x")), session.ErrRecipientNotFound)

	// Properties.
	v, ok, err := bob.GetProperty(ctx, 1, "mode")
	if err != nil || !ok || v != "duel" {
		t.Fatalf("GetProperty = %v, %v, %v", v, ok, err)
	}
	if _, ok, err := bob.GetProperty(ctx, 1, "nope"); ok || err != nil {
		t.Fatal("missing property exists")
	}
	must(t, bob.SetProperty(ctx, 1, "map", "dust"))
	must(t, bob.SetProperties(ctx, 1, map[string]any{"a": true, "b": 2.5, "c": uint8(9)}))
	wantStatus(t, bob.SetProperties(ctx, 1, map[string]any{"d": 1, "e": map[string]int{}}), session.ErrBadProperty) // refused by the SDK
	wantStatus(t, bob.SetProperty(ctx, 1, "", 1), session.ErrBadProperty)                                           // refused by the server
	wantStatus(t, bob.SetProperty(ctx, 1, "long", string(make([]byte, 5000))), session.ErrBadProperty)
	wantStatus(t, bob.SetProperties(ctx, 1, map[string]any{"d": 1, "": 2}), session.ErrBadProperty)
	props, err := carol.GetProperties(ctx, 1, []string{"a", "b", "c", "d"})
	must(t, err)
	if len(props) != 3 || props["a"] != true || props["b"] != 2.5 || props["c"] != uint64(9) {
		t.Fatalf("GetProperties = %v", props)
	}
	all, err := carol.GetAllProperties(ctx, 1)
	must(t, err)
	if len(all) != 6 || all["round"] != int64(1) {
		t.Fatalf("GetAllProperties = %v", all)
	}
	wantStatus(t, bob.SetPropertyIfNotExists(ctx, 1, "map", "x"), session.ErrPropertyExists)
	must(t, bob.SetPropertyIfNotExists(ctx, 1, "fresh", "x"))
	n, err := alice.IncrProperty(ctx, 1, "round", 2)
	if err != nil || n != 3 {
		t.Fatalf("IncrProperty = %d, %v", n, err)
	}
	_, err = alice.IncrProperty(ctx, 1, "mode", 1)
	wantStatus(t, err, session.ErrNotNumeric)
	wantStatus(t, alice.CompareAndSetProperty(ctx, 1, "round", 2, 10), session.ErrCompareFailed)
	must(t, alice.CompareAndSetProperty(ctx, 1, "round", 3, 10))
	must(t, alice.CompareAndSetProperty(ctx, 1, "new", nil, 1))
	wantStatus(t, alice.CompareAndSetProperty(ctx, 1, "new", nil, 1), session.ErrCompareFailed)
	_, _, err = dave.GetProperty(ctx, 1, "mode")
	wantStatus(t, err, session.ErrNotMember)
	wantStatus(t, dave.SetProperty(ctx, 1, "mode", "x"), session.ErrNotMember)

	// Kick: owner only, not self, target must be a member.
	wantStatus(t, bob.Kick(ctx, 1, "carol"), session.ErrNotOwner)
	wantStatus(t, alice.Kick(ctx, 1, "alice"), session.ErrCannotKickSelf)
	wantStatus(t, alice.Kick(ctx, 1, "dave"), session.ErrNotMember)
	must(t, alice.Kick(ctx, 1, "carol"))
	if e := waitEvent(t, carol, func(e clientsdk.Kicked) bool { return true }); e.SessionID != id || e.UserID != "carol" {
		t.Fatalf("Kicked = %+v", e)
	}
	waitEvent(t, bob, func(e clientsdk.MemberLeft) bool { return e.UserID == "carol" })

	// Leave, and owner handover when the owner leaves.
	must(t, dave.Join(ctx, 1, id))
	wantStatus(t, carol.Leave(ctx, 1, id), session.ErrNotMember)
	must(t, alice.Leave(ctx, 1, id))
	if e := waitEvent(t, bob, func(e clientsdk.OwnerChanged) bool { return true }); e.UserID != "bob" {
		t.Fatalf("OwnerChanged = %+v", e)
	}
	waitEvent(t, dave, func(e clientsdk.OwnerChanged) bool { return e.UserID == "bob" })
	if ok, _ := bob.IsOwner(ctx, 1); !ok {
		t.Fatal("bob is not the owner after alice left")
	}

	// Owner handover when the owner disconnects.
	bob.Close()
	waitEvent(t, dave, func(e clientsdk.MemberLeft) bool { return e.UserID == "bob" })
	if e := waitEvent(t, dave, func(e clientsdk.OwnerChanged) bool { return true }); e.UserID != "dave" {
		t.Fatalf("OwnerChanged on disconnect = %+v", e)
	}
}

// TestSecondSignInReplacesFirst signs the same user in twice, across
// transports: the first connection is told why and closed, and the
// memberships follow the new connection.
func TestSecondSignInReplacesFirst(t *testing.T) {
	srv := startServer(t)
	ctx := testCtx(t)
	owner := dialSDK(t, srv, "tcp", "owner")
	first := dialSDK(t, srv, "tcp", "player")
	id, err := owner.Create(ctx, 1, 4, 0, nil)
	must(t, err)
	must(t, first.Join(ctx, 1, id))

	second := dialSDK(t, srv, "kcp", "player")
	select {
	case <-first.Done():
	case <-time.After(testTimeout):
		t.Fatal("the first connection was not closed")
	}
	var bye *clientsdk.ByeError
	if !errors.As(first.Err(), &bye) || bye.Status != wire.StatusReplaced {
		t.Fatalf("first connection ended with %v, want a Bye with StatusReplaced", first.Err())
	}
	ids, err := second.MemberIDs(ctx, 1)
	must(t, err)
	if !slices.Equal(ids, []string{"owner", "player"}) {
		t.Fatalf("members after the second sign-in = %v", ids)
	}
	must(t, owner.Broadcast(ctx, 1, []byte("to the new connection")))
	waitEvent(t, second, func(e clientsdk.BroadcastReceived) bool { return string(e.Msg) == "to the new connection" })
}
