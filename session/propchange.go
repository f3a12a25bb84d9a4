package session

import (
	"slices"

	"github.com/coveyhq/covey/wire"
)

// Property change pushes. After every successful property write the
// members of the session, except the writer, receive one
// PropertiesChanged push naming the writer and carrying the keys written
// with their new values, or the key deleted. A write by the game's server
// code (the Session methods; writer "") is pushed to every member. A
// session created with Spec.Quiet sends none.
//
// Order: the pushes about one session reach every member in the order the
// writes were applied, so that a member's last value for a key is the
// stored one. Writes are applied under s.mu; pushes must be delivered
// with s.mu released (Conn.Deliver is called under no data lock). The
// two meet in a hand-off: the writer takes s.notifyMu while it still
// holds s.mu, releases s.mu, delivers, and releases s.notifyMu. The next
// write to the session is applied meanwhile, but its writer cannot take
// s.notifyMu, and so cannot deliver, before the previous push has been
// handed to every member. Deliver never blocks, so the wait is one
// fan-out of memory copies. Lock order: s.mu, then s.notifyMu (doc.go).
//
// A write with no one to tell (a quiet session, or no member with a
// connection besides the writer) takes no extra lock and encodes nothing.

// change is what one successful property write changed, for its push:
// one key written (key, value), several (vals), or one key deleted
// (key, deleted). No key and no vals means nothing changed.
type change struct {
	writer  string // the member who wrote; "" for the game's server code
	key     string
	value   wire.Value
	deleted bool
	vals    map[string]wire.Value // not modified after the write
}

// endWriteLocked ends a property write that err says failed or succeeded:
// it releases s.mu and, on success, delivers the PropertiesChanged push
// about c, in write order (see above). It returns err. s.mu must be held;
// it is released.
func (s *Session) endWriteLocked(c change, err error) error {
	if err != nil || (c.key == "" && len(c.vals) == 0) {
		s.mu.Unlock()
		return err
	}
	members := s.audienceLocked(c.writer)
	if members == nil {
		s.mu.Unlock()
		return nil
	}
	s.notifyMu.Lock() // before s.mu is released: the hand-off that keeps write order
	s.mu.Unlock()
	s.t.pushPropertiesChanged(members, s, &c)
	s.notifyMu.Unlock()
	return nil
}

// audienceLocked returns the member list to push a change by writer to,
// or nil if no one is to be told: the session is quiet, or no member but
// the writer has a connection. s.mu must be held, so that the list is the
// membership at the time of the write.
func (s *Session) audienceLocked(writer string) []*User {
	if s.quiet {
		return nil
	}
	members := s.snap.Load().members
	for _, m := range members {
		if (m.Conn != nil || m.Node != "") && (writer == "" || m.ID != writer) {
			return members
		}
	}
	return nil
}

// pushPropertiesChanged encodes the PropertiesChanged push about c once and
// delivers it to every member but c.writer. s.notifyMu must be held, and no
// data lock. The push fits the payload limit: its Props are a subset of the
// session's properties, which the size budget keeps within MaxPayload -
// wire.PushReserve, and its other fields (type, session ID, writer ID of
// at most 128 bytes, empty Deleted list, or one deleted key and an empty
// Props) take less than the reserve.
func (t *Table) pushPropertiesChanged(members []*User, s *Session, c *change) {
	var one [1]wire.KeyValue
	var gone [1]string
	p := wire.PropertiesChangedPush{Type: s.typ, SessionID: s.id, WriterID: c.writer}
	switch {
	case c.deleted:
		gone[0] = c.key
		p.Deleted = gone[:]
	case len(c.vals) > 1:
		p.Props = sortedProps(c.vals)
	default:
		one[0] = wire.KeyValue{Key: c.key, Value: c.value}
		for k, v := range c.vals { // one key written through a map (SetProperty)
			one[0] = wire.KeyValue{Key: k, Value: v}
		}
		p.Props = one[:]
	}
	if !t.fits(p.Size()) {
		// Only a writer ID longer than any the server signs in can get
		// here (an application's own User); such a push is not sent.
		return
	}
	payload := t.getBuf()
	*payload = p.Append((*payload)[:0])
	fb := t.getBuf()
	*fb = t.cfg.Wire.AppendFrame((*fb)[:0], wire.Header{Cmd: wire.CmdPropertiesChanged, Flags: wire.FlagPush}, *payload)
	t.deliver(s.id, members, *fb, func(m *User) bool { return c.writer == "" || m.ID != c.writer })
	t.putBuf(fb)
	t.putBuf(payload)
}

// sortedProps returns vals as a property list sorted by key.
func sortedProps(vals map[string]wire.Value) []wire.KeyValue {
	kvs := make([]wire.KeyValue, 0, len(vals))
	for k, v := range vals {
		kvs = append(kvs, wire.KeyValue{Key: k, Value: v})
	}
	slices.SortFunc(kvs, func(a, b wire.KeyValue) int { return cmpString(a.Key, b.Key) })
	return kvs
}
