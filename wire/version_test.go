package wire

import "testing"

func TestChooseVersion(t *testing.T) {
	for _, c := range []struct {
		lo, hi uint16
		want   uint16
		ok     bool
	}{
		{1, 1, 1, true},
		{1, 9, ProtocolVersion, true},
		{0, 1, 1, true},
		{0, 0, 0, false}, // a version before v1
		{ProtocolVersion + 1, ProtocolVersion + 5, 0, false}, // only newer ones
		{3, 2, 0, false}, // an empty range
	} {
		got, ok := ChooseVersion(c.lo, c.hi)
		if got != c.want || ok != c.ok {
			t.Errorf("ChooseVersion(%d, %d) = %d, %v; want %d, %v", c.lo, c.hi, got, ok, c.want, c.ok)
		}
	}
}

func TestMaxMessageFor(t *testing.T) {
	if got := MaxMessageFor(0); got != DefaultMaxPayload-PushReserve {
		t.Errorf("MaxMessageFor(0) = %d", got)
	}
	// The worst-case InvitePush with a MaxMessageFor-sized Msg fits the limit:
	// a 101-byte session ID, a 128-byte user ID, the largest payload limit.
	m := InvitePush{
		Type: 255, SessionID: string(make([]byte, 101)), FromUserID: string(make([]byte, 128)),
		Ver: 1, Cmd: 1, ExpiresUnixMillis: 1, Msg: make([]byte, MaxMessageFor(MaxMaxPayload)),
	}
	if m.Size() > MaxMaxPayload {
		t.Errorf("InvitePush of MaxMessageFor(MaxMaxPayload) is %d bytes, over %d", m.Size(), MaxMaxPayload)
	}
	p := MessagePush{Type: 1, SessionID: m.SessionID, SenderID: m.FromUserID, Msg: make([]byte, MaxMessageFor(0))}
	if p.Size() > DefaultMaxPayload {
		t.Errorf("MessagePush of MaxMessageFor(0) is %d bytes, over %d", p.Size(), DefaultMaxPayload)
	}
}
