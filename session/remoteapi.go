package session

import (
	"context"
	"time"

	"github.com/coveyhq/covey/wire"
)

// The session API works on every node of a cluster: a method addressed to
// a session that another node owns (by ID, or through the caller's
// session of a type) runs there, as the same command a client would send
// (an Exec, see PROTOCOL.md, Mesh), and waits for the owner's answer,
// bounded by ctx and the cluster's call timeout. Errors are the owner's,
// the same as on a single node, plus ErrUnavailable when the owner cannot
// be reached. Such calls block the calling goroutine: do not make them on
// a network event loop (an application handler that needs one defers its
// reply, see server.Request.Defer, and calls from a goroutine of its own).

// ErrUnavailable is returned for a session owned by a node that cannot be
// reached now (retry), and by the methods that cannot run on another node
// (UpdateProperty's callback cannot travel).
var ErrUnavailable error = wire.StatusUnavailable

// remoteID returns the ID of u's session of type typ when another node
// owns it.
func (t *Table) remoteID(typ uint8, u *User) (string, bool) {
	if t.remote == nil {
		return "", false
	}
	id, ok := t.users.sessionOf(u.ID, typ)
	if !ok {
		return "", false
	}
	if _, remote := t.Owner(id); !remote {
		return "", false
	}
	return id, true
}

// isRemote reports whether session ID id is owned by another node.
func (t *Table) isRemote(id string) bool {
	if t.remote == nil {
		return false
	}
	_, remote := t.Owner(id)
	return remote
}

// call runs op for session id on its owner, as caller (nil for none),
// and returns the reply payload.
func (t *Table) call(ctx context.Context, id string, caller *User, op wire.Cmd, payload []byte) ([]byte, error) {
	node, err := IDNode(id)
	if err != nil {
		return nil, err
	}
	e := wire.Exec{SessionID: id, Epoch: 1, Op: op, Payload: payload}
	if caller != nil {
		e.Caller = wire.Member{UID: caller.ID, SID: caller.SID, Data: dataList(caller.Data)}
	}
	return t.remote.Call(ctx, node, &e)
}

// callAs is call for a command of u's session of type typ.
func (t *Table) callAs(ctx context.Context, id string, u *User, op wire.Cmd, m interface{ Append([]byte) []byte }) ([]byte, error) {
	return t.call(ctx, id, u, op, m.Append(nil))
}

// dataList encodes member data as a property list (values that are not
// primitives are left out, as in member data replies).
func dataList(m map[string]any) []wire.KeyValue {
	if len(m) == 0 {
		return nil
	}
	out := make([]wire.KeyValue, 0, len(m))
	for k, v := range m {
		if wv, err := wire.ValueOf(v); err == nil {
			out = append(out, wire.KeyValue{Key: k, Value: wv})
		}
	}
	return out
}

// propValues converts a wire property list to the API's map.
func propValues(kvs []wire.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value.Any()
	}
	return m
}

// wireProps converts the API's map to a wire property list, or
// ErrBadProperty for a value that has no wire type.
func wireProps(data map[string]any) ([]wire.KeyValue, error) {
	out := make([]wire.KeyValue, 0, len(data))
	for k, v := range data {
		wv, err := wire.ValueOf(v)
		if err != nil {
			return nil, ErrBadProperty
		}
		out = append(out, wire.KeyValue{Key: k, Value: wv})
	}
	return out, nil
}

func (t *Table) remoteBroadcast(ctx context.Context, typ uint8, id string, ver uint8, cmd uint16, msg []byte) error {
	m := wire.AppBroadcast{Type: typ, Ver: ver, Cmd: wire.Cmd(cmd), Msg: msg}
	_, err := t.call(ctx, id, nil, wire.OpAppBroadcast, m.Append(nil))
	return opErr(OpSend, id, err)
}

func (t *Table) remoteMessageTo(ctx context.Context, typ uint8, id, sender string, recipients []string, ver uint8, cmd uint16, msg []byte) error {
	m := wire.AppMessageTo{Type: typ, Sender: sender, Recipients: recipients, Ver: ver, Cmd: wire.Cmd(cmd), Msg: msg}
	_, err := t.call(ctx, id, nil, wire.OpAppMessageTo, m.Append(nil))
	return opErr(OpSend, id, err)
}

func (t *Table) remoteKick(ctx context.Context, typ uint8, id string, caller *User, target string) error {
	m := wire.KickRequest{Type: typ, UserID: target}
	_, err := t.call(ctx, id, caller, wire.OpAppKick, m.Append(nil))
	return opErr(OpKick, id, err)
}

func (t *Table) remoteSessionInfo(ctx context.Context, id string) (Info, error) {
	m := wire.SessionInfoRequest{SessionID: id}
	b, err := t.call(ctx, id, nil, wire.CmdGetSessionInfo, m.Append(nil))
	var si wire.SessionInfo
	if err == nil {
		err = si.Consume(b)
	}
	if err != nil {
		return Info{}, opErr(OpMember, id, err)
	}
	return Info{ID: si.SessionID, Type: si.Type, MaxMembers: si.MaxMembers, MemberIDs: si.MemberIDs, OwnerID: si.OwnerID}, nil
}

// remoteJoin joins local user u to session id of another node, holding
// its slot of type typ first, as a client's Join does.
func (t *Table) remoteJoin(ctx context.Context, typ uint8, id string, u *User, invited bool) error {
	op, held := wire.CmdJoin, wire.OpJoinHeld
	if invited {
		op, held = wire.CmdAcceptInvite, wire.OpAcceptHeld
	}
	ref := wire.SessionRef{Type: typ, SessionID: id}
	if t.users.reserve(u.ID, typ, id) != nil {
		_, err := t.callAs(ctx, id, u, held, &ref)
		return err
	}
	_, err := t.callAs(ctx, id, u, op, &ref)
	if err != nil {
		t.users.release(u.ID, typ, id)
	}
	return err
}

func (t *Table) remoteLeave(ctx context.Context, typ uint8, id string, u *User) error {
	ref := wire.SessionRef{Type: typ, SessionID: id}
	_, err := t.callAs(ctx, id, u, wire.CmdLeave, &ref)
	if err == nil || err == ErrNotMember {
		t.users.release(u.ID, typ, id)
	}
	return opErr(OpLeave, id, err)
}

func (t *Table) remoteInvite(ctx context.Context, typ uint8, id string, u *User, targets []string, spec InviteSpec) error {
	m := wire.InviteRequest{Type: typ, Targets: targets, Ver: spec.Ver, Cmd: wire.Cmd(spec.Cmd), Msg: spec.Msg,
		TTLSeconds: uint16(min((spec.TTL+time.Second-1)/time.Second, 1<<16-1))}
	_, err := t.callAs(ctx, id, u, wire.CmdInvite, &m)
	return opErr(OpInvite, id, err)
}

func (t *Table) remoteStrings(ctx context.Context, typ uint8, id string, u *User, cmd wire.Cmd) ([]string, error) {
	b, err := t.callAs(ctx, id, u, cmd, &wire.TypeRequest{Type: typ})
	var r wire.StringsReply
	if err == nil {
		err = r.Consume(b)
	}
	if err != nil {
		return nil, opErr(OpMember, id, err)
	}
	return r.Items, nil
}

func (t *Table) remoteMemberData(ctx context.Context, typ uint8, id string, u *User) ([]MemberData, error) {
	b, err := t.callAs(ctx, id, u, wire.OpAppMemberData, &wire.TypeRequest{Type: typ})
	var r wire.NodeMemberDataReply
	if err == nil {
		err = r.Consume(b)
	}
	if err != nil {
		return nil, opErr(OpMember, id, err)
	}
	out := make([]MemberData, len(r.Members))
	for i, m := range r.Members {
		out[i] = MemberData{SessionID: id, UserID: m.UserID, SID: m.SID, Node: m.Node, Data: propValues(m.Data)}
	}
	return out, nil
}

// NodeMemberData is what OpAppMemberData answers for session id owned
// here: its members' data with their nodes (the owner's half of
// MemberData for a member on another node).
func (t *Table) NodeMemberData(ctx context.Context, typ uint8, u *User) (wire.NodeMemberDataReply, error) {
	data, err := t.MemberData(ctx, typ, u)
	if err != nil {
		return wire.NodeMemberDataReply{}, err
	}
	rep := wire.NodeMemberDataReply{Members: make([]wire.NodeMemberData, len(data))}
	for i, d := range data {
		rep.Members[i] = wire.NodeMemberData{UserID: d.UserID, SID: d.SID, Node: d.Node, Data: sortedData(d.Data)}
	}
	return rep, nil
}

// sortedData is dataList sorted by key, for a stable encoding.
func sortedData(m map[string]any) []wire.KeyValue {
	kvs := dataList(m)
	for i := 1; i < len(kvs); i++ { // insertion sort: member data is small
		for j := i; j > 0 && kvs[j].Key < kvs[j-1].Key; j-- {
			kvs[j], kvs[j-1] = kvs[j-1], kvs[j]
		}
	}
	return kvs
}

func (t *Table) remoteIsOwner(ctx context.Context, typ uint8, id string, u *User) (bool, error) {
	b, err := t.callAs(ctx, id, u, wire.CmdIsOwner, &wire.TypeRequest{Type: typ})
	var r wire.BoolReply
	if err == nil {
		err = r.Consume(b)
	}
	if err != nil {
		return false, opErr(OpOwner, id, err)
	}
	return r.Value, nil
}

func (t *Table) remotePropertyList(ctx context.Context, typ uint8, id string, u *User, keys []string) ([]wire.KeyValue, error) {
	var b []byte
	var err error
	if keys == nil {
		b, err = t.callAs(ctx, id, u, wire.CmdGetAllProperties, &wire.TypeRequest{Type: typ})
	} else {
		b, err = t.callAs(ctx, id, u, wire.CmdGetProperties, &wire.PropertyKeysRequest{Type: typ, Keys: keys})
	}
	var r wire.PropsReply
	if err == nil {
		err = r.Consume(b)
	}
	if err != nil {
		return nil, opErr(OpPropertyGet, id, err)
	}
	return r.Props, nil
}

func (t *Table) remoteSetProperties(ctx context.Context, typ uint8, id string, u *User, data map[string]any) error {
	props, err := wireProps(data)
	if err == nil {
		_, err = t.callAs(ctx, id, u, wire.CmdSetProperties, &wire.SetPropertiesRequest{Type: typ, Props: props})
	}
	return opErr(OpPropertySet, id, err)
}

func (t *Table) remoteSetIfNotExists(ctx context.Context, typ uint8, id string, u *User, key string, value any) error {
	v, err := wire.ValueOf(value)
	if err != nil {
		return opErr(OpPropertySet, id, ErrBadProperty)
	}
	_, err = t.callAs(ctx, id, u, wire.CmdSetPropertyIfNotExists, &wire.SetPropertyRequest{Type: typ, Key: key, Value: v})
	return opErr(OpPropertySet, id, err)
}

func (t *Table) remoteIncr(ctx context.Context, typ uint8, id string, u *User, key string, delta int64) (int64, error) {
	b, err := t.callAs(ctx, id, u, wire.CmdIncrProperty, &wire.IncrPropertyRequest{Type: typ, Key: key, Delta: delta})
	var r wire.PropertyReply
	if err == nil {
		err = r.Consume(b)
	}
	if err != nil {
		return 0, opErr(OpPropertySet, id, err)
	}
	n, _ := r.Value.Any().(int64)
	return n, nil
}

func (t *Table) remoteCompareAndSet(ctx context.Context, typ uint8, id string, u *User, key string, old, newValue any) error {
	m := wire.CompareAndSetRequest{Type: typ, Key: key}
	var err error
	if old != nil {
		m.HasOld = true
		if m.Old, err = wire.ValueOf(old); err != nil {
			return opErr(OpPropertySet, id, ErrBadProperty)
		}
	}
	if m.New, err = wire.ValueOf(newValue); err != nil {
		return opErr(OpPropertySet, id, ErrBadProperty)
	}
	_, err = t.callAs(ctx, id, u, wire.CmdCompareAndSetProperty, &m)
	return opErr(OpPropertySet, id, err)
}

func (t *Table) remoteDeleteProperty(ctx context.Context, typ uint8, id string, u *User, key string) (bool, error) {
	b, err := t.callAs(ctx, id, u, wire.CmdDeleteProperty, &wire.PropertyKeyRequest{Type: typ, Key: key})
	var r wire.BoolReply
	if err == nil {
		err = r.Consume(b)
	}
	if err != nil {
		return false, opErr(OpPropertySet, id, err)
	}
	return r.Value, nil
}
