package session

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coveyhq/covey/internal/rate"
	"github.com/coveyhq/covey/wire"
)

// MinEmptyTTL is the shortest time an empty session is kept before it is
// deleted; shorter TTLs are raised to it, as in the reference.
const MinEmptyTTL = 30 * time.Second

// Config configures a [Table]. Start from [DefaultConfig].
type Config struct {
	// Node is this node's name, written into every session ID it creates:
	// 1 to 64 characters of [A-Za-z0-9._-].
	Node string
	// Shards is how many lock stripes hold the sessions and the users.
	Shards int
	// MaxProperties is the most properties one session may hold.
	MaxProperties int
	// MaxPropertyKeyLen is the longest property key, in bytes.
	MaxPropertyKeyLen int
	// MaxPropertyStringLen is the longest string property value, in bytes.
	MaxPropertyStringLen int
	// MaxInvites is the most pending invites one session keeps; sending
	// more drops the oldest.
	MaxInvites int
	// DefaultInviteTTL is the lifetime of an invite sent with a zero TTL.
	DefaultInviteTTL time.Duration
	// MaxEmptyTTL caps Spec.EmptyTTL, so that abandoned sessions cannot
	// pile up for hours.
	MaxEmptyTTL time.Duration
	// MaxInviteTargets is the most users one Invite call may name.
	MaxInviteTargets int
	// MaxMemberData is the largest User.Data a member may carry into a
	// session, as encoded in a GetMemberData reply (wire.SizeProps).
	// With it the table bounds MaxMembers (see [MaxMembersFor]) so that
	// every member list the server sends fits the payload limit.
	MaxMemberData int
	// Wire encodes pushes (compression threshold and maximum payload).
	Wire wire.Config

	// Budgets, so that no player can cost the node without bound (see
	// PROTOCOL.md, Limits). Create fails with ErrLimitExceeded when the
	// node holds MaxSessions sessions, or when the creating user already
	// holds MaxEmptyPerUser sessions it created that are now empty
	// (waiting for their empty TTL; one that goes empty past that count
	// is deleted at once), and with ErrRateLimited past
	// CreateRate. Invite invites at most InviteRate targets per inviting
	// user, and a user receives at most InviteReceiveRate invites (others
	// get ErrRateLimited). A negative value means no limit.
	MaxSessions       int
	MaxEmptyPerUser   int
	CreateRate        rate.Limit
	InviteRate        rate.Limit
	InviteReceiveRate rate.Limit
}

// Member size limits: a member's user ID is at most MaxUserIDLen bytes
// (the sign-in rule) and its SID at most MaxSIDLen; a Create or Join of a
// User over them, or over Config.MaxMemberData, is ErrTooLarge.
const (
	MaxUserIDLen = 128
	MaxSIDLen    = 64
)

// MaxMembersFor returns the largest Spec.MaxMembers a table with the given
// payload limit and Config.MaxMemberData accepts: as many of the largest
// member entries of a GetMemberData reply (user ID, SID and data, with
// their length prefixes) as fit maxPayload - wire.PushReserve, at most
// 65535. With the defaults (64 KiB, 128 bytes) it is 202.
func MaxMembersFor(maxPayload uint32, maxMemberData int) uint16 {
	entry := wire.SizeUvarint(MaxUserIDLen) + MaxUserIDLen + wire.SizeUvarint(MaxSIDLen) + MaxSIDLen + maxMemberData
	n := int(wire.MaxMessageFor(maxPayload)) / entry
	return uint16(min(n, 1<<16-1))
}

// DefaultConfig returns the configuration of a single node named "local".
func DefaultConfig() Config {
	return Config{
		Node:                 "local",
		Shards:               64,
		MaxProperties:        256,
		MaxPropertyKeyLen:    128,
		MaxPropertyStringLen: 4096,
		MaxInvites:           256,
		DefaultInviteTTL:     60 * time.Second,
		MaxEmptyTTL:          time.Hour,
		MaxInviteTargets:     64,
		MaxMemberData:        128,
		Wire:                 wire.DefaultConfig(),
		MaxSessions:          1 << 20,
		MaxEmptyPerUser:      16,
		CreateRate:           rate.PerMinute(60, 20),
		InviteRate:           rate.PerMinute(300, 100),
		InviteReceiveRate:    rate.PerMinute(60, 20),
	}
}

// Spec describes a session to create.
type Spec struct {
	// Type is the session type: a user is in at most one session per type.
	Type uint8
	// MaxMembers is the most members the session admits: from 2 to the
	// table's [Table.MaxMembersLimit].
	MaxMembers uint16
	// EmptyTTL is how long the session survives with no members. Values
	// under MinEmptyTTL (including zero) mean MinEmptyTTL, values over the
	// table's MaxEmptyTTL mean MaxEmptyTTL. Deletion is not exact: it
	// happens when the table's scheduler gets to it.
	EmptyTTL time.Duration
	// Properties are set on the session before anyone can see it.
	Properties map[string]any
	// Quiet makes a session whose members get no PropertiesChanged
	// pushes: for sessions whose properties change too often to be worth
	// telling (wire.CreateQuiet on the network).
	Quiet bool
}

// Table holds every session of one node. All methods are safe for
// concurrent use; none blocks on I/O, except a call on a session another
// node of a cluster owns, which waits for that node's answer (bounded by
// ctx and the cluster's call timeout).
type Table struct {
	cfg     Config
	seed    maphash.Seed
	shards  []tableShard
	users   *userIndex
	sched   *scheduler
	offline atomic.Bool
	closed  atomic.Bool

	propagateMu sync.Mutex                                        // serializes writers of propagate
	propagate   atomic.Pointer[map[uint32]func([]byte, []string)] // ver<<16|cmd -> hook; copy on write

	bufs    sync.Pool // *[]byte scratch for encoding pushes
	targets sync.Pool // *[]string scratch for Fanout target lists

	remote Remote // nil: a single node (SetRemote)

	onCreate atomic.Pointer[func(*Session)]

	// Counters for Stats; updated with atomic adds, never under a lock
	// they would not otherwise take.
	byType     [256]atomic.Int64 // sessions held, by type
	members    atomic.Int64      // memberships held
	count      atomic.Int64      // sessions held
	deliveries atomic.Uint64     // frames handed to members' Conns
	created    atomic.Uint64     // sessions created
	deleted    atomic.Uint64     // sessions deleted (TTL or Delete)
	empty      atomic.Int64      // sessions held with no member (waiting for their TTL)
}

// Stats is a snapshot of a table's counters.
type Stats struct {
	SessionsByType map[uint8]int64 // types with at least one session
	Members        int64           // memberships across all sessions
	Deliveries     uint64          // frames handed to members' connections, since New
	Created        uint64          // sessions created, since New
	Deleted        uint64          // sessions deleted (empty TTL ran out, or Delete), since New
	Empty          int64           // sessions held with no member, waiting for their empty TTL
}

// Stats returns the table's counters. It reads atomics only: cheap enough
// for every metrics scrape.
func (t *Table) Stats() Stats {
	st := Stats{
		SessionsByType: make(map[uint8]int64), Members: t.members.Load(), Deliveries: t.deliveries.Load(),
		Created: t.created.Load(), Deleted: t.deleted.Load(), Empty: t.empty.Load(),
	}
	for typ := range t.byType {
		if n := t.byType[typ].Load(); n != 0 {
			st.SessionsByType[uint8(typ)] = n
		}
	}
	return st
}

type tableShard struct {
	mu       sync.RWMutex
	sessions map[string]*Session // mu
}

// New returns a running table. Call Close when done with it.
func New(cfg Config) (*Table, error) {
	return newTable(cfg, time.Now)
}

func newTable(cfg Config, now func() time.Time) (*Table, error) {
	def := DefaultConfig()
	if cfg.Node == "" {
		cfg.Node = def.Node
	}
	if !ValidNodeName(cfg.Node) {
		return nil, ErrInvalidSessionID
	}
	if cfg.Shards <= 0 {
		cfg.Shards = def.Shards
	}
	if cfg.MaxProperties <= 0 {
		cfg.MaxProperties = def.MaxProperties
	}
	if cfg.MaxPropertyKeyLen <= 0 {
		cfg.MaxPropertyKeyLen = def.MaxPropertyKeyLen
	}
	if cfg.MaxPropertyStringLen <= 0 {
		cfg.MaxPropertyStringLen = def.MaxPropertyStringLen
	}
	if cfg.MaxInvites <= 0 {
		cfg.MaxInvites = def.MaxInvites
	}
	if cfg.DefaultInviteTTL <= 0 {
		cfg.DefaultInviteTTL = def.DefaultInviteTTL
	}
	if cfg.MaxEmptyTTL < MinEmptyTTL {
		cfg.MaxEmptyTTL = def.MaxEmptyTTL
	}
	if cfg.MaxInviteTargets <= 0 {
		cfg.MaxInviteTargets = def.MaxInviteTargets
	}
	if cfg.MaxMemberData <= 0 {
		cfg.MaxMemberData = def.MaxMemberData
	}
	if cfg.Wire.MaxPayload == 0 {
		cfg.Wire = def.Wire
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = def.MaxSessions
	}
	if cfg.MaxEmptyPerUser == 0 {
		cfg.MaxEmptyPerUser = def.MaxEmptyPerUser
	}
	if cfg.CreateRate == (rate.Limit{}) {
		cfg.CreateRate = def.CreateRate
	}
	if cfg.InviteRate == (rate.Limit{}) {
		cfg.InviteRate = def.InviteRate
	}
	if cfg.InviteReceiveRate == (rate.Limit{}) {
		cfg.InviteReceiveRate = def.InviteReceiveRate
	}
	t := &Table{
		cfg:    cfg,
		seed:   maphash.MakeSeed(),
		shards: make([]tableShard, cfg.Shards),
		users:  newUserIndex(cfg.Shards),
		sched:  newScheduler(now),
	}
	for i := range t.shards {
		t.shards[i].sessions = make(map[string]*Session)
	}
	t.bufs.New = func() any { b := make([]byte, 0, 512); return &b }
	t.targets.New = func() any { l := make([]string, 0, 8); return &l }
	return t, nil
}

// Close stops the table's scheduler: no TTL or tick fires afterwards, and
// Create fails with ErrClosed. Sessions stay readable.
func (t *Table) Close() {
	t.closed.Store(true)
	t.sched.stop()
}

// Node returns this node's name.
func (t *Table) Node() string { return t.cfg.Node }

// MaxMembersLimit returns the largest Spec.MaxMembers this table accepts:
// [MaxMembersFor] its payload limit and MaxMemberData.
func (t *Table) MaxMembersLimit() uint16 {
	return MaxMembersFor(t.cfg.Wire.MaxPayload, t.cfg.MaxMemberData)
}

// memberFits reports whether u's ID, SID and data are within the member
// size limits, so that member lists stay within the payload limit.
func (t *Table) memberFits(u *User) bool {
	if len(u.ID) > MaxUserIDLen || len(u.SID) > MaxSIDLen {
		return false
	}
	if len(u.Data) == 0 {
		return true
	}
	n := wire.SizeUvarint(uint64(len(u.Data)))
	for k, v := range u.Data {
		wv, err := wire.ValueOf(v)
		if err != nil {
			continue // left out of member data replies
		}
		n += wire.SizeString(k) + wire.SizeValue(wv)
	}
	return n <= t.cfg.MaxMemberData
}

// SetOffline marks the node offline (draining) or back online. While
// offline, Create fails with ErrServerOffline; everything else works.
func (t *Table) SetOffline(offline bool) { t.offline.Store(offline) }

// Offline reports whether the node is offline.
func (t *Table) Offline() bool { return t.offline.Load() }

func (t *Table) shard(id string) *tableShard {
	return &t.shards[maphash.String(t.seed, id)%uint64(len(t.shards))]
}

// route resolves a session ID to this node's session. Every operation on
// a local session goes through here; one addressed to a session another
// node owns is sent there first (isRemote, remoteapi.go), so an ID naming
// another node is not found here.
func (t *Table) route(ctx context.Context, id string) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Only IDs that NewID made are in the shards, so a hit needs no
	// validation; a miss is checked to tell a malformed ID from a gone one.
	// (Validating first cost 27% of BenchmarkBroadcast8.)
	if idOwnedBy(id, t.cfg.Node) {
		sh := t.shard(id)
		sh.mu.RLock()
		s := sh.sessions[id]
		sh.mu.RUnlock()
		if s != nil {
			return s, nil
		}
	}
	if _, err := IDNode(id); err != nil {
		return nil, err
	}
	return nil, ErrSessionNotFound
}

// routeTyped is route plus a check that the session has type typ.
func (t *Table) routeTyped(ctx context.Context, typ uint8, id string) (*Session, error) {
	s, err := t.route(ctx, id)
	if err != nil {
		return nil, err
	}
	if s.typ != typ {
		return nil, ErrBadSessionType
	}
	return s, nil
}

// memberSession returns u's session of type typ, checking that u is still a
// member of it.
func (t *Table) memberSession(ctx context.Context, typ uint8, u *User) (*Session, error) {
	id, ok := t.users.sessionOf(u.ID, typ)
	if !ok {
		return nil, ErrNotMember
	}
	s, err := t.route(ctx, id)
	if err != nil {
		return nil, err
	}
	if !s.IsMember(u.ID) {
		return nil, ErrNotMember
	}
	return s, nil
}

// Session returns the local session with the given ID (the reference's
// GetSessionByID): it finds sessions owned by this node only.
func (t *Table) Session(id string) (*Session, bool) {
	s, err := t.route(context.Background(), id)
	return s, err == nil
}

// Len returns how many sessions this node holds.
func (t *Table) Len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		n += len(sh.sessions)
		sh.mu.RUnlock()
	}
	return n
}

// Create makes a new session with u as its first member and owner.
//
// Errors (in an *OpError with Op OpCreate): ErrServerOffline while the node
// is offline, ErrBadMaxMembers unless spec.MaxMembers > 1,
// ErrAlreadyInSession if u is in a session of spec.Type, ErrBadProperty,
// ErrTooManyProperties or ErrPropertiesFull for refused initial
// properties, ErrClosed after Close, ErrUserNotFound if u has a Conn but
// is not connected (see Connect).
func (t *Table) Create(ctx context.Context, u *User, spec Spec) (*Session, error) {
	s, err := t.create(ctx, u, spec)
	if err != nil {
		return nil, opErr(OpCreate, "", err)
	}
	return s, nil
}

func (t *Table) create(ctx context.Context, u *User, spec Spec) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch {
	case t.closed.Load():
		return nil, ErrClosed
	case t.offline.Load():
		return nil, ErrServerOffline
	case spec.MaxMembers < 2 || spec.MaxMembers > t.MaxMembersLimit():
		return nil, ErrBadMaxMembers
	case !t.memberFits(u):
		return nil, ErrTooLarge
	}
	// The node's place is taken first, so that concurrent creates cannot
	// pass MaxSessions together; every failure below gives it back.
	if t.count.Add(1) > int64(t.cfg.MaxSessions) && t.cfg.MaxSessions > 0 {
		t.count.Add(-1)
		return nil, ErrLimitExceeded
	}
	s, err := t.createCounted(u, spec)
	switch {
	case s == nil:
		t.count.Add(-1) // nothing was made
	case err != nil:
		return nil, err // made, and left empty: it keeps its place until deleted
	}
	return s, err
}

// createCounted is create once the node's place is taken (t.count). It
// returns the session whenever one was made, with settle's error if the
// creator went away meanwhile.
func (t *Table) createCounted(u *User, spec Spec) (*Session, error) {
	if err := t.users.admitCreate(u.ID, t.sched.now(), &t.cfg); err != nil {
		return nil, err
	}
	props, propsSize, err := t.newProps(spec.Properties)
	if err != nil {
		return nil, err
	}
	id, err := NewID(t.cfg.Node)
	if err != nil {
		return nil, err
	}
	s := &Session{
		id:         id,
		typ:        spec.Type,
		maxMembers: spec.MaxMembers,
		emptyTTL:   min(max(spec.EmptyTTL, MinEmptyTTL), t.cfg.MaxEmptyTTL),
		t:          t,
		props:      props,
		propsSize:  propsSize,
		quiet:      spec.Quiet,
		creator:    u.ID,
	}
	s.snap.Store(newSnapshot([]*User{u.clone()}))
	if err := t.users.reserve(u.ID, spec.Type, id); err != nil {
		return nil, err
	}
	sh := t.shard(id)
	sh.mu.Lock()
	sh.sessions[id] = s
	sh.mu.Unlock()
	t.byType[spec.Type].Add(1)
	t.members.Add(1)
	t.created.Add(1)
	if fn := t.onCreate.Load(); fn != nil {
		(*fn)(s)
	}
	if err := t.settle(s, u); err != nil {
		return s, err
	}
	return s, nil
}

// SetOnCreate sets the hook called with every session this node creates,
// right after it is created and before Create returns, on the creating
// goroutine: the place for application code to set a session's hooks and
// ticks, whoever created it (a client's Create command included). It must
// not block. One hook per table: it reports false if one was already set,
// or if fn is nil.
func (t *Table) SetOnCreate(fn func(s *Session)) bool {
	if fn == nil {
		return false
	}
	return t.onCreate.CompareAndSwap(nil, &fn)
}

// Join makes u a member of session id of type typ. Anyone who knows the ID
// may join; use AcceptInvite to require an invite.
//
// Errors (Op OpJoin): ErrInvalidSessionID, ErrSessionNotFound, ErrBadSessionType,
// ErrAlreadyInSession (u is in a session of this type, this one included),
// ErrJoinRejected (the OnJoin hook said no), ErrSessionFull,
// ErrUserNotFound (u has a Conn but is not its user's online connection:
// see Connect).
func (t *Table) Join(ctx context.Context, typ uint8, id string, u *User) error {
	if t.isRemote(id) {
		return opErr(OpJoin, id, t.remoteJoin(ctx, typ, id, u, false))
	}
	return opErr(OpJoin, id, t.join(ctx, typ, id, u, false))
}

// AcceptInvite joins u to session id using the invite u received. The invite
// is used up by a successful join.
//
// Errors (Op OpAccept): those of Join, and ErrNoInvite when u was not
// invited or the invite expired.
func (t *Table) AcceptInvite(ctx context.Context, typ uint8, id string, u *User) error {
	if t.isRemote(id) {
		return opErr(OpAccept, id, t.remoteJoin(ctx, typ, id, u, true))
	}
	return opErr(OpAccept, id, t.join(ctx, typ, id, u, true))
}

func (t *Table) join(ctx context.Context, typ uint8, id string, u *User, invited bool) error {
	s, err := t.routeTyped(ctx, typ, id)
	if err != nil {
		return err
	}
	if s.IsMember(u.ID) {
		return ErrAlreadyInSession
	}
	if !t.memberFits(u) {
		return ErrTooLarge
	}
	if h := s.currentHooks(); h.onJoin != nil && !h.onJoin(id, u.clone()) {
		return ErrJoinRejected
	}
	if err := t.users.reserve(u.ID, typ, id); err != nil {
		return err
	}
	m := u.clone()
	s.mu.Lock()
	before := s.snap.Load()
	switch {
	case s.deleted:
		err = ErrSessionNotFound
	case invited && !s.hasInviteLocked(u.ID, t.sched.now()):
		err = ErrNoInvite
	case before.indexOf(u.ID) >= 0:
		err = ErrAlreadyInSession
	case !s.IsJoinAllowed(len(before.members)):
		err = ErrSessionFull
	}
	if err != nil {
		s.mu.Unlock()
		t.users.release(u.ID, typ, id)
		return err
	}
	s.addMemberLocked(m)
	if invited {
		delete(s.invites, u.ID) // used up by the successful join only
	}
	onJoined := s.hooks.onJoined
	s.notifyMu.Lock() // before s.mu is released: pushes in member-list order (doc.go)
	s.mu.Unlock()
	t.members.Add(1)

	t.pushMemberEvent(before.members, wire.CmdMemberJoined, s, u.ID)
	s.notifyMu.Unlock()
	if onJoined != nil {
		onJoined(id, u.clone())
	}
	return t.settle(s, u)
}

// settle re-checks, after u was added to s, that u is still the user's
// online connection: a sign-in or a disconnect that ran while u was being
// added could not see the new membership. A replaced u gives way to the
// newer connection; a user gone offline is taken out again
// (ErrUserNotFound). Users without a Conn (server-side players) are not
// checked.
func (t *Table) settle(s *Session, u *User) error {
	if u.Conn == nil {
		return nil
	}
	cur, online := t.users.online(u.ID)
	switch {
	case !online:
		_ = t.remove(s, u.ID, removeDisconnect)
		return ErrUserNotFound
	case cur != u:
		s.refreshMember(u.ID)
	}
	return nil
}

// Leave removes u from session id. If u owned it, the longest-standing
// remaining member becomes the owner and members are told. A session left
// empty is deleted when its EmptyTTL runs out, unless someone joins first.
//
// Errors (Op OpLeave): ErrInvalidSessionID, ErrSessionNotFound,
// ErrBadSessionType, ErrNotMember.
func (t *Table) Leave(ctx context.Context, typ uint8, id string, u *User) error {
	if t.isRemote(id) {
		return t.remoteLeave(ctx, typ, id, u)
	}
	s, err := t.routeTyped(ctx, typ, id)
	if err == nil {
		err = t.remove(s, u.ID, removeLeave)
	}
	return opErr(OpLeave, id, err)
}

// Kick removes member targetUID from session id; the kicked user receives
// a Kicked push and the others a MemberLeft push.
//
// Errors (Op OpKick): ErrInvalidSessionID, ErrSessionNotFound,
// ErrBadSessionType, ErrNotMember (target is not a member),
// ErrCannotKickSelf (the target is the owner: the owner cannot kick itself).
func (t *Table) Kick(ctx context.Context, typ uint8, id, targetUID string) error {
	if t.isRemote(id) {
		return t.remoteKick(ctx, typ, id, nil, targetUID)
	}
	s, err := t.routeTyped(ctx, typ, id)
	if err == nil {
		err = t.remove(s, targetUID, removeKick)
	}
	return opErr(OpKick, id, err)
}

// KickAsMember is Kick with the session found from the member u's session
// of type typ (the reference's KickFromSessionWithUserData).
//
// Errors (Op OpKick): ErrNotMember when u is not in a session of that type,
// ErrCannotKickSelf when u names itself, and those of Kick.
func (t *Table) KickAsMember(ctx context.Context, typ uint8, u *User, targetUID string) error {
	if id, ok := t.remoteID(typ, u); ok {
		if targetUID == u.ID {
			return opErr(OpKick, id, ErrCannotKickSelf)
		}
		return t.remoteKick(ctx, typ, id, u, targetUID)
	}
	s, err := t.memberSession(ctx, typ, u)
	if err != nil {
		return opErr(OpKick, "", err)
	}
	if targetUID == u.ID {
		return opErr(OpKick, s.id, ErrCannotKickSelf)
	}
	return opErr(OpKick, s.id, t.remove(s, targetUID, removeKick))
}

// KickAsOwner is KickAsMember for a client command: only the owner may
// kick. Errors: ErrNotOwner, and those of KickAsMember.
func (t *Table) KickAsOwner(ctx context.Context, typ uint8, u *User, targetUID string) error {
	if id, ok := t.remoteID(typ, u); ok {
		_, err := t.callAs(ctx, id, u, wire.CmdKick, &wire.KickRequest{Type: typ, UserID: targetUID})
		return opErr(OpKick, id, err)
	}
	s, err := t.memberSession(ctx, typ, u)
	if err != nil {
		return opErr(OpKick, "", err)
	}
	if targetUID == u.ID {
		return opErr(OpKick, s.id, ErrCannotKickSelf)
	}
	if o := s.snap.Load().owner(); o == nil || o.ID != u.ID {
		return opErr(OpKick, s.id, ErrNotOwner)
	}
	return opErr(OpKick, s.id, t.remove(s, targetUID, removeKick))
}

type removeKind uint8

const (
	removeLeave removeKind = iota
	removeKick
	removeDisconnect
	removeLost // disconnect semantics, for a member whose node was lost
	// removeAsked is disconnect semantics at the request of the member's
	// own node (Remote.Disconnected), which has freed the user's place
	// already: no Removed goes back to it. (One that did could free the
	// place of a later join of the same session, when the request undoes
	// a join that node gave up on.)
	removeAsked
)

// removedReason is the wire.Removed reason of a removal of kind k.
func removedReason(k removeKind) wire.RemovedReason {
	switch k {
	case removeKick:
		return wire.RemovedKicked
	case removeDisconnect, removeAsked:
		return wire.RemovedDisconnected
	case removeLost:
		return wire.RemovedOwnerLost
	}
	return wire.RemovedLeft
}

// remove takes member uid out of s and tells everyone concerned.
func (t *Table) remove(s *Session, uid string, kind removeKind) error {
	s.mu.Lock()
	sn := s.snap.Load()
	i := sn.indexOf(uid)
	switch {
	case i < 0 || s.deleted:
		s.mu.Unlock()
		return ErrNotMember
	case kind == removeKick && i == 0:
		s.mu.Unlock()
		return ErrCannotKickSelf
	}
	gone := sn.members[i]
	s.removeMemberLocked(i)
	after := s.snap.Load()
	onLeft := s.hooks.onLeft
	t.users.release(uid, s.typ, s.id) // before the pushes: a kicked user may join elsewhere at once
	s.notifyMu.Lock()                 // before s.mu is released: pushes in member-list order (doc.go)
	s.mu.Unlock()
	t.members.Add(-1)

	if kind == removeKick {
		t.pushMemberEvent([]*User{gone}, wire.CmdKicked, s, uid)
	}
	t.pushMemberEvent(after.members, wire.CmdMemberLeft, s, uid)
	if i == 0 && len(after.members) > 0 {
		t.pushMemberEvent(after.members, wire.CmdOwnerChanged, s, after.members[0].ID)
	}
	if gone.Node != "" && t.remote != nil && kind != removeLost && kind != removeAsked {
		t.remote.Removed(gone.Node, s.id, s.typ, uid, removedReason(kind))
	}
	s.notifyMu.Unlock()
	if onLeft != nil {
		onLeft(s.id, gone.clone())
	}
	return nil
}

// Connect registers u as the online connection of user u.ID, which makes
// u a valid invite target. If the user was already online, u replaces the
// previous connection in the index and in every session the user is in
// (memberships survive a second sign-in), and the previous *User is
// returned so the caller can close it; otherwise Connect returns nil.
func (t *Table) Connect(u *User) (replaced *User) {
	prev, sessions := t.users.setOnline(u)
	for _, us := range sessions {
		if node, remote := t.Owner(us.ID); remote {
			if t.remote != nil {
				t.remote.Reconnected(node, us.ID, us.Type, u.ID, u.SID)
			}
			continue
		}
		if s, err := t.route(context.Background(), us.ID); err == nil {
			s.refreshMember(u.ID)
		}
	}
	return prev
}

// Disconnect handles the loss of u's connection: if u is still the user's
// online connection it is removed, and the user leaves every session it is
// in, handing ownership over where it owned one. A connection that was
// replaced by a later Connect changes nothing.
func (t *Table) Disconnect(u *User) {
	if !t.users.setOffline(u) {
		return
	}
	for _, us := range t.users.sessions(u.ID) {
		if node, remote := t.Owner(us.ID); remote {
			t.users.release(u.ID, us.Type, us.ID)
			if t.remote != nil {
				t.remote.Disconnected(node, us.ID, us.Type, u.ID)
			}
			continue
		}
		if s, err := t.route(context.Background(), us.ID); err == nil {
			_ = t.remove(s, u.ID, removeDisconnect) // ErrNotMember: already gone
		}
	}
}

// Online reports whether user uid is connected to this node.
func (t *Table) Online(uid string) bool {
	_, ok := t.users.online(uid)
	return ok
}

// expire deletes s if it is still empty and deletion gen is still its
// pending one. It runs on the scheduler goroutine.
func (t *Table) expire(s *Session, gen uint64) {
	s.mu.Lock()
	if s.deleted || s.emptyGen != gen || s.emptyTimer == nil || len(s.snap.Load().members) > 0 {
		s.mu.Unlock()
		return
	}
	t.deleteLocked(s)
}

// Delete removes session id at once, members and all, for application
// code (a match is over): each member receives a SessionDeleted push and
// is free to join another session of the type; the session's ticks stop
// and its OnDeleted hook runs. OnLeft is not called. Errors (Op
// OpMember): ErrInvalidSessionID, ErrSessionNotFound.
func (t *Table) Delete(ctx context.Context, id string) error {
	if t.isRemote(id) {
		_, err := t.call(ctx, id, nil, wire.OpAppDelete, nil)
		return opErr(OpMember, id, err)
	}
	s, err := t.route(ctx, id)
	if err != nil {
		return opErr(OpMember, id, err)
	}
	s.mu.Lock()
	if s.deleted {
		s.mu.Unlock()
		return opErr(OpMember, id, ErrSessionNotFound)
	}
	t.deleteLocked(s)
	return nil
}

// deleteLocked marks s deleted, unlocks it, takes it out of the table and
// the user index, tells its members and runs its stop and delete hooks.
// s.mu must be held; it is released.
func (t *Table) deleteLocked(s *Session) {
	s.deleted = true
	t.sched.cancel(s.emptyTimer)
	s.emptyTimer = nil
	s.invites = nil
	members := s.snap.Load().members
	s.snap.Store(newSnapshot(nil))
	stops := s.stopTicksLocked()
	onDeleted := s.hooks.onDeleted
	s.mu.Unlock()

	sh := t.shard(s.id)
	sh.mu.Lock()
	if sh.sessions[s.id] == s {
		delete(sh.sessions, s.id)
	}
	sh.mu.Unlock()
	t.byType[s.typ].Add(-1)
	t.count.Add(-1)
	t.members.Add(-int64(len(members)))
	t.deleted.Add(1)
	if len(members) == 0 {
		t.empty.Add(-1)
		t.users.emptyHeld(s.creator, -1)
	}
	for _, m := range members {
		t.users.release(m.ID, s.typ, s.id)
	}
	if len(members) > 0 {
		// After every push of an earlier change: each took notifyMu
		// under s.mu, before the deletion.
		fb := t.sessionDeletedFrame(s.typ, s.id)
		s.notifyMu.Lock()
		t.deliver(s.id, members, *fb, nil)
		s.notifyMu.Unlock()
		t.putBuf(fb)
	}
	if t.remote != nil {
		for _, m := range members {
			if m.Conn == nil && m.Node != "" {
				t.remote.Removed(m.Node, s.id, s.typ, m.ID, wire.RemovedDeleted)
			}
		}
	}
	for _, stop := range stops {
		stop(s.id)
	}
	if onDeleted != nil {
		onDeleted(s.id)
	}
}

// sessionDeletedFrame encodes the SessionDeleted push of session id of
// type typ into a pooled buffer, for the caller to putBuf.
func (t *Table) sessionDeletedFrame(typ uint8, id string) *[]byte {
	payload := t.getBuf()
	p := wire.SessionDeletedPush{Type: typ, SessionID: id}
	*payload = p.Append((*payload)[:0])
	fb := t.getBuf()
	*fb = t.cfg.Wire.AppendFrame((*fb)[:0], wire.Header{Cmd: wire.CmdSessionDeleted, Flags: wire.FlagPush}, *payload)
	t.putBuf(payload)
	return fb
}

// SessionID returns the ID of u's session of type typ, or "" if u is in
// none (the reference's GetSessionID).
func (t *Table) SessionID(typ uint8, u *User) string {
	id, _ := t.users.sessionOf(u.ID, typ)
	return id
}

// SessionIDByUser returns the ID of u's session of type typ and whether u
// is in one (the reference's GetSessionIDByUser).
func (t *Table) SessionIDByUser(typ uint8, u *User) (string, bool) {
	return t.users.sessionOf(u.ID, typ)
}

// UserSessions returns every session u is a member of (the reference's
// GetSessionDataByUser); empty if none.
func (t *Table) UserSessions(u *User) []UserSession {
	return t.users.sessions(u.ID)
}

// MemberIDs returns the member IDs, in join order, of u's session of type
// typ. Errors (Op OpMember): ErrNotMember, ErrSessionNotFound.
func (t *Table) MemberIDs(ctx context.Context, typ uint8, u *User) ([]string, error) {
	if id, ok := t.remoteID(typ, u); ok {
		return t.remoteStrings(ctx, typ, id, u, wire.CmdGetMemberIDs)
	}
	s, err := t.memberSession(ctx, typ, u)
	if err != nil {
		return nil, opErr(OpMember, "", err)
	}
	return s.MemberIDs(), nil
}

// MemberSIDs returns the member SIDs, in join order, of u's session of type
// typ. Errors (Op OpMember): ErrNotMember, ErrSessionNotFound.
func (t *Table) MemberSIDs(ctx context.Context, typ uint8, u *User) ([]string, error) {
	if id, ok := t.remoteID(typ, u); ok {
		return t.remoteStrings(ctx, typ, id, u, wire.CmdGetMemberSIDs)
	}
	s, err := t.memberSession(ctx, typ, u)
	if err != nil {
		return nil, opErr(OpMember, "", err)
	}
	return s.MemberSIDs(), nil
}

// MemberData returns copies of the member data of u's session of type typ
// (the reference's GetAllSessionMemberData). Errors (Op OpMember):
// ErrNotMember, ErrSessionNotFound.
func (t *Table) MemberData(ctx context.Context, typ uint8, u *User) ([]MemberData, error) {
	if id, ok := t.remoteID(typ, u); ok {
		return t.remoteMemberData(ctx, typ, id, u)
	}
	s, err := t.memberSession(ctx, typ, u)
	if err != nil {
		return nil, opErr(OpMember, "", err)
	}
	return s.memberData(), nil
}

// IsOwner reports whether u owns its session of type typ. Errors (Op
// OpOwner): ErrNotMember, ErrSessionNotFound.
func (t *Table) IsOwner(ctx context.Context, typ uint8, u *User) (bool, error) {
	if id, ok := t.remoteID(typ, u); ok {
		return t.remoteIsOwner(ctx, typ, id, u)
	}
	s, err := t.memberSession(ctx, typ, u)
	if err != nil {
		return false, opErr(OpOwner, "", err)
	}
	o := s.snap.Load().owner()
	return o != nil && o.ID == u.ID, nil
}

// SessionInfo describes session id; anyone may ask. Errors (Op OpMember):
// ErrInvalidSessionID, ErrSessionNotFound.
func (t *Table) SessionInfo(ctx context.Context, id string) (Info, error) {
	if t.isRemote(id) {
		return t.remoteSessionInfo(ctx, id)
	}
	s, err := t.route(ctx, id)
	if err != nil {
		return Info{}, opErr(OpMember, id, err)
	}
	return s.Info(), nil
}

// JoinCheck is the owner's answer to Join (AcceptInvite if invited) of
// session id by u when u's own node found u already in a session of type
// typ: the error a single node would give, without joining. That is the
// first of the route errors, ErrAlreadyInSession (u is a member),
// ErrTooLarge and ErrJoinRejected (the OnJoin hook), else
// ErrAlreadyInSession.
func (t *Table) JoinCheck(ctx context.Context, typ uint8, id string, u *User, invited bool) error {
	op := OpJoin
	if invited {
		op = OpAccept
	}
	s, err := t.routeTyped(ctx, typ, id)
	switch {
	case err != nil:
	case s.IsMember(u.ID):
		err = ErrAlreadyInSession
	case !t.memberFits(u):
		err = ErrTooLarge
	default:
		err = ErrAlreadyInSession
		if h := s.currentHooks(); h.onJoin != nil && !h.onJoin(id, u.clone()) {
			err = ErrJoinRejected
		}
	}
	return opErr(op, id, err)
}
