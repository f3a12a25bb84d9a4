package server

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coveyhq/covey/clientsdk"
	"github.com/coveyhq/covey/cluster"
	"github.com/coveyhq/covey/session"
	"github.com/coveyhq/covey/wire"
)

// testCluster is n in-process nodes on loopback, linked in one cluster.
type testCluster struct {
	nodes  []*Server
	faults *cluster.Faults
}

// startCluster runs n dev-mode nodes named n1..nN on loopback ports
// chosen by the kernel, each joining the first, and waits until every
// node has a link up to every other one. They stop at the end of the
// test.
func startCluster(t testing.TB, n int, mutate ...func(*Config)) *testCluster {
	t.Helper()
	tc := &testCluster{faults: &cluster.Faults{}}
	var seed string
	for i := range n {
		srv := startServer(t, func(c *Config) {
			c.Node = fmt.Sprintf("n%d", i+1)
			c.Cluster = ClusterConfig{MeshAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", Faults: tc.faults}
			if seed != "" {
				c.Cluster.Join = []string{seed}
			}
			for _, m := range mutate {
				m(c)
			}
		})
		if i == 0 {
			seed = srv.Cluster().GossipAddr()
		}
		tc.nodes = append(tc.nodes, srv)
	}
	tc.waitLinked(t)
	return tc
}

// waitLinked waits until every running node has a link up to every other
// running node.
func (tc *testCluster) waitLinked(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		ok := true
		for _, s := range tc.nodes {
			up := 0
			for _, p := range s.Cluster().Peers() {
				if p.LinkUp {
					up++
				}
			}
			if up != len(tc.nodes)-1 {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for _, s := range tc.nodes {
				t.Logf("%s peers: %+v", s.cfg.Node, s.Cluster().Peers())
			}
			t.Fatal("cluster not linked in time")
		}
		time.Sleep(10 * time.Millisecond) // polling the links' state: there is no event to wait on
	}
}

// TestClusterEndToEnd runs the single node's end-to-end scenario on a
// 3-node cluster, with the players placed all on the session's owner,
// round-robin over the nodes, and none but its creator on the owner:
// every status and push must be the single node's.
func TestClusterEndToEnd(t *testing.T) {
	placements := map[string]func(i int) int{
		"all-on-owner":  func(int) int { return 0 },
		"round-robin":   func(i int) int { return i % 3 },
		"none-on-owner": func(i int) int { return 1 + i%2 },
	}
	for _, name := range []string{"all-on-owner", "round-robin", "none-on-owner"} {
		place := placements[name]
		t.Run(name, func(t *testing.T) {
			tc := startCluster(t, 3)
			players := map[string]int{"alice": 0, "bob": 1, "carol": 2, "dave": 3}
			runEndToEnd(t, func(uid string) *clientsdk.Client {
				node := 0 // alice creates the session: its owner is her node
				if i := players[uid]; i > 0 {
					node = place(i)
				}
				return dialSDK(t, tc.nodes[node], "tcp", uid)
			})
			var forwarded uint64
			for _, n := range tc.nodes {
				forwarded += n.metrics.forwarded.Load()
			}
			t.Logf("%d commands forwarded to the owner", forwarded)
			if (forwarded == 0) != (name == "all-on-owner") {
				t.Fatalf("%d commands forwarded with placement %s", forwarded, name)
			}
		})
	}
}

// TestClusterBroadcastOrder: members on three nodes broadcast numbered
// messages at once; every member receives every other member's messages,
// each sender's in order.
func TestClusterBroadcastOrder(t *testing.T) {
	tc := startCluster(t, 3)
	ctx := testCtx(t)
	const members, msgs = 6, 200
	clients := make([]*clientsdk.Client, members)
	for i := range clients {
		clients[i] = dialSDK(t, tc.nodes[i%3], "tcp", fmt.Sprintf("p%d", i))
	}
	id, err := clients[0].Create(ctx, 1, members, 0, nil)
	must(t, err)
	for _, c := range clients[1:] {
		must(t, c.Join(ctx, 1, id))
	}
	for i, c := range clients {
		go func() {
			for k := range msgs {
				if err := c.BroadcastAsync(1, []byte(fmt.Sprintf("%d:%d", i, k))); err != nil {
					return
				}
			}
		}()
	}
	defer func() { // the cluster's metrics, once the traffic went through
		n1 := tc.nodes[0]
		for pattern, want := range map[string]float64{
			"covey_cluster_members": 3, `covey_mesh_link_up\{peer="n2"\}`: 1, `covey_mesh_link_up\{peer="n3"\}`: 1,
		} {
			if got := scrape(t, n1, pattern); got != want {
				t.Errorf("%s = %v, want %v", pattern, got, want)
			}
		}
		if got := scrape(t, n1, `covey_mesh_frames_in_total\{peer="n2"\}`); got < msgs {
			t.Errorf("%v mesh frames counted from n2, want at least %d", got, msgs)
		}
	}()
	for r, c := range clients {
		next := make([]int, members)
		for got := 0; got < (members-1)*msgs; {
			e := waitEvent(t, c, func(clientsdk.BroadcastReceived) bool { return true })
			var from, k int
			if _, err := fmt.Sscanf(string(e.Msg), "%d:%d", &from, &k); err != nil || from == r {
				t.Fatalf("member %d got %q", r, e.Msg)
			}
			if k != next[from] {
				t.Fatalf("member %d got message %d of sender %d, want %d", r, k, from, next[from])
			}
			next[from]++
			got++
		}
	}
}

// TestClusterSecondSignInElsewhere: a user signed in on n2 and in a
// session owned by n1 signs in again on n3: the first connection gets
// Bye Replaced, and the membership follows the new connection.
func TestClusterSecondSignInElsewhere(t *testing.T) {
	tc := startCluster(t, 3)
	ctx := testCtx(t)
	owner := dialSDK(t, tc.nodes[0], "tcp", "owner")
	first := dialSDK(t, tc.nodes[1], "tcp", "player")
	id, err := owner.Create(ctx, 1, 4, 0, nil)
	must(t, err)
	must(t, first.Join(ctx, 1, id))

	second := dialSDK(t, tc.nodes[2], "tcp", "player")
	select {
	case <-first.Done():
	case <-time.After(testTimeout):
		t.Fatal("the first connection was not closed")
	}
	ids, err := second.MemberIDs(ctx, 1)
	must(t, err)
	if !slices.Equal(ids, []string{"owner", "player"}) {
		t.Fatalf("members after the second sign-in = %v", ids)
	}
	must(t, owner.Broadcast(ctx, 1, []byte("to the new connection")))
	waitEvent(t, second, func(e clientsdk.BroadcastReceived) bool { return string(e.Msg) == "to the new connection" })
	_, err = second.Create(ctx, 1, 2, 0, nil)
	wantStatus(t, err, session.ErrAlreadyInSession) // the slot moved with the membership
}

// TestClusterNodeLost: a node that stops without leaving (its process
// killed) is cleaned up everywhere within 5 s: its members leave the
// sessions of the others (MemberLeft, OwnerChanged), and members of its
// sessions get SessionDeleted and may join another session of the type.
func TestClusterNodeLost(t *testing.T) {
	tc := startCluster(t, 3)
	ctx := testCtx(t)
	a := dialSDK(t, tc.nodes[0], "tcp", "a")
	b := dialSDK(t, tc.nodes[1], "tcp", "b")
	c := dialSDK(t, tc.nodes[2], "tcp", "c")
	onA, err := c.Create(ctx, 1, 4, 0, nil) // owned by n3, which is lost; c owns it
	must(t, err)
	must(t, a.Join(ctx, 1, onA))
	onB, err := b.Create(ctx, 2, 4, 0, nil) // owned by n2; c (on n3) joins
	must(t, err)
	must(t, c.Join(ctx, 2, onB))
	must(t, a.Join(ctx, 2, onB))

	start := time.Now()
	tc.faults.Block("n3", "n1") // n3 can no longer reach anyone, nor be reached
	tc.faults.Block("n3", "n2")
	waitEvent(t, b, func(e clientsdk.MemberLeft) bool { return e.SessionID == onB && e.UserID == "c" })
	waitEvent(t, a, func(e clientsdk.SessionDeleted) bool { return e.SessionID == onA })
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("clean-up took %v, want at most 5 s", d)
	}
	t.Logf("node loss cleaned up in %v", time.Since(start))
	ids, err := b.MemberIDs(ctx, 2)
	must(t, err)
	if !slices.Equal(ids, []string{"b", "a"}) {
		t.Fatalf("members of n2's session after losing n3: %v", ids)
	}
	if _, err := a.Create(ctx, 1, 2, 0, nil); err != nil {
		t.Fatalf("a could not create a session of the lost session's type: %v", err)
	}
}

// TestMeshHandshakeRefusals: the mesh address admits only a peer that
// proves it holds the cluster secret; anything else before that is
// answered and closed with a Bye, and nothing reaches the sessions.
func TestMeshHandshakeRefusals(t *testing.T) {
	srv := startServer(t, func(c *Config) {
		c.Node = "n1"
		c.Cluster = ClusterConfig{MeshAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", Secret: "the cluster secret, 32 bytes ok"}
	})
	mesh := srv.net.MeshAddr().String()
	hello := func(cluster string, proto uint16) []byte {
		h := wire.PeerHello{Proto: proto, Cluster: cluster, Node: "n0", Boot: 7, MaxPayload: 1 << 20, Nonce: make([]byte, wire.MeshNonceLen)}
		return h.Append(nil)
	}

	t.Run("a session command before the handshake", func(t *testing.T) {
		c := dialRaw(t, "tcp", mesh)
		c.request(0, wire.CmdExec, nil)
		if st := c.expectBye(); st != wire.StatusUnauthenticated {
			t.Fatalf("Bye %v, want Unauthenticated", st)
		}
	})
	t.Run("another cluster", func(t *testing.T) {
		c := dialRaw(t, "tcp", mesh)
		c.request(0, wire.CmdPeerHello, hello("other", wire.MeshProtocolVersion))
		if st := c.reply(1).Status; st != wire.StatusAuthFailed {
			t.Fatalf("hello answered %v, want AuthFailed", st)
		}
		c.expectBye()
	})
	t.Run("another mesh protocol version", func(t *testing.T) {
		c := dialRaw(t, "tcp", mesh)
		c.request(0, wire.CmdPeerHello, hello("covey", wire.MeshProtocolVersion+1))
		if st := c.reply(1).Status; st != wire.StatusBadVersion {
			t.Fatalf("hello answered %v, want BadVersion", st)
		}
		c.expectBye()
	})
	t.Run("a wrong secret", func(t *testing.T) {
		c := dialRaw(t, "tcp", mesh)
		dialerHello := hello("covey", wire.MeshProtocolVersion)
		c.request(0, wire.CmdPeerHello, dialerHello)
		r := c.reply(1)
		var rep wire.PeerHelloReply
		if r.Status != wire.StatusOK || rep.Consume(r.Payload) != nil {
			t.Fatalf("hello answered %v", r.Status)
		}
		wrongKey, _ := wire.MeshKey([]byte("another secret, just as long ok"))
		auth := wire.PeerAuth{Proof: wire.MeshDialerProof(wrongKey, dialerHello, rep.Hello.Append(nil))}
		c.request(0, wire.CmdPeerAuth, auth.Append(nil))
		if st := c.reply(2).Status; st != wire.StatusAuthFailed {
			t.Fatalf("auth answered %v, want AuthFailed", st)
		}
		if st := c.expectBye(); st != wire.StatusAuthFailed {
			t.Fatalf("Bye %v, want AuthFailed", st)
		}
	})
	if n := srv.Sessions().Len(); n != 0 {
		t.Fatalf("%d sessions after the refused peers", n)
	}
}

// TestClusterServerAPI: application code on a node that does not own a
// session uses the session API on it as on its own: by ID (broadcast,
// message, info, kick, delete) and as a member connected to it (member
// data with nodes, properties), with the owner's statuses.
func TestClusterServerAPI(t *testing.T) {
	tc := startCluster(t, 2)
	ctx := testCtx(t)
	alice := dialSDK(t, tc.nodes[0], "tcp", "alice")
	bob := dialSDK(t, tc.nodes[1], "tcp", "bob")
	id, err := alice.Create(ctx, 1, 4, 0, nil)
	must(t, err)
	must(t, bob.Join(ctx, 1, id))
	app := tc.nodes[1].Sessions() // n2's table; the session is n1's
	asBob := &session.User{ID: "bob"}

	must(t, app.Broadcast(ctx, 1, id, 3, 30, []byte("from n2's server code")))
	for _, c := range []*clientsdk.Client{alice, bob} {
		waitEvent(t, c, func(e clientsdk.AppMessage) bool { return e.Ver == 3 && e.Cmd == 30 })
	}
	must(t, app.MessageTo(ctx, 1, id, "server", []string{"alice"}, 3, 31, []byte("to alice")))
	waitEvent(t, alice, func(e clientsdk.AppMessage) bool { return e.Cmd == 31 && string(e.Payload) == "to alice" })
	wantStatus(t, app.MessageTo(ctx, 1, id, "server", []string{"nobody"}, 3, 31, nil), session.ErrRecipientNotFound)

	info, err := app.SessionInfo(ctx, id)
	must(t, err)
	if info.OwnerID != "alice" || !slices.Equal(info.MemberIDs, []string{"alice", "bob"}) {
		t.Fatalf("SessionInfo = %+v", info)
	}
	bogus, _ := session.NewID("n1")
	_, err = app.SessionInfo(ctx, bogus)
	wantStatus(t, err, session.ErrSessionNotFound)

	data, err := app.MemberData(ctx, 1, asBob)
	must(t, err)
	if len(data) != 2 || data[0].Node != "n1" || data[1].Node != "n2" || data[1].UserID != "bob" {
		t.Fatalf("MemberData = %+v", data)
	}
	ids, err := app.MemberIDs(ctx, 1, asBob)
	must(t, err)
	if !slices.Equal(ids, []string{"alice", "bob"}) {
		t.Fatalf("MemberIDs = %v", ids)
	}
	if ok, err := app.IsOwner(ctx, 1, asBob); ok || err != nil {
		t.Fatalf("IsOwner(bob) = %v, %v", ok, err)
	}

	must(t, app.SetProperty(ctx, 1, asBob, "score", 5))
	waitEvent(t, alice, func(e clientsdk.PropertiesChanged) bool { return e.Props["score"] == int64(5) })
	if n, err := app.IncrProperty(ctx, 1, asBob, "score", 2); n != 7 || err != nil {
		t.Fatalf("IncrProperty = %d, %v", n, err)
	}
	if v, ok, err := app.GetProperty(ctx, 1, asBob, "score"); v != int64(7) || !ok || err != nil {
		t.Fatalf("GetProperty = %v, %v, %v", v, ok, err)
	}
	wantStatus(t, app.CompareAndSetProperty(ctx, 1, asBob, "score", 1, 2), session.ErrCompareFailed)
	wantStatus(t, app.SetPropertyIfNotExists(ctx, 1, asBob, "score", 1), session.ErrPropertyExists)
	if existed, err := app.DeleteProperty(ctx, 1, asBob, "score"); !existed || err != nil {
		t.Fatalf("DeleteProperty = %v, %v", existed, err)
	}
	wantStatus(t, app.UpdateProperty(ctx, 1, asBob, "x", 1, func(bool, any, any) any { return 1 }), session.ErrUnavailable)
	_, err = app.MemberIDs(ctx, 1, &session.User{ID: "stranger"})
	wantStatus(t, err, session.ErrNotMember)

	must(t, app.Kick(ctx, 1, id, "bob"))
	waitEvent(t, bob, func(e clientsdk.Kicked) bool { return e.SessionID == id })
	waitEvent(t, alice, func(e clientsdk.MemberLeft) bool { return e.UserID == "bob" })
	if _, err := bob.Create(ctx, 1, 2, 0, nil); err != nil { // the owner freed bob's slot on n2
		t.Fatalf("bob could not create after the kick: %v", err)
	}
	must(t, app.Delete(ctx, id))
	waitEvent(t, alice, func(e clientsdk.SessionDeleted) bool { return e.SessionID == id })
	wantStatus(t, app.Delete(ctx, id), session.ErrSessionNotFound)
}

// TestClusterReplacedOnSameNodeStaysFindable: a second sign-in on the
// same node replaces the first; the closing first connection must not
// take the user out of the presence directory, so an invite from
// another node still reaches the second.
func TestClusterReplacedOnSameNodeStaysFindable(t *testing.T) {
	tc := startCluster(t, 3)
	ctx := testCtx(t)
	alice := dialSDK(t, tc.nodes[0], "tcp", "alice")
	id, err := alice.Create(ctx, 1, 4, 0, nil)
	must(t, err)
	for _, node := range []int{1, 2} { // the user's directory may be any node: try two
		uid := fmt.Sprintf("p%d", node)
		first := dialSDK(t, tc.nodes[node], "tcp", uid)
		second := dialSDK(t, tc.nodes[node], "tcp", uid)
		<-first.Done()
		must(t, alice.Invite(ctx, 1, []string{uid}, clientsdk.InviteOptions{}))
		waitEvent(t, second, func(e clientsdk.InviteReceived) bool { return e.SessionID == id })
		must(t, second.AcceptInvite(ctx, 1, id))
	}
}

// TestMeshHandshakeDeadline: a connection to the mesh address that
// trickles bytes and never finishes the handshake is closed after the
// handshake deadline, though it is never silent long enough for the idle
// timeout.
func TestMeshHandshakeDeadline(t *testing.T) {
	srv := startServer(t, func(c *Config) {
		c.Node = "n1"
		c.Cluster = ClusterConfig{MeshAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0"}
	})
	start := time.Now() // before the dial: the deadline runs from the accept
	c := dialRaw(t, "tcp", srv.net.MeshAddr().String())
	frame := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPeerHello, Seq: 1}, make([]byte, 64))
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for _, b := range frame { // one byte every 500 ms: never 3 s silent
			if _, err := c.c.Write([]byte{b}); err != nil {
				return
			}
			select {
			case <-time.After(500 * time.Millisecond):
			case <-t.Context().Done():
				return
			}
		}
	}()
	if st := c.expectBye(); st != wire.StatusUnauthenticated {
		t.Fatalf("Bye %v, want Unauthenticated", st)
	}
	if d := time.Since(start); d < 1900*time.Millisecond || d > 4*time.Second {
		t.Fatalf("closed after %v, want about 2 s (the deadline, checked every 100 ms)", d)
	}
	c.c.Close()
	<-closed
}

// TestClusterReconnectSameNodeUpdatesOwner: a member of a session owned
// by another node signs in again on its own node: the owner's record
// follows the new connection (its SID), as on a single node.
func TestClusterReconnectSameNodeUpdatesOwner(t *testing.T) {
	tc := startCluster(t, 2)
	ctx := testCtx(t)
	owner := dialSDK(t, tc.nodes[0], "tcp", "owner")
	first := dialSDK(t, tc.nodes[1], "tcp", "p")
	id, err := owner.Create(ctx, 1, 4, 0, nil)
	must(t, err)
	must(t, first.Join(ctx, 1, id))
	second := dialSDK(t, tc.nodes[1], "tcp", "p")
	<-first.Done()
	deadline := time.Now().Add(testTimeout)
	for {
		sids, err := owner.MemberSIDs(ctx, 1)
		must(t, err)
		if len(sids) == 2 && sids[1] == second.SID() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("owner's SIDs %v, want the new connection's %s", sids, second.SID())
		}
		time.Sleep(10 * time.Millisecond) // the update is a push to the owner: nothing to wait on from here
	}
	must(t, owner.Broadcast(ctx, 1, []byte("still here")))
	waitEvent(t, second, func(e clientsdk.BroadcastReceived) bool { return string(e.Msg) == "still here" })
}

// TestClusterPartitionDualSignIn: a user signed in on both sides of a
// partition keeps exactly one connection once it heals: the nodes claim
// their users again, the later claim takes the user over as a second
// sign-in does (Bye Replaced on the other side), and the survivor is the
// one the directory finds.
func TestClusterPartitionDualSignIn(t *testing.T) {
	tc := startCluster(t, 3)
	ctx := testCtx(t)
	tc.faults.Block("n3", "n1")
	tc.faults.Block("n3", "n2")
	deadline := time.Now().Add(testTimeout)
	for !linkDown(tc.nodes[0], "n3") || !linkDown(tc.nodes[2], "n1") || !linkDown(tc.nodes[2], "n2") {
		if time.Now().After(deadline) {
			t.Fatal("the partition did not take the links down")
		}
		time.Sleep(10 * time.Millisecond) // link state has no event to wait on
	}
	left := dialSDK(t, tc.nodes[0], "tcp", "p")
	right := dialSDK(t, tc.nodes[2], "tcp", "p")
	tc.faults.Heal()
	tc.waitLinked(t)

	var survivor, replaced *clientsdk.Client
	select {
	case <-left.Done():
		survivor, replaced = right, left
	case <-right.Done():
		survivor, replaced = left, right
	case <-time.After(testTimeout):
		t.Fatal("both connections of the user survived the heal")
	}
	var bye *clientsdk.ByeError
	if !errors.As(replaced.Err(), &bye) || bye.Status != wire.StatusReplaced {
		t.Fatalf("the replaced connection ended with %v, want Bye Replaced", replaced.Err())
	}
	if _, err := survivor.UserSessions(ctx); err != nil {
		t.Fatalf("the surviving connection: %v", err)
	}
	alice := dialSDK(t, tc.nodes[1], "tcp", "alice")
	id, err := alice.Create(ctx, 1, 4, 0, nil)
	must(t, err)
	must(t, alice.Invite(ctx, 1, []string{"p"}, clientsdk.InviteOptions{}))
	waitEvent(t, survivor, func(e clientsdk.InviteReceived) bool { return e.SessionID == id })
	select {
	case <-survivor.Done():
		t.Fatalf("the survivor was closed too: %v", survivor.Err())
	default:
	}
}

// linkDown reports whether srv's link to peer is down.
func linkDown(srv *Server, peer string) bool {
	for _, p := range srv.Cluster().Peers() {
		if p.Name == peer {
			return !p.LinkUp
		}
	}
	return true
}

// TestClusterJoinTimeoutUndone: a forwarded join whose call times out
// while the owner is busy fails for the client, and stays failed: the
// owner, running it late, undoes it at the request of the user's node.
// A retry sent while the owner is still busy joins, and stays: the undo
// frees nothing on the user's node, where the retry holds the slot.
func TestClusterJoinTimeoutUndone(t *testing.T) {
	// A short call timeout keeps the owner's loop, blocked in the hook
	// below, well inside the links' 3 s of allowed silence.
	tc := startCluster(t, 2, func(c *Config) { c.Cluster.CallTimeout = 300 * time.Millisecond })
	ctx := testCtx(t)
	alice := dialSDK(t, tc.nodes[0], "tcp", "alice")
	id, err := alice.Create(ctx, 1, 4, 0, nil)
	must(t, err)
	s, ok := tc.nodes[0].Sessions().Session(id)
	if !ok {
		t.Fatal("the session is not on its owner")
	}
	release := make(chan struct{})
	var first sync.Once
	s.SetOnJoin(func(_ string, u *session.User) bool {
		if u.ID == "bob" {
			first.Do(func() { // the first join only: the owner is busy
				select {
				case <-release:
				case <-time.After(testTimeout):
				}
			})
		}
		return true
	})
	bob := dialSDK(t, tc.nodes[1], "tcp", "bob")
	if err := bob.Join(ctx, 1, id); !errors.Is(err, wire.StatusUnavailable) {
		t.Fatalf("join while the owner is busy: %v, want Unavailable", err)
	}
	if got, held := tc.nodes[1].Sessions().SessionIDByUser(1, &session.User{ID: "bob"}); held {
		t.Fatalf("bob's node still holds his slot (%s) after the join failed", got)
	}
	// The retry goes out behind the undo, while the owner is still busy.
	forwarded := tc.nodes[1].metrics.forwarded.Load()
	retried := make(chan error, 1)
	go func() { retried <- bob.Join(ctx, 1, id) }()
	for tc.nodes[1].metrics.forwarded.Load() == forwarded {
		time.Sleep(time.Millisecond) // polling a counter: the forward has no event to wait on
	}
	close(release)
	if err := <-retried; err != nil {
		t.Fatalf("retry: %v", err)
	}
	// The owner ran the late join, its undo, then the retry.
	waitEvent(t, alice, func(e clientsdk.MemberJoined) bool { return e.UserID == "bob" })
	waitEvent(t, alice, func(e clientsdk.MemberLeft) bool { return e.UserID == "bob" })
	waitEvent(t, alice, func(e clientsdk.MemberJoined) bool { return e.UserID == "bob" })
	if !s.IsMember("bob") {
		t.Fatal("bob's retry did not leave him a member")
	}
	if got, held := tc.nodes[1].Sessions().SessionIDByUser(1, &session.User{ID: "bob"}); !held || got != id {
		t.Fatalf("bob's node holds %q (%v) for him after the retry, want %s", got, held, id)
	}
	// Both views agree: leaving works and frees both.
	must(t, bob.Leave(ctx, 1, id))
	waitEvent(t, alice, func(e clientsdk.MemberLeft) bool { return e.UserID == "bob" })
	if _, held := tc.nodes[1].Sessions().SessionIDByUser(1, &session.User{ID: "bob"}); held || s.IsMember("bob") {
		t.Fatalf("after leaving: slot held %v, member %v", held, s.IsMember("bob"))
	}
}

// TestClusterLargeFrames: client frames over the mesh's default 1 MiB
// frame limit. With MaxPayload 2 MiB on both nodes the mesh takes them
// (each node accepts its client limit plus headroom) both ways: a Fanout
// from the owner and an Exec to it. With n1 at the default limit, n2
// sends n1 nothing n1 would refuse: a broadcast forwarded to an owner on
// n1 is answered TooLarge, a Fanout to n1 is not sent, and the link, and
// every membership across it, stays.
func TestClusterLargeFrames(t *testing.T) {
	const big = 2 << 20
	large := make([]byte, 1200<<10) // over 1 MiB, and random: it does not compress below it
	if _, err := rand.Read(large); err != nil {
		t.Fatal(err)
	}
	start := func(t *testing.T, n1Big bool) (a, b *clientsdk.Client, cl *testCluster) {
		cl = startCluster(t, 2, func(c *Config) {
			if c.Node == "n2" || n1Big {
				c.MaxPayload, c.MaxOutbound = big, 16<<20
			}
		})
		dial := func(srv *Server, uid string) *clientsdk.Client {
			c, err := clientsdk.Dial(testCtx(t), clientsdk.Config{Addr: srv.addrOf("tcp"), UserID: uid, Wire: wire.Config{MaxPayload: big}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
		return dial(cl.nodes[0], "a"), dial(cl.nodes[1], "b"), cl
	}
	// next returns c's next broadcast, failing on a sign that the session
	// or a member went away with the link.
	next := func(t *testing.T, c *clientsdk.Client) []byte {
		t.Helper()
		for ev := range c.Events() {
			switch e := ev.(type) {
			case clientsdk.BroadcastReceived:
				return e.Msg
			case clientsdk.SessionDeleted, clientsdk.MemberLeft:
				t.Fatalf("%s got %T: the link was lost", c.UserID(), e)
			}
		}
		t.Fatalf("%s: closed", c.UserID())
		return nil
	}
	linksKept := func(t *testing.T, cl *testCluster) {
		t.Helper()
		for _, srv := range cl.nodes {
			for _, p := range srv.Cluster().Peers() {
				if p.Lost != 0 || !p.LinkUp {
					t.Fatalf("%s's view of %s: lost %d times, link up %v", srv.cfg.Node, p.Name, p.Lost, p.LinkUp)
				}
			}
		}
	}

	t.Run("same-limits", func(t *testing.T) {
		a, b, cl := start(t, true)
		ctx := testCtx(t)
		id, err := a.Create(ctx, 1, 4, 0, nil)
		must(t, err)
		must(t, b.Join(ctx, 1, id))
		must(t, a.Broadcast(ctx, 1, large)) // to b in a Fanout
		if got := next(t, b); !bytes.Equal(got, large) {
			t.Fatalf("b got %d bytes, want the large broadcast", len(got))
		}
		must(t, b.Broadcast(ctx, 1, large)) // to the owner in an Exec
		if got := next(t, a); !bytes.Equal(got, large) {
			t.Fatalf("a got %d bytes, want the large broadcast", len(got))
		}
		linksKept(t, cl)
	})

	t.Run("n1-smaller", func(t *testing.T) {
		a, b, cl := start(t, false)
		ctx := testCtx(t)
		// Owned by n1: b's large broadcast would be an Exec over n1's limit.
		s1, err := a.Create(ctx, 1, 4, 0, nil)
		must(t, err)
		must(t, b.Join(ctx, 1, s1))
		if err := b.Broadcast(ctx, 1, large); !errors.Is(err, wire.StatusTooLarge) {
			t.Fatalf("b's large broadcast to a session on n1: %v, want TooLarge", err)
		}
		// Owned by n2: b's large broadcast is not sent on to n1 (a could
		// not take it either), and what follows is.
		s2, err := b.Create(ctx, 2, 4, 0, nil)
		must(t, err)
		must(t, a.Join(ctx, 2, s2))
		must(t, b.Broadcast(ctx, 2, large))
		must(t, b.Broadcast(ctx, 2, []byte("after")))
		if got := next(t, a); string(got) != "after" {
			t.Fatalf("a got %d bytes, want the small broadcast", len(got))
		}
		must(t, a.Broadcast(ctx, 1, []byte("still here")))
		if got := next(t, b); string(got) != "still here" {
			t.Fatalf("b got %d bytes, want a's broadcast", len(got))
		}
		linksKept(t, cl)
	})
}

// directoryOf is cluster's rendezvous choice of uid's directory among
// nodes (cluster/presence.go, dirOf), for tests that need a user whose
// directory is a given node.
func directoryOf(uid string, nodes ...string) string {
	best, bestH := "", uint64(0)
	for _, n := range nodes {
		h := fnv.New64a()
		h.Write([]byte(uid))
		h.Write([]byte{0})
		h.Write([]byte(n))
		if s := h.Sum64(); best == "" || s > bestH || (s == bestH && n > best) {
			best, bestH = n, s
		}
	}
	return best
}

// TestClusterChainedTakeover: a user signs in on n1, then on n2, then on
// n3 while n1 has not yet answered n2's takeover (n1's loop is held in a
// join hook). n3 finds nothing to take on n2; when n1's answer reaches
// n2, the user is no longer there, and the memberships n1 let go are
// given up rather than left pointing at a node with no connection: the
// owner drops the user (MemberLeft) and n2 holds no slot for it.
func TestClusterChainedTakeover(t *testing.T) {
	uid := ""
	for i := 0; uid == ""; i++ {
		if u := fmt.Sprintf("user%d", i); directoryOf(u, "n1", "n2", "n3") == "n2" {
			uid = u // n2's claim is its own, made before its sign-in is answered
		}
	}
	tc := startCluster(t, 3)
	ctx := testCtx(t)
	alice := dialSDK(t, tc.nodes[0], "tcp", "alice")
	id, err := alice.Create(ctx, 1, 8, 0, nil)
	must(t, err)
	first := dialSDK(t, tc.nodes[0], "tcp", uid)
	must(t, first.Join(ctx, 1, id))
	waitEvent(t, alice, func(e clientsdk.MemberJoined) bool { return e.UserID == uid })
	s, _ := tc.nodes[0].Sessions().Session(id)

	entered, release := make(chan struct{}), make(chan struct{})
	s.SetOnJoin(func(_ string, u *session.User) bool {
		if u.ID == "blocker" {
			close(entered)
			select {
			case <-release:
			case <-time.After(testTimeout):
			}
		}
		return true
	})
	blocker := dialSDK(t, tc.nodes[1], "tcp", "blocker")
	go func() { _ = blocker.Join(ctx, 1, id) }()
	<-entered // n1's loop is held: n2's takeover will wait

	second := make(chan *clientsdk.Client, 1)
	go func() {
		c, err := clientsdk.Dial(ctx, clientsdk.Config{Addr: tc.nodes[1].addrOf("tcp"), UserID: uid})
		if err != nil {
			c = nil
		} else {
			t.Cleanup(func() { c.Close() })
		}
		second <- c
	}()
	for !tc.nodes[1].Sessions().Online(uid) {
		time.Sleep(time.Millisecond) // polling: the claim has no event here; it is made with the Connect
	}
	third := dialSDK(t, tc.nodes[2], "tcp", uid) // takes the user from n2, which has nothing yet
	close(release)

	waitEvent(t, alice, func(e clientsdk.MemberLeft) bool { return e.UserID == uid })
	if s.IsMember(uid) {
		t.Fatalf("the owner keeps %s, pointing at %q", uid, s.MemberNode(uid))
	}
	if got, held := tc.nodes[1].Sessions().SessionIDByUser(1, &session.User{ID: uid}); held {
		t.Fatalf("n2 holds %s's slot (%s) with no connection of it", uid, got)
	}
	if c := <-second; c != nil {
		<-c.Done() // replaced by the sign-in on n3
	}
	// The user, on n3, is in no session and may join again.
	must(t, third.Join(ctx, 1, id))
	waitEvent(t, alice, func(e clientsdk.MemberJoined) bool { return e.UserID == uid })
	if n := s.MemberNode(uid); n != "n3" {
		t.Fatalf("after joining again from n3 the owner points %s at %q", uid, n)
	}
}

// waitFor polls cond (cluster state with no event to wait on) until it
// holds, failing with what after testTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestClusterDirectoryMovesBack: a user's presence directory moves to
// another node while its own is cut off, and back after the heal. The
// node it moved to forgets the record (the user's node claims it again at
// the directory come back), so that when the directory moves to it once
// more, after the user signed in elsewhere, no stale record names the
// node the user left: the user's only connection stays, and an invite
// finds it there.
func TestClusterDirectoryMovesBack(t *testing.T) {
	uid := ""
	for i := 0; uid == ""; i++ {
		if u := fmt.Sprintf("user%d", i); directoryOf(u, "n1", "n2", "n3") == "n3" && directoryOf(u, "n1", "n2") == "n2" {
			uid = u
		}
	}
	tc := startCluster(t, 3)
	n2 := tc.nodes[1].Cluster()
	cut := func() {
		tc.faults.Block("n3", "n1")
		tc.faults.Block("n3", "n2")
		waitFor(t, "n3 cut off", func() bool {
			return linkDown(tc.nodes[0], "n3") && linkDown(tc.nodes[1], "n3") && linkDown(tc.nodes[2], "n1") && linkDown(tc.nodes[2], "n2")
		})
	}
	first := dialSDK(t, tc.nodes[0], "tcp", uid) // recorded on n3
	cut()
	waitFor(t, "n1 to claim the user again at n2", func() bool { return n2.DirectoryRecords() == 1 })
	tc.faults.Heal()
	tc.waitLinked(t)
	waitFor(t, "n2 to forget the record it no longer holds", func() bool { return n2.DirectoryRecords() == 0 })

	second := dialSDK(t, tc.nodes[1], "tcp", uid) // takes the user over from n1, through n3
	<-first.Done()
	cut()
	waitFor(t, "n2 to record the user, again its directory", func() bool { return n2.DirectoryRecords() == 1 })
	ctx := testCtx(t)
	carol := dialSDK(t, tc.nodes[0], "tcp", "carol")
	id, err := carol.Create(ctx, 1, 4, 0, nil)
	must(t, err)
	must(t, carol.Invite(ctx, 1, []string{uid}, clientsdk.InviteOptions{}))
	waitEvent(t, second, func(e clientsdk.InviteReceived) bool { return e.SessionID == id })
	if err := second.Err(); err != nil {
		t.Fatalf("the user's connection on n2 closed: %v", err)
	}
	want := 1.0 // the user; carol too if n2 is her directory
	if directoryOf("carol", "n1", "n2") == "n2" {
		want++
	}
	if got := scrape(t, tc.nodes[1], "covey_presence_records"); got != want {
		t.Errorf("covey_presence_records on n2 = %v, want %v", got, want)
	}
}

// TestClusterPipelinedSlotChanges: requests a client sends behind one
// whose outcome another node decides run as on a single node, after it.
// A Leave of a session owned elsewhere, then a Join of another one, a
// Leave of it and a Create of the type, in one write: each finds the
// slot its predecessor left, OK four times. And a second sign-in on a
// third node, with a Create of the type of the user's session behind it
// in the same write: the memberships have followed the user first, so
// the Create is refused AlreadyInSession, as on a single node. Before
// the connection was held meanwhile, the Join found the first session's
// slot still taken (AlreadyInSession), and the Create behind the sign-in
// ran before the takeover and gave the user a second session of the type.
func TestClusterPipelinedSlotChanges(t *testing.T) {
	single := startServer(t)
	tc := startCluster(t, 3)
	for _, place := range []struct {
		name                string
		owner, other, third *Server
	}{
		{"single node", single, single, single},
		{"cluster", tc.nodes[0], tc.nodes[1], tc.nodes[2]},
	} {
		t.Run(place.name, func(t *testing.T) {
			ctx := testCtx(t)
			alice := dialSDK(t, place.owner, "tcp", "alice")
			carol := dialSDK(t, place.owner, "tcp", "carol")
			a, err := alice.Create(ctx, 1, 4, 0, nil)
			must(t, err)
			b, err := carol.Create(ctx, 1, 4, 0, nil)
			must(t, err)

			bob := dialRaw(t, "tcp", place.other.addrOf("tcp"))
			bob.signIn("bob")
			ref := func(id string) []byte { return (&wire.SessionRef{Type: 1, SessionID: id}).Append(nil) }
			if f := bob.call(wire.CmdJoin, ref(a)); f.Status != wire.StatusOK {
				t.Fatalf("join: %v", f.Status)
			}
			var batch []byte
			var seqs []uint32
			add := func(cmd wire.Cmd, payload []byte) {
				bob.seq++
				batch = wire.AppendFrame(batch, wire.Header{Cmd: cmd, Seq: bob.seq}, payload)
				seqs = append(seqs, bob.seq)
			}
			add(wire.CmdLeave, ref(a))
			add(wire.CmdJoin, ref(b))
			add(wire.CmdLeave, ref(b))
			add(wire.CmdCreate, (&wire.CreateRequest{Type: 1, MaxMembers: 4}).Append(nil))
			bob.write(batch)
			for i, seq := range seqs {
				if f := bob.reply(seq); f.Status != wire.StatusOK {
					t.Fatalf("pipelined request %d (%v): %v, want OK", i, f.Cmd, f.Status)
				}
			}

			// Dan joins from the other node, then signs in on the third,
			// with a Create behind the sign-in.
			dan := dialSDK(t, place.other, "tcp", "dan")
			must(t, dan.Join(ctx, 1, a))
			again := dialRaw(t, "tcp", place.third.addrOf("tcp"))
			signIn := (&wire.SignInRequest{MinVersion: 1, MaxVersion: 1, UserID: "dan"}).Append(nil)
			batch = wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdSignIn, Seq: 1}, signIn)
			batch = wire.AppendFrame(batch, wire.Header{Cmd: wire.CmdCreate, Seq: 2}, (&wire.CreateRequest{Type: 1, MaxMembers: 4}).Append(nil))
			again.write(batch)
			if f := again.reply(1); f.Status != wire.StatusOK {
				t.Fatalf("second sign-in: %v", f.Status)
			}
			if f := again.reply(2); f.Status != wire.StatusAlreadyInSession {
				t.Fatalf("create behind the second sign-in: %v, want AlreadyInSession", f.Status)
			}
		})
	}
}
