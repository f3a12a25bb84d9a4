package clientsdk

import (
	"time"

	"github.com/coveyhq/covey/wire"
)

// Event is something the server told the client on its own initiative (a
// push), or the failure of a fire-and-forget call. The set of events is
// closed: it is one of [MemberJoined], [MemberLeft], [Kicked],
// [OwnerChanged], [InviteReceived], [BroadcastReceived],
// [MessageReceived], [SessionDeleted], [PropertiesChanged], [AppMessage]
// and [AsyncError]
// (always as values, not pointers). Receive them with a type switch:
//
//	for ev := range c.Events() {
//		switch ev := ev.(type) {
//		case clientsdk.BroadcastReceived:
//			...
//		}
//	}
//
// Events are immutable values owned by the receiver: their byte slices are
// copies that the client never touches again.
type Event interface {
	event() // seals the set of events to this package
}

// MemberJoined reports that UserID joined the session (pushed to the
// other members).
type MemberJoined struct {
	Type      uint8 // session type
	SessionID string
	UserID    string
}

// MemberLeft reports that UserID left the session or disconnected.
type MemberLeft struct {
	Type      uint8
	SessionID string
	UserID    string
}

// Kicked reports that UserID was kicked from the session by its owner.
// The client receives it when it is itself the user kicked.
type Kicked struct {
	Type      uint8
	SessionID string
	UserID    string // the kicked user
}

// OwnerChanged reports that UserID is now the owner of the session.
type OwnerChanged struct {
	Type      uint8
	SessionID string
	UserID    string // the new owner
}

// InviteReceived is an invitation to join a session. Accept it with
// [Client.AcceptInvite](ctx, Type, SessionID) before Expires. Ver, Cmd
// and Msg are the inviter's application message ([InviteOptions]).
type InviteReceived struct {
	Type      uint8
	SessionID string
	From      string // the inviting user
	Ver       uint8
	Cmd       uint16
	Expires   time.Time
	Msg       []byte
}

// BroadcastReceived is a message Sender broadcast to its session
// ([Client.Broadcast]).
type BroadcastReceived struct {
	Type      uint8
	SessionID string
	Sender    string // user ID
	Msg       []byte
}

// MessageReceived is a message Sender addressed to this user
// ([Client.MessageTo]).
type MessageReceived struct {
	Type      uint8
	SessionID string
	Sender    string // user ID
	Msg       []byte
}

// SessionDeleted reports that the session no longer exists.
type SessionDeleted struct {
	Type      uint8
	SessionID string
}

// PropertiesChanged reports a successful write of the session's
// properties by another member, or by the game's server code (Writer ""):
// one event per write, in the order the writes were applied, so that
// applying each event's Props and Deleted to a copy of the properties
// keeps it current. A member does not receive its own writes, and members
// of a session created with [Quiet] receive none.
type PropertiesChanged struct {
	Type      uint8
	SessionID string
	Writer    string         // the writing member's user ID; "" for the game's server code
	Props     map[string]any // the keys written with their new values (for IncrProperty, the sum); never nil
	Deleted   []string       // the keys deleted (by DeleteProperty)
}

// AppMessage is an application-defined push (Ver 1 to 255), sent by the
// game's server code. Payload is exactly what the server sent.
type AppMessage struct {
	Ver     uint8
	Cmd     uint16
	Payload []byte
}

// AsyncError reports the failure of a fire-and-forget call
// ([Client.BroadcastAsync], [Client.Send]), which the server answers only
// when it fails, or a push from the server that could not be decoded
// (Err wraps [ErrProtocol]). Ver and Cmd are the command's: for built-in
// commands Ver is 0 and Cmd a wire.Cmd, such as uint16(wire.CmdBroadcast).
// For a failed call Err is a [*StatusError], so errors.Is(ev.Err,
// wire.StatusNotMember) works. Calls that fail before being sent return
// their error directly and produce no AsyncError.
type AsyncError struct {
	Ver uint8
	Cmd uint16
	Err error
}

func (MemberJoined) event()      {}
func (MemberLeft) event()        {}
func (Kicked) event()            {}
func (OwnerChanged) event()      {}
func (InviteReceived) event()    {}
func (BroadcastReceived) event() {}
func (MessageReceived) event()   {}
func (SessionDeleted) event()    {}
func (PropertiesChanged) event() {}
func (AppMessage) event()        {}
func (AsyncError) event()        {}

// clone returns a copy of b that the event owns, nil for an empty b.
func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// decodePush decodes push f of namespace 0 into its event. It returns
// (nil, nil) for a command this version does not know, which is ignored
// for forward compatibility. f.Payload is valid only during the call: the
// event keeps copies.
func decodePush(f wire.Frame) (Event, error) {
	switch f.Cmd {
	case wire.CmdMemberJoined, wire.CmdMemberLeft, wire.CmdKicked, wire.CmdOwnerChanged:
		var m wire.MemberEvent
		if err := m.Consume(f.Payload); err != nil {
			return nil, err
		}
		switch f.Cmd {
		case wire.CmdMemberJoined:
			return MemberJoined{Type: m.Type, SessionID: m.SessionID, UserID: m.UserID}, nil
		case wire.CmdMemberLeft:
			return MemberLeft{Type: m.Type, SessionID: m.SessionID, UserID: m.UserID}, nil
		case wire.CmdKicked:
			return Kicked{Type: m.Type, SessionID: m.SessionID, UserID: m.UserID}, nil
		default:
			return OwnerChanged{Type: m.Type, SessionID: m.SessionID, UserID: m.UserID}, nil
		}
	case wire.CmdInviteReceived:
		var m wire.InvitePush
		if err := m.Consume(f.Payload); err != nil {
			return nil, err
		}
		return InviteReceived{
			Type: m.Type, SessionID: m.SessionID, From: m.FromUserID, Ver: m.Ver, Cmd: uint16(m.Cmd),
			Expires: time.UnixMilli(int64(m.ExpiresUnixMillis)), Msg: clone(m.Msg),
		}, nil
	case wire.CmdBroadcastReceived, wire.CmdMessageReceived:
		var m wire.MessagePush
		if err := m.Consume(f.Payload); err != nil {
			return nil, err
		}
		if f.Cmd == wire.CmdBroadcastReceived {
			return BroadcastReceived{Type: m.Type, SessionID: m.SessionID, Sender: m.SenderID, Msg: clone(m.Msg)}, nil
		}
		return MessageReceived{Type: m.Type, SessionID: m.SessionID, Sender: m.SenderID, Msg: clone(m.Msg)}, nil
	case wire.CmdSessionDeleted:
		var m wire.SessionDeletedPush
		if err := m.Consume(f.Payload); err != nil {
			return nil, err
		}
		return SessionDeleted{Type: m.Type, SessionID: m.SessionID}, nil
	case wire.CmdPropertiesChanged:
		var m wire.PropertiesChangedPush
		if err := m.Consume(f.Payload); err != nil {
			return nil, err
		}
		return PropertiesChanged{
			Type: m.Type, SessionID: m.SessionID, Writer: m.WriterID,
			Props: fromProps(m.Props), Deleted: m.Deleted,
		}, nil
	}
	return nil, nil
}
