package server

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coveyhq/covey/wire"
)

// TestClusterParity plays one script of raw client requests, from five
// players, against a single node and against a 3-node cluster with each
// placement of the players, and requires every reply (status and payload)
// and every push each player receives to be the single node's, session IDs
// and connection IDs normalized: a player on any node sees a session of any
// node as a single node would show it. The script covers every built-in
// session command, its success paths, the errors of the reference's error
// tables that a client can reach (not an expired invite: too slow),
// malformed payloads of each command, pipelined and seq-0 requests,
// disconnects and a second sign-in (on another node in a cluster).
//
// After each step every player runs a barrier, so that what it received is
// comparable: in a cluster, a round trip to every other node (a
// GetSessionInfo that node answers) and then a Ping. A push an owner sends
// to a member node travels on the mesh connection that carries that node's
// reply to the barrier, ahead of it: so every push a step caused is in
// before the barrier's last reply (with a Ping alone, pushes from another
// node were seen to slip into the next step). Pushes are compared per
// player, in order; a difference is reported with the step, the player and
// what it received in both runs.
func TestClusterParity(t *testing.T) {
	script := parityScript()
	single := startServer(t)
	want := playParity(t, script, map[string]*Server{"local": single}, func(string) string { return "local" })

	placements := []struct {
		name  string
		place func(i int) int // node index of the i-th player; player 0 (alice) creates S1 on node 0
	}{
		{"all-on-owner", func(int) int { return 0 }},
		{"round-robin", func(i int) int { return i % 3 }},
		{"none-on-owner", func(i int) int { return 1 + i%2 }},
	}
	for _, pl := range placements {
		t.Run(pl.name, func(t *testing.T) {
			tc := startCluster(t, 3)
			nodes := map[string]*Server{}
			for _, n := range tc.nodes {
				nodes[n.cfg.Node] = n
			}
			got := playParity(t, script, nodes, func(uid string) string {
				i := slices.Index(parityPlayers, uid)
				if i == 0 {
					return tc.nodes[0].cfg.Node
				}
				return tc.nodes[pl.place(i)].cfg.Node
			})
			compareParity(t, script, want, got)
		})
	}
}

// parityPlayers sign in in this order; alice is the creator of S1.
var parityPlayers = []string{"alice", "bob", "carol", "dave", "erin"}

// unknownUUID is the UUID of well-formed session IDs that name no session.
const unknownUUID = "0b5a7c4e-3f0e-4c1a-9d52-0f6c2b7a1e90"

// absentNode is a node name that no run has.
const absentNode = "n9"

// parityStep is one request of the script.
type parityStep struct {
	who     string
	ver     uint8
	cmd     wire.Cmd
	payload func(e *parityEnv) []byte
	seq0    bool         // send with seq 0 (fire-and-forget)
	creates string       // the OK reply's CreateReply names a session: call it this
	bye     string       // instead of a request: who sends Bye; wait until the owner of this session has removed it
	then    []parityStep // more requests of who, sent right after this one, before any reply is read
	resign  bool         // instead of a request: who signs in again, on the next node in a cluster
	note    string       // what the step checks
}

func (s parityStep) String() string {
	if s.bye != "" {
		return fmt.Sprintf("%s disconnects (Bye): %s", s.who, s.note)
	}
	if s.resign {
		return fmt.Sprintf("%s signs in again (on the next node in a cluster): %s", s.who, s.note)
	}
	seq := ""
	if s.seq0 {
		seq = " (seq 0)"
	}
	cmd := s.cmd.String()
	if s.ver != 0 {
		cmd = fmt.Sprintf("ver %d cmd %#04x", s.ver, uint16(s.cmd))
	}
	for _, q := range s.then {
		cmd += ", " + q.cmd.String()
	}
	return fmt.Sprintf("%s %s%s: %s", s.who, cmd, seq, s.note)
}

// parityEnv is what one run knows: the session IDs the script named and
// the players' connection IDs, to build requests and to normalize what
// the server sends.
type parityEnv struct {
	owner   string            // the node alice (S1's creator) is signed in to
	ids     map[string]string // script name ("S1") -> this run's session ID
	names   map[string]string // session ID or SID -> its normalized name
	unnamed int               // IDs seen that the script did not name
}

// idFn gives a session ID of the run.
type idFn func(e *parityEnv) string

// sess is the ID of the session the script named name.
func sess(name string) idFn {
	return func(e *parityEnv) string {
		if id, ok := e.ids[name]; ok {
			return id
		}
		return "never-created-" + name // the run diverged: compareParity reports it
	}
}

// lit is a literal session ID.
func lit(id string) idFn { return func(*parityEnv) string { return id } }

// unknownOnOwner is a well-formed ID of no session, on S1's owner.
func unknownOnOwner(e *parityEnv) string { return unknownUUID + "@" + e.owner }

// unknownOnAbsent is a well-formed ID of no session, on a node that is in
// no run (neither the single node nor the cluster).
func unknownOnAbsent(*parityEnv) string { return unknownUUID + "@" + absentNode }

// upper is the named session's ID in uppercase: malformed.
func upper(name string) idFn {
	return func(e *parityEnv) string { return strings.ToUpper(sess(name)(e)) }
}

// spaced is the named session's ID with a trailing space: malformed.
func spaced(name string) idFn {
	return func(e *parityEnv) string { return sess(name)(e) + " " }
}

// fixed is a payload that does not depend on the run.
func fixed(m appender) func(*parityEnv) []byte {
	b := m.Append(nil)
	return func(*parityEnv) []byte { return b }
}

// raw is a payload of literal bytes.
func raw(b ...byte) func(*parityEnv) []byte { return func(*parityEnv) []byte { return b } }

func sref(typ uint8, id idFn) func(*parityEnv) []byte {
	return func(e *parityEnv) []byte { return (&wire.SessionRef{Type: typ, SessionID: id(e)}).Append(nil) }
}

func info(id idFn) func(*parityEnv) []byte {
	return func(e *parityEnv) []byte { return (&wire.SessionInfoRequest{SessionID: id(e)}).Append(nil) }
}

func typeReq(typ uint8) func(*parityEnv) []byte { return fixed(&wire.TypeRequest{Type: typ}) }

// truncated is p without its last byte.
func truncated(p func(*parityEnv) []byte) func(*parityEnv) []byte {
	return func(e *parityEnv) []byte { b := p(e); return b[:len(b)-1] }
}

// trailing is p with a byte after its last field.
func trailing(p func(*parityEnv) []byte) func(*parityEnv) []byte {
	return func(e *parityEnv) []byte { return append(slices.Clone(p(e)), 0) }
}

func req(who string, cmd wire.Cmd, payload func(*parityEnv) []byte, note string) parityStep {
	return parityStep{who: who, cmd: cmd, payload: payload, note: note}
}

func create(who string, m wire.CreateRequest, note string) parityStep {
	return req(who, wire.CmdCreate, fixed(&m), note)
}

func broadcast(who string, typ uint8, msg []byte, note string) parityStep {
	return req(who, wire.CmdBroadcast, fixed(&wire.BroadcastRequest{Type: typ, Msg: msg}), note)
}

func messageTo(who string, typ uint8, to []string, msg []byte, note string) parityStep {
	return req(who, wire.CmdMessageTo, fixed(&wire.MessageToRequest{Type: typ, Recipients: to, Msg: msg}), note)
}

func invite(who string, m wire.InviteRequest, note string) parityStep {
	return req(who, wire.CmdInvite, fixed(&m), note)
}

func kick(who string, typ uint8, target, note string) parityStep {
	return req(who, wire.CmdKick, fixed(&wire.KickRequest{Type: typ, UserID: target}), note)
}

func setProp(who string, typ uint8, key string, v wire.Value, note string) parityStep {
	return req(who, wire.CmdSetProperty, fixed(&wire.SetPropertyRequest{Type: typ, Key: key, Value: v}), note)
}

func setProps(who string, typ uint8, kvs []wire.KeyValue, note string) parityStep {
	return req(who, wire.CmdSetProperties, fixed(&wire.SetPropertiesRequest{Type: typ, Props: kvs}), note)
}

func incr(who string, typ uint8, key string, delta int64, note string) parityStep {
	return req(who, wire.CmdIncrProperty, fixed(&wire.IncrPropertyRequest{Type: typ, Key: key, Delta: delta}), note)
}

func cas(who string, typ uint8, key string, old *wire.Value, v wire.Value, note string) parityStep {
	m := wire.CompareAndSetRequest{Type: typ, Key: key, New: v}
	if old != nil {
		m.HasOld, m.Old = true, *old
	}
	return req(who, wire.CmdCompareAndSetProperty, fixed(&m), note)
}

// seq0 is s sent with seq 0.
func seq0(s parityStep) parityStep { s.seq0 = true; return s }

// pipelined sends the requests of one player back to back: their replies
// must come in the order of the requests, whichever node answers them.
func pipelined(first parityStep, more ...parityStep) parityStep {
	first.then = more
	first.note = "pipelined: replies in request order"
	return first
}

func kv(k string, v wire.Value) wire.KeyValue { return wire.KeyValue{Key: k, Value: v} }

func intV(i int64) *wire.Value { v := wire.IntValue(i); return &v }

// manyProps is n properties k000, k001, ... of small ints.
func manyProps(n int) []wire.KeyValue {
	kvs := make([]wire.KeyValue, n)
	for i := range kvs {
		kvs[i] = kv(fmt.Sprintf("k%03d", i), wire.IntValue(int64(i)))
	}
	return kvs
}

// overBudget is 15 x 4 KB and 3,940 bytes of strings: a request within the
// 65,536-byte payload limit, properties over the 65,280-byte size budget.
func overBudget() []wire.KeyValue {
	kvs := []wire.KeyValue{kv("big15", wire.StringValue(strings.Repeat("v", 3940)))}
	for i := range 15 {
		kvs = append(kvs, kv(fmt.Sprintf("big%02d", i), wire.StringValue(strings.Repeat("v", 4096))))
	}
	return kvs
}

// parityScript is the scenario. Sessions: S1 (type 1, alice's, at most 3
// members), S2 (type 2, bob's, Quiet), S3 (type 1, carol's). Players not
// named by a step only receive.
func parityScript() []parityStep {
	maxMsg := int(wire.MaxMessageFor(wire.DefaultMaxPayload))
	full := make([]byte, maxMsg) // the largest Msg; not very compressible
	for i := range full {
		full[i] = byte(i*7 + i/251)
	}
	over := make([]byte, maxMsg+1)
	key128, key129 := strings.Repeat("k", 128), strings.Repeat("k", 129)
	str4096, str4097 := wire.StringValue(strings.Repeat("s", 4096)), wire.StringValue(strings.Repeat("s", 4097))
	targets65 := []string{"bob"}
	for i := range 64 {
		targets65 = append(targets65, fmt.Sprintf("ghost%02d", i))
	}
	one := wire.IntValue(1)
	var s []parityStep
	add := func(steps ...parityStep) { s = append(s, steps...) }

	// Create.
	c := create("alice", wire.CreateRequest{Type: 1, MaxMembers: 3, TTLSeconds: 60,
		Props: []wire.KeyValue{kv("mode", wire.StringValue("duel")), kv("round", wire.IntValue(1))}}, "create S1 with properties")
	c.creates = "S1"
	add(c,
		create("alice", wire.CreateRequest{Type: 1, MaxMembers: 2}, "AlreadyInSession: in a session of the type"),
		create("bob", wire.CreateRequest{Type: 2, MaxMembers: 1}, "BadMaxMembers: 1"),
		create("bob", wire.CreateRequest{Type: 2, MaxMembers: 203}, "BadMaxMembers: over 202"),
		create("bob", wire.CreateRequest{Type: 2, MaxMembers: 4, Props: []wire.KeyValue{kv("", one)}}, "BadProperty: empty key"),
		create("bob", wire.CreateRequest{Type: 2, MaxMembers: 4, Props: []wire.KeyValue{kv(key129, one)}}, "BadProperty: 129-byte key"),
		create("bob", wire.CreateRequest{Type: 2, MaxMembers: 4, Props: manyProps(257)}, "TooManyProperties: 257"),
		create("bob", wire.CreateRequest{Type: 2, MaxMembers: 4, Props: overBudget()}, "PropertiesFull: over the size budget"),
		create("bob", wire.CreateRequest{Type: 2, MaxMembers: 4, Flags: 0x02}, "BadRequest: undefined flag"),
	)
	c = create("bob", wire.CreateRequest{Type: 2, MaxMembers: 4, Flags: wire.CreateQuiet}, "create S2, quiet")
	c.creates = "S2"
	add(c)
	c = create("carol", wire.CreateRequest{Type: 1, MaxMembers: 2}, "create S3")
	c.creates = "S3"
	add(c)

	// Join and AcceptInvite: routing errors, types, slots.
	add(
		req("erin", wire.CmdJoin, sref(1, lit("not-an-id")), "InvalidSessionID"),
		req("erin", wire.CmdJoin, sref(1, lit("")), "InvalidSessionID: empty"),
		req("erin", wire.CmdJoin, sref(1, upper("S1")), "InvalidSessionID: uppercase"),
		req("erin", wire.CmdJoin, sref(1, spaced("S1")), "InvalidSessionID: trailing space"),
		req("erin", wire.CmdJoin, sref(1, unknownOnOwner), "SessionNotFound: unknown UUID on the owner's node"),
		req("erin", wire.CmdJoin, sref(1, unknownOnAbsent), "SessionNotFound: a node that is not there"),
		req("erin", wire.CmdJoin, sref(2, sess("S1")), "BadSessionType"),
		req("erin", wire.CmdJoin, sref(1, sess("S2")), "BadSessionType"),
		req("carol", wire.CmdJoin, sref(1, sess("S1")), "AlreadyInSession: carol is in S3, of type 1"),
		req("carol", wire.CmdJoin, sref(1, unknownOnOwner), "SessionNotFound before AlreadyInSession"),
		req("carol", wire.CmdJoin, sref(1, unknownOnAbsent), "SessionNotFound before AlreadyInSession, absent node"),
		req("carol", wire.CmdJoin, sref(1, sess("S2")), "BadSessionType before AlreadyInSession"),
		req("bob", wire.CmdAcceptInvite, sref(1, sess("S1")), "NoInvite: never invited"),
		req("bob", wire.CmdAcceptInvite, sref(1, unknownOnAbsent), "SessionNotFound: accept on a node that is not there"),
		req("carol", wire.CmdAcceptInvite, sref(1, sess("S1")), "AlreadyInSession before NoInvite"),
		req("dave", wire.CmdJoin, sref(1, sess("S1")), "join S1: alice gets MemberJoined"),
		req("dave", wire.CmdJoin, sref(1, sess("S1")), "AlreadyInSession: join twice"),
		req("dave", wire.CmdJoin, sref(2, sess("S2")), "join S2: bob gets MemberJoined"),
	)

	// Invite.
	add(
		invite("alice", wire.InviteRequest{Type: 1, Targets: []string{"bob", "ghost"}, Ver: 3, Cmd: 30, TTLSeconds: 60, Msg: []byte("join us")},
			"UserNotFound: ghost is offline; bob is invited"),
		invite("alice", wire.InviteRequest{Type: 1, Targets: []string{"alice"}}, "CannotInviteSelf"),
		invite("alice", wire.InviteRequest{Type: 1, Targets: []string{"bob", "alice"}}, "CannotInviteSelf: nothing sent"),
		invite("alice", wire.InviteRequest{Type: 1, Targets: targets65}, "BadRequest: 65 targets; nothing sent"),
		invite("alice", wire.InviteRequest{Type: 1, Targets: []string{"bob"}, Msg: over}, "TooLarge: Msg over MaxMessage"),
		invite("erin", wire.InviteRequest{Type: 1, Targets: []string{"bob"}}, "NotMember: erin is in no session"),
		invite("dave", wire.InviteRequest{Type: 1, Targets: []string{"dave"}}, "CannotInviteSelf"),
		invite("dave", wire.InviteRequest{Type: 1, Targets: []string{"ghost"}}, "UserNotFound"),
		invite("dave", wire.InviteRequest{Type: 1, Targets: targets65}, "BadRequest: 65 targets"),
		invite("dave", wire.InviteRequest{Type: 1, Targets: []string{"erin"}, Msg: over}, "TooLarge"),
		invite("alice", wire.InviteRequest{Type: 1, Targets: []string{"carol"}, TTLSeconds: 120}, "invite carol"),
		req("carol", wire.CmdAcceptInvite, sref(1, sess("S1")), "AlreadyInSession: invited, but in S3"),
		invite("alice", wire.InviteRequest{Type: 1, Targets: []string{"bob", "bob", "erin"}}, "one invite each; TTL 0 is 60 s"),
		invite("dave", wire.InviteRequest{Type: 2, Targets: []string{"carol"}, Ver: 4, Cmd: 40, TTLSeconds: 30, Msg: []byte("t2")}, "invite to S2"),
		req("carol", wire.CmdAcceptInvite, sref(2, sess("S2")), "accept S2: bob and dave get MemberJoined"),
		req("bob", wire.CmdAcceptInvite, sref(1, sess("S1")), "accept S1, now full"),
		req("bob", wire.CmdAcceptInvite, sref(1, sess("S1")), "AlreadyInSession: accept twice"),
		req("erin", wire.CmdAcceptInvite, sref(1, sess("S1")), "SessionFull: the invite is kept"),
		req("erin", wire.CmdJoin, sref(1, sess("S1")), "SessionFull"),
		req("bob", wire.CmdGetUserSessions, raw(), "S2, then S1: in the order joined"),
		create("bob", wire.CreateRequest{Type: 1, MaxMembers: 2}, "AlreadyInSession: bob is in S1"),
		create("dave", wire.CreateRequest{Type: 2, MaxMembers: 2}, "AlreadyInSession: dave is in S2"),
		req("bob", wire.CmdJoin, sref(1, sess("S3")), "AlreadyInSession: bob is in S1"),
		req("bob", wire.CmdLeave, sref(1, sess("S3")), "NotMember: bob is in S1, not S3"),
		req("bob", wire.CmdGetUserSessions, raw(), "still S2 and S1"),
	)

	// Member and session queries.
	add(
		req("bob", wire.CmdGetMemberIDs, typeReq(1), "in join order"),
		req("dave", wire.CmdGetMemberSIDs, typeReq(1), "in join order"),
		req("bob", wire.CmdGetMemberData, typeReq(1), "in join order"),
		req("dave", wire.CmdGetMemberIDs, typeReq(2), "S2's members"),
		req("erin", wire.CmdGetMemberIDs, typeReq(1), "NotMember"),
		req("erin", wire.CmdGetMemberSIDs, typeReq(1), "NotMember"),
		req("erin", wire.CmdGetMemberData, typeReq(1), "NotMember"),
		req("alice", wire.CmdGetMemberIDs, typeReq(2), "NotMember: no session of the type"),
		req("erin", wire.CmdGetSessionInfo, info(sess("S1")), "any session, member or not"),
		req("erin", wire.CmdGetSessionInfo, info(sess("S2")), "S2"),
		req("alice", wire.CmdGetSessionInfo, info(sess("S3")), "S3"),
		req("erin", wire.CmdGetSessionInfo, info(lit("")), "InvalidSessionID: empty"),
		req("erin", wire.CmdGetSessionInfo, info(lit("not-an-id")), "InvalidSessionID"),
		req("erin", wire.CmdGetSessionInfo, info(upper("S1")), "InvalidSessionID: uppercase"),
		req("erin", wire.CmdGetSessionInfo, info(unknownOnOwner), "SessionNotFound: unknown UUID on the owner's node"),
		req("erin", wire.CmdGetSessionInfo, info(unknownOnAbsent), "SessionNotFound: a node that is not there"),
		req("alice", wire.CmdGetSessionInfo, info(unknownOnAbsent), "SessionNotFound: a node that is not there, asked on S1's owner"),
		req("alice", wire.CmdIsOwner, typeReq(1), "true"),
		req("bob", wire.CmdIsOwner, typeReq(1), "false"),
		req("erin", wire.CmdIsOwner, typeReq(1), "NotMember"),
		req("bob", wire.CmdIsOwner, typeReq(2), "true"),
		req("carol", wire.CmdIsOwner, typeReq(2), "false"),
		req("carol", wire.CmdIsOwner, typeReq(1), "true: S3"),
		req("dave", wire.CmdGetUserSessions, raw(), "S1 and S2"),
		req("carol", wire.CmdGetUserSessions, raw(), "S3 and S2"),
		req("erin", wire.CmdGetUserSessions, raw(), "none"),
		pipelined(
			req("dave", wire.CmdGetSessionInfo, info(sess("S2")), ""),
			req("dave", wire.CmdGetUserSessions, raw(), ""),
			req("dave", wire.CmdIsOwner, typeReq(1), ""),
			seq0(broadcast("dave", 1, []byte("between"), "")),
			seq0(setProp("dave", 1, "", wire.IntValue(1), "")),
			req("dave", wire.CmdGetMemberIDs, typeReq(2), ""),
			req("dave", wire.CmdGetSessionInfo, info(unknownOnOwner), ""),
			req("dave", wire.CmdGetSessionInfo, info(sess("S3")), ""),
		),
	)

	// Broadcast and messages.
	add(
		broadcast("bob", 1, []byte("hello all"), "to alice and dave, not bob"),
		seq0(broadcast("bob", 1, []byte("async"), "no reply on success")),
		seq0(broadcast("erin", 1, []byte("x"), "NotMember, answered with seq 0")),
		broadcast("erin", 1, []byte("x"), "NotMember"),
		broadcast("dave", 2, []byte("to t2"), "to bob and carol"),
		broadcast("bob", 1, full, "the largest Msg"),
		broadcast("bob", 1, over, "TooLarge: Msg over MaxMessage"),
		messageTo("alice", 1, []string{"dave"}, []byte("psst"), "to dave"),
		messageTo("alice", 1, []string{"alice"}, []byte("me"), "to self: the push before the reply"),
		messageTo("bob", 1, []string{"bob"}, []byte("me"), "to self: the push before the reply"),
		messageTo("bob", 1, nil, []byte("void"), "to nobody"),
		messageTo("bob", 1, []string{"alice", "alice", "dave"}, []byte("once"), "once each"),
		messageTo("bob", 1, []string{"alice", "erin"}, []byte("x"), "RecipientNotFound: nothing sent"),
		messageTo("bob", 1, []string{"carol"}, []byte("x"), "RecipientNotFound: carol is in S2 and S3"),
		messageTo("erin", 1, []string{"alice"}, []byte("x"), "NotMember"),
		messageTo("bob", 1, []string{"dave"}, over, "TooLarge"),
		seq0(messageTo("bob", 1, []string{"dave"}, []byte("fire"), "no reply on success")),
		seq0(messageTo("bob", 1, []string{"erin"}, []byte("fire"), "RecipientNotFound, answered with seq 0")),
		messageTo("carol", 2, []string{"bob", "dave"}, []byte("t2"), "in S2"),
	)

	// Properties.
	add(
		req("bob", wire.CmdGetProperty, fixed(&wire.PropertyKeyRequest{Type: 1, Key: "mode"}), "an initial property"),
		req("bob", wire.CmdGetProperty, fixed(&wire.PropertyKeyRequest{Type: 1, Key: "nope"}), "absent"),
		setProp("bob", 1, "map", wire.StringValue("dust"), "PropertiesChanged to alice and dave"),
		setProps("bob", 1, []wire.KeyValue{kv("c", wire.UintValue(9)), kv("a", wire.BoolValue(true)), kv("b", wire.FloatValue(2.5))}, "the push sorted by key"),
		setProps("bob", 1, nil, "no properties"),
		setProp("bob", 1, "", one, "BadProperty: empty key"),
		setProp("bob", 1, key129, one, "BadProperty: 129-byte key"),
		setProp("bob", 1, key128, one, "128-byte key"),
		setProp("bob", 1, "long", str4097, "BadProperty: 4097-byte string"),
		setProp("bob", 1, "edge", str4096, "4096-byte string"),
		setProps("bob", 1, []wire.KeyValue{kv("d", one), kv("", wire.IntValue(2))}, "BadProperty: all or nothing"),
		req("dave", wire.CmdGetProperties, fixed(&wire.PropertyKeysRequest{Type: 1, Keys: []string{"a", "b", "c", "d"}}), "d is absent"),
		req("dave", wire.CmdGetProperties, fixed(&wire.PropertyKeysRequest{Type: 1}), "no keys"),
		req("carol", wire.CmdGetProperties, fixed(&wire.PropertyKeysRequest{Type: 1, Keys: []string{"a"}}), "carol's session of type 1 is S3"),
		req("dave", wire.CmdGetAllProperties, typeReq(1), "all"),
		req("bob", wire.CmdSetPropertyIfNotExists, fixed(&wire.SetPropertyRequest{Type: 1, Key: "map", Value: wire.StringValue("x")}), "PropertyExists"),
		req("bob", wire.CmdSetPropertyIfNotExists, fixed(&wire.SetPropertyRequest{Type: 1, Key: "fresh", Value: wire.StringValue("x")}), "absent: written"),
		req("bob", wire.CmdSetPropertyIfNotExists, fixed(&wire.SetPropertyRequest{Type: 1, Key: "", Value: one}), "BadProperty"),
		incr("bob", 1, "round", 2, "1 + 2"),
		incr("bob", 1, "counter", -5, "absent counts as 0"),
		incr("bob", 1, "mode", 1, "NotNumeric: a string"),
		incr("bob", 1, "c", 1, "a uint"),
		incr("bob", 1, "", 1, "BadProperty"),
		setProp("bob", 1, "max", wire.IntValue(math.MaxInt64), "max int64"),
		incr("bob", 1, "max", 1, "Overflow"),
		setProp("bob", 1, "min", wire.IntValue(math.MinInt64), "min int64"),
		incr("bob", 1, "min", -1, "Overflow"),
		cas("bob", 1, "round", intV(2), wire.IntValue(10), "CompareFailed"),
		cas("bob", 1, "round", func() *wire.Value { v := wire.UintValue(3); return &v }(), wire.IntValue(10), "uint 3 against int 3"),
		cas("bob", 1, "round", intV(3), wire.IntValue(10), "swapped"),
		cas("bob", 1, "new", nil, one, "absent: written"),
		cas("bob", 1, "new", nil, one, "CompareFailed: exists"),
		cas("bob", 1, "", nil, one, "BadProperty: empty key"),
		cas("bob", 1, "big", nil, str4097, "BadProperty: 4097-byte string"),
		req("bob", wire.CmdDeleteProperty, fixed(&wire.PropertyKeyRequest{Type: 1, Key: "map"}), "existed: PropertiesChanged with Deleted"),
		req("bob", wire.CmdDeleteProperty, fixed(&wire.PropertyKeyRequest{Type: 1, Key: "map"}), "absent: no push"),
		req("bob", wire.CmdDeleteProperty, fixed(&wire.PropertyKeyRequest{Type: 1, Key: ""}), "empty key: absent"),
		setProps("dave", 1, manyProps(257), "TooManyProperties"),
		setProps("dave", 1, overBudget(), "PropertiesFull"),
		setProp("dave", 2, "quiet", one, "quiet S2: no push"),
		req("carol", wire.CmdGetAllProperties, typeReq(2), "S2's"),
		req("erin", wire.CmdGetProperty, fixed(&wire.PropertyKeyRequest{Type: 1, Key: "mode"}), "NotMember"),
		req("erin", wire.CmdGetProperties, fixed(&wire.PropertyKeysRequest{Type: 1, Keys: []string{"mode"}}), "NotMember"),
		req("erin", wire.CmdGetAllProperties, typeReq(1), "NotMember"),
		setProp("erin", 1, "x", one, "NotMember"),
		setProps("erin", 1, []wire.KeyValue{kv("x", one)}, "NotMember"),
		req("erin", wire.CmdSetPropertyIfNotExists, fixed(&wire.SetPropertyRequest{Type: 1, Key: "x", Value: one}), "NotMember"),
		incr("erin", 1, "round", 1, "NotMember"),
		cas("erin", 1, "x", nil, one, "NotMember"),
		req("erin", wire.CmdDeleteProperty, fixed(&wire.PropertyKeyRequest{Type: 1, Key: "mode"}), "NotMember"),
		seq0(setProp("bob", 1, "", one, "BadProperty, answered with seq 0")),
		seq0(setProp("bob", 1, "quick", one, "no reply on success")),
	)

	// Kick.
	add(
		kick("dave", 1, "bob", "NotOwner"),
		kick("dave", 1, "dave", "CannotKickSelf before NotOwner"),
		kick("alice", 1, "alice", "CannotKickSelf"),
		kick("alice", 1, "erin", "NotMember: not in S1"),
		kick("alice", 1, "ghost", "NotMember: nobody"),
		kick("erin", 1, "alice", "NotMember: the caller is in no session"),
		kick("bob", 2, "bob", "CannotKickSelf in S2"),
		kick("alice", 1, "dave", "the kicker's MemberLeft before its reply; dave gets Kicked"),
		req("dave", wire.CmdGetUserSessions, raw(), "S1 is gone"),
		req("dave", wire.CmdGetMemberIDs, typeReq(1), "NotMember"),
		req("dave", wire.CmdLeave, sref(1, sess("S1")), "NotMember: kicked"),
		kick("bob", 2, "carol", "kick from S2"),
		req("carol", wire.CmdGetUserSessions, raw(), "S3 only"),
		req("erin", wire.CmdAcceptInvite, sref(1, sess("S1")), "the invite kept after SessionFull"),
		req("erin", wire.CmdAcceptInvite, sref(1, sess("S1")), "AlreadyInSession"),
	)

	// Leave, owner handover, the empty session.
	add(
		req("bob", wire.CmdLeave, sref(2, sess("S1")), "BadSessionType"),
		req("bob", wire.CmdLeave, sref(1, sess("S2")), "BadSessionType"),
		req("bob", wire.CmdLeave, sref(1, lit("not-an-id")), "InvalidSessionID"),
		req("bob", wire.CmdLeave, sref(1, unknownOnOwner), "SessionNotFound"),
		req("bob", wire.CmdLeave, sref(1, unknownOnAbsent), "SessionNotFound: a node that is not there"),
		req("carol", wire.CmdLeave, sref(1, sess("S1")), "NotMember: carol is in S3"),
		req("alice", wire.CmdLeave, sref(1, sess("S1")), "the owner leaves: MemberLeft, then OwnerChanged"),
		req("alice", wire.CmdLeave, sref(1, sess("S1")), "NotMember: leave twice"),
		req("bob", wire.CmdIsOwner, typeReq(1), "true: the longest-standing member"),
		req("alice", wire.CmdGetUserSessions, raw(), "none"),
		req("alice", wire.CmdJoin, sref(1, sess("S1")), "rejoin"),
		req("alice", wire.CmdIsOwner, typeReq(1), "false"),
		kick("bob", 1, "bob", "CannotKickSelf: the new owner"),
		kick("erin", 1, "bob", "NotOwner"),
		kick("alice", 1, "erin", "NotOwner: the creator is no longer the owner"),
		kick("bob", 1, "alice", "the new owner kicks the creator"),
		req("alice", wire.CmdJoin, sref(1, sess("S1")), "rejoin after a kick"),
		req("bob", wire.CmdGetMemberIDs, typeReq(1), "bob, erin, alice"),
		req("alice", wire.CmdGetMemberSIDs, typeReq(1), "bob, erin, alice"),
		req("bob", wire.CmdLeave, sref(1, sess("S1")), "OwnerChanged to erin"),
		req("erin", wire.CmdLeave, sref(1, sess("S1")), "OwnerChanged to alice"),
		req("alice", wire.CmdLeave, sref(1, sess("S1")), "the last member: no push"),
		req("dave", wire.CmdGetSessionInfo, info(sess("S1")), "empty: no owner"),
		req("dave", wire.CmdLeave, sref(2, sess("S2")), "leave S2"),
		req("dave", wire.CmdJoin, sref(1, sess("S1")), "the first to join an empty session owns it, no OwnerChanged"),
		req("dave", wire.CmdIsOwner, typeReq(1), "true"),
		req("erin", wire.CmdJoin, sref(1, sess("S1")), "join"),
		req("carol", wire.CmdLeave, sref(1, sess("S3")), "S3 left empty"),
		req("carol", wire.CmdJoin, sref(1, sess("S1")), "S1 full again"),
		req("alice", wire.CmdJoin, sref(1, sess("S1")), "SessionFull"),
	)

	// Malformed payloads, from erin (a member of S1: in a cluster her
	// commands on it are forwarded when S1 is on another node).
	good := map[wire.Cmd]func(*parityEnv) []byte{
		wire.CmdCreate:                 fixed(&wire.CreateRequest{Type: 2, MaxMembers: 2, Props: []wire.KeyValue{kv("k", one)}}),
		wire.CmdJoin:                   sref(1, sess("S1")),
		wire.CmdLeave:                  sref(1, sess("S1")),
		wire.CmdAcceptInvite:           sref(1, sess("S1")),
		wire.CmdKick:                   fixed(&wire.KickRequest{Type: 1, UserID: "dave"}),
		wire.CmdBroadcast:              fixed(&wire.BroadcastRequest{Type: 1, Msg: []byte("hi")}),
		wire.CmdMessageTo:              fixed(&wire.MessageToRequest{Type: 1, Recipients: []string{"dave"}, Msg: []byte("hi")}),
		wire.CmdInvite:                 fixed(&wire.InviteRequest{Type: 1, Targets: []string{"bob"}, Msg: []byte("hi")}),
		wire.CmdGetProperty:            fixed(&wire.PropertyKeyRequest{Type: 1, Key: "mode"}),
		wire.CmdGetProperties:          fixed(&wire.PropertyKeysRequest{Type: 1, Keys: []string{"mode"}}),
		wire.CmdGetAllProperties:       typeReq(1),
		wire.CmdSetProperty:            fixed(&wire.SetPropertyRequest{Type: 1, Key: "k", Value: one}),
		wire.CmdSetProperties:          fixed(&wire.SetPropertiesRequest{Type: 1, Props: []wire.KeyValue{kv("k", one)}}),
		wire.CmdSetPropertyIfNotExists: fixed(&wire.SetPropertyRequest{Type: 1, Key: "k", Value: one}),
		wire.CmdIncrProperty:           fixed(&wire.IncrPropertyRequest{Type: 1, Key: "k", Delta: 1}),
		wire.CmdCompareAndSetProperty:  fixed(&wire.CompareAndSetRequest{Type: 1, Key: "k", HasOld: true, Old: one, New: one}),
		wire.CmdDeleteProperty:         fixed(&wire.PropertyKeyRequest{Type: 1, Key: "k"}),
		wire.CmdGetMemberIDs:           typeReq(1),
		wire.CmdGetMemberSIDs:          typeReq(1),
		wire.CmdGetMemberData:          typeReq(1),
		wire.CmdGetSessionInfo:         info(sess("S1")),
		wire.CmdIsOwner:                typeReq(1),
	}
	for cmd := wire.CmdCreate; cmd <= wire.CmdDeleteProperty; cmd++ {
		p, ok := good[cmd]
		if !ok {
			continue // GetUserSessions: empty, below
		}
		add(req("erin", cmd, truncated(p), "BadRequest: truncated"), req("erin", cmd, trailing(p), "BadRequest: a byte after the last field"))
	}
	add(
		req("erin", wire.CmdKick, raw(), "BadRequest: empty"),
		req("erin", wire.CmdGetUserSessions, raw(0), "BadRequest: a payload"),
		req("erin", wire.CmdPing, raw(0), "BadRequest: a payload"),
		req("erin", wire.CmdSetProperty, raw(1, 1, 'k', 0), "BadRequest: value tag 0"),
		req("erin", wire.CmdSetProperty, raw(1, 1, 'k', 6, 0, 0, 0, 0, 0, 0, 0, 1), "BadRequest: value tag 6"),
		req("erin", wire.CmdSetProperty, raw(1, 1, 'k', 1, 2), "BadRequest: bool byte 2"),
		req("erin", wire.CmdSetProperty, raw(1, 1, 'k', 5, 2, 'a', 0xff), "BadRequest: string value not UTF-8"),
		req("erin", wire.CmdGetProperty, raw(1, 2, 'k', 0xff), "BadRequest: key not UTF-8"),
		req("erin", wire.CmdCompareAndSetProperty, raw(1, 1, 'k', 2, 1, 1, 1, 1), "BadRequest: HasOld byte 2"),
		req("erin", wire.CmdGetProperties, raw(1, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 'k'), "BadRequest: a count larger than what follows"),
		req("erin", wire.CmdSetProperties, raw(1, 2, 1, 'a', 1, 1, 1, 'b', 7), "BadRequest: the second of two values"),
		req("erin", wire.CmdSignIn, fixed(&wire.SignInRequest{MinVersion: 1, MaxVersion: 1, UserID: "erin"}), "BadRequest: signed in already"),
		req("erin", wire.Cmd(0x0118), raw(1), "UnknownCommand"),
		parityStep{who: "erin", ver: 1, cmd: 0x10, payload: raw(1), note: "UnknownCommand: no application handler"},
		req("erin", wire.CmdGetMemberIDs, typeReq(1), "still signed in, still a member"),
	)

	// Signing in again (in a cluster, on another node): the old
	// connection is replaced, the memberships follow without a push.
	add(
		parityStep{who: "erin", resign: true, note: "the old connection gets Bye Replaced"},
		req("erin", wire.CmdGetUserSessions, raw(), "S1, kept"),
		req("dave", wire.CmdGetMemberSIDs, typeReq(1), "erin's new connection"),
		broadcast("dave", 1, []byte("to the new connection"), "to erin's new connection"),
		broadcast("erin", 1, []byte("from the new connection"), "from it"),
		create("erin", wire.CreateRequest{Type: 1, MaxMembers: 2}, "AlreadyInSession: the slot moved"),
		parityStep{who: "bob", resign: true, note: "bob owns S2, which stays on his old node"},
		req("bob", wire.CmdIsOwner, typeReq(2), "true"),
		req("bob", wire.CmdGetMemberData, typeReq(2), "bob's new connection"),
		setProp("bob", 2, "moved", one, "quiet: no push"),
		req("bob", wire.CmdGetAllProperties, typeReq(2), "quiet and moved"),
		req("bob", wire.CmdLeave, sref(2, sess("S2")), "S2 left empty"),
		req("bob", wire.CmdJoin, sref(2, sess("S2")), "the first to join owns it"),
	)

	// Disconnects: the owner, then a member.
	add(
		parityStep{who: "dave", bye: "S1", note: "erin and carol get MemberLeft, then OwnerChanged"},
		req("erin", wire.CmdIsOwner, typeReq(1), "true"),
		req("erin", wire.CmdGetMemberIDs, typeReq(1), "erin, carol"),
		parityStep{who: "carol", bye: "S1", note: "erin gets MemberLeft"},
		req("erin", wire.CmdGetSessionInfo, info(sess("S1")), "erin alone"),
		req("bob", wire.CmdGetSessionInfo, info(sess("S2")), "bob alone"),
	)
	return s
}

// parityPlayer is one player's connection in a run.
type parityPlayer struct {
	uid      string
	node     string
	c        *rawClient
	gone     bool // disconnected
	resigned int  // how many times it signed in again
}

// parityRun is one run of the script.
type parityRun struct {
	t       *testing.T
	env     parityEnv
	servers map[string]*Server // by node name
	nodes   []string           // every node's name, sorted
	players []*parityPlayer
}

// playParity signs the players in, each to the node nodeOf names, plays
// script and returns what each player received at each step: for step i,
// player uid, the frames in order, described and normalized.
func playParity(t *testing.T, script []parityStep, nodes map[string]*Server, nodeOf func(uid string) string) []map[string][]string {
	t.Helper()
	r := &parityRun{t: t, servers: nodes, env: parityEnv{owner: nodeOf(parityPlayers[0]), ids: map[string]string{}, names: map[string]string{}}}
	for name := range nodes {
		r.nodes = append(r.nodes, name)
	}
	slices.Sort(r.nodes)
	for _, uid := range parityPlayers {
		node := nodeOf(uid)
		c := dialRaw(t, "tcp", nodes[node].addrOf("tcp"))
		rep := c.signIn(uid)
		r.env.names[rep.SID] = "sid:" + uid
		r.players = append(r.players, &parityPlayer{uid: uid, node: node, c: c})
	}
	out := make([]map[string][]string, len(script))
	for i, s := range script {
		out[i] = r.play(s)
	}
	return out
}

func (r *parityRun) player(uid string) *parityPlayer {
	for _, p := range r.players {
		if p.uid == uid {
			return p
		}
	}
	r.t.Fatalf("no player %s", uid)
	return nil
}

// play runs one step and its barrier, and returns what each player
// received meanwhile.
func (r *parityRun) play(s parityStep) map[string][]string {
	rec := map[string][]string{}
	p := r.player(s.who)
	start := time.Now()
	switch {
	case s.bye != "":
		r.disconnect(p, s.bye, rec, start)
	case s.resign:
		r.signInAgain(p, rec, start)
	default:
		var seq uint32
		for j, q := range append([]parityStep{s}, s.then...) {
			payload := q.payload(&r.env)
			if q.seq0 {
				p.c.write(wire.AppendFrame(nil, wire.Header{Ver: q.ver, Cmd: q.cmd}, payload))
			} else if n := p.c.request(q.ver, q.cmd, payload); j == 0 {
				seq = n
			}
		}
		// Replies come in request order: the Ping's marks the end of the
		// step's, whatever its seq.
		mark := p.c.request(0, wire.CmdPing, nil)
		for {
			f := p.c.frame()
			if f.Flags&wire.FlagReply != 0 && f.Seq == mark && f.Cmd == wire.CmdPing {
				break
			}
			if s.creates != "" && f.Flags&wire.FlagReply != 0 && f.Seq == seq && f.Status == wire.StatusOK {
				var rep wire.CreateReply
				if rep.Consume(f.Payload) == nil {
					r.env.ids[s.creates] = rep.SessionID
					r.env.names[rep.SessionID] = s.creates
				}
			}
			rec[p.uid] = append(rec[p.uid], r.describe(f, start))
		}
	}
	r.barrier(rec, start)
	return rec
}

// signInAgain signs p in on a new connection, to the node after p's in a
// cluster, and reads the old connection to its end.
func (r *parityRun) signInAgain(p *parityPlayer, rec map[string][]string, start time.Time) {
	node := r.nodes[(slices.Index(r.nodes, p.node)+1)%len(r.nodes)]
	c := dialRaw(r.t, "tcp", r.servers[node].addrOf("tcp"))
	rep := c.signIn(p.uid)
	p.resigned++
	r.env.names[rep.SID] = fmt.Sprintf("sid:%s#%d", p.uid, p.resigned+1)
	r.readToEnd(p, rec, start)
	p.c, p.node = c, node
}

// readToEnd records what p's connection receives until the server closes
// it.
func (r *parityRun) readToEnd(p *parityPlayer, rec map[string][]string, start time.Time) {
	for {
		f, err := p.c.next()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				r.t.Fatalf("%s: the server did not close the connection", p.uid)
			}
			if !errors.Is(err, io.EOF) {
				rec[p.uid] = append(rec[p.uid], "closed: "+err.Error())
			}
			return
		}
		rec[p.uid] = append(rec[p.uid], r.describe(f, start))
	}
}

// disconnect sends p's Bye, reads to the end of its connection, then waits
// until session name's owner has removed p: a disconnect has no reply, and
// in a cluster p's node tells the owner with a message that has none
// either.
func (r *parityRun) disconnect(p *parityPlayer, name string, rec map[string][]string, start time.Time) {
	p.c.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdBye}, (&wire.Bye{}).Append(nil)))
	r.readToEnd(p, rec, start)
	p.gone = true
	var obs *parityPlayer
	for _, q := range r.players {
		if !q.gone {
			obs = q
			break
		}
	}
	id := sess(name)(&r.env)
	deadline := time.Now().Add(testTimeout)
	for {
		seq := obs.c.request(0, wire.CmdGetSessionInfo, info(lit(id))(&r.env))
		var si wire.SessionInfo
		for {
			f := obs.c.frame()
			if f.Flags&wire.FlagReply != 0 && f.Seq == seq {
				if f.Status != wire.StatusOK || si.Consume(f.Payload) != nil {
					r.t.Fatalf("%s: GetSessionInfo while waiting for %s's disconnect: %v", obs.uid, p.uid, f.Status)
				}
				break
			}
			rec[obs.uid] = append(rec[obs.uid], r.describe(f, start))
		}
		if !slices.Contains(si.MemberIDs, p.uid) {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s still a member of %s %v after its disconnect", p.uid, name, testTimeout)
		}
		time.Sleep(2 * time.Millisecond) // polling the owner: a disconnect tells nobody when it is done
	}
}

// barrier makes every connected player do a round trip to every other node
// and then a Ping, and records the frames each receives before the
// Ping's reply. The requests of all players are sent before any reply is
// read.
func (r *parityRun) barrier(rec map[string][]string, start time.Time) {
	last := map[*parityPlayer]uint32{}
	for _, q := range r.players {
		if q.gone {
			continue
		}
		for _, node := range r.nodes {
			if node != q.node {
				q.c.request(0, wire.CmdGetSessionInfo, (&wire.SessionInfoRequest{SessionID: unknownUUID + "@" + node}).Append(nil))
			}
		}
		last[q] = q.c.request(0, wire.CmdPing, nil)
	}
	for _, q := range r.players {
		if q.gone {
			continue
		}
		for {
			f := q.c.frame()
			if f.Flags&wire.FlagReply != 0 && f.Seq != 0 { // only the barrier's requests are outstanding
				if f.Seq == last[q] {
					break
				}
				if f.Cmd != wire.CmdGetSessionInfo || f.Status != wire.StatusSessionNotFound {
					r.t.Fatalf("%s's barrier: %v answered %v, want SessionNotFound from the other node", q.uid, f.Cmd, f.Status)
				}
				continue
			}
			rec[q.uid] = append(rec[q.uid], r.describe(f, start))
		}
	}
}

// describe renders f for comparison: its kind, command, status, and its
// payload with session IDs and SIDs replaced by their names and an
// invite's expiry by its TTL in seconds from start.
func (r *parityRun) describe(f wire.Frame, start time.Time) string {
	payload := f.Payload
	extra := ""
	if f.Flags&wire.FlagPush != 0 && f.Ver == 0 && f.Cmd == wire.CmdInviteReceived {
		var inv wire.InvitePush
		if inv.Consume(payload) == nil {
			// The owner stamps now + TTL between start and the push's
			// arrival: the TTL is the whole number of seconds within
			// that window.
			now := time.Now().UnixMilli()
			lo, hi := int64(inv.ExpiresUnixMillis)-now-1, int64(inv.ExpiresUnixMillis)-start.UnixMilli()+1
			ttl := "?"
			if n := hi / 1000; n*1000 >= lo && (n-1)*1000 < lo {
				ttl = fmt.Sprint(n)
			}
			extra = " expires in " + ttl + " s"
			inv.ExpiresUnixMillis = 0
			payload = inv.Append(nil)
		}
	}
	if f.Flags&wire.FlagPush != 0 && f.Ver == 0 && f.Cmd == wire.CmdBye {
		var bye wire.Bye
		if bye.Consume(payload) == nil {
			// Reason is words for logs, whose wording may change (PROTOCOL.md, Bye):
			// clients act on Status only.
			extra = fmt.Sprintf(" status %d %s", uint16(bye.Status), bye.Status.String())
			payload = nil
		}
	}
	payload = r.env.normalize(payload)
	var b strings.Builder
	switch {
	case f.Flags&wire.FlagReply != 0:
		fmt.Fprintf(&b, "reply %v %d %s", f.Cmd, uint16(f.Status), f.Status.String())
		if f.Seq == 0 {
			b.WriteString(" (seq 0)")
		}
	case f.Flags&wire.FlagPush != 0:
		fmt.Fprintf(&b, "push %v", f.Cmd)
	default:
		fmt.Fprintf(&b, "flags %#x %v", f.Flags, f.Cmd)
	}
	if f.Ver != 0 {
		fmt.Fprintf(&b, " ver %d", f.Ver)
	}
	b.WriteString(extra)
	if len(payload) <= 256 {
		fmt.Fprintf(&b, " %q", payload)
	} else {
		sum := sha256.Sum256(payload)
		fmt.Fprintf(&b, " %q... (%d bytes, sha256 %x)", payload[:96], len(payload), sum[:8])
	}
	return b.String()
}

// normalize replaces in p every length-prefixed session ID and SID (a
// UUID, with '@' and a node name for a session ID) by its name: session
// IDs embed the node, and SIDs are fresh per connection.
func (e *parityEnv) normalize(p []byte) []byte {
	out := make([]byte, 0, len(p))
	for i := 0; i < len(p); {
		if l := int(p[i]); l >= 36 && l <= 101 && i+1+l <= len(p) && uuidText(p[i+1:i+37]) && (l == 36 || p[i+37] == '@') {
			out = wire.AppendString(out, e.name(string(p[i+1:i+1+l])))
			i += 1 + l
			continue
		}
		out = append(out, p[i])
		i++
	}
	return out
}

// name returns the name of session ID or SID tok, naming it now if the
// script did not.
func (e *parityEnv) name(tok string) string {
	if n, ok := e.names[tok]; ok {
		return n
	}
	e.unnamed++
	n := fmt.Sprintf("unnamed-%d", e.unnamed)
	if strings.Contains(tok, "@") {
		n += "@" + tok[37:]
	}
	e.names[tok] = n
	return n
}

// uuidText reports whether b is a UUID in lowercase canonical text.
func uuidText(b []byte) bool {
	for i, c := range b {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return len(b) == 36
}

// compareParity reports every step at which a player of the cluster run
// received something else than in the single node's.
func compareParity(t *testing.T, script []parityStep, want, got []map[string][]string) {
	t.Helper()
	const maxReported = 30
	n := 0
	for i, s := range script {
		for _, uid := range parityPlayers {
			w, g := strings.Join(want[i][uid], "\n      "), strings.Join(got[i][uid], "\n      ")
			if w == g {
				continue
			}
			n++
			if n <= maxReported {
				t.Errorf("step %d, %s\n    player %s received\n    on the single node:\n      %s\n    in the cluster:\n      %s",
					i, s, uid, orNothing(w), orNothing(g))
			}
		}
	}
	if n > maxReported {
		t.Errorf("%d more mismatches not shown", n-maxReported)
	}
	if n == 0 {
		t.Logf("%d steps, every reply and push identical", len(script))
	}
}

func orNothing(s string) string {
	if s == "" {
		return "(nothing)"
	}
	return s
}
