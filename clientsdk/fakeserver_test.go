package clientsdk

import (
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtaci/kcp-go/v5"

	"github.com/coveyhq/covey/internal/kcptest"
	"github.com/coveyhq/covey/internal/stacks"
	"github.com/coveyhq/covey/wire"
)

// fakeServer is an in-test Covey server speaking the protocol the SDK
// expects, on TCP or KCP, for a handful of commands. Its behaviour is
// fixed per session ID, key or app command so that tests can provoke each
// reply:
//
//	Join "full" -> StatusSessionFull; Invite target "offline" -> StatusUserNotFound
//	Broadcast Msg "fail" -> StatusNotMember; otherwise echoed back as a BroadcastReceived push
//	app cmd 1: echo; 2: never answered; 3: held until 8 arrive, answered in reverse order;
//	4: answered with status payload[0]; 5: pushes app 1/1 {payload[0]+1}, then answers
type fakeServer struct {
	t          testing.TB
	network    string
	ln         net.Listener
	udp        *net.UDPConn  // KCP: the listener's socket (ServeConn does not close it)
	heartbeat  time.Duration // announced in SignInReply
	maxPayload uint32        // announced in SignInReply
	mute       bool          // never answer anything, not even sign-in
	versions   [2]uint16     // the protocol versions it speaks; zero: wire's
	chosen     uint16        // if set, the version it claims to choose whatever was offered

	conns chan *fakeConn // signed-in connections, for tests to push on
	wg    sync.WaitGroup
	mu    sync.Mutex
	all   []net.Conn
}

// fakeConn is the server side of one client connection.
type fakeConn struct {
	s      *fakeServer
	conn   net.Conn
	userID string
	silent atomic.Bool   // stop answering (a hung server)
	pings  chan struct{} // one per ping received
	frames chan wire.Frame
	wmu    sync.Mutex

	// Used only by the serving goroutine.
	held  []wire.Frame
	props map[string]wire.Value
}

// startServer starts a fake server on loopback; opts adjust it before it
// accepts. It stops at the end of the test.
func startServer(t testing.TB, network string, opts ...func(*fakeServer)) *fakeServer {
	t.Helper()
	s := &fakeServer{
		t: t, network: network, heartbeat: 5 * time.Second, maxPayload: wire.DefaultMaxPayload,
		conns: make(chan *fakeConn, 16),
	}
	for _, o := range opts {
		o(s)
	}
	var err error
	if network == "kcp" {
		// The SDK's KCP client speaks the UDP packet layer.
		if s.udp, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err == nil {
			s.ln, err = kcp.ServeConn(nil, 0, 0, kcptest.PlainPackets(s.udp))
		}
	} else {
		s.ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	s.wg.Add(1)
	go s.acceptLoop()
	t.Cleanup(func() {
		s.ln.Close()
		if s.udp != nil {
			s.udp.Close()
		}
		s.mu.Lock()
		for _, c := range s.all {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

func (s *fakeServer) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		if sess, ok := c.(*kcp.UDPSession); ok {
			sess.SetStreamMode(true)
			sess.SetNoDelay(1, 10, 2, 1)
			sess.SetWindowSize(128, 128)
			sess.SetMtu(1200)
			sess.SetACKNoDelay(true)
			sess.SetWriteDelay(false)
		}
		s.mu.Lock()
		s.all = append(s.all, c)
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

// accept returns the next signed-in connection.
func (s *fakeServer) accept(t *testing.T) *fakeConn {
	t.Helper()
	select {
	case fc := <-s.conns:
		return fc
	case <-time.After(5 * time.Second):
		t.Fatal("no connection signed in")
		return nil
	}
}

// serve runs one connection until it fails or is closed.
func (s *fakeServer) serve(c net.Conn) {
	defer s.wg.Done()
	defer c.Close()
	fc := &fakeConn{
		s: s, conn: c, pings: make(chan struct{}, 1024), frames: make(chan wire.Frame, 1024),
		props: make(map[string]wire.Value),
	}
	dec := wire.NewDecoder(wire.Config{MaxPayload: s.maxPayload})
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		dec.Write(buf[:n])
		for {
			f, ferr := dec.Next()
			if errors.Is(ferr, wire.ErrNeedMore) {
				break
			}
			if ferr != nil {
				return
			}
			if s.mute || fc.silent.Load() {
				continue
			}
			if fc.userID == "" {
				if !fc.signIn(f) {
					return
				}
				continue
			}
			fc.handle(f)
		}
		if err != nil {
			return
		}
	}
}

// signIn handles the first frame. It returns false to close.
func (fc *fakeConn) signIn(f wire.Frame) bool {
	if f.Ver != 0 || f.Cmd != wire.CmdSignIn {
		fc.reply(f, wire.StatusUnauthenticated, nil)
		return false
	}
	var req wire.SignInRequest
	if err := req.Consume(f.Payload); err != nil {
		fc.reply(f, wire.StatusBadRequest, nil)
		return false
	}
	lo, hi := wire.MinProtocolVersion, wire.ProtocolVersion
	if fc.s.versions != [2]uint16{} {
		lo, hi = fc.s.versions[0], fc.s.versions[1]
	}
	version := min(req.MaxVersion, hi)
	if version < max(req.MinVersion, lo) {
		fc.reply(f, wire.StatusBadVersion, nil)
		fc.push(0, wire.CmdBye, (&wire.Bye{Status: wire.StatusBadVersion, Reason: "this server speaks protocol versions 2 to 3"}).Append(nil))
		return false
	}
	if fc.s.chosen != 0 {
		version = fc.s.chosen
	}
	switch {
	case req.Token == "good-token" && req.UserID == "":
		fc.userID = "token-user"
	case req.Token == "" && req.UserID != "" && req.UserID != "reject":
		fc.userID = req.UserID
	default:
		fc.reply(f, wire.StatusAuthFailed, nil)
		fc.push(0, wire.CmdBye, (&wire.Bye{Status: wire.StatusAuthFailed, Reason: "invalid token"}).Append(nil))
		return false
	}
	rep := wire.SignInReply{
		Version: version, UserID: fc.userID, SID: "sid-" + fc.userID,
		HeartbeatMillis: uint32(fc.s.heartbeat / time.Millisecond), MaxPayload: fc.s.maxPayload,
		MaxMessage: wire.MaxMessageFor(fc.s.maxPayload),
	}
	fc.reply(f, wire.StatusOK, rep.Append(nil))
	fc.s.conns <- fc
	return true
}

// send writes one frame.
func (fc *fakeConn) send(h wire.Header, payload []byte) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	fc.conn.Write(wire.AppendFrame(nil, h, payload))
}

// push sends a push frame.
func (fc *fakeConn) push(ver uint8, cmd wire.Cmd, payload []byte) {
	fc.send(wire.Header{Ver: ver, Cmd: cmd, Flags: wire.FlagPush}, payload)
}

// pushCompressed sends a push frame whose payload is compressed (a Snappy
// block, as wire.Config.AppendFrame builds it).
func (fc *fakeConn) pushCompressed(t *testing.T, ver uint8, cmd wire.Cmd, payload []byte) {
	t.Helper()
	frame := wire.DefaultConfig().AppendFrame(nil, wire.Header{Ver: ver, Cmd: cmd, Flags: wire.FlagPush}, payload)
	if frame[7]&byte(wire.FlagCompressed) == 0 {
		t.Fatal("test payload did not compress")
	}
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	fc.conn.Write(frame)
}

// reply answers request f; success of a seq 0 request gets no reply.
func (fc *fakeConn) reply(f wire.Frame, st wire.Status, payload []byte) {
	if f.Seq == 0 && st == wire.StatusOK {
		return
	}
	fc.send(wire.Header{Ver: f.Ver, Cmd: f.Cmd, Flags: wire.FlagReply, Seq: f.Seq, Status: st}, payload)
}

// handle runs one request of a signed-in client.
func (fc *fakeConn) handle(f wire.Frame) {
	if f.Ver == 0 && f.Cmd == wire.CmdPing {
		select {
		case fc.pings <- struct{}{}:
		default:
		}
		fc.reply(f, wire.StatusOK, nil)
		return
	}
	cp := f
	cp.Payload = append([]byte(nil), f.Payload...)
	select {
	case fc.frames <- cp:
	default:
	}
	if f.Ver == 0 && f.Cmd == wire.CmdBye { // the client is leaving
		fc.push(0, wire.CmdBye, (&wire.Bye{Status: wire.StatusOK, Reason: "goodbye"}).Append(nil))
		fc.conn.Close()
		return
	}
	if f.Ver != 0 {
		fc.handleApp(cp)
		return
	}
	st, rep := fc.builtin(f)
	fc.reply(f, st, rep)
}

// handleApp runs application commands.
func (fc *fakeConn) handleApp(f wire.Frame) {
	switch f.Cmd {
	case 1:
		fc.reply(f, wire.StatusOK, f.Payload)
	case 2:
	case 3:
		fc.held = append(fc.held, f)
		if len(fc.held) == 8 {
			for i := len(fc.held) - 1; i >= 0; i-- {
				fc.reply(fc.held[i], wire.StatusOK, fc.held[i].Payload)
			}
			fc.held = nil
		}
	case 4:
		fc.reply(f, wire.Status(f.Payload[0]), nil)
	case 5:
		if f.Payload[0] < 255 {
			fc.push(1, 1, []byte{f.Payload[0] + 1})
		}
		fc.reply(f, wire.StatusOK, nil)
	default:
		fc.reply(f, wire.StatusUnknownCommand, nil)
	}
}

// builtin runs a built-in command and returns the reply.
func (fc *fakeConn) builtin(f wire.Frame) (wire.Status, []byte) {
	p := f.Payload
	bad := func(err error) bool { return err != nil }
	switch f.Cmd {
	case wire.CmdCreate:
		var m wire.CreateRequest
		if bad(m.Consume(p)) {
			return wire.StatusBadRequest, nil
		}
		if m.MaxMembers < 2 {
			return wire.StatusBadMaxMembers, nil
		}
		for _, kv := range m.Props {
			fc.props[kv.Key] = kv.Value
		}
		fc.props["ttl"] = wire.UintValue(uint64(m.TTLSeconds))
		return wire.StatusOK, (&wire.CreateReply{SessionID: "s-1"}).Append(nil)
	case wire.CmdJoin, wire.CmdLeave, wire.CmdAcceptInvite:
		var m wire.SessionRef
		if bad(m.Consume(p)) {
			return wire.StatusBadRequest, nil
		}
		switch m.SessionID {
		case "full":
			return wire.StatusSessionFull, nil
		case "nosuch":
			return wire.StatusSessionNotFound, nil
		}
		return wire.StatusOK, nil
	case wire.CmdKick:
		var m wire.KickRequest
		if bad(m.Consume(p)) {
			return wire.StatusBadRequest, nil
		}
		if m.UserID == fc.userID {
			return wire.StatusCannotKickSelf, nil
		}
		return wire.StatusOK, nil
	case wire.CmdBroadcast:
		var m wire.BroadcastRequest
		if bad(m.Consume(p)) {
			return wire.StatusBadRequest, nil
		}
		if string(m.Msg) == "fail" {
			return wire.StatusNotMember, nil
		}
		fc.send(wire.Header{Flags: wire.FlagPush, Cmd: wire.CmdBroadcastReceived},
			(&wire.MessagePush{Type: m.Type, SessionID: "s-1", SenderID: fc.userID, Msg: m.Msg}).Append(nil))
		return wire.StatusOK, nil
	case wire.CmdMessageTo:
		var m wire.MessageToRequest
		if bad(m.Consume(p)) {
			return wire.StatusBadRequest, nil
		}
		for _, r := range m.Recipients {
			if r == fc.userID {
				fc.push(0, wire.CmdMessageReceived,
					(&wire.MessagePush{Type: m.Type, SessionID: "s-1", SenderID: fc.userID, Msg: m.Msg}).Append(nil))
			}
		}
		return wire.StatusOK, nil
	case wire.CmdInvite:
		var m wire.InviteRequest
		if bad(m.Consume(p)) {
			return wire.StatusBadRequest, nil
		}
		st := wire.StatusOK
		for _, target := range m.Targets {
			if target == "offline" {
				st = wire.StatusUserNotFound
				continue
			}
			// The fake delivers every invitation to the inviter itself.
			fc.push(0, wire.CmdInviteReceived, (&wire.InvitePush{
				Type: m.Type, SessionID: "s-1", FromUserID: fc.userID, Ver: m.Ver, Cmd: m.Cmd,
				ExpiresUnixMillis: 1700000000000 + uint64(m.TTLSeconds)*1000, Msg: m.Msg,
			}).Append(nil))
		}
		return st, nil
	case wire.CmdGetProperty:
		var m wire.PropertyKeyRequest
		if bad(m.Consume(p)) {
			return wire.StatusBadRequest, nil
		}
		v, ok := fc.props[m.Key]
		return wire.StatusOK, (&wire.PropertyReply{Exists: ok, Value: v}).Append(nil)
	case wire.CmdGetProperties:
		var m wire.PropertyKeysRequest
		if bad(m.Consume(p)) {
			return wire.StatusBadRequest, nil
		}
		var rep wire.PropsReply
		for _, k := range m.Keys {
			if v, ok := fc.props[k]; ok {
				rep.Props = append(rep.Props, wire.KeyValue{Key: k, Value: v})
			}
		}
		return wire.StatusOK, rep.Append(nil)
	case wire.CmdGetAllProperties:
		var m wire.TypeRequest
		if bad(m.Consume(p)) {
			return wire.StatusBadRequest, nil
		}
		var rep wire.PropsReply
		for k, v := range fc.props {
			rep.Props = append(rep.Props, wire.KeyValue{Key: k, Value: v})
		}
		return wire.StatusOK, rep.Append(nil)
	case wire.CmdSetProperty, wire.CmdSetPropertyIfNotExists:
		var m wire.SetPropertyRequest
		if bad(m.Consume(p)) {
			return wire.StatusBadRequest, nil
		}
		if _, ok := fc.props[m.Key]; ok && f.Cmd == wire.CmdSetPropertyIfNotExists {
			return wire.StatusPropertyExists, nil
		}
		fc.props[m.Key] = m.Value
		return wire.StatusOK, nil
	case wire.CmdSetProperties:
		var m wire.SetPropertiesRequest
		if bad(m.Consume(p)) {
			return wire.StatusBadRequest, nil
		}
		for _, kv := range m.Props {
			fc.props[kv.Key] = kv.Value
		}
		return wire.StatusOK, nil
	case wire.CmdIncrProperty:
		var m wire.IncrPropertyRequest
		if bad(m.Consume(p)) {
			return wire.StatusBadRequest, nil
		}
		old, ok := fc.props[m.Key]
		if ok && old.Kind != wire.KindInt {
			return wire.StatusNotNumeric, nil
		}
		v := wire.IntValue(old.Int() + m.Delta)
		fc.props[m.Key] = v
		return wire.StatusOK, (&wire.PropertyReply{Exists: true, Value: v}).Append(nil)
	case wire.CmdCompareAndSetProperty:
		var m wire.CompareAndSetRequest
		if bad(m.Consume(p)) {
			return wire.StatusBadRequest, nil
		}
		old, ok := fc.props[m.Key]
		if ok != m.HasOld || (ok && old != m.Old) {
			return wire.StatusCompareFailed, nil
		}
		fc.props[m.Key] = m.New
		return wire.StatusOK, nil
	case wire.CmdDeleteProperty:
		var m wire.PropertyKeyRequest
		if bad(m.Consume(p)) {
			return wire.StatusBadRequest, nil
		}
		_, ok := fc.props[m.Key]
		delete(fc.props, m.Key)
		return wire.StatusOK, (&wire.BoolReply{Value: ok}).Append(nil)
	case wire.CmdGetMemberIDs:
		return wire.StatusOK, (&wire.StringsReply{Items: []string{fc.userID, "bob"}}).Append(nil)
	case wire.CmdGetMemberSIDs:
		return wire.StatusOK, (&wire.StringsReply{Items: []string{"sid-" + fc.userID, "sid-bob"}}).Append(nil)
	case wire.CmdGetMemberData:
		return wire.StatusOK, (&wire.MemberDataReply{Members: []wire.MemberData{
			{UserID: fc.userID, SID: "sid-" + fc.userID, Data: []wire.KeyValue{{Key: "lvl", Value: wire.UintValue(7)}}},
			{UserID: "bob", SID: "sid-bob"},
		}}).Append(nil)
	case wire.CmdGetSessionInfo:
		var m wire.SessionInfoRequest
		if bad(m.Consume(p)) {
			return wire.StatusBadRequest, nil
		}
		if m.SessionID != "s-1" {
			return wire.StatusSessionNotFound, nil
		}
		return wire.StatusOK, (&wire.SessionInfo{
			SessionID: "s-1", Type: 1, CurrentMembers: 2, MaxMembers: 4,
			MemberIDs: []string{fc.userID, "bob"}, OwnerID: fc.userID,
		}).Append(nil)
	case wire.CmdIsOwner:
		var m wire.TypeRequest
		if bad(m.Consume(p)) {
			return wire.StatusBadRequest, nil
		}
		return wire.StatusOK, (&wire.BoolReply{Value: m.Type == 1}).Append(nil)
	case wire.CmdGetUserSessions:
		if len(p) != 0 {
			return wire.StatusBadRequest, nil
		}
		return wire.StatusOK, (&wire.UserSessionsReply{Sessions: []wire.SessionRef{{Type: 1, SessionID: "s-1"}}}).Append(nil)
	}
	return wire.StatusUnknownCommand, nil
}

// nextFrame returns the next non-ping request the server received.
func (fc *fakeConn) nextFrame(t *testing.T) wire.Frame {
	t.Helper()
	select {
	case f := <-fc.frames:
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no request received")
		return wire.Frame{}
	}
}

// clientGoroutines counts the goroutines running a client's loops (its
// KCP connection runs none of its own).
func clientGoroutines() int {
	s := string(stacks.All())
	return strings.Count(s, "clientsdk.(*Client).readLoop") + strings.Count(s, "clientsdk.(*Client).writeLoop")
}
