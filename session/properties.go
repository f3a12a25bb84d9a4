package session

import (
	"context"
	"maps"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/coveyhq/covey/wire"
)

// Properties are a session's shared key/value store. Values are primitives
// only: bool, signed and unsigned integers of any size, float32/float64 and
// string. They are stored normalized, so reads return bool, int64, uint64,
// float64 or string whatever size was written, in process and over the
// network alike. Maps, slices, pointers, structs and nil are refused with
// ErrBadProperty.
//
// Size budget: a session's properties, encoded as one property list
// (wire.SizeProps), never take more than MaxPayload - wire.PushReserve
// bytes (Config.Wire.MaxPayload; 65,280 by default). A write that would
// take them over is refused with ErrPropertiesFull and writes nothing.
// So the reply to a read of every property, and every PropertiesChanged
// push (whose other fields fit in the reserve), are within the payload
// limit a client is told at sign-in. The encoded size is kept in
// Session.propsSize and updated by every write under the session lock,
// from the sizes of the entries written and replaced; nothing is
// re-encoded to check it.

// propsBudget returns the most bytes a session's properties may take
// encoded as one property list.
func (t *Table) propsBudget() int { return int(wire.MaxMessageFor(t.cfg.Wire.MaxPayload)) }

// entrySize returns the encoded size of one property in a property list.
func entrySize(key string, v wire.Value) int { return wire.SizeString(key) + wire.SizeValue(v) }

// newProps validates initial properties into a fresh map and returns it
// with its encoded size.
func (t *Table) newProps(in map[string]any) (map[string]wire.Value, int, error) {
	if len(in) > t.cfg.MaxProperties {
		return nil, 0, ErrTooManyProperties
	}
	props := make(map[string]wire.Value, len(in))
	size := wire.SizeUvarint(uint64(len(in)))
	for k, v := range in {
		wv, err := t.checkProperty(k, v)
		if err != nil {
			return nil, 0, err
		}
		props[k] = wv
		size += entrySize(k, wv)
	}
	if size > t.propsBudget() {
		return nil, 0, ErrPropertiesFull
	}
	return props, size, nil
}

// checkProperty validates a key and converts its value.
func (t *Table) checkProperty(key string, v any) (wire.Value, error) {
	// Keys and strings must be UTF-8 whoever writes them (the wire
	// decoder checks what comes from the network; the game's server code
	// is checked here), or a strict client breaks on every member's read.
	if key == "" || len(key) > t.cfg.MaxPropertyKeyLen || !utf8.ValidString(key) {
		return wire.Value{}, ErrBadProperty
	}
	wv, err := wire.ValueOf(v)
	if err != nil {
		return wire.Value{}, ErrBadProperty
	}
	if wv.Kind == wire.KindString && (len(wv.Str()) > t.cfg.MaxPropertyStringLen || !utf8.ValidString(wv.Str())) {
		return wire.Value{}, ErrBadProperty
	}
	return wv, nil
}

// roomForLocked checks that storing vals keeps the session within
// MaxProperties and the size budget, and returns the encoded size of the
// properties once vals are stored: ErrTooManyProperties or
// ErrPropertiesFull if they would not fit. s.mu must be held; it costs one
// map lookup per key.
func (s *Session) roomForLocked(vals map[string]wire.Value) (int, error) {
	n, delta := len(s.props), 0
	for k, v := range vals {
		if old, ok := s.props[k]; ok {
			delta -= entrySize(k, old)
		} else {
			n++
		}
		delta += entrySize(k, v)
	}
	return s.resizeLocked(n, delta)
}

// roomForKeyLocked is roomForLocked for one key = v. s.mu must be held.
func (s *Session) roomForKeyLocked(key string, v wire.Value) (int, error) {
	n, delta := len(s.props), entrySize(key, v)
	if old, ok := s.props[key]; ok {
		delta -= entrySize(key, old)
	} else {
		n++
	}
	return s.resizeLocked(n, delta)
}

// resizeLocked returns the encoded size of the properties after a write
// that leaves n keys and changes the entries' encoded size by delta bytes,
// or the limit the write would break. s.mu must be held.
func (s *Session) resizeLocked(n, delta int) (int, error) {
	if n > s.t.cfg.MaxProperties {
		return 0, ErrTooManyProperties
	}
	size := s.propsSize - wire.SizeUvarint(uint64(len(s.props))) + wire.SizeUvarint(uint64(n)) + delta
	if size > s.t.propsBudget() {
		return 0, ErrPropertiesFull
	}
	return size, nil
}

// Property returns the value of key and whether it exists.
func (s *Session) Property(key string) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.props[key]
	if !ok {
		return nil, false
	}
	return v.Any(), true
}

// Properties returns the values of keys; a key that does not exist maps to
// nil, as in the reference's Session.GetProperties.
func (s *Session) Properties(keys []string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]any, len(keys))
	for _, k := range keys {
		if v, ok := s.props[k]; ok {
			out[k] = v.Any()
		} else {
			out[k] = nil
		}
	}
	return out
}

// AllProperties returns every property.
func (s *Session) AllProperties() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]any, len(s.props))
	for k, v := range s.props {
		out[k] = v.Any()
	}
	return out
}

// EncodeProperties returns every property in the wire encoding of a
// property list (PROTOCOL.md), sorted by key.
func (s *Session) EncodeProperties() []byte {
	return wire.AppendProps(nil, s.propList(nil))
}

// propList returns the properties named by keys (all if keys is nil) as a
// list sorted by key; missing keys are left out.
func (s *Session) propList(keys []string) []wire.KeyValue {
	s.mu.Lock()
	var kvs []wire.KeyValue
	if keys == nil {
		kvs = make([]wire.KeyValue, 0, len(s.props))
		for k, v := range s.props {
			kvs = append(kvs, wire.KeyValue{Key: k, Value: v})
		}
	} else {
		for _, k := range keys {
			if v, ok := s.props[k]; ok {
				kvs = append(kvs, wire.KeyValue{Key: k, Value: v})
			}
		}
	}
	s.mu.Unlock()
	slices.SortFunc(kvs, func(a, b wire.KeyValue) int { return cmpString(a.Key, b.Key) })
	return slices.CompactFunc(kvs, func(a, b wire.KeyValue) bool { return a.Key == b.Key })
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Writes. Each public Session method is the write of the game's server
// code (writer ""); the Table's member API runs the same write with the
// member's user ID as writer. A successful write that changed something
// ends with s.endWriteLocked, which tells the members with one
// PropertiesChanged push (propchange.go).

// SetProperty stores key = value, replacing any value the key had. Unless
// the session is quiet, every member is told with a PropertiesChanged
// push naming no writer.
// Errors: ErrBadProperty, ErrTooManyProperties, ErrPropertiesFull (the
// properties would exceed the size budget), ErrSessionNotFound (the
// session was deleted).
func (s *Session) SetProperty(key string, value any) error {
	return s.setProperties("", map[string]any{key: value})
}

// SetProperties stores every key and value of data at once: if any is
// refused, none is stored. The members are told with one push carrying
// every key of data. Errors: those of SetProperty.
func (s *Session) SetProperties(data map[string]any) error {
	return s.setProperties("", data)
}

func (s *Session) setProperties(writer string, data map[string]any) error {
	if len(data) > s.t.cfg.MaxProperties {
		return ErrTooManyProperties // before any work under the lock
	}
	vals := make(map[string]wire.Value, len(data))
	for k, v := range data {
		wv, err := s.t.checkProperty(k, v)
		if err != nil {
			return err
		}
		vals[k] = wv
	}
	s.mu.Lock()
	return s.endWriteLocked(change{writer: writer, vals: vals}, s.storeLocked(vals))
}

// storeLocked stores vals, or nothing if they do not fit. s.mu must be
// held.
func (s *Session) storeLocked(vals map[string]wire.Value) error {
	if s.deleted {
		return ErrSessionNotFound
	}
	size, err := s.roomForLocked(vals)
	if err != nil {
		return err
	}
	maps.Copy(s.props, vals)
	s.propsSize = size
	return nil
}

// storeKeyLocked stores key = v, or nothing if it does not fit. s.mu must
// be held and the session not deleted.
func (s *Session) storeKeyLocked(key string, v wire.Value) error {
	size, err := s.roomForKeyLocked(key, v)
	if err != nil {
		return err
	}
	s.props[key] = v
	s.propsSize = size
	return nil
}

// SetPropertyIfNotExists stores key = value only if key does not exist.
// Errors: ErrPropertyExists, and those of SetProperty.
func (s *Session) SetPropertyIfNotExists(key string, value any) error {
	return s.setPropertyIfNotExists("", key, value)
}

func (s *Session) setPropertyIfNotExists(writer, key string, value any) error {
	wv, err := s.t.checkProperty(key, value)
	if err != nil {
		return err
	}
	s.mu.Lock()
	switch _, exists := s.props[key]; {
	case s.deleted:
		err = ErrSessionNotFound
	case exists:
		err = ErrPropertyExists
	default:
		err = s.storeKeyLocked(key, wv)
	}
	return s.endWriteLocked(change{writer: writer, key: key, value: wv}, err)
}

// UpdateFunc computes a property's new value from whether it exists, its
// stored value (nil if it does not exist) and the value the caller passed.
type UpdateFunc func(exists bool, stored, update any) any

// UpdateProperty stores the value fn returns for key. fn runs while the
// session's lock is held, so the read-compute-write is atomic with respect
// to every other property operation; fn must be quick and must not call
// back into the session or the table (deadlock). If fn's result is refused,
// nothing changes. The members are told the value stored. Errors: those
// of SetProperty.
func (s *Session) UpdateProperty(key string, value any, fn UpdateFunc) error {
	return s.updateProperties("", map[string]any{key: value}, fn)
}

// UpdateProperties is UpdateProperty for several keys at once, under one
// lock: fn is called for each key, and if any result is refused nothing
// changes. The members are told with one push.
func (s *Session) UpdateProperties(data map[string]any, fn UpdateFunc) error {
	return s.updateProperties("", data, fn)
}

func (s *Session) updateProperties(writer string, data map[string]any, fn UpdateFunc) error {
	if len(data) > s.t.cfg.MaxProperties {
		return ErrTooManyProperties
	}
	s.mu.Lock()
	vals, err := s.updatedLocked(data, fn)
	if err == nil {
		err = s.storeLocked(vals)
	}
	return s.endWriteLocked(change{writer: writer, vals: vals}, err)
}

// updatedLocked returns the values fn computes for the keys of data.
// s.mu must be held. If fn panics, s.mu is released before the panic goes
// on, as the deferred unlock of the write did before writes ended in
// endWriteLocked: a game that recovers the panic keeps a usable session.
func (s *Session) updatedLocked(data map[string]any, fn UpdateFunc) (map[string]wire.Value, error) {
	defer func() {
		if r := recover(); r != nil {
			s.mu.Unlock()
			panic(r)
		}
	}()
	if s.deleted {
		return nil, ErrSessionNotFound
	}
	vals := make(map[string]wire.Value, len(data))
	for k, update := range data {
		var stored any
		old, exists := s.props[k]
		if exists {
			stored = old.Any()
		}
		wv, err := s.t.checkProperty(k, fn(exists, stored, update))
		if err != nil {
			return nil, err
		}
		vals[k] = wv
	}
	return vals, nil
}

// IncrProperty adds delta to the signed integer property key (a missing key
// counts as 0) and returns the new value, which the members are told.
// Errors: ErrNotNumeric if the key holds anything but a signed integer,
// ErrOverflow if the sum would leave the int64 range (the value is
// unchanged), and those of SetProperty.
func (s *Session) IncrProperty(key string, delta int64) (int64, error) {
	return s.incrProperty("", key, delta)
}

func (s *Session) incrProperty(writer, key string, delta int64) (int64, error) {
	if _, err := s.t.checkProperty(key, delta); err != nil {
		return 0, err
	}
	s.mu.Lock()
	n, err := s.incrLocked(key, delta)
	return n, s.endWriteLocked(change{writer: writer, key: key, value: wire.IntValue(n)}, err)
}

// incrLocked is IncrProperty's write. s.mu must be held.
func (s *Session) incrLocked(key string, delta int64) (int64, error) {
	if s.deleted {
		return 0, ErrSessionNotFound
	}
	old, exists := s.props[key]
	if exists && old.Kind != wire.KindInt {
		return 0, ErrNotNumeric
	}
	n, ok := addInt64(old.Int(), delta)
	if !ok {
		return 0, ErrOverflow
	}
	if err := s.storeKeyLocked(key, wire.IntValue(n)); err != nil {
		return 0, err
	}
	return n, nil
}

// addInt64 returns a+b and whether the sum is within the int64 range.
func addInt64(a, b int64) (int64, bool) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, false
	}
	return a + b, true
}

// CompareAndSetProperty stores key = newValue if the key currently holds
// old, or, when old is nil, if the key does not exist. Values compare after
// normalization (int8(1) equals int64(1)). It is the network form of
// UpdateProperty. Errors: ErrCompareFailed, and those of SetProperty.
func (s *Session) CompareAndSetProperty(key string, old, newValue any) error {
	return s.compareAndSetProperty("", key, old, newValue)
}

func (s *Session) compareAndSetProperty(writer, key string, old, newValue any) error {
	nv, err := s.t.checkProperty(key, newValue)
	if err != nil {
		return err
	}
	var ov wire.Value
	if old != nil {
		if ov, err = s.t.checkProperty(key, old); err != nil {
			return err
		}
	}
	s.mu.Lock()
	cur, exists := s.props[key]
	switch {
	case s.deleted:
		err = ErrSessionNotFound
	case old == nil && exists, old != nil && (!exists || cur != ov):
		err = ErrCompareFailed
	default:
		err = s.storeKeyLocked(key, nv)
	}
	return s.endWriteLocked(change{writer: writer, key: key, value: nv}, err)
}

// DeleteProperty removes key and reports whether it existed; if it did,
// the members are told with a push whose Deleted lists key. A key that
// could not be stored (empty, or longer than MaxPropertyKeyLen) does not
// exist. Errors: ErrSessionNotFound (the session was deleted).
func (s *Session) DeleteProperty(key string) (existed bool, err error) {
	return s.deleteProperty("", key)
}

func (s *Session) deleteProperty(writer, key string) (bool, error) {
	s.mu.Lock()
	if s.deleted {
		s.mu.Unlock()
		return false, ErrSessionNotFound
	}
	old, ok := s.props[key]
	if !ok {
		s.mu.Unlock()
		return false, nil
	}
	// Cannot fail: one key fewer and fewer bytes.
	size, _ := s.resizeLocked(len(s.props)-1, -entrySize(key, old))
	delete(s.props, key)
	s.propsSize = size
	return true, s.endWriteLocked(change{writer: writer, key: key, deleted: true}, nil)
}

// The table's property operations act on u's session of type typ and
// require u to be a member. Reads fail with an *OpError of Op
// OpPropertyGet, writes with OpPropertySet. A successful write is pushed
// to the other members as a PropertiesChanged naming u as the writer.

// GetProperty returns the value of key in u's session and whether it
// exists. Errors: ErrNotMember, ErrSessionNotFound.
func (t *Table) GetProperty(ctx context.Context, typ uint8, u *User, key string) (any, bool, error) {
	if id, ok := t.remoteID(typ, u); ok {
		kvs, err := t.remotePropertyList(ctx, typ, id, u, []string{key})
		if err != nil || len(kvs) == 0 {
			return nil, false, err
		}
		return kvs[0].Value.Any(), true, nil
	}
	s, err := t.memberSession(ctx, typ, u)
	if err != nil {
		return nil, false, opErr(OpPropertyGet, "", err)
	}
	v, ok := s.Property(key)
	return v, ok, nil
}

// GetProperties returns the values of the keys that exist in u's session;
// missing keys are left out of the map. Errors: ErrNotMember,
// ErrSessionNotFound.
func (t *Table) GetProperties(ctx context.Context, typ uint8, u *User, keys []string) (map[string]any, error) {
	if id, ok := t.remoteID(typ, u); ok {
		if keys == nil {
			keys = []string{}
		}
		kvs, err := t.remotePropertyList(ctx, typ, id, u, keys)
		if err != nil {
			return nil, err
		}
		return propValues(kvs), nil
	}
	s, err := t.memberSession(ctx, typ, u)
	if err != nil {
		return nil, opErr(OpPropertyGet, "", err)
	}
	out := s.Properties(keys)
	maps.DeleteFunc(out, func(_ string, v any) bool { return v == nil })
	return out, nil
}

// GetAllProperties returns every property of u's session. Errors:
// ErrNotMember, ErrSessionNotFound.
func (t *Table) GetAllProperties(ctx context.Context, typ uint8, u *User) (map[string]any, error) {
	if id, ok := t.remoteID(typ, u); ok {
		kvs, err := t.remotePropertyList(ctx, typ, id, u, nil)
		if err != nil {
			return nil, err
		}
		return propValues(kvs), nil
	}
	s, err := t.memberSession(ctx, typ, u)
	if err != nil {
		return nil, opErr(OpPropertyGet, "", err)
	}
	return s.AllProperties(), nil
}

// PropertyList returns the properties named by keys (every property if keys
// is nil) of u's session as a list sorted by key, in wire form, for the
// network layer. Errors: those of GetProperties.
func (t *Table) PropertyList(ctx context.Context, typ uint8, u *User, keys []string) ([]wire.KeyValue, error) {
	if id, ok := t.remoteID(typ, u); ok {
		return t.remotePropertyList(ctx, typ, id, u, keys)
	}
	s, err := t.memberSession(ctx, typ, u)
	if err != nil {
		return nil, opErr(OpPropertyGet, "", err)
	}
	return s.propList(keys), nil
}

// SetProperty stores key = value in u's session. Errors: ErrNotMember,
// ErrSessionNotFound, ErrBadProperty, ErrTooManyProperties,
// ErrPropertiesFull.
func (t *Table) SetProperty(ctx context.Context, typ uint8, u *User, key string, value any) error {
	return t.SetProperties(ctx, typ, u, map[string]any{key: value})
}

// SetProperties stores all of data in u's session, or nothing if any of it
// is refused. Errors: those of SetProperty.
func (t *Table) SetProperties(ctx context.Context, typ uint8, u *User, data map[string]any) error {
	if id, ok := t.remoteID(typ, u); ok {
		return t.remoteSetProperties(ctx, typ, id, u, data)
	}
	s, err := t.memberSession(ctx, typ, u)
	if err == nil {
		err = s.setProperties(u.ID, data)
	}
	return t.propSetErr(s, err)
}

// SetPropertyIfNotExists stores key = value in u's session unless key
// exists. Errors: ErrPropertyExists, and those of SetProperty.
func (t *Table) SetPropertyIfNotExists(ctx context.Context, typ uint8, u *User, key string, value any) error {
	if id, ok := t.remoteID(typ, u); ok {
		return t.remoteSetIfNotExists(ctx, typ, id, u, key, value)
	}
	s, err := t.memberSession(ctx, typ, u)
	if err == nil {
		err = s.setPropertyIfNotExists(u.ID, key, value)
	}
	return t.propSetErr(s, err)
}

// UpdateProperty runs Session.UpdateProperty on u's session. Errors: those
// of SetProperty.
func (t *Table) UpdateProperty(ctx context.Context, typ uint8, u *User, key string, value any, fn UpdateFunc) error {
	if id, ok := t.remoteID(typ, u); ok {
		return opErr(OpPropertySet, id, ErrUnavailable) // fn cannot run on another node
	}
	s, err := t.memberSession(ctx, typ, u)
	if err == nil {
		err = s.updateProperties(u.ID, map[string]any{key: value}, fn)
	}
	return t.propSetErr(s, err)
}

// IncrProperty runs Session.IncrProperty on u's session. Errors:
// ErrNotNumeric, ErrOverflow, and those of SetProperty.
func (t *Table) IncrProperty(ctx context.Context, typ uint8, u *User, key string, delta int64) (int64, error) {
	if id, ok := t.remoteID(typ, u); ok {
		return t.remoteIncr(ctx, typ, id, u, key, delta)
	}
	s, err := t.memberSession(ctx, typ, u)
	var n int64
	if err == nil {
		n, err = s.incrProperty(u.ID, key, delta)
	}
	return n, t.propSetErr(s, err)
}

// CompareAndSetProperty runs Session.CompareAndSetProperty on u's session.
// Errors: ErrCompareFailed, and those of SetProperty.
func (t *Table) CompareAndSetProperty(ctx context.Context, typ uint8, u *User, key string, old, newValue any) error {
	if id, ok := t.remoteID(typ, u); ok {
		return t.remoteCompareAndSet(ctx, typ, id, u, key, old, newValue)
	}
	s, err := t.memberSession(ctx, typ, u)
	if err == nil {
		err = s.compareAndSetProperty(u.ID, key, old, newValue)
	}
	return t.propSetErr(s, err)
}

// DeleteProperty runs Session.DeleteProperty on u's session: it removes
// key and reports whether it existed. Errors: ErrNotMember,
// ErrSessionNotFound.
func (t *Table) DeleteProperty(ctx context.Context, typ uint8, u *User, key string) (existed bool, err error) {
	if id, ok := t.remoteID(typ, u); ok {
		return t.remoteDeleteProperty(ctx, typ, id, u, key)
	}
	s, err := t.memberSession(ctx, typ, u)
	if err == nil {
		existed, err = s.deleteProperty(u.ID, key)
	}
	return existed, t.propSetErr(s, err)
}

func (t *Table) propSetErr(s *Session, err error) error {
	if err == nil {
		return nil
	}
	id := ""
	if s != nil {
		id = s.id
	}
	return opErr(OpPropertySet, id, err)
}
