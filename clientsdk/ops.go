package clientsdk

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/coveyhq/covey/wire"
)

// Session operations. Each sends one request and, except the Async and
// Send variants, blocks until its reply arrives, ctx ends, or the client
// closes. They are safe for concurrent use; replies are matched to calls
// by seq, so concurrent calls do not wait for each other.
//
// Errors common to all: a [*StatusError] when the server replied with a
// status (match it with errors.Is(err, wire.StatusX) or the ErrX
// re-exports), ErrClosed when the client is or becomes closed, ctx's error
// when ctx ends first (the request may still take effect on the server),
// ErrSendBufferFull, and ErrProtocol for a malformed reply. Arguments the
// server would refuse are refused locally with the same status and no
// round trip: StatusBadProperty for a property value that is not a bool,
// integer, float or string; StatusTooLarge for a payload over the
// server's limit; StatusBadRequest for a TTL over 65,535 seconds.
//
// "typ" is the session type; operations that name no session ID act on
// the caller's session of that type.

// Member is one member of a session, as returned by [Client.MemberData].
type Member struct {
	UserID string
	SID    string         // the member's connection ID
	Data   map[string]any // the member's user data; never nil
}

// SessionInfo describes a session, as returned by [Client.SessionInfo].
type SessionInfo struct {
	SessionID      string
	Type           uint8
	CurrentMembers int
	MaxMembers     int
	MemberIDs      []string
	OwnerID        string
}

// UserSession is a session the user is in, as returned by
// [Client.UserSessions].
type UserSession struct {
	Type      uint8
	SessionID string
}

// InviteOptions is the application's part of an invitation, delivered to
// each target in an [InviteReceived] event.
type InviteOptions struct {
	Ver uint8  // application namespace of the invite message
	Cmd uint16 // application command of the invite message
	Msg []byte // not retained after Invite returns
	// TTL is how long the invitation can be accepted, rounded up to whole
	// seconds; 0 means the server's default.
	TTL time.Duration
}

// CreateOption is an option of [Client.Create], such as [Quiet].
type CreateOption func(*createOptions)

// createOptions are the options a Create request carries.
type createOptions struct {
	flags wire.CreateFlags
}

// Quiet creates a session whose members receive no [PropertiesChanged]
// events: for sessions whose properties change too often to be worth
// pushing. Members still read the properties with GetProperty and its
// kin.
func Quiet() CreateOption {
	return func(o *createOptions) { o.flags |= wire.CreateQuiet }
}

// Create creates a session of type typ for up to maxMembers members (more
// than 1), with initial properties props, and makes the caller its first
// member and owner. The session is deleted after staying empty for
// emptyTTL (rounded up to whole seconds; 0 means the server's default).
// opts are options such as [Quiet]. It returns the new session's ID.
func (c *Client) Create(ctx context.Context, typ uint8, maxMembers uint16, emptyTTL time.Duration, props map[string]any, opts ...CreateOption) (sessionID string, err error) {
	ttl, err := ttlSeconds(wire.CmdCreate, emptyTTL)
	if err != nil {
		return "", err
	}
	kvs, err := toProps(wire.CmdCreate, props)
	if err != nil {
		return "", err
	}
	var o createOptions
	for _, opt := range opts {
		opt(&o)
	}
	m := wire.CreateRequest{Type: typ, MaxMembers: maxMembers, TTLSeconds: ttl, Flags: o.flags, Props: kvs}
	f := newFrame()
	f.b = m.Append(f.b)
	p, err := c.roundTrip(ctx, 0, wire.CmdCreate, f)
	if err != nil {
		return "", err
	}
	var rep wire.CreateReply
	if err := rep.Consume(p); err != nil {
		return "", badReply(wire.CmdCreate, err)
	}
	return rep.SessionID, nil
}

// Join joins the session sessionID of type typ.
func (c *Client) Join(ctx context.Context, typ uint8, sessionID string) error {
	return c.sessionRef(ctx, wire.CmdJoin, typ, sessionID)
}

// AcceptInvite joins the session of an [InviteReceived] event: the
// invitation must not have expired.
func (c *Client) AcceptInvite(ctx context.Context, typ uint8, sessionID string) error {
	return c.sessionRef(ctx, wire.CmdAcceptInvite, typ, sessionID)
}

// Leave leaves the session sessionID of type typ.
func (c *Client) Leave(ctx context.Context, typ uint8, sessionID string) error {
	return c.sessionRef(ctx, wire.CmdLeave, typ, sessionID)
}

// sessionRef runs a command whose request is a SessionRef and whose reply
// is empty.
func (c *Client) sessionRef(ctx context.Context, cmd wire.Cmd, typ uint8, sessionID string) error {
	m := wire.SessionRef{Type: typ, SessionID: sessionID}
	f := newFrame()
	f.b = m.Append(f.b)
	_, err := c.roundTrip(ctx, 0, cmd, f)
	return err
}

// Kick removes userID from the caller's session of type typ. Only the
// owner may kick.
func (c *Client) Kick(ctx context.Context, typ uint8, userID string) error {
	m := wire.KickRequest{Type: typ, UserID: userID}
	f := newFrame()
	f.b = m.Append(f.b)
	_, err := c.roundTrip(ctx, 0, wire.CmdKick, f)
	return err
}

// Broadcast sends msg to every other member of the caller's session of
// type typ, who receive it as a [BroadcastReceived] event, and waits for
// the server's acknowledgement. msg is not retained. Over KCP, a node
// behind its traffic refuses it with wire.StatusOverloaded (nothing was
// sent): send no fan-out for 100 ms or more, then retry what still
// matters (PROTOCOL.md, Limits).
func (c *Client) Broadcast(ctx context.Context, typ uint8, msg []byte) error {
	m := wire.BroadcastRequest{Type: typ, Msg: msg}
	f := newFrame()
	f.b = m.Append(f.b)
	_, err := c.roundTrip(ctx, 0, wire.CmdBroadcast, f)
	return err
}

// BroadcastAsync is Broadcast without waiting: it queues the request and
// returns. The server does not acknowledge success; a failure arrives
// later as an [AsyncError] event with Cmd uint16(wire.CmdBroadcast)
// (wire.StatusOverloaded among them: see Broadcast). It
// returns an error only when the request cannot be sent (ErrClosed,
// ErrSendBufferFull, StatusTooLarge). msg is not retained.
func (c *Client) BroadcastAsync(typ uint8, msg []byte) error {
	m := wire.BroadcastRequest{Type: typ, Msg: msg}
	f := newFrame()
	f.b = m.Append(f.b)
	return c.sendAsync(0, wire.CmdBroadcast, f)
}

// MessageTo sends msg to the listed members of the caller's session of
// type typ, who receive it as a [MessageReceived] event. msg is not
// retained.
func (c *Client) MessageTo(ctx context.Context, typ uint8, recipients []string, msg []byte) error {
	m := wire.MessageToRequest{Type: typ, Recipients: recipients, Msg: msg}
	f := newFrame()
	f.b = m.Append(f.b)
	_, err := c.roundTrip(ctx, 0, wire.CmdMessageTo, f)
	return err
}

// Invite invites targets to the caller's session of type typ; each
// receives an [InviteReceived] event carrying opts. If some target is not
// online the error matches wire.StatusUserNotFound, and the other targets
// were still invited.
func (c *Client) Invite(ctx context.Context, typ uint8, targets []string, opts InviteOptions) error {
	ttl, err := ttlSeconds(wire.CmdInvite, opts.TTL)
	if err != nil {
		return err
	}
	m := wire.InviteRequest{Type: typ, Targets: targets, Ver: opts.Ver, Cmd: wire.Cmd(opts.Cmd), TTLSeconds: ttl, Msg: opts.Msg}
	f := newFrame()
	f.b = m.Append(f.b)
	_, err = c.roundTrip(ctx, 0, wire.CmdInvite, f)
	return err
}

// GetProperty returns the value of property key of the caller's session
// of type typ: a bool, int64, uint64, float64 or string, and whether it
// exists (if not, value is nil).
func (c *Client) GetProperty(ctx context.Context, typ uint8, key string) (value any, exists bool, err error) {
	m := wire.PropertyKeyRequest{Type: typ, Key: key}
	f := newFrame()
	f.b = m.Append(f.b)
	p, err := c.roundTrip(ctx, 0, wire.CmdGetProperty, f)
	if err != nil {
		return nil, false, err
	}
	var rep wire.PropertyReply
	if err := rep.Consume(p); err != nil {
		return nil, false, badReply(wire.CmdGetProperty, err)
	}
	if !rep.Exists {
		return nil, false, nil
	}
	return rep.Value.Any(), true, nil
}

// GetProperties returns the properties named by keys of the caller's
// session of type typ; keys that do not exist are absent from the map.
// Values are bool, int64, uint64, float64 or string. The map is never nil.
func (c *Client) GetProperties(ctx context.Context, typ uint8, keys []string) (map[string]any, error) {
	m := wire.PropertyKeysRequest{Type: typ, Keys: keys}
	f := newFrame()
	f.b = m.Append(f.b)
	return c.props(ctx, wire.CmdGetProperties, f)
}

// GetAllProperties returns every property of the caller's session of type
// typ, like GetProperties.
func (c *Client) GetAllProperties(ctx context.Context, typ uint8) (map[string]any, error) {
	m := wire.TypeRequest{Type: typ}
	f := newFrame()
	f.b = m.Append(f.b)
	return c.props(ctx, wire.CmdGetAllProperties, f)
}

// props runs a command whose reply is a PropsReply.
func (c *Client) props(ctx context.Context, cmd wire.Cmd, f *outFrame) (map[string]any, error) {
	p, err := c.roundTrip(ctx, 0, cmd, f)
	if err != nil {
		return nil, err
	}
	var rep wire.PropsReply
	if err := rep.Consume(p); err != nil {
		return nil, badReply(cmd, err)
	}
	return fromProps(rep.Props), nil
}

// SetProperty sets property key of the caller's session of type typ to
// value: a bool, any integer type (signed types are stored as int64,
// unsigned ones as uint64), float32, float64, string or wire.Value.
// Every property write fails with wire.StatusTooManyProperties past the
// session's key limit, and with wire.StatusPropertiesFull if it would take
// the session's encoded properties over their size budget (the server's
// MaxPayload - wire.PushReserve); nothing is written then.
func (c *Client) SetProperty(ctx context.Context, typ uint8, key string, value any) error {
	return c.setProperty(ctx, wire.CmdSetProperty, typ, key, value)
}

// SetPropertyIfNotExists is SetProperty, unless the key exists: then it
// fails with wire.StatusPropertyExists and changes nothing.
func (c *Client) SetPropertyIfNotExists(ctx context.Context, typ uint8, key string, value any) error {
	return c.setProperty(ctx, wire.CmdSetPropertyIfNotExists, typ, key, value)
}

// setProperty runs a command whose request is a SetPropertyRequest.
func (c *Client) setProperty(ctx context.Context, cmd wire.Cmd, typ uint8, key string, value any) error {
	v, err := toValue(cmd, value)
	if err != nil {
		return err
	}
	m := wire.SetPropertyRequest{Type: typ, Key: key, Value: v}
	f := newFrame()
	f.b = m.Append(f.b)
	_, err = c.roundTrip(ctx, 0, cmd, f)
	return err
}

// SetProperties sets several properties of the caller's session of type
// typ at once: all of them, or none if the server refuses any. Values are
// as for SetProperty.
func (c *Client) SetProperties(ctx context.Context, typ uint8, props map[string]any) error {
	kvs, err := toProps(wire.CmdSetProperties, props)
	if err != nil {
		return err
	}
	m := wire.SetPropertiesRequest{Type: typ, Props: kvs}
	f := newFrame()
	f.b = m.Append(f.b)
	_, err = c.roundTrip(ctx, 0, wire.CmdSetProperties, f)
	return err
}

// IncrProperty adds delta to the int64 property key of the caller's
// session of type typ (a missing key counts as 0) and returns the new
// value. A property of another kind fails with wire.StatusNotNumeric, and
// a sum outside the int64 range with wire.StatusOverflow (the value is
// unchanged).
func (c *Client) IncrProperty(ctx context.Context, typ uint8, key string, delta int64) (int64, error) {
	m := wire.IncrPropertyRequest{Type: typ, Key: key, Delta: delta}
	f := newFrame()
	f.b = m.Append(f.b)
	p, err := c.roundTrip(ctx, 0, wire.CmdIncrProperty, f)
	if err != nil {
		return 0, err
	}
	var rep wire.PropertyReply
	if err := rep.Consume(p); err != nil {
		return 0, badReply(wire.CmdIncrProperty, err)
	}
	if !rep.Exists || rep.Value.Kind != wire.KindInt {
		return 0, badReply(wire.CmdIncrProperty, wire.ErrBadValue)
	}
	return rep.Value.Int(), nil
}

// CompareAndSetProperty sets property key of the caller's session of type
// typ to newValue if it currently holds oldValue or, when oldValue is nil,
// if it does not exist; otherwise it fails with wire.StatusCompareFailed.
// Values are as for SetProperty and compare after the same conversion
// (int8(1) equals int64(1)).
func (c *Client) CompareAndSetProperty(ctx context.Context, typ uint8, key string, oldValue, newValue any) error {
	const cmd = wire.CmdCompareAndSetProperty
	m := wire.CompareAndSetRequest{Type: typ, Key: key, HasOld: oldValue != nil}
	var err error
	if m.HasOld {
		if m.Old, err = toValue(cmd, oldValue); err != nil {
			return err
		}
	}
	if m.New, err = toValue(cmd, newValue); err != nil {
		return err
	}
	f := newFrame()
	f.b = m.Append(f.b)
	_, err = c.roundTrip(ctx, 0, cmd, f)
	return err
}

// DeleteProperty removes property key of the caller's session of type typ
// and reports whether it existed.
func (c *Client) DeleteProperty(ctx context.Context, typ uint8, key string) (existed bool, err error) {
	m := wire.PropertyKeyRequest{Type: typ, Key: key}
	f := newFrame()
	f.b = m.Append(f.b)
	p, err := c.roundTrip(ctx, 0, wire.CmdDeleteProperty, f)
	if err != nil {
		return false, err
	}
	var rep wire.BoolReply
	if err := rep.Consume(p); err != nil {
		return false, badReply(wire.CmdDeleteProperty, err)
	}
	return rep.Value, nil
}

// MemberIDs returns the user IDs of the members of the caller's session of
// type typ.
func (c *Client) MemberIDs(ctx context.Context, typ uint8) ([]string, error) {
	return c.strings(ctx, wire.CmdGetMemberIDs, typ)
}

// MemberSIDs returns the connection IDs of the members of the caller's
// session of type typ.
func (c *Client) MemberSIDs(ctx context.Context, typ uint8) ([]string, error) {
	return c.strings(ctx, wire.CmdGetMemberSIDs, typ)
}

// strings runs a command whose request is a TypeRequest and whose reply
// is a StringsReply.
func (c *Client) strings(ctx context.Context, cmd wire.Cmd, typ uint8) ([]string, error) {
	m := wire.TypeRequest{Type: typ}
	f := newFrame()
	f.b = m.Append(f.b)
	p, err := c.roundTrip(ctx, 0, cmd, f)
	if err != nil {
		return nil, err
	}
	var rep wire.StringsReply
	if err := rep.Consume(p); err != nil {
		return nil, badReply(cmd, err)
	}
	return rep.Items, nil
}

// MemberData returns the members of the caller's session of type typ with
// their user data.
func (c *Client) MemberData(ctx context.Context, typ uint8) ([]Member, error) {
	m := wire.TypeRequest{Type: typ}
	f := newFrame()
	f.b = m.Append(f.b)
	p, err := c.roundTrip(ctx, 0, wire.CmdGetMemberData, f)
	if err != nil {
		return nil, err
	}
	var rep wire.MemberDataReply
	if err := rep.Consume(p); err != nil {
		return nil, badReply(wire.CmdGetMemberData, err)
	}
	members := make([]Member, len(rep.Members))
	for i, md := range rep.Members {
		members[i] = Member{UserID: md.UserID, SID: md.SID, Data: fromProps(md.Data)}
	}
	return members, nil
}

// SessionInfo describes the session sessionID, which the caller need not
// be a member of.
func (c *Client) SessionInfo(ctx context.Context, sessionID string) (SessionInfo, error) {
	m := wire.SessionInfoRequest{SessionID: sessionID}
	f := newFrame()
	f.b = m.Append(f.b)
	p, err := c.roundTrip(ctx, 0, wire.CmdGetSessionInfo, f)
	if err != nil {
		return SessionInfo{}, err
	}
	var rep wire.SessionInfo
	if err := rep.Consume(p); err != nil {
		return SessionInfo{}, badReply(wire.CmdGetSessionInfo, err)
	}
	return SessionInfo{
		SessionID: rep.SessionID, Type: rep.Type,
		CurrentMembers: int(rep.CurrentMembers), MaxMembers: int(rep.MaxMembers),
		MemberIDs: rep.MemberIDs, OwnerID: rep.OwnerID,
	}, nil
}

// IsOwner reports whether the caller owns its session of type typ.
func (c *Client) IsOwner(ctx context.Context, typ uint8) (bool, error) {
	m := wire.TypeRequest{Type: typ}
	f := newFrame()
	f.b = m.Append(f.b)
	p, err := c.roundTrip(ctx, 0, wire.CmdIsOwner, f)
	if err != nil {
		return false, err
	}
	var rep wire.BoolReply
	if err := rep.Consume(p); err != nil {
		return false, badReply(wire.CmdIsOwner, err)
	}
	return rep.Value, nil
}

// UserSessions returns the sessions the caller is in, at most one per
// type.
func (c *Client) UserSessions(ctx context.Context) ([]UserSession, error) {
	p, err := c.roundTrip(ctx, 0, wire.CmdGetUserSessions, newFrame())
	if err != nil {
		return nil, err
	}
	var rep wire.UserSessionsReply
	if err := rep.Consume(p); err != nil {
		return nil, badReply(wire.CmdGetUserSessions, err)
	}
	sessions := make([]UserSession, len(rep.Sessions))
	for i, s := range rep.Sessions {
		sessions[i] = UserSession{Type: s.Type, SessionID: s.SessionID}
	}
	return sessions, nil
}

// Request sends an application command (ver 1 to 255; ver 0 is refused
// with wire.StatusBadRequest) with payload, which is not retained, and
// returns the reply's payload, which the caller owns (nil when empty).
// Errors are as for the session operations; the Op of a *StatusError is
// "ver/0xcmd".
func (c *Client) Request(ctx context.Context, ver uint8, cmd uint16, payload []byte) ([]byte, error) {
	if ver == 0 {
		return nil, statusError(0, wire.Cmd(cmd), wire.StatusBadRequest)
	}
	f := newFrame()
	f.b = append(f.b, payload...)
	return c.roundTrip(ctx, ver, wire.Cmd(cmd), f)
}

// Send sends an application command (ver 1 to 255) with seq 0 and does not
// wait: the server replies only if it fails, as an [AsyncError] event. It
// returns an error only when the request cannot be sent. payload is not
// retained.
func (c *Client) Send(ver uint8, cmd uint16, payload []byte) error {
	if ver == 0 {
		return statusError(0, wire.Cmd(cmd), wire.StatusBadRequest)
	}
	f := newFrame()
	f.b = append(f.b, payload...)
	return c.sendAsync(ver, wire.Cmd(cmd), f)
}

// ttlSeconds converts d to whole seconds, rounding up; 0 or less is 0
// (the server's default).
func ttlSeconds(cmd wire.Cmd, d time.Duration) (uint16, error) {
	if d <= 0 {
		return 0, nil
	}
	s := (d + time.Second - 1) / time.Second
	if s > math.MaxUint16 {
		return 0, statusError(0, cmd, wire.StatusBadRequest)
	}
	return uint16(s), nil
}

// toValue converts x to a property value, or refuses it like the server
// would.
func toValue(cmd wire.Cmd, x any) (wire.Value, error) {
	v, err := wire.ValueOf(x)
	if err != nil {
		return wire.Value{}, statusError(0, cmd, wire.StatusBadProperty)
	}
	return v, nil
}

// toProps converts m to a property list in key order.
func toProps(cmd wire.Cmd, m map[string]any) ([]wire.KeyValue, error) {
	if len(m) == 0 {
		return nil, nil
	}
	kvs := make([]wire.KeyValue, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v, err := toValue(cmd, m[k])
		if err != nil {
			return nil, err
		}
		kvs = append(kvs, wire.KeyValue{Key: k, Value: v})
	}
	return kvs, nil
}

// fromProps converts a property list to a map, never nil.
func fromProps(kvs []wire.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value.Any()
	}
	return m
}

// badReply returns the error of a call whose OK reply did not decode.
func badReply(cmd wire.Cmd, err error) error {
	return fmt.Errorf("%w: %s reply: %w", ErrProtocol, cmd, err)
}
