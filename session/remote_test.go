package session

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/coveyhq/covey/wire"
)

// fakeRemote records what a table sends to other nodes.
type fakeRemote struct {
	mu           sync.Mutex
	fanouts      []fanoutCall
	removed      []removedCall
	disconnected []removedCall
}

type fanoutCall struct {
	node, id string
	uids     []string
	cmd      wire.Cmd
}

type removedCall struct {
	node, id string
	typ      uint8
	uid      string
	reason   wire.RemovedReason
}

func (r *fakeRemote) Fanout(node, id string, uids []string, frame []byte) {
	h, err := wire.ConsumeHeader(frame)
	if err != nil {
		panic(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fanouts = append(r.fanouts, fanoutCall{node: node, id: id, uids: slices.Clone(uids), cmd: h.Cmd})
}

func (r *fakeRemote) Removed(node, id string, typ uint8, uid string, reason wire.RemovedReason) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removed = append(r.removed, removedCall{node, id, typ, uid, reason})
}

func (r *fakeRemote) Disconnected(node, id string, typ uint8, uid string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.disconnected = append(r.disconnected, removedCall{node: node, id: id, typ: typ, uid: uid})
}

func (r *fakeRemote) DeliverToUser(uid string, frame []byte, done func(error)) {
	done(ErrUserNotFound)
}

func (r *fakeRemote) Call(context.Context, string, *wire.Exec) ([]byte, error) {
	return nil, ErrUnavailable
}

func (r *fakeRemote) Reconnected(node, id string, typ uint8, uid, sid string) {}

func (r *fakeRemote) take() ([]fanoutCall, []removedCall) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, rm := r.fanouts, r.removed
	r.fanouts, r.removed = nil, nil
	return f, rm
}

// remoteUser is a member connected to another node, as the cluster joins
// it on the owner.
func remoteUser(id, node string) *User {
	return &User{ID: id, SID: "sid-" + id, Node: node}
}

// TestFanoutOnePerNode: a broadcast to a session whose members sit on
// three nodes is delivered locally and handed to the Remote once per
// other node, naming exactly that node's members (the sender excluded).
func TestFanoutOnePerNode(t *testing.T) {
	tb, _ := newTestTable(t)
	rem := &fakeRemote{}
	tb.SetRemote(rem)
	owner, ownerRec := player(tb, "a")
	s := mustCreate(t, tb, owner, 1, 8)
	for _, u := range []*User{remoteUser("b1", "nb"), remoteUser("c1", "nc"), remoteUser("b2", "nb"), remoteUser("c2", "nc")} {
		mustJoin(t, tb, s, u)
	}
	local2, localRec := player(tb, "l")
	mustJoin(t, tb, s, local2)
	rem.take()

	if err := tb.BroadcastFrom(bg, 1, remoteUser("b1", "nb"), []byte("hi")); err != nil {
		t.Fatal(err)
	}
	fan, _ := rem.take()
	want := []fanoutCall{
		{node: "nb", id: s.ID(), uids: []string{"b2"}, cmd: wire.CmdBroadcastReceived},
		{node: "nc", id: s.ID(), uids: []string{"c1", "c2"}, cmd: wire.CmdBroadcastReceived},
	}
	if !slices.EqualFunc(fan, want, func(a, b fanoutCall) bool {
		return a.node == b.node && a.id == b.id && slices.Equal(a.uids, b.uids) && a.cmd == b.cmd
	}) {
		t.Fatalf("fanouts %+v, want %+v", fan, want)
	}
	if n := len(ownerRec.pushes(wire.CmdBroadcastReceived)); n != 1 {
		t.Fatalf("owner got %d broadcasts, want 1", n)
	}
	if n := len(localRec.pushes(wire.CmdBroadcastReceived)); n != 1 {
		t.Fatalf("local member got %d broadcasts, want 1", n)
	}
	if got := s.MemberNodes(); !slices.Equal(got, []string{"local", "nb", "nc", "nb", "nc", "local"}) {
		t.Fatalf("MemberNodes %v", got)
	}
}

// TestFanoutAllocatesNothing: fanning a broadcast out to remote nodes
// allocates nothing per message.
func TestFanoutAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts need a build without -race (sync.Pool drops items under it)")
	}
	tb, _ := newTestTable(t)
	tb.SetRemote(nopRemote{})
	owner := &User{ID: "a", Conn: nopConn{}}
	tb.Connect(owner)
	s := mustCreate(t, tb, owner, 1, 8)
	for _, u := range []*User{remoteUser("b1", "nb"), remoteUser("c1", "nc"), remoteUser("b2", "nb")} {
		mustJoin(t, tb, s, u)
	}
	msg := []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	if n := testing.AllocsPerRun(200, func() { _ = tb.BroadcastFrom(bg, 1, owner, msg) }); n != 0 {
		t.Fatalf("%.1f allocations per broadcast, want 0", n)
	}
}

type nopConn struct{}

func (nopConn) Deliver([]byte) {}

type nopRemote struct{}

func (nopRemote) Fanout(string, string, []string, []byte)                   {}
func (nopRemote) Removed(string, string, uint8, string, wire.RemovedReason) {}
func (nopRemote) Call(context.Context, string, *wire.Exec) ([]byte, error) {
	return nil, ErrUnavailable
}
func (nopRemote) DeliverToUser(_ string, _ []byte, done func(error)) { done(ErrUserNotFound) }
func (nopRemote) Reconnected(string, string, uint8, string, string)  {}
func (nopRemote) Disconnected(string, string, uint8, string)         {}

// TestRemoteMemberRemovals: a remote member's node is told of every
// removal it did not start itself: kick (after the Kicked push, on the
// same path), deletion; a disconnect through RemoveRemoteMember is
// accepted only from the member's own node, which is told nothing back.
func TestRemoteMemberRemovals(t *testing.T) {
	tb, _ := newTestTable(t)
	rem := &fakeRemote{}
	tb.SetRemote(rem)
	owner, _ := player(tb, "a")
	s := mustCreate(t, tb, owner, 1, 8)
	mustJoin(t, tb, s, remoteUser("b", "nb"))
	mustJoin(t, tb, s, remoteUser("c", "nc"))
	rem.take()

	if err := tb.KickAsOwner(bg, 1, owner, "b"); err != nil {
		t.Fatal(err)
	}
	fan, rm := rem.take()
	if len(fan) < 1 || fan[0].node != "nb" || fan[0].cmd != wire.CmdKicked {
		t.Fatalf("fanouts after kick %+v, want the Kicked push to nb first", fan)
	}
	if len(rm) != 1 || rm[0] != (removedCall{"nb", s.ID(), 1, "b", wire.RemovedKicked}) {
		t.Fatalf("removed after kick %+v", rm)
	}

	if err := tb.RemoveRemoteMember(s.ID(), "c", "nb"); err == nil {
		t.Fatal("node nb removed a member of node nc")
	}
	rem.take()
	if err := tb.RemoveRemoteMember(s.ID(), "c", "nc"); err != nil {
		t.Fatal(err)
	}
	if s.IsMember("c") {
		t.Fatal("c still a member after its node's disconnect")
	}
	// nc asked and has freed c's place itself: a Removed back could free
	// the place of a later join of this session (server.forwarded undoes
	// a join it gave up on with this request).
	if _, rm := rem.take(); len(rm) != 0 {
		t.Fatalf("removed after nc's own disconnect %+v, want nothing sent back", rm)
	}
	mustJoin(t, tb, s, remoteUser("d", "nd"))
	rem.take()
	if err := tb.Delete(bg, s.ID()); err != nil {
		t.Fatal(err)
	}
	_, rm = rem.take()
	if len(rm) != 1 || rm[0] != (removedCall{"nd", s.ID(), 1, "d", wire.RemovedDeleted}) {
		t.Fatalf("removed after delete %+v", rm)
	}
}

// TestNodeLost: when a node is lost, sessions owned here drop its members
// (MemberLeft to the rest, ownership handed over if it owned), and local
// users in its sessions lose them with a SessionDeleted push and may join
// another session of that type.
func TestNodeLost(t *testing.T) {
	tb, _ := newTestTable(t)
	rem := &fakeRemote{}
	tb.SetRemote(rem)
	a, aRec := player(tb, "a")
	s := mustCreate(t, tb, a, 1, 8)
	mustJoin(t, tb, s, remoteUser("x", "nx"))
	mustJoin(t, tb, s, remoteUser("y", "ny"))

	// a is also in a session of type 2 owned by nx.
	remoteID, err := NewID("nx")
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.HoldSlot("a", 2, remoteID); err != nil {
		t.Fatal(err)
	}
	if err := tb.HoldSlot("a", 2, "other"); err == nil {
		t.Fatal("second slot of type 2 held")
	}
	rem.take()

	tb.NodeLost("nx")
	if got := s.MemberIDs(); !slices.Equal(got, []string{"a", "y"}) {
		t.Fatalf("members after losing nx: %v", got)
	}
	if ev := aRec.memberEvents(t, wire.CmdMemberLeft); len(ev) != 1 || ev[0].UserID != "x" {
		t.Fatalf("MemberLeft pushes %+v", ev)
	}
	if _, rm := rem.take(); len(rm) != 0 {
		t.Fatalf("Removed sent to a lost node: %+v", rm)
	}
	del := aRec.pushes(wire.CmdSessionDeleted)
	if len(del) != 1 {
		t.Fatalf("%d SessionDeleted pushes, want 1", len(del))
	}
	var p wire.SessionDeletedPush
	if err := p.Consume(del[0].payload); err != nil || p.SessionID != remoteID || p.Type != 2 {
		t.Fatalf("SessionDeleted %+v (%v)", p, err)
	}
	if _, ok := tb.SessionIDByUser(2, a); ok {
		t.Fatal("slot of type 2 still held after its owner was lost")
	}
	if err := tb.HoldSlot("a", 2, "another"); err != nil {
		t.Fatalf("slot not free after the loss: %v", err)
	}
}

// TestDisconnectTellsRemoteOwners: a local user's disconnect frees its
// slots of remote sessions and tells their owners.
func TestDisconnectTellsRemoteOwners(t *testing.T) {
	tb, _ := newTestTable(t)
	rem := &fakeRemote{}
	tb.SetRemote(rem)
	a, _ := player(tb, "a")
	remoteID, _ := NewID("nx")
	if err := tb.HoldSlot("a", 3, remoteID); err != nil {
		t.Fatal(err)
	}
	tb.Disconnect(a)
	rem.mu.Lock()
	got := slices.Clone(rem.disconnected)
	rem.mu.Unlock()
	if len(got) != 1 || got[0] != (removedCall{node: "nx", id: remoteID, typ: 3, uid: "a"}) {
		t.Fatalf("Disconnected calls %+v", got)
	}
	if len(tb.UserSessions(a)) != 0 {
		t.Fatal("slot kept after disconnect")
	}
}

// TestDeliverLocal delivers a Fanout to the listed users connected here
// and skips the others.
func TestDeliverLocal(t *testing.T) {
	tb, _ := newTestTable(t)
	_, aRec := player(tb, "a")
	_, bRec := player(tb, "b")
	frame := wire.AppendFrame(nil, wire.Header{Ver: 1, Cmd: 7, Flags: wire.FlagPush}, []byte("x"))
	if n := tb.DeliverLocal([][]byte{[]byte("a"), []byte("gone")}, frame); n != 1 {
		t.Fatalf("delivered to %d, want 1", n)
	}
	if aRec.count() != 1 || bRec.count() != 0 {
		t.Fatalf("a got %d, b got %d", aRec.count(), bRec.count())
	}
	tb.Connect(&User{ID: "q", Conn: nopConn{}})
	uids := [][]byte{[]byte("q"), []byte("gone")}
	if n := testing.AllocsPerRun(100, func() { tb.DeliverLocal(uids, frame) }); n != 0 {
		t.Fatalf("%.1f allocations per DeliverLocal", n)
	}
}

// TestBroadcastFromNode: the owner's fast path for a forwarded broadcast
// does what BroadcastFrom does for a member the forwarding node holds,
// allocates nothing, and leaves everything else to the general path.
func TestBroadcastFromNode(t *testing.T) {
	tb, _ := newTestTable(t)
	rem := &fakeRemote{}
	tb.SetRemote(rem)
	owner, ownerRec := player(tb, "a")
	s := mustCreate(t, tb, owner, 1, 8)
	for _, u := range []*User{remoteUser("b1", "nb"), remoteUser("b2", "nb"), remoteUser("c1", "nc")} {
		mustJoin(t, tb, s, u)
	}
	rem.take()
	id := []byte(s.ID())

	ran, err := tb.BroadcastFromNode(1, id, []byte("b1"), "nb", []byte("hi"))
	if !ran || err != nil {
		t.Fatalf("BroadcastFromNode = %v, %v; want true, nil", ran, err)
	}
	fan, _ := rem.take()
	want := []fanoutCall{
		{node: "nb", id: s.ID(), uids: []string{"b2"}, cmd: wire.CmdBroadcastReceived},
		{node: "nc", id: s.ID(), uids: []string{"c1"}, cmd: wire.CmdBroadcastReceived},
	}
	if !slices.EqualFunc(fan, want, func(a, b fanoutCall) bool {
		return a.node == b.node && a.id == b.id && slices.Equal(a.uids, b.uids) && a.cmd == b.cmd
	}) {
		t.Fatalf("fanouts %+v, want %+v", fan, want)
	}
	if p := ownerRec.pushes(wire.CmdBroadcastReceived); len(p) != 1 {
		t.Fatalf("owner got %d broadcasts, want 1", len(p))
	}

	ran, err = tb.BroadcastFromNode(1, id, []byte("b1"), "nb", make([]byte, wire.MaxMessageFor(tb.cfg.Wire.MaxPayload)+1))
	if !ran || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v, %v; want true, ErrTooLarge", ran, err)
	}

	other := []byte(s.ID())
	other[0] ^= 1 // another valid-looking ID: no such session
	for name, c := range map[string]struct {
		typ     uint8
		id, uid []byte
		node    string
	}{
		"held by another node": {1, id, []byte("b1"), "nc"},
		"local member":         {1, id, []byte("a"), "nb"},
		"no node":              {1, id, []byte("a"), ""},
		"not a member":         {1, id, []byte("zz"), "nb"},
		"other type":           {2, id, []byte("b1"), "nb"},
		"no such session":      {1, other, []byte("b1"), "nb"},
	} {
		if ran, _ := tb.BroadcastFromNode(c.typ, c.id, c.uid, c.node, []byte("x")); ran {
			t.Errorf("%s: ran", name)
		}
	}
	if fan, _ := rem.take(); len(fan) != 0 {
		t.Fatalf("refused calls fanned out %+v", fan)
	}

	if raceEnabled {
		return // allocation counts need a build without -race
	}
	tb, _ = newTestTable(t)
	tb.SetRemote(nopRemote{})
	a := &User{ID: "a", Conn: nopConn{}}
	tb.Connect(a)
	s = mustCreate(t, tb, a, 1, 8)
	for _, u := range []*User{remoteUser("b1", "nb"), remoteUser("c1", "nc"), remoteUser("b2", "nb")} {
		mustJoin(t, tb, s, u)
	}
	id = []byte(s.ID())
	msg := []byte("0123456789abcdef0123456789abcdef")
	uid := []byte("b1")
	if n := testing.AllocsPerRun(200, func() { _, _ = tb.BroadcastFromNode(1, id, uid, "nb", msg) }); n != 0 {
		t.Fatalf("%.1f allocations per BroadcastFromNode, want 0", n)
	}
}
