package session

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coveyhq/covey/wire"
)

// Session is one party, lobby or squad held by this node's [Table]. Its
// methods act on the local session directly, as Diarkis's *Session methods
// do; the Table's methods route by ID and check membership.
//
// All methods are safe for concurrent use.
type Session struct {
	id         string
	typ        uint8
	maxMembers uint16
	emptyTTL   time.Duration
	t          *Table

	// snap is the current member list, replaced (never modified) under mu.
	// Readers such as Broadcast load it without locking.
	snap atomic.Pointer[snapshot]

	quiet   bool   // no PropertiesChanged pushes (Spec.Quiet)
	creator string // the user that created it: its empty sessions count against that user

	mu         sync.Mutex
	deleted    bool                  // mu
	emptyTimer *timer                // mu; pending deletion while empty
	emptyGen   uint64                // mu; counts scheduled deletions: a stale one's callback sees another
	props      map[string]wire.Value // mu
	propsSize  int                   // mu; wire.SizeProps of props, kept by every write
	invites    map[string]time.Time  // mu; invited user ID -> expiry
	hooks      hooks                 // mu
	ticks      map[time.Duration]*tick
	tickStops  map[time.Duration]func(id string)

	// notifyMu serializes the delivery of PropertiesChanged pushes: taken
	// under mu, held after mu is released until the push was handed to
	// every member, so that pushes leave in the order the writes were
	// applied (propchange.go).
	notifyMu sync.Mutex
}

// snapshot is an immutable member list in join order; members[0] is the
// owner, which is therefore always the longest-standing member.
type snapshot struct {
	members []*User // immutable clones
	sids    []string
}

func newSnapshot(members []*User) *snapshot {
	s := &snapshot{members: members, sids: make([]string, len(members))}
	for i, m := range members {
		s.sids[i] = m.SID
	}
	return s
}

func (sn *snapshot) indexOf(uid string) int {
	for i, m := range sn.members {
		if m.ID == uid {
			return i
		}
	}
	return -1
}

func (sn *snapshot) owner() *User {
	if len(sn.members) == 0 {
		return nil
	}
	return sn.members[0]
}

// ID returns the session ID.
func (s *Session) ID() string { return s.id }

// Type returns the session type.
func (s *Session) Type() uint8 { return s.typ }

// MaxMembers returns the most members the session admits.
func (s *Session) MaxMembers() uint16 { return s.maxMembers }

// MemberIDs returns the member user IDs in the order they joined.
func (s *Session) MemberIDs() []string {
	sn := s.snap.Load()
	ids := make([]string, len(sn.members))
	for i, m := range sn.members {
		ids[i] = m.ID
	}
	return ids
}

// MemberSIDs returns the members' connection SIDs in join order.
func (s *Session) MemberSIDs() []string {
	return slices.Clone(s.snap.Load().sids)
}

// MemberUsers returns copies of the member users in join order.
func (s *Session) MemberUsers() []*User {
	sn := s.snap.Load()
	out := make([]*User, len(sn.members))
	for i, m := range sn.members {
		out[i] = m.clone()
	}
	return out
}

// MemberCount returns how many members the session has.
func (s *Session) MemberCount() int { return len(s.snap.Load().members) }

// Owner returns a copy of the owner user; false when the session is empty.
func (s *Session) Owner() (*User, bool) {
	o := s.snap.Load().owner()
	if o == nil {
		return nil, false
	}
	return o.clone(), true
}

// IsMember reports whether uid is a member.
func (s *Session) IsMember(uid string) bool { return s.snap.Load().indexOf(uid) >= 0 }

// MemberSID returns the SID of member uid, or "" if uid is not a member.
func (s *Session) MemberSID(uid string) string {
	sn := s.snap.Load()
	if i := sn.indexOf(uid); i >= 0 {
		return sn.members[i].SID
	}
	return ""
}

// MemberNode returns the node the member uid is connected to, or "" if uid
// is not a member. On a single node it is always this node's name.
func (s *Session) MemberNode(uid string) string {
	sn := s.snap.Load()
	if i := sn.indexOf(uid); i >= 0 {
		return s.t.nodeOf(sn.members[i])
	}
	return ""
}

// MemberNodes returns, for each member in join order, the node it is
// connected to.
func (s *Session) MemberNodes() []string {
	sn := s.snap.Load()
	out := make([]string, len(sn.members))
	for i, m := range sn.members {
		out[i] = s.t.nodeOf(m)
	}
	return out
}

// nodeOf returns the node member m is connected to.
func (t *Table) nodeOf(m *User) string {
	if m.Node != "" {
		return m.Node
	}
	return t.cfg.Node
}

// IsJoinAllowed reports whether a session with memberCount members has room
// for one more.
func (s *Session) IsJoinAllowed(memberCount int) bool { return memberCount < int(s.maxMembers) }

// Info returns a description of the session.
func (s *Session) Info() Info {
	sn := s.snap.Load()
	info := Info{ID: s.id, Type: s.typ, MaxMembers: s.maxMembers, MemberIDs: make([]string, len(sn.members))}
	for i, m := range sn.members {
		info.MemberIDs[i] = m.ID
	}
	if o := sn.owner(); o != nil {
		info.OwnerID = o.ID
	}
	return info
}

// Info describes a session (the reference's GetSessionInfoData).
type Info struct {
	ID         string
	Type       uint8
	MaxMembers uint16
	MemberIDs  []string // join order; len is the current member count
	OwnerID    string   // "" when the session is empty
}

// SetOnJoin sets the hook asked before a user joins; returning false refuses
// the user with ErrJoinRejected. u is a copy. It runs on the joining caller's
// goroutine with no lock held, before the session is checked for room.
// Only one hook may be set: SetOnJoin reports false if one already was, or
// if fn is nil.
func (s *Session) SetOnJoin(fn func(id string, u *User) bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hooks.onJoin != nil || fn == nil {
		return false
	}
	s.hooks.onJoin = fn
	return true
}

// SetOnJoined sets the hook called after a user joined, with a copy of it,
// on the joining caller's goroutine. Only one hook may be set: it reports
// false if one already was, or if fn is nil.
func (s *Session) SetOnJoined(fn func(id string, u *User)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hooks.onJoined != nil || fn == nil {
		return false
	}
	s.hooks.onJoined = fn
	return true
}

// SetOnLeft sets the hook called after a member left, was kicked or
// disconnected, with a copy of it. Only one hook may be set: it reports
// false if one already was, or if fn is nil.
func (s *Session) SetOnLeft(fn func(id string, u *User)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hooks.onLeft != nil || fn == nil {
		return false
	}
	s.hooks.onLeft = fn
	return true
}

// SetOnDeleted sets the hook called after the session was deleted: on the
// table's scheduler goroutine when its empty TTL ran out, on the caller's
// goroutine for Table.Delete. It must not block. Only one hook may
// be set: it reports false if one already was, or if fn is nil.
func (s *Session) SetOnDeleted(fn func(id string)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hooks.onDeleted != nil || fn == nil {
		return false
	}
	s.hooks.onDeleted = fn
	return true
}

// addMemberLocked adds u at the end of the member list. s.mu must be held.
func (s *Session) addMemberLocked(u *User) {
	old := s.snap.Load().members
	members := make([]*User, len(old), len(old)+1)
	copy(members, old)
	s.snap.Store(newSnapshot(append(members, u)))
	if len(old) == 0 {
		s.t.empty.Add(-1)
		s.t.users.emptyHeld(s.creator, -1)
	}
	if s.t.sched.cancel(s.emptyTimer) {
		s.emptyTimer = nil
	}
}

// removeMemberLocked removes the member at index i and, if the session became
// empty, schedules its deletion. s.mu must be held.
func (s *Session) removeMemberLocked(i int) {
	old := s.snap.Load().members
	members := make([]*User, 0, len(old)-1)
	members = append(append(members, old[:i]...), old[i+1:]...)
	s.snap.Store(newSnapshot(members))
	if len(members) == 0 {
		s.t.empty.Add(1)
		ttl := s.emptyTTL
		held := s.t.users.emptyHeld(s.creator, 1)
		if limit := s.t.cfg.MaxEmptyPerUser; limit > 0 && held > limit {
			// Its creator holds its budget of empty sessions already
			// (sessions of other types, gone empty since their Create):
			// no TTL for this one.
			ttl = 0
		}
		s.scheduleDeletionLocked(ttl)
	}
}

// scheduleDeletionLocked arranges for the empty session to be deleted once
// ttl runs out. s.mu must be held.
func (s *Session) scheduleDeletionLocked(ttl time.Duration) {
	s.t.sched.cancel(s.emptyTimer)
	s.emptyGen++
	gen := s.emptyGen // the callback may run before after returns (ttl 0)
	s.emptyTimer = s.t.sched.after(ttl, func() { s.t.expire(s, gen) })
}

// refreshMember points member uid's record at the user's current online
// connection (a newer sign-in), if it is not already. It takes the user
// index's shard lock under s.mu: lock order s.mu, then a user shard.
// Reading the online connection under s.mu makes concurrent refreshes
// converge on the latest connection.
func (s *Session) refreshMember(uid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.t.users.online(uid)
	sn := s.snap.Load()
	i := sn.indexOf(uid)
	if !ok || i < 0 || s.deleted {
		return
	}
	if m := sn.members[i]; m.Conn == cur.Conn && m.SID == cur.SID {
		return
	}
	members := slices.Clone(sn.members)
	members[i] = cur.clone()
	s.snap.Store(newSnapshot(members))
}

// hooks copies the session's hooks for calling outside the lock.
type hooks struct {
	onJoin    func(id string, u *User) bool
	onJoined  func(id string, u *User)
	onLeft    func(id string, u *User)
	onDeleted func(id string)
}

func (s *Session) currentHooks() hooks {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hooks
}

// memberData returns copies of the members' data.
func (s *Session) memberData() []MemberData {
	sn := s.snap.Load()
	out := make([]MemberData, len(sn.members))
	for i, m := range sn.members {
		out[i] = MemberData{SessionID: s.id, UserID: m.ID, SID: m.SID, Node: s.t.nodeOf(m), Data: maps.Clone(m.Data)}
	}
	return out
}

// MemberData is a copy of a member's data taken when it joined (the
// reference's UserData).
type MemberData struct {
	SessionID string
	UserID    string
	SID       string
	Node      string // the node the member is connected to
	Data      map[string]any
}

// User returns a new User carrying this member data, without a connection
// (the reference's CreateCopyUser).
func (d MemberData) User() *User {
	return &User{ID: d.UserID, SID: d.SID, Data: maps.Clone(d.Data)}
}
