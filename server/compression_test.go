package server

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/golang/snappy"

	"github.com/coveyhq/covey/wire"
)

// compressibleMessages are broadcast payloads well over the compression
// threshold, as games send them: one row repeated (where an S2 encoder
// would use its repeat codes, which Snappy decoders reject) and rows whose
// numbers differ.
func compressibleMessages() [][]byte {
	var state []byte
	for i := 0; len(state) < 16<<10; i++ {
		state = fmt.Appendf(state, `{"id":"p%d","x":%d,"y":%d,"hp":%d},`, i, i*37%2000-1000, i*91%2000-1000, i%101)
	}
	return [][]byte{
		bytes.Repeat([]byte(`{"id":"p1","x":120,"y":-42,"hp":97,"state":"run"},`), 100), // 5 KiB
		state,
	}
}

// newSession signs in a creator and a member on network, the member reading
// frames as sent if asSent, and puts both in a new session of type 1. It
// returns them with the session ID.
func newSession(t *testing.T, srv *Server, network string, asSent bool) (creator, member *rawClient, id string) {
	t.Helper()
	creator = dialRaw(t, network, srv.addrOf(network))
	member = dialRaw(t, network, srv.addrOf(network))
	member.asSent = asSent
	creator.signIn("creator")
	member.signIn("member")
	f := creator.call(wire.CmdCreate, (&wire.CreateRequest{Type: 1, MaxMembers: 4}).Append(nil))
	var rep wire.CreateReply
	if f.Status != wire.StatusOK || rep.Consume(f.Payload) != nil {
		t.Fatalf("create: %v", f.Status)
	}
	if f := member.call(wire.CmdJoin, (&wire.SessionRef{Type: 1, SessionID: rep.SessionID}).Append(nil)); f.Status != wire.StatusOK {
		t.Fatalf("join: %v", f.Status)
	}
	return creator, member, rep.SessionID
}

// nextBroadcast reads r's frames up to the next BroadcastReceived push and
// returns it.
func nextBroadcast(t *testing.T, r *rawClient) wire.Frame {
	t.Helper()
	for {
		f, err := r.next()
		if err != nil {
			t.Fatalf("waiting for a broadcast: %v", err)
		}
		if f.Cmd == wire.CmdBroadcastReceived && f.Flags&wire.FlagPush != 0 {
			return f
		}
	}
}

// TestCompressedPushesAreSnappy has a client read a live server's
// compressed pushes as sent and decode them with golang/snappy, an
// implementation independent of the server's, as a client in another
// language would with its Snappy library.
func TestCompressedPushesAreSnappy(t *testing.T) {
	for _, network := range transports {
		t.Run(network, func(t *testing.T) {
			srv := startServer(t)
			sender, member, id := newSession(t, srv, network, true)
			for _, msg := range compressibleMessages() {
				req := (&wire.BroadcastRequest{Type: 1, Msg: msg}).Append(nil)
				if f := sender.call(wire.CmdBroadcast, req); f.Status != wire.StatusOK {
					t.Fatalf("broadcast: %v", f.Status)
				}
				f := nextBroadcast(t, member)
				if f.Flags&wire.FlagCompressed == 0 {
					t.Fatalf("a %d-byte broadcast was pushed uncompressed", len(msg))
				}
				payload, err := snappy.Decode(nil, f.Payload)
				if err != nil {
					t.Fatalf("golang/snappy cannot decode the server's %d-byte block: %v", len(f.Payload), err)
				}
				var push wire.MessagePush
				if err := push.Consume(payload); err != nil || push.SessionID != id || push.SenderID != "creator" || !bytes.Equal(push.Msg, msg) {
					t.Fatalf("decoded push: %v, from %q in %q, %d bytes; want the %d sent", err, push.SenderID, push.SessionID, len(push.Msg), len(msg))
				}
			}
		})
	}
}

// TestServerAcceptsSnappyRequests sends requests compressed by
// golang/snappy, as a client in another language would with its Snappy
// library: the server takes them, replies, and delivers the message.
func TestServerAcceptsSnappyRequests(t *testing.T) {
	for _, network := range transports {
		t.Run(network, func(t *testing.T) {
			srv := startServer(t)
			sender, member, _ := newSession(t, srv, network, false)
			for i, msg := range compressibleMessages() {
				req := (&wire.BroadcastRequest{Type: 1, Msg: msg}).Append(nil)
				seq := uint32(100 + i)
				sender.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdBroadcast, Flags: wire.FlagCompressed, Seq: seq}, snappy.Encode(nil, req)))
				if f := sender.reply(seq); f.Status != wire.StatusOK {
					t.Fatalf("compressed broadcast: %v", f.Status)
				}
				var push wire.MessagePush
				if f := nextBroadcast(t, member); push.Consume(f.Payload) != nil || !bytes.Equal(push.Msg, msg) {
					t.Fatalf("member got %d bytes, want the %d sent", len(push.Msg), len(msg))
				}
			}
		})
	}
}
