package clientsdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coveyhq/covey/wire"
)

// wait bounds every wait of these tests; none is expected to come close.
const wait = 5 * time.Second

// forEachTransport runs f as parallel subtests over TCP and KCP.
func forEachTransport(t *testing.T, f func(t *testing.T, network string)) {
	for _, network := range []string{"tcp", "kcp"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			f(t, network)
		})
	}
}

// testCtx returns a context for one call.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// dial connects to s as alice (or as mod says) and closes the client at
// the end of the test.
func dial(t testing.TB, s *fakeServer, mod ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{Network: s.network, Addr: s.addr(), UserID: "alice", DialTimeout: wait}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := Dial(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// nextEvent returns the client's next event.
func nextEvent(t *testing.T, c *Client) Event {
	t.Helper()
	select {
	case ev, ok := <-c.Events():
		if !ok {
			t.Fatalf("Events closed; Err = %v", c.Err())
		}
		return ev
	case <-time.After(wait):
		t.Fatal("no event")
		return nil
	}
}

// waitDone waits for the client to close by itself.
func waitDone(t *testing.T, c *Client) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(wait):
		t.Fatal("client did not close")
	}
}

// requireStatus checks that err is a *StatusError for op and st.
func requireStatus(t *testing.T, err error, op string, st wire.Status) {
	t.Helper()
	var se *StatusError
	if !errors.Is(err, st) || !errors.As(err, &se) || se.Op != op || se.Status != st {
		t.Fatalf("err = %v, want *StatusError{%s, %v}", err, op, st)
	}
}

// TestSignInVersions: the SDK offers the versions it speaks; a server that
// speaks none of them refuses with BadVersion and its reason, and a server
// that claims a version the SDK did not offer is a protocol violation.
func TestSignInVersions(t *testing.T) {
	forEachTransport(t, func(t *testing.T, network string) {
		newer := startServer(t, network, func(s *fakeServer) { s.versions = [2]uint16{2, 3} })
		_, err := Dial(testCtx(t), Config{Network: network, Addr: newer.addr(), UserID: "alice"})
		var bye *ByeError
		if !errors.As(err, &bye) || bye.Status != wire.StatusBadVersion || !strings.Contains(bye.Reason, "versions 2 to 3") {
			t.Fatalf("a server of versions 2-3: err = %v, want *ByeError{BadVersion, its range}", err)
		}
		liar := startServer(t, network, func(s *fakeServer) { s.chosen = 9 })
		_, err = Dial(testCtx(t), Config{Network: network, Addr: liar.addr(), UserID: "alice"})
		if !errors.Is(err, ErrProtocol) {
			t.Fatalf("a server that chose version 9: err = %v, want ErrProtocol", err)
		}
	})
}

func TestSignIn(t *testing.T) {
	forEachTransport(t, func(t *testing.T, network string) {
		s := startServer(t, network)
		c := dial(t, s)
		if c.UserID() != "alice" || c.SID() != "sid-alice" {
			t.Errorf("UserID, SID = %q, %q", c.UserID(), c.SID())
		}
		if c.ProtocolVersion() != wire.ProtocolVersion || c.MaxMessage() != int(wire.MaxMessageFor(s.maxPayload)) {
			t.Errorf("ProtocolVersion, MaxMessage = %d, %d", c.ProtocolVersion(), c.MaxMessage())
		}
		c = dial(t, s, func(cfg *Config) { cfg.UserID, cfg.Token = "", "good-token" })
		if c.UserID() != "token-user" {
			t.Errorf("token sign-in: UserID = %q", c.UserID())
		}

		for _, bad := range []func(*Config){
			func(cfg *Config) { cfg.UserID, cfg.Token = "", "bad-token" },
			func(cfg *Config) { cfg.UserID = "reject" },
		} {
			cfg := Config{Network: network, Addr: s.addr(), UserID: "alice"}
			bad(&cfg)
			c, err := Dial(testCtx(t), cfg)
			if c != nil {
				t.Fatal("Dial returned a client on failure")
			}
			var bye *ByeError
			if !errors.As(err, &bye) || bye.Status != wire.StatusAuthFailed || bye.Reason == "" {
				t.Fatalf("err = %v, want *ByeError{AuthFailed, reason}", err)
			}
			if !errors.Is(err, ErrAuthFailed) {
				t.Errorf("errors.Is(%v, ErrAuthFailed) = false", err)
			}
		}
	})
}

func TestDialConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Addr: "127.0.0.1:1"},
		{Addr: "127.0.0.1:1", UserID: "a", Token: "t"},
		{UserID: "a"},
		{Network: "udp", Addr: "127.0.0.1:1", UserID: "a"},
		{Addr: "127.0.0.1:1", UserID: "a", EventBuffer: -1},
	} {
		if _, err := Dial(context.Background(), cfg); !errors.Is(err, ErrBadConfig) {
			t.Errorf("Dial(%+v) = %v, want ErrBadConfig", cfg, err)
		}
	}
}

func TestDialTimeoutAndCancel(t *testing.T) {
	forEachTransport(t, func(t *testing.T, network string) {
		s := startServer(t, network, func(s *fakeServer) { s.mute = true })
		start := time.Now()
		_, err := Dial(context.Background(), Config{Network: network, Addr: s.addr(), UserID: "alice", DialTimeout: 100 * time.Millisecond})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Dial to a mute server = %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Dial took %v", d)
		}

		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err = Dial(ctx, Config{Network: network, Addr: s.addr(), UserID: "alice"})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Dial with a cancelled context = %v, want Canceled", err)
		}
	})
}

func TestConcurrentCallsOutOfOrder(t *testing.T) {
	forEachTransport(t, func(t *testing.T, network string) {
		s := startServer(t, network)
		c := dial(t, s)
		ctx := testCtx(t)

		// The server holds 8 requests of app cmd 3 and answers them in
		// reverse order: each call must still get its own reply.
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Go(func() {
				want := fmt.Appendf(nil, "request %d", i)
				got, err := c.Request(ctx, 1, 3, want)
				if err == nil && !bytes.Equal(got, want) {
					err = fmt.Errorf("request %d got reply %q", i, got)
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}

		// Many concurrent calls of different kinds.
		const workers, calls = 16, 25
		var failures sync.Map
		for w := range workers {
			wg.Go(func() {
				for i := range calls {
					msg := fmt.Appendf(nil, "%d/%d", w, i)
					if got, err := c.Request(ctx, 1, 1, msg); err != nil || !bytes.Equal(got, msg) {
						failures.Store(string(msg), fmt.Sprint(got, err))
					}
					if _, err := c.IncrProperty(ctx, 1, "n", 1); err != nil {
						failures.Store("incr "+string(msg), err)
					}
					if err := c.Join(ctx, 1, "full"); !errors.Is(err, ErrSessionFull) {
						failures.Store("join "+string(msg), err)
					}
				}
			})
		}
		wg.Wait()
		failures.Range(func(k, v any) bool {
			t.Errorf("%v: %v", k, v)
			return true
		})
		if n, exists, err := c.GetProperty(ctx, 1, "n"); err != nil || !exists || n != int64(workers*calls) {
			t.Errorf("n = %v, %v, %v; want %d", n, exists, err, workers*calls)
		}
	})
}

func TestStatusErrors(t *testing.T) {
	forEachTransport(t, func(t *testing.T, network string) {
		s := startServer(t, network)
		c := dial(t, s)
		ctx := testCtx(t)

		requireStatus(t, c.Join(ctx, 1, "full"), "Join", wire.StatusSessionFull)
		if err := c.Join(ctx, 1, "full"); !errors.Is(err, ErrSessionFull) || errors.Is(err, ErrNotMember) {
			t.Errorf("errors.Is on %v: wrong sentinel match", err)
		}
		requireStatus(t, c.AcceptInvite(ctx, 1, "nosuch"), "AcceptInvite", wire.StatusSessionNotFound)
		requireStatus(t, c.Kick(ctx, 1, "alice"), "Kick", wire.StatusCannotKickSelf)
		requireStatus(t, c.Broadcast(ctx, 1, []byte("fail")), "Broadcast", wire.StatusNotMember)
		requireStatus(t, c.Invite(ctx, 1, []string{"offline"}, InviteOptions{}), "Invite", wire.StatusUserNotFound)
		_, err := c.Create(ctx, 1, 1, 0, nil)
		requireStatus(t, err, "Create", wire.StatusBadMaxMembers)

		if err := c.SetPropertyIfNotExists(ctx, 1, "k", "v"); err != nil {
			t.Fatal(err)
		}
		requireStatus(t, c.SetPropertyIfNotExists(ctx, 1, "k", "w"), "SetPropertyIfNotExists", wire.StatusPropertyExists)
		requireStatus(t, c.CompareAndSetProperty(ctx, 1, "k", nil, "w"), "CompareAndSetProperty", wire.StatusCompareFailed)
		requireStatus(t, c.CompareAndSetProperty(ctx, 1, "k", "x", "w"), "CompareAndSetProperty", wire.StatusCompareFailed)
		_, err = c.IncrProperty(ctx, 1, "k", 1)
		requireStatus(t, err, "IncrProperty", wire.StatusNotNumeric)
		_, err = c.SessionInfo(ctx, "nosuch")
		requireStatus(t, err, "GetSessionInfo", wire.StatusSessionNotFound)

		_, err = c.Request(ctx, 1, 4, []byte{byte(wire.StatusNotOwner)})
		requireStatus(t, err, "1/0x4", wire.StatusNotOwner)
		_, err = c.Request(ctx, 7, 0x99, nil)
		requireStatus(t, err, "7/0x99", wire.StatusUnknownCommand)
		if c.Err() != nil {
			t.Fatalf("client closed: %v", c.Err())
		}
	})
}

func TestLocalRefusals(t *testing.T) {
	forEachTransport(t, func(t *testing.T, network string) {
		s := startServer(t, network, func(s *fakeServer) { s.maxPayload = 1024 })
		c := dial(t, s)
		fc := s.accept(t)
		ctx := testCtx(t)

		requireStatus(t, c.SetProperty(ctx, 1, "k", map[string]int{}), "SetProperty", wire.StatusBadProperty)
		requireStatus(t, c.SetProperty(ctx, 1, "k", nil), "SetProperty", wire.StatusBadProperty)
		requireStatus(t, c.SetProperties(ctx, 1, map[string]any{"a": 1, "b": []int{}}), "SetProperties", wire.StatusBadProperty)
		requireStatus(t, c.CompareAndSetProperty(ctx, 1, "k", struct{}{}, 1), "CompareAndSetProperty", wire.StatusBadProperty)
		requireStatus(t, c.CompareAndSetProperty(ctx, 1, "k", 1, nil), "CompareAndSetProperty", wire.StatusBadProperty)
		_, err := c.Create(ctx, 1, 4, 0, map[string]any{"bad": 1i})
		requireStatus(t, err, "Create", wire.StatusBadProperty)
		_, err = c.Create(ctx, 1, 4, (math.MaxUint16+1)*time.Second, nil)
		requireStatus(t, err, "Create", wire.StatusBadRequest)
		_, err = c.Request(ctx, 0, uint16(wire.CmdJoin), nil)
		requireStatus(t, err, "Join", wire.StatusBadRequest)
		requireStatus(t, c.Send(0, uint16(wire.CmdJoin), nil), "Join", wire.StatusBadRequest)
		_, err = c.Request(ctx, 1, 1, make([]byte, 1025))
		requireStatus(t, err, "1/0x1", wire.StatusTooLarge)
		requireStatus(t, c.BroadcastAsync(1, make([]byte, 1100)), "Broadcast", wire.StatusTooLarge)

		// None of them reached the server: the first request it sees is
		// this one, and a payload of exactly the limit is fine.
		if _, err := c.Request(ctx, 1, 1, make([]byte, 1024)); err != nil {
			t.Fatal(err)
		}
		if f := fc.nextFrame(t); f.Ver != 1 || len(f.Payload) != 1024 {
			t.Errorf("server first received ver %d cmd %v with %d bytes", f.Ver, f.Cmd, len(f.Payload))
		}
	})
}

func TestOperations(t *testing.T) {
	forEachTransport(t, func(t *testing.T, network string) {
		s := startServer(t, network)
		c := dial(t, s)
		ctx := testCtx(t)
		check := func(what string, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}

		id, err := c.Create(ctx, 1, 4, 1500*time.Millisecond, map[string]any{"map": "dust", "round": 3, "speed": 1.5, "open": true, "seed": uint32(9)})
		check("Create", err)
		if id != "s-1" {
			t.Errorf("Create = %q", id)
		}
		all, err := c.GetAllProperties(ctx, 1)
		check("GetAllProperties", err)
		want := map[string]any{"map": "dust", "round": int64(3), "speed": 1.5, "open": true, "seed": uint64(9), "ttl": uint64(2)}
		if !reflect.DeepEqual(all, want) {
			t.Errorf("GetAllProperties = %v, want %v", all, want)
		}
		got, err := c.GetProperties(ctx, 1, []string{"map", "missing"})
		check("GetProperties", err)
		if !reflect.DeepEqual(got, map[string]any{"map": "dust"}) {
			t.Errorf("GetProperties = %v", got)
		}
		if v, ok, err := c.GetProperty(ctx, 1, "missing"); err != nil || ok || v != nil {
			t.Errorf("GetProperty(missing) = %v, %v, %v", v, ok, err)
		}
		check("SetProperty", c.SetProperty(ctx, 1, "hp", int8(-5)))
		check("SetProperties", c.SetProperties(ctx, 1, map[string]any{"a": "x", "b": float32(0.5)}))
		if v, ok, err := c.GetProperty(ctx, 1, "hp"); err != nil || !ok || v != int64(-5) {
			t.Errorf("GetProperty(hp) = %v, %v, %v", v, ok, err)
		}
		if n, err := c.IncrProperty(ctx, 1, "hp", -2); err != nil || n != -7 {
			t.Errorf("IncrProperty = %v, %v", n, err)
		}
		check("CompareAndSetProperty", c.CompareAndSetProperty(ctx, 1, "hp", -7, 100))
		check("CompareAndSetProperty new", c.CompareAndSetProperty(ctx, 1, "fresh", nil, "yes"))
		if got, err := c.GetProperties(ctx, 1, []string{"hp", "fresh", "b"}); err != nil ||
			!reflect.DeepEqual(got, map[string]any{"hp": int64(100), "fresh": "yes", "b": 0.5}) {
			t.Errorf("after CAS: %v, %v", got, err)
		}
		if existed, err := c.DeleteProperty(ctx, 1, "fresh"); err != nil || !existed {
			t.Errorf("DeleteProperty(fresh) = %v, %v", existed, err)
		}
		if existed, err := c.DeleteProperty(ctx, 1, "fresh"); err != nil || existed {
			t.Errorf("DeleteProperty(fresh) again = %v, %v", existed, err)
		}

		check("Join", c.Join(ctx, 1, "s-1"))
		check("Leave", c.Leave(ctx, 1, "s-1"))
		check("AcceptInvite", c.AcceptInvite(ctx, 1, "s-1"))
		check("Kick", c.Kick(ctx, 1, "bob"))

		ids, err := c.MemberIDs(ctx, 1)
		check("MemberIDs", err)
		sids, err := c.MemberSIDs(ctx, 1)
		check("MemberSIDs", err)
		if !reflect.DeepEqual(ids, []string{"alice", "bob"}) || !reflect.DeepEqual(sids, []string{"sid-alice", "sid-bob"}) {
			t.Errorf("MemberIDs, MemberSIDs = %v, %v", ids, sids)
		}
		md, err := c.MemberData(ctx, 1)
		check("MemberData", err)
		wantMD := []Member{{"alice", "sid-alice", map[string]any{"lvl": uint64(7)}}, {"bob", "sid-bob", map[string]any{}}}
		if !reflect.DeepEqual(md, wantMD) {
			t.Errorf("MemberData = %v", md)
		}
		info, err := c.SessionInfo(ctx, "s-1")
		check("SessionInfo", err)
		wantInfo := SessionInfo{SessionID: "s-1", Type: 1, CurrentMembers: 2, MaxMembers: 4, MemberIDs: []string{"alice", "bob"}, OwnerID: "alice"}
		if !reflect.DeepEqual(info, wantInfo) {
			t.Errorf("SessionInfo = %+v", info)
		}
		if own, err := c.IsOwner(ctx, 1); err != nil || !own {
			t.Errorf("IsOwner(1) = %v, %v", own, err)
		}
		if own, err := c.IsOwner(ctx, 2); err != nil || own {
			t.Errorf("IsOwner(2) = %v, %v", own, err)
		}
		us, err := c.UserSessions(ctx)
		check("UserSessions", err)
		if !reflect.DeepEqual(us, []UserSession{{1, "s-1"}}) {
			t.Errorf("UserSessions = %v", us)
		}

		// The fake echoes broadcasts, messages to self and invitations back.
		check("Broadcast", c.Broadcast(ctx, 1, []byte("hello")))
		if ev := nextEvent(t, c); !reflect.DeepEqual(ev, BroadcastReceived{1, "s-1", "alice", []byte("hello")}) {
			t.Errorf("after Broadcast: %#v", ev)
		}
		check("MessageTo", c.MessageTo(ctx, 1, []string{"bob", "alice"}, []byte("psst")))
		if ev := nextEvent(t, c); !reflect.DeepEqual(ev, MessageReceived{1, "s-1", "alice", []byte("psst")}) {
			t.Errorf("after MessageTo: %#v", ev)
		}
		check("Invite", c.Invite(ctx, 1, []string{"bob"}, InviteOptions{Ver: 2, Cmd: 0x10, Msg: []byte("join us"), TTL: 30 * time.Second}))
		wantInv := InviteReceived{1, "s-1", "alice", 2, 0x10, time.UnixMilli(1700000030000), []byte("join us")}
		if ev := nextEvent(t, c); !reflect.DeepEqual(ev, wantInv) {
			t.Errorf("after Invite: %#v, want %#v", ev, wantInv)
		}
	})
}

func TestPushEvents(t *testing.T) {
	forEachTransport(t, func(t *testing.T, network string) {
		s := startServer(t, network)
		c := dial(t, s)
		fc := s.accept(t)

		member := func(cmd wire.Cmd, user string) {
			fc.push(0, cmd, (&wire.MemberEvent{Type: 1, SessionID: "s-1", UserID: user}).Append(nil))
		}
		big := bytes.Repeat([]byte("covey "), 100)
		member(wire.CmdMemberJoined, "bob")
		member(wire.CmdMemberLeft, "carol")
		member(wire.CmdKicked, "alice")
		member(wire.CmdOwnerChanged, "dave")
		fc.push(0, wire.CmdInviteReceived, (&wire.InvitePush{
			Type: 2, SessionID: "s-2", FromUserID: "bob", Ver: 1, Cmd: 0x10, ExpiresUnixMillis: 1700000000000, Msg: []byte("join us"),
		}).Append(nil))
		fc.push(0, wire.CmdBroadcastReceived, wire.AppendMessagePushFrame(nil, 0, 1, "s-1", "bob", []byte("hi"))[wire.HeaderSize:])
		fc.push(0, wire.CmdMessageReceived, (&wire.MessagePush{Type: 1, SessionID: "s-1", SenderID: "bob", Msg: []byte("psst")}).Append(nil))
		fc.push(0, wire.CmdSessionDeleted, (&wire.SessionDeletedPush{Type: 1, SessionID: "s-1"}).Append(nil))
		fc.push(0, wire.CmdPropertiesChanged, (&wire.PropertiesChangedPush{Type: 1, SessionID: "s-1", WriterID: "bob",
			Props: []wire.KeyValue{{Key: "ready_bob", Value: wire.BoolValue(true)}, {Key: "score", Value: wire.IntValue(3)}}}).Append(nil))
		fc.push(0, wire.CmdPropertiesChanged, (&wire.PropertiesChangedPush{Type: 1, SessionID: "s-1", Deleted: []string{"map"}}).Append(nil))
		fc.push(0, 0x02FF, []byte("a push from a newer server")) // ignored
		fc.push(3, 0x42, []byte{1, 2, 3})
		fc.pushCompressed(t, 1, 0x11, big)
		fc.pushCompressed(t, 0, wire.CmdBroadcastReceived, (&wire.MessagePush{Type: 1, SessionID: "s-1", SenderID: "bob", Msg: big}).Append(nil))
		fc.push(0, wire.CmdMemberJoined, []byte{1, 2}) // malformed

		want := []Event{
			MemberJoined{1, "s-1", "bob"},
			MemberLeft{1, "s-1", "carol"},
			Kicked{1, "s-1", "alice"},
			OwnerChanged{1, "s-1", "dave"},
			InviteReceived{2, "s-2", "bob", 1, 0x10, time.UnixMilli(1700000000000), []byte("join us")},
			BroadcastReceived{1, "s-1", "bob", []byte("hi")},
			MessageReceived{1, "s-1", "bob", []byte("psst")},
			SessionDeleted{1, "s-1"},
			PropertiesChanged{1, "s-1", "bob", map[string]any{"ready_bob": true, "score": int64(3)}, nil},
			PropertiesChanged{1, "s-1", "", map[string]any{}, []string{"map"}},
			AppMessage{3, 0x42, []byte{1, 2, 3}},
			AppMessage{1, 0x11, big},
			BroadcastReceived{1, "s-1", "bob", big},
		}
		// Receive them all before looking: events must own their bytes,
		// whatever the reader does with its buffers meanwhile.
		var got []Event
		for range want {
			got = append(got, nextEvent(t, c))
		}
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("event %d = %#v, want %#v", i, got[i], want[i])
			}
		}
		ae, ok := nextEvent(t, c).(AsyncError)
		if !ok || ae.Ver != 0 || ae.Cmd != uint16(wire.CmdMemberJoined) || !errors.Is(ae.Err, ErrProtocol) {
			t.Errorf("malformed push: %#v", ae)
		}
		if c.Err() != nil {
			t.Fatalf("client closed: %v", c.Err())
		}
	})
}

func TestAsyncCalls(t *testing.T) {
	forEachTransport(t, func(t *testing.T, network string) {
		s := startServer(t, network)
		c := dial(t, s, func(cfg *Config) { cfg.Wire = wire.DefaultConfig() })
		fc := s.accept(t)

		if err := c.BroadcastAsync(1, []byte("fail")); err != nil {
			t.Fatal(err)
		}
		ae, ok := nextEvent(t, c).(AsyncError)
		if !ok || ae.Ver != 0 || ae.Cmd != uint16(wire.CmdBroadcast) || !errors.Is(ae.Err, wire.StatusNotMember) {
			t.Fatalf("BroadcastAsync failure: %#v", ae)
		}
		requireStatus(t, ae.Err, "Broadcast", wire.StatusNotMember)
		if f := fc.nextFrame(t); f.Seq != 0 || f.Cmd != wire.CmdBroadcast {
			t.Errorf("BroadcastAsync sent seq %d cmd %v", f.Seq, f.Cmd)
		}

		// Success has no reply; the fake echoes the broadcast. The message
		// is large enough to travel compressed.
		big := bytes.Repeat([]byte("covey "), 200)
		if err := c.BroadcastAsync(1, big); err != nil {
			t.Fatal(err)
		}
		if ev := nextEvent(t, c); !reflect.DeepEqual(ev, BroadcastReceived{1, "s-1", "alice", big}) {
			t.Errorf("after BroadcastAsync: %#v", ev)
		}

		if err := c.Send(1, 4, []byte{byte(wire.StatusInternal)}); err != nil {
			t.Fatal(err)
		}
		ae, ok = nextEvent(t, c).(AsyncError)
		if !ok || ae.Ver != 1 || ae.Cmd != 4 || !errors.Is(ae.Err, ErrInternal) {
			t.Fatalf("Send failure: %#v", ae)
		}
	})
}

func TestBye(t *testing.T) {
	forEachTransport(t, func(t *testing.T, network string) {
		s := startServer(t, network)
		c := dial(t, s)
		fc := s.accept(t)

		pending := make(chan error, 1)
		go func() {
			_, err := c.Request(testCtx(t), 1, 2, nil) // never answered
			pending <- err
		}()
		fc.nextFrame(t) // the request is in flight
		fc.push(0, wire.CmdMemberJoined, (&wire.MemberEvent{Type: 1, SessionID: "s-1", UserID: "bob"}).Append(nil))
		fc.push(0, wire.CmdBye, (&wire.Bye{Status: wire.StatusReplaced, Reason: "signed in elsewhere"}).Append(nil))
		fc.conn.Close()

		waitDone(t, c)
		var bye *ByeError
		if err := c.Err(); !errors.As(err, &bye) || bye.Status != wire.StatusReplaced || bye.Reason != "signed in elsewhere" ||
			!errors.Is(err, wire.StatusReplaced) || !errors.Is(err, ErrReplaced) {
			t.Errorf("Err = %#v", err)
		}
		if err := <-pending; !errors.Is(err, ErrClosed) {
			t.Errorf("pending call: %v, want ErrClosed", err)
		}
		// The event before the bye is still delivered, then Events closes.
		if ev := nextEvent(t, c); !reflect.DeepEqual(ev, MemberJoined{1, "s-1", "bob"}) {
			t.Errorf("event = %#v", ev)
		}
		if _, ok := <-c.Events(); ok {
			t.Error("Events not closed")
		}
		if err := c.Join(testCtx(t), 1, "s-1"); !errors.Is(err, ErrClosed) {
			t.Errorf("call after bye: %v", err)
		}
		if err := c.BroadcastAsync(1, nil); !errors.Is(err, ErrClosed) {
			t.Errorf("async call after bye: %v", err)
		}
	})
}

func TestHeartbeat(t *testing.T) {
	forEachTransport(t, func(t *testing.T, network string) {
		const hb = 40 * time.Millisecond
		s := startServer(t, network, func(s *fakeServer) { s.heartbeat = hb })
		c := dial(t, s)
		fc := s.accept(t)
		// Five pings take longer than the three silent heartbeats after
		// which the client would give up: the replies keep it alive.
		for i := range 5 {
			select {
			case <-fc.pings:
			case <-time.After(wait):
				t.Fatalf("ping %d did not arrive", i)
			}
		}
		if err := c.Err(); err != nil {
			t.Fatalf("client closed: %v", err)
		}
		if _, err := c.Request(testCtx(t), 1, 1, []byte("x")); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDeadServer(t *testing.T) {
	forEachTransport(t, func(t *testing.T, network string) {
		const hb = 30 * time.Millisecond
		s := startServer(t, network, func(s *fakeServer) { s.heartbeat = hb })
		c := dial(t, s)
		fc := s.accept(t)
		fc.silent.Store(true) // hangs without closing: only the heartbeat can tell

		pending := make(chan error, 1)
		go func() {
			_, err := c.Request(testCtx(t), 1, 1, nil)
			pending <- err
		}()
		start := time.Now()
		waitDone(t, c)
		if err := c.Err(); !errors.Is(err, ErrServerTimeout) {
			t.Errorf("Err = %v, want ErrServerTimeout", err)
		}
		if d := time.Since(start); d < 2*hb {
			t.Errorf("gave up after %v, before three heartbeats of silence", d)
		}
		if err := <-pending; !errors.Is(err, ErrClosed) {
			t.Errorf("pending call: %v, want ErrClosed", err)
		}
	})
}

func TestContextCancel(t *testing.T) {
	forEachTransport(t, func(t *testing.T, network string) {
		s := startServer(t, network)
		c := dial(t, s)
		fc := s.accept(t)

		// App cmd 2 is never answered.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		if _, err := c.Request(ctx, 1, 2, nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Request = %v, want DeadlineExceeded", err)
		}
		ctx, cancel = context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		if _, err := c.Request(ctx, 1, 2, nil); !errors.Is(err, context.Canceled) {
			t.Errorf("Request = %v, want Canceled", err)
		}
		if n := c.cc.PendingCalls(); n != 0 {
			t.Errorf("%d calls still pending after their contexts ended", n)
		}
		// A call with a context already done is not sent.
		if err := c.Join(ctx, 1, "s-1"); !errors.Is(err, context.Canceled) {
			t.Errorf("Join with a done context = %v, want Canceled", err)
		}
		// The client is unaffected.
		if _, err := c.Request(testCtx(t), 1, 1, []byte("after")); err != nil {
			t.Fatal(err)
		}
		for _, want := range []wire.Cmd{2, 2, 1} {
			if f := fc.nextFrame(t); f.Cmd != want {
				t.Errorf("server received cmd %v, want %v", f.Cmd, want)
			}
		}
	})
}

func TestEventOverflow(t *testing.T) {
	forEachTransport(t, func(t *testing.T, network string) {
		s := startServer(t, network)
		c := dial(t, s, func(cfg *Config) { cfg.EventBuffer = 4 })
		fc := s.accept(t)
		for i := range 10 {
			fc.push(1, 1, []byte{byte(i)})
		}
		waitDone(t, c)
		if err := c.Err(); !errors.Is(err, ErrEventOverflow) {
			t.Fatalf("Err = %v, want ErrEventOverflow", err)
		}
		n := 0
		for ev := range c.Events() {
			if ev.(AppMessage).Payload[0] != byte(n) {
				t.Errorf("event %d = %#v", n, ev)
			}
			n++
		}
		if n != 4 {
			t.Errorf("got %d events before the overflow, want 4", n)
		}
	})
}

func TestCallsFromEventLoop(t *testing.T) {
	forEachTransport(t, func(t *testing.T, network string) {
		s := startServer(t, network)
		c := dial(t, s, func(cfg *Config) { cfg.EventBuffer = 1 })
		fc := s.accept(t)
		// The goroutine receiving events makes a call per event, and each
		// call makes the server push the next event before replying: the
		// reader must queue that event while the application waits for
		// the reply, which arrives behind it.
		fc.push(1, 1, []byte{0})
		for i := range 50 {
			ev, ok := nextEvent(t, c).(AppMessage)
			if !ok || ev.Payload[0] != byte(i) {
				t.Fatalf("event %d = %#v", i, ev)
			}
			if _, err := c.Request(testCtx(t), 1, 5, ev.Payload); err != nil {
				t.Fatalf("call %d from the event loop: %v", i, err)
			}
		}
	})
}

func TestCloseSaysBye(t *testing.T) {
	forEachTransport(t, func(t *testing.T, network string) {
		s := startServer(t, network)
		c := dial(t, s)
		fc := s.accept(t)
		if err := c.BroadcastAsync(1, []byte("last words")); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		c.Close()
		// The server answers the Bye at once: Close does not wait for its
		// timeout.
		if d := time.Since(start); d > closeFlushTimeout/2 {
			t.Errorf("Close took %v", d)
		}
		if f := fc.nextFrame(t); f.Cmd != wire.CmdBroadcast || !strings.Contains(string(f.Payload), "last words") {
			t.Errorf("server received %v %q, want the broadcast queued before Close", f.Cmd, f.Payload)
		}
		var bye wire.Bye
		if f := fc.nextFrame(t); f.Ver != 0 || f.Cmd != wire.CmdBye || f.Flags != 0 || bye.Consume(f.Payload) != nil || bye.Status != 0 {
			t.Errorf("server received %+v, want a Bye request", f)
		}
		if !errors.Is(c.Err(), ErrClosed) {
			t.Errorf("Err = %v, want ErrClosed", c.Err())
		}
	})
}

func TestCloseUnresponsiveServer(t *testing.T) {
	forEachTransport(t, func(t *testing.T, network string) {
		s := startServer(t, network)
		c := dial(t, s)
		s.accept(t).silent.Store(true)
		start := time.Now()
		c.Close()
		if d := time.Since(start); d < closeFlushTimeout || d > closeFlushTimeout+time.Second {
			t.Errorf("Close took %v, want about %v", d, closeFlushTimeout)
		}
	})
}

// TestCloseWaitsForGoroutines is not parallel: it counts goroutines.
func TestCloseWaitsForGoroutines(t *testing.T) {
	for _, network := range []string{"tcp", "kcp"} {
		t.Run(network, func(t *testing.T) {
			s := startServer(t, network)
			// Earlier tests' clients were closed by their cleanups, which
			// ran before this test started, and Close waits for the
			// client's goroutines: what may be left is their return from
			// the frames that closed Done (see the end of this test).
			waitNoClientGoroutines(t, "left by earlier tests")
			c := dial(t, s)
			if _, err := c.Request(testCtx(t), 1, 1, nil); err != nil {
				t.Fatal(err)
			}
			if n := clientGoroutines(); n < 2 {
				t.Fatalf("%d client goroutines running", n)
			}
			pending := make(chan error, 1)
			go func() {
				_, err := c.Request(testCtx(t), 1, 2, nil)
				pending <- err
			}()
			fc := s.accept(t)
			for fc.nextFrame(t).Cmd != 2 { // wait for the pending call to be sent
			}
			var wg sync.WaitGroup
			for range 3 {
				wg.Go(func() { c.Close() })
			}
			wg.Wait()
			select {
			case <-c.Done():
			default:
				t.Fatal("Done not closed when Close returned")
			}
			if _, ok := <-c.Events(); ok {
				t.Error("Events not closed")
			}
			if err := <-pending; !errors.Is(err, ErrClosed) {
				t.Errorf("pending call: %v", err)
			}
			if !errors.Is(c.Err(), ErrClosed) {
				t.Errorf("Err = %v", c.Err())
			}
			// A client's goroutines have finished when Close returns
			// (kcpconn runs none per connection): all that may be left is
			// their return from the frames that closed Done, which a
			// loaded machine can catch in a stack dump (CI did once), so
			// poll for that, with a deadline.
			waitNoClientGoroutines(t, "left after Close")
		})
	}
}

// waitNoClientGoroutines waits, with a deadline, until no client
// goroutine shows in a stack dump.
func waitNoClientGoroutines(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for n := clientGoroutines(); n != 0; n = clientGoroutines() {
		if time.Now().After(deadline) {
			t.Fatalf("%d client goroutines %s", n, what)
		}
		runtime.Gosched()
	}
}

// TestCreateQuiet checks that the Quiet option sets the Quiet flag of the
// Create request, and that Create without options sets none.
func TestCreateQuiet(t *testing.T) {
	s := startServer(t, "tcp")
	c := dial(t, s)
	fc := s.accept(t)
	ctx := testCtx(t)
	for _, quiet := range []bool{false, true} {
		var opts []CreateOption
		want := wire.CreateFlags(0)
		if quiet {
			opts, want = append(opts, Quiet()), wire.CreateQuiet
		}
		if _, err := c.Create(ctx, 1, 4, 0, nil, opts...); err != nil {
			t.Fatal(err)
		}
		var m wire.CreateRequest
		if f := fc.nextFrame(t); f.Cmd != wire.CmdCreate || m.Consume(f.Payload) != nil || m.Flags != want {
			t.Fatalf("quiet %v: Create sent %v with flags %v, want %v", quiet, f.Cmd, m.Flags, want)
		}
	}
}
