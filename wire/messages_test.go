package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

func TestPayloadVectors(t *testing.T) {
	for _, v := range payloadVectors {
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
				if err := m.Consume(want[:i]); err == nil {
					t.Errorf("Consume(%x) (prefix %d of %d) succeeded", want[:i], i, len(want))
				}
				if !reflect.DeepEqual(m, newLike(v.msg)) {
					t.Errorf("failed Consume modified the message: %+v", m)
				}
			}
			// A trailing byte is ErrTrailing.
			if err := newLike(v.msg).Consume(append(bytes.Clone(want), 0)); !errors.Is(err, ErrTrailing) {
				t.Errorf("Consume with a trailing byte = %v, want ErrTrailing", err)
			}
		})
	}
}

func TestConsumeAliasesBytes(t *testing.T) {
	b := unhex(t, "01 02 6869")
	var m BroadcastRequest
	if err := m.Consume(b); err != nil {
		t.Fatal(err)
	}
	if &m.Msg[0] != &b[2] {
		t.Error("Msg is a copy, want a sub-slice of the input")
	}
	if cap(m.Msg) != len(m.Msg) {
		t.Errorf("cap(Msg) = %d, want clipped to %d", cap(m.Msg), len(m.Msg))
	}
}

func TestConsumeOverwrites(t *testing.T) {
	m := PropertyReply{Exists: true, Value: IntValue(9)}
	if err := m.Consume([]byte{0}); err != nil {
		t.Fatal(err)
	}
	if m != (PropertyReply{}) {
		t.Errorf("Consume left %+v, want the zero PropertyReply", m)
	}
}

func TestMessageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  message
		hex  string
		want error
	}{
		{"bool byte 2", &BoolReply{}, "02", ErrBadValue},
		{"value tag 0", &PropertyReply{}, "01 00", ErrBadValue},
		{"value tag 6", &PropertyReply{}, "01 06 00", ErrBadValue},
		{"bad bool value", &PropertyReply{}, "01 01 02", ErrBadValue},
		{"uvarint overflow", &CreateReply{}, "ffffffffffffffffff02", ErrCorrupt},
		{"huge string length", &CreateReply{}, "ffffffffffffffff7f 61", ErrShort},
		{"huge member count", &MemberDataReply{}, "8080808080808080 10", ErrShort},
		{"huge session count", &UserSessionsReply{}, "8080808080808080 10 0100", ErrShort},
		{"trailing", &TypeRequest{}, "01 02", ErrTrailing},
		{"empty", &TypeRequest{}, "", ErrShort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.msg.Consume(unhex(t, tc.hex)); !errors.Is(err, tc.want) {
				t.Errorf("Consume(%s) = %v, want %v", tc.hex, err, tc.want)
			}
		})
	}
}

func TestHugeCountsDoNotAllocate(t *testing.T) {
	// A count of 2^60 followed by a few bytes must fail before allocating.
	huge := AppendUvarint(nil, 1<<60)
	huge = append(huge, 1, 2, 3)
	for _, m := range allMessages() {
		allocs := testing.AllocsPerRun(100, func() {
			_ = m.Consume(huge)
		})
		if allocs != 0 {
			t.Errorf("%T.Consume(huge count) allocated %v times", m, allocs)
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := ConsumeStringList(huge); !errors.Is(err, ErrShort) {
			t.Fatalf("ConsumeStringList: %v, want ErrShort", err)
		}
		if _, _, err := ConsumeProps(huge); !errors.Is(err, ErrShort) {
			t.Fatalf("ConsumeProps: %v, want ErrShort", err)
		}
		if _, _, err := ConsumeBytes(huge); !errors.Is(err, ErrShort) {
			t.Fatalf("ConsumeBytes: %v, want ErrShort", err)
		}
		if _, _, err := ConsumeString(huge); !errors.Is(err, ErrShort) {
			t.Fatalf("ConsumeString: %v, want ErrShort", err)
		}
	})
	if allocs != 0 {
		t.Errorf("huge counts allocated %v times", allocs)
	}
}

func TestAppendMessagePushFrame(t *testing.T) {
	for _, cmd := range []Cmd{CmdBroadcastReceived, CmdMessageReceived} {
		m := MessagePush{Type: 1, SessionID: "s1", SenderID: "alice", Msg: []byte("hi")}
		want := AppendFrame(nil, Header{Cmd: cmd, Flags: FlagPush}, m.Append(nil))
		got := AppendMessagePushFrame(nil, cmd, m.Type, m.SessionID, m.SenderID, m.Msg)
		if !bytes.Equal(got, want) {
			t.Errorf("AppendMessagePushFrame = %x, want %x", got, want)
		}
	}
	// The frame vector "push: BroadcastReceived".
	got := AppendMessagePushFrame(nil, CmdBroadcastReceived, 1, "s1", "alice", []byte("hi"))
	if want := unhex(t, frameVectors[4].hex); !bytes.Equal(got, want) {
		t.Errorf("AppendMessagePushFrame = %x, want %x", got, want)
	}
	buf := make([]byte, 0, 256)
	msg := bytes.Repeat([]byte{'x'}, 64)
	allocs := testing.AllocsPerRun(1000, func() {
		buf = AppendMessagePushFrame(buf[:0], CmdBroadcastReceived, 1, "0b7a3c2e-6f1d-4d8a-9c43-1f2e3d4c5b6a@node-1", "alice", msg)
	})
	if allocs != 0 {
		t.Errorf("AppendMessagePushFrame allocated %v times", allocs)
	}
}

func TestMessageSizes(t *testing.T) {
	// Size must match Append for values beyond the vectors: long strings
	// (2-byte length prefixes), empty and nil lists, every Value kind.
	long := string(bytes.Repeat([]byte("k"), 200))
	props := []KeyValue{{long, StringValue(long)}, {"b", BoolValue(false)}, {"u", UintValue(1 << 63)}, {"f", FloatValue(-0.5)}}
	for _, m := range []message{
		&SignInRequest{Token: long},
		&CreateRequest{Props: props},
		&CreateRequest{},
		&InviteRequest{Targets: []string{long, ""}, Msg: make([]byte, 300)},
		&CompareAndSetRequest{HasOld: true, Old: StringValue(long), New: BoolValue(true)},
		&PropertyReply{Exists: true, Value: UintValue(3)},
		&MemberDataReply{Members: []MemberData{{UserID: long, Data: props}, {}}},
		&MemberDataReply{},
		&SessionInfo{MemberIDs: make([]string, 130)},
		&UserSessionsReply{Sessions: make([]SessionRef, 200)},
		&InvitePush{Msg: make([]byte, 20000)},
		&MessagePush{SessionID: long},
	} {
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
			t.Errorf("%T: round trip changed the encoding: %s", m, hex.EncodeToString(b))
		}
	}
}
