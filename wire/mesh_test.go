package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

func TestMeshCmds(t *testing.T) {
	// Values and names, so that a renumbering fails here.
	cmds := []struct {
		c    Cmd
		v    uint16
		name string
	}{
		{CmdPeerHello, 0xF001, "PeerHello"},
		{CmdPeerAuth, 0xF002, "PeerAuth"},
		{CmdPeerPing, 0xF003, "PeerPing"},
		{CmdExec, 0xF010, "Exec"},
		{CmdFanout, 0xF013, "Fanout"},
		{CmdRemoved, 0xF014, "Removed"},
		{CmdPresenceClaim, 0xF040, "PresenceClaim"},
		{CmdPresenceRelease, 0xF041, "PresenceRelease"},
		{CmdPresenceAssert, 0xF043, "PresenceAssert"},
		{CmdPresenceLookup, 0xF042, "PresenceLookup"},
		{CmdUserTakeover, 0xF045, "UserTakeover"},
		{CmdDeliverToUser, 0xF046, "DeliverToUser"},
	}
	for _, tc := range cmds {
		if uint16(tc.c) != tc.v || tc.c.String() != tc.name {
			t.Errorf("%v = %#04x, want %s = %#04x", tc.c, uint16(tc.c), tc.name, tc.v)
		}
		if !tc.c.IsMesh() {
			t.Errorf("%v is not in the mesh range", tc.c)
		}
	}
	if CmdMembershipLost != 0x020A || CmdMembershipLost.String() != "MembershipLost" || CmdMembershipLost.IsMesh() {
		t.Errorf("CmdMembershipLost = %#04x %q", uint16(CmdMembershipLost), CmdMembershipLost)
	}
}

func TestMeshStatuses(t *testing.T) {
	if !StatusStale.IsMesh() || !Status(0xFFFF).IsMesh() {
		t.Error("StatusStale and 0xFFFF are not mesh statuses")
	}
	for s := range definedStatuses {
		if s.IsMesh() != (s == StatusStale) {
			t.Errorf("%v: IsMesh = %v", s, s.IsMesh())
		}
	}
	if Status(0xEFFF).IsMesh() {
		t.Error("0xEFFF is a mesh status")
	}
	if StatusOf(StatusUnavailable) != StatusUnavailable || StatusOf(StatusStale) != StatusStale {
		t.Error("StatusOf does not return the new statuses")
	}
}

// nonce returns the 32 bytes from, from+1, ...: the nonces of the
// handshake example.
func nonce(from byte) []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = from + byte(i)
	}
	return b
}

// The handshake example of PROTOCOL.md: node n1 dials n2 in cluster
// "prod", with the secret "example cluster secret".
var (
	exampleSecret        = "example cluster secret"
	exampleDialerHello   = PeerHello{Proto: 1, Cluster: "prod", Node: "n1", Boot: 0x0123456789abcdef, MaxPayload: 1 << 20, Nonce: nonce(0x00)}
	exampleAcceptorHello = PeerHello{Proto: 1, Cluster: "prod", Node: "n2", Boot: 0x1122334455667788, MaxPayload: 1 << 20, Nonce: nonce(0x20)}
	exampleKey           = "98ed2815210070ef05ab9353e6bba7d4dd6285eb2105308052b425583b6776fa"
	exampleAcceptorProof = "f97593fb751a8801205f07c0d2597d254a30717bcbe1804b9bbf070a7645460c"
	exampleDialerProof   = "293923933a2980abcea16ec602eca81977e8ce6898a26cd9373452149dcf481f"
)

// meshMessages returns a zero value of every mesh message type. FuzzMesh
// picks one by the first byte of its input, and its seed corpus names them
// by index: only append.
func meshMessages() []message {
	return []message{
		&Member{}, &PeerHello{}, &PeerHelloReply{}, &PeerAuth{}, &PeerPing{}, &Exec{}, &Fanout{},
		&Removed{}, &DeliverToUser{}, &PresenceClaim{}, &PresenceClaimReply{}, &PresenceRelease{},
		&PresenceLookup{}, &PresenceLookupReply{}, &UserTakeover{}, &UserTakeoverReply{}, &NodeMeta{},
		&AppBroadcast{}, &AppMessageTo{}, &NodeMemberDataReply{},
	}
}

// meshIndex returns the index of m's type in meshMessages.
func meshIndex(tb testing.TB, m message) int {
	tb.Helper()
	for i, z := range meshMessages() {
		if reflect.TypeOf(z) == reflect.TypeOf(m) {
			return i
		}
	}
	tb.Fatalf("%T is not in meshMessages", m)
	return -1
}

// meshVectors are the mesh payload examples of PROTOCOL.md, written as
// there; TestProtocolDocMeshVectors checks that the Mesh section holds
// exactly these.
var meshVectors = []payloadVector{
	{"Member", "05 616c696365 02 6331 0000000000000007 01 03 6c766c 03 0000000000000007",
		&Member{UID: "alice", SID: "c1", Gen: 7, Data: []KeyValue{{"lvl", UintValue(7)}}}},
	{"PeerHello", "0001 04 70726f64 02 6e31 0123456789abcdef 00100000 20 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
		&exampleDialerHello},
	{"PeerHelloReply", "0001 04 70726f64 02 6e32 1122334455667788 00100000 20 202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f 20 " + exampleAcceptorProof,
		&PeerHelloReply{Hello: exampleAcceptorHello, Proof: unhexMust(exampleAcceptorProof)}},
	{"PeerAuth", "20 " + exampleDialerProof, &PeerAuth{Proof: unhexMust(exampleDialerProof)}},
	{"PeerPing", "000004b0 00002580", &PeerPing{Sessions: 1200, Conns: 9600}},
	{"Exec", "02 7331 00000001 05 616c696365 02 6331 0000000000000007 00 010e 0f 0105726f756e64ffffffffffffffff",
		&Exec{SessionID: "s1", Epoch: 1, Caller: Member{UID: "alice", SID: "c1", Gen: 7}, Op: CmdIncrProperty,
			Payload: unhexMust("01 05 726f756e64 ffffffffffffffff")}},
	{"Fanout", "02 7331 00000001 02 03 626f62 05 6361726f6c 1b 0000000d000206020000000000000102733105616c696365026869",
		&Fanout{SessionID: "s1", Epoch: 1, Targets: []string{"bob", "carol"},
			Frame: unhexMust("0000000d 00 0206 02 00000000 0000 01 02 7331 05 616c696365 02 6869")}},
	{"Removed", "02 7331 01 03 626f62 01", &Removed{SessionID: "s1", Type: 1, UID: "bob", Reason: RemovedKicked}},
	{"AppBroadcast", "01 03 001e 02 6869", &AppBroadcast{Type: 1, Ver: 3, Cmd: 30, Msg: []byte("hi")}},
	{"DeliverToUser", "03 626f62 2b 0000001d000205020000000000000102733105616c6963650100100000018bcfe56800076a6f696e207573",
		&DeliverToUser{UID: "bob", Frame: unhexMust("0000001d 00 0205 02 00000000 0000 01 02 7331 05 616c696365 01 0010 0000018bcfe56800 07 6a6f696e207573")}},
	{"PresenceClaim", "05 616c696365 02 6339", &PresenceClaim{UID: "alice", SID: "c9"}},
	{"PresenceClaimReply", "0000000000000008 02 6e32 02 6331 0000000000000007",
		&PresenceClaimReply{Gen: 8, PrevNode: "n2", PrevSID: "c1", PrevGen: 7}},
	{"PresenceClaimReply first", "0000000000000001 00 00 0000000000000000", &PresenceClaimReply{Gen: 1}},
	{"PresenceRelease", "05 616c696365 0000000000000008", &PresenceRelease{UID: "alice", Gen: 8}},
	{"PresenceLookup", "05 616c696365", &PresenceLookup{UID: "alice"}},
	{"PresenceLookupReply", "02 6e31 02 6339 0000000000000008", &PresenceLookupReply{Node: "n1", SID: "c9", Gen: 8}},
	{"UserTakeover", "05 616c696365 0000000000000008 02 6339", &UserTakeover{UID: "alice", Gen: 8, NewSID: "c9"}},
	{"UserTakeoverReply", "01 01 02 7331", &UserTakeoverReply{Sessions: []SessionRef{{1, "s1"}}}},
	{"NodeMeta", "0001 0d 31302e302e302e313a37373032 0d 31302e302e302e313a37373030 0d 31302e302e302e313a37373030 00 0123456789abcdef",
		&NodeMeta{Proto: 1, MeshAddr: "10.0.0.1:7702", TCPAddr: "10.0.0.1:7700", KCPAddr: "10.0.0.1:7700",
			State: NodeAlive, Boot: 0x0123456789abcdef}},
}

// meshFrameVectors are the complete mesh frames of PROTOCOL.md: the
// handshake example, then session traffic.
var meshFrameVectors = []frameVector{
	{"request: PeerHello, seq 1",
		"00000037 00 f001 00 00000001 0000 " + meshVectors[1].hex,
		Header{Length: 55, Cmd: CmdPeerHello, Seq: 1}, nil, meshVectors[1].msg},
	{"reply: PeerHello, seq 1",
		"00000058 00 f001 01 00000001 0000 " + meshVectors[2].hex,
		Header{Length: 88, Cmd: CmdPeerHello, Flags: FlagReply, Seq: 1}, nil, meshVectors[2].msg},
	{"request: PeerAuth, seq 2",
		"00000021 00 f002 00 00000002 0000 " + meshVectors[3].hex,
		Header{Length: 33, Cmd: CmdPeerAuth, Seq: 2}, nil, meshVectors[3].msg},
	{"reply: PeerAuth, seq 2", "00000000 00 f002 01 00000002 0000",
		Header{Cmd: CmdPeerAuth, Flags: FlagReply, Seq: 2}, nil, nil},
	{"request: Exec, seq 3",
		"0000002b 00 f010 00 00000003 0000 " + meshVectors[5].hex,
		Header{Length: 43, Cmd: CmdExec, Seq: 3}, nil, meshVectors[5].msg},
	{"reply: Exec, seq 3, OK", "0000000a 00 f010 01 00000003 0000 01 02 0000000000000002",
		Header{Length: 10, Cmd: CmdExec, Flags: FlagReply, Seq: 3}, nil,
		&PropertyReply{Exists: true, Value: IntValue(2)}},
	{"reply: Exec, seq 3, NotMember", "00000000 00 f010 01 00000003 0013",
		Header{Cmd: CmdExec, Flags: FlagReply, Seq: 3, Status: StatusNotMember}, nil, nil},
	{"reply: Exec, seq 3, Stale", "00000000 00 f010 01 00000003 f000",
		Header{Cmd: CmdExec, Flags: FlagReply, Seq: 3, Status: StatusStale}, nil, nil},
	{"push: Fanout",
		"0000002e 00 f013 02 00000000 0000 " + meshVectors[6].hex,
		Header{Length: 46, Cmd: CmdFanout, Flags: FlagPush}, nil, meshVectors[6].msg},
}

func TestMeshVectors(t *testing.T) {
	for _, v := range meshVectors {
		t.Run(v.name, func(t *testing.T) {
			want := unhex(t, v.hex)
			prefix := []byte{0xAA}
			got := v.msg.Append(prefix)
			if !bytes.Equal(got[:1], prefix) || !bytes.Equal(got[1:], want) {
				t.Fatalf("Append = %x, want %x", got[1:], want)
			}
			if n := v.msg.Size(); n != len(want) {
				t.Errorf("Size = %d, want %d", n, len(want))
			}
			m := newLike(v.msg)
			if err := m.Consume(want); err != nil {
				t.Fatalf("Consume: %v", err)
			}
			if !reflect.DeepEqual(m, v.msg) {
				t.Errorf("Consume = %+v, want %+v", m, v.msg)
			}
			// Every strict prefix is an error, and leaves the message alone.
			for i := range len(want) {
				m := newLike(v.msg)
				if err := m.Consume(want[:i]); !errors.Is(err, ErrShort) {
					t.Errorf("Consume(%x) (prefix %d of %d) = %v, want ErrShort", want[:i], i, len(want), err)
				}
				if !reflect.ValueOf(m).Elem().IsZero() {
					t.Errorf("failed Consume modified the message: %+v", m)
				}
			}
			if err := newLike(v.msg).Consume(append(bytes.Clone(want), 0)); !errors.Is(err, ErrTrailing) {
				t.Errorf("Consume with a trailing byte = %v, want ErrTrailing", err)
			}
		})
	}
}

func TestMeshFrameVectors(t *testing.T) {
	for _, v := range meshFrameVectors {
		t.Run(v.name, func(t *testing.T) {
			want := unhex(t, v.hex)
			var payload []byte
			if v.msg != nil {
				payload = v.msg.Append(nil)
			}
			if got := AppendFrame(nil, v.header, payload); !bytes.Equal(got, want) {
				t.Fatalf("AppendFrame = %x, want %x", got, want)
			}
			f, n, err := Config{MaxPayload: 1 << 20}.Split(want)
			if err != nil || n != len(want) || f.Header != v.header {
				t.Fatalf("Split = %+v, %d, %v; want %+v", f.Header, n, err, v.header)
			}
			if !f.Cmd.IsMesh() && f.Cmd != CmdBye {
				t.Errorf("%v on a mesh connection", f.Cmd)
			}
			if v.msg == nil {
				return
			}
			m := newLike(v.msg)
			if err := m.Consume(f.Payload); err != nil || !reflect.DeepEqual(m, v.msg) {
				t.Errorf("Consume(payload) = %+v, %v; want %+v", m, err, v.msg)
			}
		})
	}
}

func TestAppendFanoutFrame(t *testing.T) {
	m := meshVectors[6].msg.(*Fanout)
	got := AppendFanoutFrame([]byte{0xAA}, m.SessionID, m.Epoch, m.Targets, m.Frame)
	if want := AppendFrame([]byte{0xAA}, Header{Cmd: CmdFanout, Flags: FlagPush}, m.Append(nil)); !bytes.Equal(got, want) {
		t.Errorf("AppendFanoutFrame = %x, want %x", got, want)
	}
	if want := unhex(t, meshFrameVectors[8].hex); !bytes.Equal(got[1:], want) {
		t.Errorf("AppendFanoutFrame = %x, want the vector %x", got[1:], want)
	}
	// No targets, no frame.
	got = AppendFanoutFrame(nil, "", 0, nil, nil)
	if want := unhex(t, "00000007 00 f013 02 00000000 0000 00 00000000 00 00"); !bytes.Equal(got, want) {
		t.Errorf("empty AppendFanoutFrame = %x, want %x", got, want)
	}
}

// fanoutCases are Fanout payloads beyond the vector: empty lists, long
// strings and frames (2- and 3-byte length prefixes).
func fanoutCases() []Fanout {
	long := strings.Repeat("u", 200)
	many := make([]string, 300)
	for i := range many {
		many[i] = fmt.Sprintf("user-%d", i)
	}
	return []Fanout{
		*meshVectors[6].msg.(*Fanout),
		{},
		{SessionID: "s1", Epoch: 1<<32 - 1, Frame: []byte{}},
		{SessionID: long, Targets: []string{"", long, "é"}, Frame: make([]byte, 70000)},
		{SessionID: "s1", Epoch: 2, Targets: many, Frame: []byte("x")},
	}
}

func TestConsumeFanout(t *testing.T) {
	for i, c := range fanoutCases() {
		b := c.Append(nil)
		v, err := ConsumeFanout(b)
		if err != nil {
			t.Fatalf("case %d: ConsumeFanout: %v", i, err)
		}
		if string(v.SessionID) != c.SessionID || v.Epoch != c.Epoch || !bytes.Equal(v.Frame, c.Frame) {
			t.Errorf("case %d: view %q %d %d bytes, want %q %d %d bytes", i, v.SessionID, v.Epoch, len(v.Frame),
				c.SessionID, c.Epoch, len(c.Frame))
		}
		if v.Targets.Len() != len(c.Targets) {
			t.Errorf("case %d: Len = %d, want %d", i, v.Targets.Len(), len(c.Targets))
		}
		again := v.Targets // a copy iterates from the start
		for j := 0; ; j++ {
			uid, ok := v.Targets.Next()
			if !ok {
				if j != len(c.Targets) {
					t.Errorf("case %d: %d targets, want %d", i, j, len(c.Targets))
				}
				break
			}
			if j >= len(c.Targets) || string(uid) != c.Targets[j] {
				t.Fatalf("case %d: target %d = %q", i, j, uid)
			}
			if cap(uid) != len(uid) {
				t.Errorf("case %d: target %d not clipped: cap %d", i, j, cap(uid))
			}
		}
		if again.Len() != len(c.Targets) {
			t.Errorf("case %d: the copy was consumed too", i)
		}
		if len(v.Frame) > 0 && &v.Frame[0] != &b[len(b)-len(v.Frame)] {
			t.Errorf("case %d: Frame is a copy, want a sub-slice of the input", i)
		}
		// Fanout.Consume agrees.
		var m Fanout
		if err := m.Consume(b); err != nil || !bytes.Equal(m.Append(nil), b) {
			t.Errorf("case %d: Fanout.Consume = %v", i, err)
		}
	}
}

// TestConsumeFanoutErrors checks that ConsumeFanout refuses what
// Fanout.Consume refuses, with the same error.
func TestConsumeFanoutErrors(t *testing.T) {
	b := unhex(t, meshVectors[6].hex)
	inputs := [][]byte{append(bytes.Clone(b), 0)}
	for i := range len(b) {
		inputs = append(inputs, b[:i])
	}
	for _, h := range []string{
		"02 73ff 00000001 00 00",                         // session ID not UTF-8
		"02 7331 00000001 02 03 626f62 01 ff 00",         // a target not UTF-8
		"02 7331 00000001 02 01 ff 05 61",                // a target not UTF-8, then one cut short
		"02 7331 00000001 02 01 ff ffffffffffffffffff02", // a target not UTF-8, then a uvarint over 64 bits
		"02 7331 00000001 8080808080808080 10 00",        // a huge target count
		"02 7331 00000001 00 ffffffffffffffffff02",       // a uvarint over 64 bits
	} {
		inputs = append(inputs, unhex(t, h))
	}
	// A target ending in a lead byte, then one with a 2-byte length:
	// c2 80 would be UTF-8 if the list were checked as one string.
	tricky := unhex(t, "02 7331 00000001 02 01 c2 8001")
	tricky = append(tricky, bytes.Repeat([]byte{'a'}, 128)...)
	inputs = append(inputs, append(tricky, 0))
	for _, in := range inputs {
		var m Fanout
		want := m.Consume(in)
		if want == nil {
			t.Fatalf("Fanout.Consume(%x) succeeded", in)
		}
		if _, err := ConsumeFanout(in); err != want {
			t.Errorf("ConsumeFanout(%x) = %v, want %v", in, err, want)
		}
	}
}

func TestFanoutDoesNotAllocate(t *testing.T) {
	frame := AppendMessagePushFrame(nil, CmdBroadcastReceived, 1, "0b7a3c2e-6f1d-4d8a-9c43-1f2e3d4c5b6a@node-1", "alice",
		bytes.Repeat([]byte{'x'}, 64))
	targets := []string{"bob", "carol", "dave", "erin"}
	buf := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(1000, func() {
		buf = AppendFanoutFrame(buf[:0], "0b7a3c2e-6f1d-4d8a-9c43-1f2e3d4c5b6a@node-1", 1, targets, frame)
	})
	if allocs != 0 {
		t.Errorf("AppendFanoutFrame allocated %v times", allocs)
	}
	payload := buf[HeaderSize:]
	online := map[string]int{"bob": 1, "dave": 2}
	delivered := 0
	allocs = testing.AllocsPerRun(1000, func() {
		v, err := ConsumeFanout(payload)
		if err != nil {
			t.Fatal(err)
		}
		for uid, ok := v.Targets.Next(); ok; uid, ok = v.Targets.Next() {
			delivered += online[string(uid)]
		}
	})
	if allocs != 0 {
		t.Errorf("ConsumeFanout and its targets allocated %v times", allocs)
	}
	if delivered == 0 {
		t.Error("no target found")
	}
}

func TestMeshFixedLengths(t *testing.T) {
	for _, n := range []int{0, 1, 31, 33, 64} {
		bad := make([]byte, n)
		for _, m := range []message{
			&PeerHello{Nonce: bad},
			&PeerHelloReply{Hello: PeerHello{Nonce: bad}, Proof: make([]byte, 32)},
			&PeerHelloReply{Hello: PeerHello{Nonce: make([]byte, 32)}, Proof: bad},
			&PeerAuth{Proof: bad},
		} {
			b := m.Append(nil)
			back := newLike(m)
			if err := back.Consume(b); !errors.Is(err, ErrBadValue) {
				t.Errorf("%T with a %d-byte field: Consume = %v, want ErrBadValue", m, n, err)
			}
			if !reflect.ValueOf(back).Elem().IsZero() {
				t.Errorf("%T: failed Consume modified the message", m)
			}
			if StatusOf(back.Consume(b)) != StatusBadRequest {
				t.Errorf("%T: a bad length is not BadRequest", m)
			}
		}
	}
}

func TestMeshRoundTrips(t *testing.T) {
	long := strings.Repeat("k", 200)
	props := []KeyValue{{long, StringValue(long)}, {"b", BoolValue(false)}, {"i", IntValue(-1)}, {"f", FloatValue(0.5)}}
	sessions := make([]SessionRef, 200)
	for i := range sessions {
		sessions[i] = SessionRef{Type: uint8(i), SessionID: long[:i]}
	}
	ms := []message{
		&Member{}, &Member{UID: long, SID: long, Gen: 1<<64 - 1, Data: props},
		&PeerHello{Nonce: make([]byte, 32)},
		&PeerHello{Proto: 0xFFFF, Cluster: long, Node: long, Boot: 1<<64 - 1, MaxPayload: 1<<32 - 1, Nonce: nonce(0xE0)},
		&PeerHelloReply{Hello: PeerHello{Nonce: make([]byte, 32)}, Proof: make([]byte, 32)},
		&PeerAuth{Proof: nonce(1)},
		&PeerPing{}, &PeerPing{Sessions: 1<<32 - 1, Conns: 1<<32 - 1},
		&Exec{Payload: []byte{}},
		&Exec{SessionID: long, Epoch: 1<<32 - 1, Caller: Member{UID: long, Data: props}, Op: 0xFFFF, Payload: make([]byte, 70000)},
		&Removed{}, &Removed{SessionID: long, Type: 255, UID: long, Reason: 255},
		&DeliverToUser{Frame: []byte{}}, &DeliverToUser{UID: long, Frame: make([]byte, 300)},
		&PresenceClaim{}, &PresenceClaim{UID: long, SID: long},
		&PresenceClaimReply{}, &PresenceClaimReply{Gen: 1<<64 - 1, PrevNode: long, PrevSID: long, PrevGen: 1},
		&PresenceRelease{}, &PresenceLookup{}, &PresenceLookupReply{Node: long},
		&UserTakeover{}, &UserTakeover{UID: long, Gen: 3, NewSID: long},
		&UserTakeoverReply{}, &UserTakeoverReply{Sessions: sessions},
		&NodeMeta{}, &NodeMeta{MeshAddr: long, TCPAddr: long[:100], KCPAddr: long[:100], State: NodeDraining, Boot: 9},
	}
	for _, c := range fanoutCases() {
		ms = append(ms, &c)
	}
	for _, m := range ms {
		b := m.Append(nil)
		if m.Size() != len(b) {
			t.Errorf("%T: Size = %d, len(Append) = %d", m, m.Size(), len(b))
		}
		back := newLike(m)
		if err := back.Consume(b); err != nil {
			t.Errorf("%T: Consume(Append) = %v", m, err)
			continue
		}
		if !bytes.Equal(back.Append(nil), b) {
			t.Errorf("%T: round trip changed the encoding: %x", m, b)
		}
	}
}

func TestNodeMetaLimit(t *testing.T) {
	// The longest NodeMeta: 2+2+9 fixed bytes and three strings.
	fixed := (&NodeMeta{}).Size()
	room := MaxNodeMetaLen - fixed
	m := NodeMeta{Proto: 1, MeshAddr: strings.Repeat("a", 126), TCPAddr: strings.Repeat("b", 126)}
	m.KCPAddr = strings.Repeat("c", room-(m.Size()-fixed)-1) // one more byte for its 2-byte prefix
	if m.Size() != MaxNodeMetaLen {
		t.Fatalf("Size = %d, want %d", m.Size(), MaxNodeMetaLen)
	}
	b := m.Append(nil)
	var back NodeMeta
	if err := back.Consume(b); err != nil || back != m {
		t.Errorf("Consume of %d bytes = %v", len(b), err)
	}
	m.KCPAddr += "c"
	if err := back.Consume(m.Append(nil)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Consume of %d bytes = %v, want ErrTooLarge", m.Size(), err)
	}
	// Trailing bytes past the limit are ErrTooLarge too, checked first.
	if err := back.Consume(append(b, 0)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Consume of 513 bytes = %v, want ErrTooLarge", err)
	}
}

func TestMeshErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  message
		hex  string
		want error
	}{
		{"Member UID not UTF-8", &Member{}, "01 ff 00 0000000000000000 00", ErrBadUTF8},
		{"Member data tag 0", &Member{}, "00 00 0000000000000000 01 00 00 00", ErrBadValue},
		{"PeerHello cluster not UTF-8", &PeerHello{}, "0001 01 c0 00 0000000000000000 00000000 20 " + strings.Repeat("00", 32), ErrBadUTF8},
		{"Exec caller data count", &Exec{}, "00 00000000 00 00 0000000000000000 8080808080808080 10 0000 00", ErrShort},
		{"Fanout target count", &Fanout{}, "00 00000000 8080808080808080 10 00", ErrShort},
		{"Removed UID not UTF-8", &Removed{}, "00 00 02 e282 00", ErrBadUTF8},
		{"UserTakeoverReply count", &UserTakeoverReply{}, "8080808080808080 10 0100", ErrShort},
		{"UserTakeoverReply ID not UTF-8", &UserTakeoverReply{}, "01 01 01 80", ErrBadUTF8},
		{"PresenceLookupReply uvarint overflow", &PresenceLookupReply{}, "ffffffffffffffffff02", ErrCorrupt},
		{"NodeMeta empty", &NodeMeta{}, "", ErrShort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.msg.Consume(unhex(t, tc.hex)); !errors.Is(err, tc.want) {
				t.Errorf("Consume(%s) = %v, want %v", tc.hex, err, tc.want)
			}
		})
	}
}

// TestMeshForgedLengths puts a forged uvarint length or count at every
// offset of every vector: Consume must fail without allocating for it.
func TestMeshForgedLengths(t *testing.T) {
	for _, v := range meshVectors {
		b := unhex(t, v.hex)
		for i := range len(b) {
			for _, claim := range []uint64{1 << 60, 1 << 24} {
				in := AppendUvarint(bytes.Clone(b[:i]), claim)
				in = append(in, 1, 2, 3)
				m := newLike(v.msg)
				if m.Consume(in) == nil {
					continue // the claim landed in a fixed-size field, and the rest fit
				}
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				const runs = 20
				for range runs {
					_ = m.Consume(in)
				}
				runtime.ReadMemStats(&after)
				if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > uint64(64*len(in)+1024) {
					t.Errorf("%s: a claim of %d at offset %d: Consume allocated %d bytes for %d of input", v.name, claim, i, per, len(in))
				}
			}
		}
	}
}

func TestMeshHandshakeProofs(t *testing.T) {
	k, err := MeshKey([]byte(exampleSecret))
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(k); got != exampleKey {
		t.Errorf("MeshKey = %s, want %s", got, exampleKey)
	}
	dialer := unhex(t, meshVectors[1].hex)
	reply := unhex(t, meshVectors[2].hex)
	// The acceptor's part of the transcript is the reply without its Proof field.
	acceptor := reply[:len(reply)-1-MeshProofLen]
	if !bytes.Equal(acceptor, exampleAcceptorHello.Append(nil)) {
		t.Fatalf("the reply does not start with the acceptor's hello")
	}
	if got := hex.EncodeToString(MeshAcceptorProof(k, dialer, acceptor)); got != exampleAcceptorProof {
		t.Errorf("MeshAcceptorProof = %s, want %s", got, exampleAcceptorProof)
	}
	if got := hex.EncodeToString(MeshDialerProof(k, dialer, acceptor)); got != exampleDialerProof {
		t.Errorf("MeshDialerProof = %s, want %s", got, exampleDialerProof)
	}
	// Each proof depends on the role, the key and both hellos.
	other, _ := MeshKey([]byte("another secret"))
	for name, p := range map[string][]byte{
		"other key":          MeshAcceptorProof(other, dialer, acceptor),
		"hellos swapped":     MeshAcceptorProof(k, acceptor, dialer),
		"dialer hello cut":   MeshAcceptorProof(k, dialer[:len(dialer)-1], acceptor),
		"acceptor hello cut": MeshAcceptorProof(k, dialer, acceptor[:len(acceptor)-1]),
	} {
		if hex.EncodeToString(p) == exampleAcceptorProof {
			t.Errorf("%s: the same proof", name)
		}
	}
}

// meshSection returns the "Mesh (server to server)" section of
// PROTOCOL.md and the line it starts on.
func meshSection(tb testing.TB) (string, int) {
	tb.Helper()
	doc, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		tb.Fatal(err)
	}
	const title = "\n## Mesh (server to server)\n"
	start := bytes.Index(doc, []byte(title))
	if start < 0 {
		tb.Fatalf("PROTOCOL.md has no %q section", strings.TrimSpace(title))
	}
	sec := doc[start+1:]
	if end := bytes.Index(sec[len(title):], []byte("\n## ")); end >= 0 {
		sec = sec[:len(title)+end+1]
	}
	return string(sec), bytes.Count(doc[:start+1], []byte("\n")) + 1
}

var (
	// docPayloadVector matches a payload example: "`{...}`: `hex`", the
	// hex possibly on the next line.
	docPayloadVector = regexp.MustCompile("`:\\s+`([0-9a-f]{2}[0-9a-f ]*)`")
	// docHexBlock matches a fenced code block.
	docHexBlock = regexp.MustCompile("(?s)```[a-z]*\n(.*?)```")
	hexLine     = regexp.MustCompile(`^[0-9a-f]{2}[0-9a-f ]*$`)
	// docHandshakeRow matches a row of the handshake example table.
	docHandshakeRow = regexp.MustCompile("(?m)^\\| ([^|]+?) \\| `([0-9a-f]+)` \\|")
)

// TestProtocolDocMeshVectors checks PROTOCOL.md's Mesh section against
// the tables here, both ways: every payload example ("`{...}`: `hex`"),
// every code block of hex lines (a complete frame) and every row of the
// handshake example is one of meshVectors, meshFrameVectors or the
// handshake values, and every one of those is in the section.
func TestProtocolDocMeshVectors(t *testing.T) {
	sec, line := meshSection(t)
	check := func(kind string, inDoc []string, want map[string]string) {
		t.Helper()
		seen := map[string]bool{}
		for _, h := range inDoc {
			if _, ok := want[h]; !ok {
				t.Errorf("PROTOCOL.md (Mesh, from line %d) has a %s vector the tests do not: %s", line, kind, h)
			}
			seen[h] = true
		}
		for h, name := range want {
			if !seen[h] {
				t.Errorf("PROTOCOL.md's Mesh section lacks the %s vector %q: %s", kind, name, h)
			}
		}
	}

	var payloads []string
	for _, m := range docPayloadVector.FindAllStringSubmatch(sec, -1) {
		payloads = append(payloads, m[1])
	}
	want := map[string]string{}
	for _, v := range meshVectors {
		want[v.hex] = v.name
	}
	check("payload", payloads, want)

	var frames []string
	for _, m := range docHexBlock.FindAllStringSubmatch(sec, -1) {
		body := strings.TrimSpace(m[1])
		if body != "" && !strings.ContainsFunc(body, func(r rune) bool { return r == '\n' }) && hexLine.MatchString(body) {
			frames = append(frames, body)
		}
	}
	want = map[string]string{}
	for _, v := range meshFrameVectors {
		want[v.hex] = v.name
	}
	check("frame", frames, want)

	rows := map[string]string{}
	for _, m := range docHandshakeRow.FindAllStringSubmatch(sec, -1) {
		rows[m[1]] = m[2]
	}
	for name, h := range map[string]string{
		"secret":                                hex.EncodeToString([]byte(exampleSecret)),
		"K":                                     exampleKey,
		"dialer hello (transcript, first part)": strings.ReplaceAll(meshVectors[1].hex, " ", ""),
		"acceptor hello (transcript, second part)": hex.EncodeToString(exampleAcceptorHello.Append(nil)),
		"acceptor Proof": exampleAcceptorProof,
		"dialer Proof":   exampleDialerProof,
	} {
		if rows[name] != h {
			t.Errorf("PROTOCOL.md's handshake example: %q is %q, want %s", name, rows[name], h)
		}
	}
}

func TestMeshEnumStrings(t *testing.T) {
	for r, want := range map[RemovedReason]string{
		RemovedLeft: "left", RemovedKicked: "kicked", RemovedDeleted: "deleted",
		RemovedOwnerLost: "owner lost", RemovedDisconnected: "disconnected", 5: "reason(5)",
	} {
		if r.String() != want {
			t.Errorf("RemovedReason(%d) = %q, want %q", r, r.String(), want)
		}
	}
	if RemovedLeft != 0 || RemovedKicked != 1 || RemovedDeleted != 2 || RemovedOwnerLost != 3 || RemovedDisconnected != 4 {
		t.Error("RemovedReason values")
	}
	for s, want := range map[NodeState]string{NodeAlive: "alive", NodeDraining: "draining", NodeLeaving: "leaving", 3: "state(3)"} {
		if s.String() != want {
			t.Errorf("NodeState(%d) = %q, want %q", s, s.String(), want)
		}
	}
	if NodeAlive != 0 || NodeDraining != 1 || NodeLeaving != 2 {
		t.Error("NodeState values")
	}
}

// Fanout benchmarks: the owner's encode and the member node's decode of
// one Fanout, by number of targets, with a 64-byte broadcast inside.

func benchFanoutArgs(targets int) (string, []string, []byte) {
	id := "0b7a3c2e-6f1d-4d8a-9c43-1f2e3d4c5b6a@node-1"
	frame := AppendMessagePushFrame(nil, CmdBroadcastReceived, 1, id, "alice", bytes.Repeat([]byte{'x'}, 64))
	uids := make([]string, targets)
	for i := range uids {
		uids[i] = fmt.Sprintf("user-%04d", i)
	}
	return id, uids, frame
}

func BenchmarkAppendFanoutFrame(b *testing.B) {
	for _, n := range []int{1, 4, 64} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			id, uids, frame := benchFanoutArgs(n)
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				buf = AppendFanoutFrame(buf[:0], id, 1, uids, frame)
			}
		})
	}
}

func BenchmarkConsumeFanout(b *testing.B) {
	for _, n := range []int{1, 4, 64} {
		b.Run(fmt.Sprintf("targets=%d", n), func(b *testing.B) {
			id, uids, frame := benchFanoutArgs(n)
			payload := AppendFanoutFrame(nil, id, 1, uids, frame)[HeaderSize:]
			found := 0
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				v, err := ConsumeFanout(payload)
				if err != nil {
					b.Fatal(err)
				}
				for uid, ok := v.Targets.Next(); ok; uid, ok = v.Targets.Next() {
					found += len(uid)
				}
			}
			if found == 0 {
				b.Fatal("no targets")
			}
		})
	}
}

// TestConsumeExecView checks the view against Exec.Consume, and that it
// leaves to Consume what it does not take: member data, bad fields, a
// truncated or padded payload.
func TestConsumeExecView(t *testing.T) {
	e := Exec{SessionID: "7f1c0e4a-58b1-4c1a-9d4e-0c1f2a3b4c5d@n1", Epoch: 3,
		Caller: Member{UID: "alice", SID: "s-1", Gen: 9}, Op: CmdBroadcast, Payload: []byte{1, 2, 'h', 'i'}}
	b := e.Append(nil)
	v, ok := ConsumeExecView(b)
	if !ok {
		t.Fatal("ConsumeExecView refused a plain Exec")
	}
	if string(v.SessionID) != e.SessionID || v.Epoch != 3 || string(v.UID) != "alice" || string(v.SID) != "s-1" ||
		v.Gen != 9 || v.Op != CmdBroadcast || !bytes.Equal(v.Payload, e.Payload) {
		t.Fatalf("view = %+v, want %+v", v, e)
	}
	if &v.Payload[0] != &b[len(b)-len(e.Payload)] {
		t.Error("Payload is a copy, want a sub-slice of the input")
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = ConsumeExecView(b) }); n != 0 {
		t.Errorf("ConsumeExecView: %.0f allocations, want 0", n)
	}

	withData := e
	withData.Caller.Data = []KeyValue{{Key: "k", Value: IntValue(1)}}
	badUTF8 := e
	badUTF8.Caller.UID = "\xff"
	for name, p := range map[string][]byte{
		"member data": withData.Append(nil),
		"bad UTF-8":   badUTF8.Append(nil),
		"truncated":   b[:len(b)-1],
		"trailing":    append(append([]byte(nil), b...), 0),
		"empty":       nil,
	} {
		if _, ok := ConsumeExecView(p); ok {
			t.Errorf("%s: ConsumeExecView took it", name)
		}
	}
}
