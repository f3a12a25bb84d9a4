package wire

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The golden vectors. Each hex string is written with spaces between
// fields exactly as it appears in PROTOCOL.md; TestProtocolDocHasVectors
// fails if the document and these tables drift apart, and
// TestFuzzSeedCorpus if the fuzz seed corpora do.

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz seed files from the golden vectors")

// unhex decodes a spaced hex vector.
func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		tb.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// message is implemented by every built-in payload type.
type message interface {
	Append(dst []byte) []byte
	Consume(b []byte) error
	Size() int
}

// newLike returns a new zero message of the same type as m.
func newLike(m message) message {
	return reflect.New(reflect.TypeOf(m).Elem()).Interface().(message)
}

// allMessages returns a zero value of every message type, for fuzzing.
func allMessages() []message {
	return []message{
		&SignInRequest{}, &SignInReply{}, &Bye{}, &CreateRequest{}, &CreateReply{},
		&SessionRef{}, &TypeRequest{}, &KickRequest{}, &BroadcastRequest{},
		&MessageToRequest{}, &InviteRequest{}, &PropertyKeyRequest{},
		&PropertyKeysRequest{}, &SetPropertyRequest{}, &SetPropertiesRequest{},
		&IncrPropertyRequest{}, &CompareAndSetRequest{}, &PropertyReply{},
		&PropsReply{}, &StringsReply{}, &BoolReply{}, &MemberData{}, &MemberDataReply{},
		&SessionInfoRequest{}, &SessionInfo{}, &UserSessionsReply{}, &MemberEvent{},
		&InvitePush{}, &MessagePush{}, &SessionDeletedPush{}, &PropertiesChangedPush{},
	}
}

type payloadVector struct {
	name string
	hex  string
	msg  message
}

var payloadVectors = []payloadVector{
	{"SignInRequest dev", "0001 0001 00 05 616c696365", &SignInRequest{MinVersion: 1, MaxVersion: 1, UserID: "alice"}},
	{"SignInRequest token", "0001 0003 03 746f6b 00", &SignInRequest{MinVersion: 1, MaxVersion: 3, Token: "tok"}},
	{"SignInReply", "0001 05 616c696365 02 6331 000003e8 00010000 0000ff00",
		&SignInReply{Version: 1, UserID: "alice", SID: "c1", HeartbeatMillis: 1000, MaxPayload: 65536, MaxMessage: 65280}},
	{"Bye", "0009 13 7369676e656420696e20656c73657768657265",
		&Bye{Status: StatusReplaced, Reason: "signed in elsewhere"}},
	{"CreateRequest", "01 0004 003c 00 02 03 6d6170 05 04 64757374 05 726f756e64 02 0000000000000003",
		&CreateRequest{Type: 1, MaxMembers: 4, TTLSeconds: 60, Props: []KeyValue{
			{"map", StringValue("dust")}, {"round", IntValue(3)}}}},
	{"CreateRequest quiet", "02 0008 0000 01 00",
		&CreateRequest{Type: 2, MaxMembers: 8, Flags: CreateQuiet}},
	{"CreateReply", "02 7331", &CreateReply{SessionID: "s1"}},
	{"SessionRef", "01 02 7331", &SessionRef{Type: 1, SessionID: "s1"}},
	{"TypeRequest", "01", &TypeRequest{Type: 1}},
	{"KickRequest", "01 03 626f62", &KickRequest{Type: 1, UserID: "bob"}},
	{"BroadcastRequest", "01 02 6869", &BroadcastRequest{Type: 1, Msg: []byte("hi")}},
	{"MessageToRequest", "01 02 03 626f62 05 6361726f6c 02 6869",
		&MessageToRequest{Type: 1, Recipients: []string{"bob", "carol"}, Msg: []byte("hi")}},
	{"InviteRequest", "01 01 03 626f62 01 0010 001e 07 6a6f696e207573",
		&InviteRequest{Type: 1, Targets: []string{"bob"}, Ver: 1, Cmd: 0x0010, TTLSeconds: 30, Msg: []byte("join us")}},
	{"PropertyKeyRequest", "01 03 6d6170", &PropertyKeyRequest{Type: 1, Key: "map"}},
	{"PropertyKeysRequest", "01 02 03 6d6170 05 726f756e64",
		&PropertyKeysRequest{Type: 1, Keys: []string{"map", "round"}}},
	{"SetPropertyRequest", "01 05 7370656564 04 3ff8000000000000",
		&SetPropertyRequest{Type: 1, Key: "speed", Value: FloatValue(1.5)}},
	{"SetPropertiesRequest", "01 01 05 7265616479 01 01",
		&SetPropertiesRequest{Type: 1, Props: []KeyValue{{"ready", BoolValue(true)}}}},
	{"IncrPropertyRequest", "01 05 726f756e64 ffffffffffffffff",
		&IncrPropertyRequest{Type: 1, Key: "round", Delta: -1}},
	{"CompareAndSetRequest old", "01 05 726f756e64 01 02 0000000000000003 02 0000000000000004",
		&CompareAndSetRequest{Type: 1, Key: "round", HasOld: true, Old: IntValue(3), New: IntValue(4)}},
	{"CompareAndSetRequest absent", "01 05 726f756e64 00 02 0000000000000001",
		&CompareAndSetRequest{Type: 1, Key: "round", New: IntValue(1)}},
	{"PropertyReply exists", "01 05 04 64757374", &PropertyReply{Exists: true, Value: StringValue("dust")}},
	{"PropertyReply absent", "00", &PropertyReply{}},
	{"PropsReply", "01 05 726f756e64 02 0000000000000003",
		&PropsReply{Props: []KeyValue{{"round", IntValue(3)}}}},
	{"StringsReply", "02 05 616c696365 03 626f62", &StringsReply{Items: []string{"alice", "bob"}}},
	{"BoolReply", "01", &BoolReply{Value: true}},
	{"MemberDataReply", "02 05 616c696365 02 6331 01 03 6c766c 03 0000000000000007 03 626f62 02 6332 00",
		&MemberDataReply{Members: []MemberData{
			{UserID: "alice", SID: "c1", Data: []KeyValue{{"lvl", UintValue(7)}}},
			{UserID: "bob", SID: "c2"}}}},
	{"SessionInfoRequest", "02 7331", &SessionInfoRequest{SessionID: "s1"}},
	{"SessionInfo", "02 7331 01 0002 0004 02 05 616c696365 03 626f62 05 616c696365",
		&SessionInfo{SessionID: "s1", Type: 1, CurrentMembers: 2, MaxMembers: 4,
			MemberIDs: []string{"alice", "bob"}, OwnerID: "alice"}},
	{"UserSessionsReply", "02 01 02 7331 02 02 7339",
		&UserSessionsReply{Sessions: []SessionRef{{1, "s1"}, {2, "s9"}}}},
	{"MemberEvent", "01 02 7331 03 626f62", &MemberEvent{Type: 1, SessionID: "s1", UserID: "bob"}},
	{"InvitePush", "01 02 7331 05 616c696365 01 0010 0000018bcfe56800 07 6a6f696e207573",
		&InvitePush{Type: 1, SessionID: "s1", FromUserID: "alice", Ver: 1, Cmd: 0x0010,
			ExpiresUnixMillis: 1700000000000, Msg: []byte("join us")}},
	{"MessagePush", "01 02 7331 05 616c696365 02 6869",
		&MessagePush{Type: 1, SessionID: "s1", SenderID: "alice", Msg: []byte("hi")}},
	{"SessionDeletedPush", "01 02 7331", &SessionDeletedPush{Type: 1, SessionID: "s1"}},
	{"PropertiesChangedPush set", "01 02 7331 05 616c696365 01 05 7265616479 01 01 00",
		&PropertiesChangedPush{Type: 1, SessionID: "s1", WriterID: "alice", Props: []KeyValue{{"ready", BoolValue(true)}}}},
	{"PropertiesChangedPush deleted", "01 02 7331 03 626f62 00 01 03 6d6170",
		&PropertiesChangedPush{Type: 1, SessionID: "s1", WriterID: "bob", Deleted: []string{"map"}}},
}

type valueVector struct {
	hex string
	v   Value
}

var valueVectors = []valueVector{
	{"01 00", BoolValue(false)},
	{"01 01", BoolValue(true)},
	{"02 fffffffffffffffe", IntValue(-2)},
	{"03 0000000000000007", UintValue(7)},
	{"04 3ff8000000000000", FloatValue(1.5)},
	{"05 04 64757374", StringValue("dust")},
	{"05 00", StringValue("")},
}

// repetitive is the 600-byte payload of the compressed frame vector.
var repetitive = bytes.Repeat([]byte("covey "), 100)

// blockVector is a Snappy block example of PROTOCOL.md's "Compression"
// section; decoded is nil for a corrupt block.
type blockVector struct {
	name    string
	hex     string
	decoded []byte
	kinds   [4]int // elements of each tag kind: literal, copy-1, copy-2, copy-4
}

var blockVectors = []blockVector{
	{"worked example", "1e 14 636f76657920 1d06 10 2c20676f20 121600 0b09000000",
		[]byte("covey covey covey, go covey go"), [4]int{2, 1, 1, 1}},
	{"literal lengths in extra bytes", "0a f0 04 68656c6c6f f4 0400 776f726c64",
		[]byte("helloworld"), [4]int{2, 0, 0, 0}},
	{"copy-2 offset 0", "04 00 61 0a 0000", nil, [4]int{}},
	{"copy-1 offset 0", "05 00 61 0100", nil, [4]int{}},
	{"offset past the output", "04 00 61 0a 0200", nil, [4]int{}},
	{"past the declared length", "03 00 61 0a 0100", nil, [4]int{}},
	{"short of the declared length", "05 00 61 0a 0100", nil, [4]int{}},
	{"cut in an offset", "04 00 61 0a 01", nil, [4]int{}},
	{"cut in a literal", "04 f0 03 616161", nil, [4]int{}},
}

type frameVector struct {
	name    string
	hex     string
	header  Header // as Split returns it
	payload []byte // after decompression
	msg     message
}

var frameVectors = []frameVector{
	{"request: SignIn", "0000000b 00 0001 00 00000001 0000 0001 0001 00 05 616c696365",
		Header{Length: 11, Cmd: CmdSignIn, Seq: 1}, unhexMust("0001 0001 00 05 616c696365"),
		&SignInRequest{MinVersion: 1, MaxVersion: 1, UserID: "alice"}},
	{"reply: SignIn", "00000017 00 0001 01 00000001 0000 0001 05 616c696365 02 6331 000003e8 00010000 0000ff00",
		Header{Length: 23, Cmd: CmdSignIn, Flags: FlagReply, Seq: 1},
		unhexMust("0001 05 616c696365 02 6331 000003e8 00010000 0000ff00"),
		&SignInReply{Version: 1, UserID: "alice", SID: "c1", HeartbeatMillis: 1000, MaxPayload: 65536, MaxMessage: 65280}},
	{"reply with status: SignIn, no common version", "00000000 00 0001 01 00000001 000b",
		Header{Cmd: CmdSignIn, Flags: FlagReply, Seq: 1, Status: StatusBadVersion}, []byte{}, nil},
	{"reply with status: Join, session full", "00000000 00 0102 01 00000002 0012",
		Header{Cmd: CmdJoin, Flags: FlagReply, Seq: 2, Status: StatusSessionFull}, []byte{}, nil},
	{"push: BroadcastReceived", "0000000d 00 0206 02 00000000 0000 01 02 7331 05 616c696365 02 6869",
		Header{Length: 13, Cmd: CmdBroadcastReceived, Flags: FlagPush}, unhexMust("01 02 7331 05 616c696365 02 6869"),
		&MessagePush{Type: 1, SessionID: "s1", SenderID: "alice", Msg: []byte("hi")}},
	{"push: Bye, replaced", "00000016 00 0003 02 00000000 0000 0009 13 7369676e656420696e20656c73657768657265",
		Header{Length: 22, Cmd: CmdBye, Flags: FlagPush},
		unhexMust("0009 13 7369676e656420696e20656c73657768657265"),
		&Bye{Status: StatusReplaced, Reason: "signed in elsewhere"}},
	{"request: Ping", "00000000 00 0002 00 00000005 0000",
		Header{Cmd: CmdPing, Seq: 5}, []byte{}, nil},
	{"request: application ver 1 cmd 0x0010", "00000004 01 0010 00 00000003 0000 deadbeef",
		Header{Length: 4, Ver: 1, Cmd: 0x0010, Seq: 3}, unhexMust("deadbeef"), nil},
	{"push: compressed, 600 bytes of \"covey \"",
		"00000027 01 0011 06 00000000 0000 d804 14 636f76657920 ee0600 ee0600 ee0600 ee0600 ee0600 ee0600 ee0600 ee0600 ee0600 d60600",
		Header{Length: 39, Ver: 1, Cmd: 0x0011, Flags: FlagPush | FlagCompressed}, repetitive, nil},
}

// unhexMust decodes a spaced hex literal in a table initializer.
func unhexMust(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// primitiveVectors are the examples of the payload primitives section.
var primitiveVectors = []struct {
	name   string
	hex    string
	append func([]byte) []byte
	size   int
}{
	{"U8 0x2a", "2a", func(b []byte) []byte { return AppendU8(b, 0x2a) }, SizeU8()},
	{"U16 0x1234", "1234", func(b []byte) []byte { return AppendU16(b, 0x1234) }, SizeU16()},
	{"U32 1000", "000003e8", func(b []byte) []byte { return AppendU32(b, 1000) }, SizeU32()},
	{"U64 1700000000000", "0000018bcfe56800", func(b []byte) []byte { return AppendU64(b, 1700000000000) }, SizeU64()},
	{"Bool true", "01", func(b []byte) []byte { return AppendBool(b, true) }, SizeBool()},
	{"Uvarint 0", "00", func(b []byte) []byte { return AppendUvarint(b, 0) }, SizeUvarint(0)},
	{"Uvarint 127", "7f", func(b []byte) []byte { return AppendUvarint(b, 127) }, SizeUvarint(127)},
	{"Uvarint 300", "ac02", func(b []byte) []byte { return AppendUvarint(b, 300) }, SizeUvarint(300)},
	{"Uvarint 65536", "808004", func(b []byte) []byte { return AppendUvarint(b, 65536) }, SizeUvarint(65536)},
	{"String alice", "05 616c696365", func(b []byte) []byte { return AppendString(b, "alice") }, SizeString("alice")},
	{"String empty", "00", func(b []byte) []byte { return AppendString(b, "") }, SizeString("")},
	{"Bytes deadbeef", "04 deadbeef", func(b []byte) []byte { return AppendBytes(b, []byte{0xde, 0xad, 0xbe, 0xef}) },
		SizeBytes([]byte{0xde, 0xad, 0xbe, 0xef})},
	{"StringList alice bob", "02 05 616c696365 03 626f62",
		func(b []byte) []byte { return AppendStringList(b, []string{"alice", "bob"}) },
		SizeStringList([]string{"alice", "bob"})},
}

func TestProtocolDocHasVectors(t *testing.T) {
	doc, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	check := func(kind, name, h string) {
		if !bytes.Contains(doc, []byte(h)) {
			t.Errorf("PROTOCOL.md lacks the %s vector %q: %s", kind, name, h)
		}
	}
	for _, v := range frameVectors {
		check("frame", v.name, v.hex)
	}
	for _, v := range payloadVectors {
		check("payload", v.name, v.hex)
	}
	for _, v := range valueVectors {
		check("value", v.v.Kind.String(), v.hex)
	}
	for _, v := range primitiveVectors {
		check("primitive", v.name, v.hex)
	}
	for _, v := range blockVectors {
		check("Snappy block", v.name, v.hex)
	}
}

// seedFile is the content of a go test fuzz v1 corpus file holding b.
func seedFile(b []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b)
}

// seedName turns a vector name into a corpus file name.
func seedName(name string) string {
	return "vector-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, name)
}

// TestFuzzSeedCorpus checks that every golden vector is in the fuzz seed
// corpora; run with -update-corpus to write them.
func TestFuzzSeedCorpus(t *testing.T) {
	seeds := map[string]map[string][]byte{"FuzzDecodeFrame": {}, "FuzzPayload": {}}
	var all []byte
	for _, v := range frameVectors {
		b := unhex(t, v.hex)
		seeds["FuzzDecodeFrame"][seedName(v.name)] = b
		all = append(all, b...)
	}
	seeds["FuzzDecodeFrame"]["vectors-all-coalesced"] = all
	for _, v := range payloadVectors {
		seeds["FuzzPayload"][seedName(v.name)] = unhex(t, v.hex)
	}
	for i, v := range valueVectors {
		seeds["FuzzPayload"][fmt.Sprintf("vector-value-%d-%s", i, v.v.Kind)] = unhex(t, v.hex)
	}
	for target, files := range seeds {
		dir := filepath.Join("testdata", "fuzz", target)
		for name, b := range files {
			path := filepath.Join(dir, name)
			want := seedFile(b)
			if *updateCorpus {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("%v (run go test ./wire/ -run TestFuzzSeedCorpus -args -update-corpus)", err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s is stale (run go test ./wire/ -run TestFuzzSeedCorpus -args -update-corpus)", path)
			}
		}
	}
}
