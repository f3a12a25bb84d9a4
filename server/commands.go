package server

import (
	"maps"
	"slices"
	"time"

	"github.com/coveyhq/covey/session"
	"github.com/coveyhq/covey/wire"
)

// consumer is a request message.
type consumer interface{ Consume(b []byte) error }

// decode reads f's payload into m, answering StatusBadRequest if it is
// malformed.
func (c *conn) decode(f wire.Frame, m consumer) bool {
	if err := m.Consume(f.Payload); err != nil {
		c.reply(f, wire.StatusBadRequest, nil)
		return false
	}
	return true
}

// appender is a reply message.
type appender interface{ Append(dst []byte) []byte }

// replyMsg answers f with err's status, or with m on success.
func (c *conn) replyMsg(f wire.Frame, err error, m appender) {
	if err != nil {
		c.replyErr(f, err)
		return
	}
	c.scratch = m.Append(c.scratch[:0])
	c.reply(f, wire.StatusOK, c.scratch)
}

// builtin runs one of Covey's own (ver 0) commands for a signed-in player.
// Payload layouts are in PROTOCOL.md.
func (h *handler) builtin(c *conn, f wire.Frame) {
	t, u := h.table, c.user
	switch f.Cmd {
	case wire.CmdPing:
		if len(f.Payload) != 0 {
			c.reply(f, wire.StatusBadRequest, nil) // its payload is empty, like every layout's end
			return
		}
		c.reply(f, wire.StatusOK, nil)

	case wire.CmdBroadcast: // the hot path: decoded without an interface
		var r wire.BroadcastRequest
		if err := r.Consume(f.Payload); err != nil {
			c.reply(f, wire.StatusBadRequest, nil)
			return
		}
		c.replyErr(f, t.BroadcastFrom(bg, r.Type, u, r.Msg))

	case wire.CmdMessageTo:
		var r wire.MessageToRequest
		if c.decode(f, &r) {
			c.replyErr(f, t.MessageFrom(bg, r.Type, u, r.Recipients, r.Msg))
		}

	case wire.CmdCreate:
		var r wire.CreateRequest
		if !c.decode(f, &r) {
			return
		}
		if !r.Flags.Valid() {
			c.reply(f, wire.StatusBadRequest, nil) // an option this server does not know
			return
		}
		s, err := t.Create(bg, u, session.Spec{
			Type: r.Type, MaxMembers: r.MaxMembers,
			EmptyTTL: time.Duration(r.TTLSeconds) * time.Second, Properties: propMap(r.Props),
			Quiet: r.Flags&wire.CreateQuiet != 0,
		})
		if err != nil {
			c.replyErr(f, err)
			return
		}
		c.replyMsg(f, nil, &wire.CreateReply{SessionID: s.ID()})

	case wire.CmdJoin, wire.CmdAcceptInvite, wire.CmdLeave:
		var r wire.SessionRef
		if !c.decode(f, &r) {
			return
		}
		switch f.Cmd {
		case wire.CmdJoin:
			c.replyErr(f, t.Join(bg, r.Type, r.SessionID, u))
		case wire.CmdAcceptInvite:
			c.replyErr(f, t.AcceptInvite(bg, r.Type, r.SessionID, u))
		default:
			c.replyErr(f, t.Leave(bg, r.Type, r.SessionID, u))
		}

	case wire.CmdKick:
		var r wire.KickRequest
		if c.decode(f, &r) {
			c.replyErr(f, t.KickAsOwner(bg, r.Type, u, r.UserID))
		}

	case wire.CmdInvite:
		var r wire.InviteRequest
		if !c.decode(f, &r) {
			return
		}
		id, ok := t.SessionIDByUser(r.Type, u)
		if !ok {
			c.replyErr(f, session.ErrNotMember)
			return
		}
		// Targets on other nodes answer later: the reply keeps its turn.
		done, ok := c.later(f)
		if !ok {
			return
		}
		t.InviteAsync(bg, r.Type, id, u, r.Targets, session.InviteSpec{
			Ver: r.Ver, Cmd: uint16(r.Cmd), Msg: r.Msg, TTL: time.Duration(r.TTLSeconds) * time.Second,
		}, func(err error) { done(wire.StatusOf(err), nil) })

	case wire.CmdGetProperty:
		var r wire.PropertyKeyRequest
		if !c.decode(f, &r) {
			return
		}
		kvs, err := t.PropertyList(bg, r.Type, u, []string{r.Key})
		rep := wire.PropertyReply{Exists: len(kvs) == 1}
		if rep.Exists {
			rep.Value = kvs[0].Value
		}
		c.replyMsg(f, err, &rep)

	case wire.CmdGetProperties:
		var r wire.PropertyKeysRequest
		if !c.decode(f, &r) {
			return
		}
		if r.Keys == nil {
			r.Keys = []string{} // nil would mean all of them
		}
		kvs, err := t.PropertyList(bg, r.Type, u, r.Keys)
		c.replyMsg(f, err, &wire.PropsReply{Props: kvs})

	case wire.CmdGetAllProperties:
		var r wire.TypeRequest
		if !c.decode(f, &r) {
			return
		}
		kvs, err := t.PropertyList(bg, r.Type, u, nil)
		c.replyMsg(f, err, &wire.PropsReply{Props: kvs})

	case wire.CmdSetProperty, wire.CmdSetPropertyIfNotExists:
		var r wire.SetPropertyRequest
		if !c.decode(f, &r) {
			return
		}
		if f.Cmd == wire.CmdSetProperty {
			c.replyErr(f, t.SetProperty(bg, r.Type, u, r.Key, r.Value.Any()))
		} else {
			c.replyErr(f, t.SetPropertyIfNotExists(bg, r.Type, u, r.Key, r.Value.Any()))
		}

	case wire.CmdSetProperties:
		var r wire.SetPropertiesRequest
		if c.decode(f, &r) {
			c.replyErr(f, t.SetProperties(bg, r.Type, u, propMap(r.Props)))
		}

	case wire.CmdIncrProperty:
		var r wire.IncrPropertyRequest
		if !c.decode(f, &r) {
			return
		}
		n, err := t.IncrProperty(bg, r.Type, u, r.Key, r.Delta)
		c.replyMsg(f, err, &wire.PropertyReply{Exists: true, Value: wire.IntValue(n)})

	case wire.CmdCompareAndSetProperty:
		var r wire.CompareAndSetRequest
		if !c.decode(f, &r) {
			return
		}
		var old any
		if r.HasOld {
			old = r.Old.Any()
		}
		c.replyErr(f, t.CompareAndSetProperty(bg, r.Type, u, r.Key, old, r.New.Any()))

	case wire.CmdDeleteProperty:
		var r wire.PropertyKeyRequest
		if !c.decode(f, &r) {
			return
		}
		existed, err := t.DeleteProperty(bg, r.Type, u, r.Key)
		c.replyMsg(f, err, &wire.BoolReply{Value: existed})

	case wire.CmdGetMemberIDs, wire.CmdGetMemberSIDs:
		var r wire.TypeRequest
		if !c.decode(f, &r) {
			return
		}
		var items []string
		var err error
		if f.Cmd == wire.CmdGetMemberIDs {
			items, err = t.MemberIDs(bg, r.Type, u)
		} else {
			items, err = t.MemberSIDs(bg, r.Type, u)
		}
		c.replyMsg(f, err, &wire.StringsReply{Items: items})

	case wire.CmdGetMemberData:
		var r wire.TypeRequest
		if !c.decode(f, &r) {
			return
		}
		data, err := t.MemberData(bg, r.Type, u)
		rep := wire.MemberDataReply{Members: make([]wire.MemberData, len(data))}
		for i, d := range data {
			rep.Members[i] = wire.MemberData{UserID: d.UserID, SID: d.SID, Data: kvList(d.Data)}
		}
		c.replyMsg(f, err, &rep)

	case wire.CmdGetSessionInfo:
		var r wire.SessionInfoRequest
		if !c.decode(f, &r) {
			return
		}
		info, err := t.SessionInfo(bg, r.SessionID)
		c.replyMsg(f, err, &wire.SessionInfo{
			SessionID: info.ID, Type: info.Type, CurrentMembers: uint16(len(info.MemberIDs)),
			MaxMembers: info.MaxMembers, MemberIDs: info.MemberIDs, OwnerID: info.OwnerID,
		})

	case wire.CmdIsOwner:
		var r wire.TypeRequest
		if !c.decode(f, &r) {
			return
		}
		ok, err := t.IsOwner(bg, r.Type, u)
		c.replyMsg(f, err, &wire.BoolReply{Value: ok})

	case wire.CmdGetUserSessions:
		if len(f.Payload) != 0 {
			c.reply(f, wire.StatusBadRequest, nil)
			return
		}
		list := t.UserSessions(u)
		rep := wire.UserSessionsReply{Sessions: make([]wire.SessionRef, len(list))}
		for i, us := range list {
			rep.Sessions[i] = wire.SessionRef{Type: us.Type, SessionID: us.ID}
		}
		c.replyMsg(f, nil, &rep)

	case wire.CmdSignIn:
		c.reply(f, wire.StatusBadRequest, nil) // already signed in

	default:
		c.reply(f, wire.StatusUnknownCommand, nil)
	}
}

// propMap converts a wire property list to the session API's map; a key
// given twice keeps its last value.
func propMap(kvs []wire.KeyValue) map[string]any {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value.Any()
	}
	return m
}

// kvList converts a member's data map to a wire property list sorted by
// key; values that are not primitives are left out.
func kvList(m map[string]any) []wire.KeyValue {
	keys := slices.Sorted(maps.Keys(m))
	out := make([]wire.KeyValue, 0, len(keys))
	for _, k := range keys {
		if v, err := wire.ValueOf(m[k]); err == nil {
			out = append(out, wire.KeyValue{Key: k, Value: v})
		}
	}
	return out
}
