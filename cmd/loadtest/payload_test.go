package main

import (
	"errors"
	"testing"

	"github.com/coveyhq/covey/internal/clientconn"
	"github.com/coveyhq/covey/wire"
)

// TestBroadcastFrame checks that the driver's one-pass frame is a valid
// Broadcast request whose Msg carries the payload header, for sizes around
// the uvarint length boundaries.
func TestBroadcastFrame(t *testing.T) {
	for _, size := range []int{minPayloadSize, 64, 127, 128, 16383, 16384, maxPayloadSize} {
		frame := appendBroadcastFrame([]byte("prefix"), 123456789, 42, 7, size)[len("prefix"):]
		if len(frame) != broadcastFrameSize(size) {
			t.Fatalf("size %d: frame is %d bytes, broadcastFrameSize says %d", size, len(frame), broadcastFrameSize(size))
		}
		dec := wire.NewDecoder(wire.Config{})
		dec.Write(frame)
		f, err := dec.Next()
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if f.Cmd != wire.CmdBroadcast || f.Seq != 0 || f.Flags != 0 || f.Ver != 0 {
			t.Fatalf("size %d: header %+v, want a seq-0 Broadcast request", size, f.Header)
		}
		var req wire.BroadcastRequest
		if err := req.Consume(f.Payload); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if req.Type != sessionType || len(req.Msg) != size {
			t.Fatalf("size %d: type %d, %d-byte msg", size, req.Type, len(req.Msg))
		}
		ts, sender, seq, ok := parsePayload(req.Msg)
		if !ok || ts != 123456789 || sender != 42 || seq != 7 {
			t.Fatalf("size %d: parsePayload = %d, %d, %d, %v", size, ts, sender, seq, ok)
		}
	}
	if _, _, _, ok := parsePayload(make([]byte, minPayloadSize-1)); ok {
		t.Error("parsePayload accepted a short payload")
	}
}

// TestConsumeMessagePush checks the allocation-free MessagePush decoder
// against wire's, and that every truncation is refused.
func TestConsumeMessagePush(t *testing.T) {
	m := wire.MessagePush{Type: 1, SessionID: "0b5a7c4e-3f0e-4c1a-9d52-0f6c2b7a1e90@local", SenderID: "alice", Msg: []byte("hello")}
	b := m.Append(nil)
	msg, ok := consumeMessagePush(b)
	if !ok || string(msg) != "hello" {
		t.Fatalf("consumeMessagePush = %q, %v", msg, ok)
	}
	for n := range len(b) {
		if _, ok := consumeMessagePush(b[:n]); ok {
			t.Errorf("accepted the first %d of %d bytes", n, len(b))
		}
	}
	if _, ok := consumeMessagePush(append(b, 0)); ok {
		t.Error("accepted a trailing byte")
	}
	if n := testing.AllocsPerRun(100, func() { consumeMessagePush(b) }); n != 0 {
		t.Errorf("%v allocations per message", n)
	}
}

func TestErrorKind(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{wire.StatusSessionFull, "session_full"},
		{wire.StatusAlreadyInSession, "already_in_a_session_of_this_type"},
		{&clientconn.ByeError{Status: wire.StatusSlowConsumer}, "bye_slow_consumer"},
		{errServerTimeout, kindTimeout},
		{errSendBufferFull, kindSendFull},
		{errors.Join(errDisconnected, errors.New("EOF")), kindDisconnected},
		{errors.Join(errDial, errors.New("refused")), kindDial},
		{errBadReply, kindProtocol},
		{errors.New("something else"), kindOther},
	}
	for _, tc := range tests {
		if got := errorKind(tc.err); got != tc.want {
			t.Errorf("errorKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
