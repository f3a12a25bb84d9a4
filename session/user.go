package session

import (
	"hash/maphash"
	"maps"
	"sync"
	"time"

	"github.com/coveyhq/covey/internal/rate"
)

// Conn delivers encoded frames to one connected user. The network layer
// implements it for each connection; tests implement it in memory.
//
// Deliver is called from any goroutine, never under a lock of this package
// that guards data, and often with the same frame for many users (a
// broadcast is encoded once). PropertiesChanged pushes are delivered under
// their session's delivery lock, which keeps them in write order (see the
// package's Locking notes): so Deliver must not call back into the table,
// must not block and must not modify frame or keep it after returning:
// copy it into the connection's outbound buffer. A connection that cannot
// keep up deals with that itself (it disconnects the slow consumer).
type Conn interface {
	Deliver(frame []byte)
}

// User is a player as the session table sees it.
type User struct {
	// ID identifies the player across connections; it is what other players
	// name in invites, kicks and messages.
	ID string
	// SID identifies the player's current connection (sign-in).
	SID string
	// Data is a small map of the player's public data (display name, level):
	// a copy is taken when the user joins a session and handed to member
	// queries and hooks.
	Data map[string]any
	// Conn receives the user's pushes. A nil Conn receives nothing,
	// unless Node names another node.
	Conn Conn
	// Node is the node the user is connected to, when that is another
	// node of the cluster ("" means this one). Such a member has a nil
	// Conn: its pushes go through the table's Remote (see
	// [Table.SetRemote]), one message per node, never one per member.
	Node string
}

// clone returns a copy of u with its own Data map.
func (u *User) clone() *User {
	c := *u
	c.Data = maps.Clone(u.Data)
	return &c
}

// UserSession names one session a user is a member of.
type UserSession struct {
	Type uint8
	ID   string
}

// userEntry is the index record of one user.
type userEntry struct {
	online   *User         // the signed-in connection, or nil
	sessions []UserSession // at most one per type

	// Budgets (Config's MaxEmptyPerUser and rates). The entry is kept
	// while the user holds empty sessions, so that signing out and in
	// again does not reset that count.
	empty            int         // sessions it created that are empty now
	creates, invites rate.Bucket // sessions created, invites sent
	invitesIn        rate.Bucket // invites received
}

// idle reports whether the entry records nothing worth keeping.
func (e *userEntry) idle() bool { return e.online == nil && len(e.sessions) == 0 && e.empty == 0 }

func (e *userEntry) sessionOf(typ uint8) (string, bool) {
	for _, s := range e.sessions {
		if s.Type == typ {
			return s.ID, true
		}
	}
	return "", false
}

type userShard struct {
	mu    sync.Mutex
	users map[string]*userEntry // mu
}

// userIndex maps user IDs to the sessions they are in and to their online
// connection, sharded by a hash of the user ID.
type userIndex struct {
	seed   maphash.Seed
	shards []userShard
}

func newUserIndex(n int) *userIndex {
	x := &userIndex{seed: maphash.MakeSeed(), shards: make([]userShard, n)}
	for i := range x.shards {
		x.shards[i].users = make(map[string]*userEntry)
	}
	return x
}

func (x *userIndex) shard(uid string) *userShard {
	return &x.shards[maphash.String(x.seed, uid)%uint64(len(x.shards))]
}

// reserve records that uid is in session id of type typ, unless uid is
// already in a session of that type.
func (x *userIndex) reserve(uid string, typ uint8, id string) error {
	sh := x.shard(uid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.users[uid]
	if e == nil {
		e = &userEntry{}
		sh.users[uid] = e
	} else if _, ok := e.sessionOf(typ); ok {
		return ErrAlreadyInSession
	}
	e.sessions = append(e.sessions, UserSession{Type: typ, ID: id})
	return nil
}

// release forgets that uid is in session id of type typ; it does nothing if
// the index names another session for that type.
func (x *userIndex) release(uid string, typ uint8, id string) {
	sh := x.shard(uid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.users[uid]
	if e == nil {
		return
	}
	for i, s := range e.sessions {
		if s.Type == typ && s.ID == id {
			e.sessions = append(e.sessions[:i], e.sessions[i+1:]...)
			break
		}
	}
	if e.idle() {
		delete(sh.users, uid)
	}
}

// sessionOf returns the ID of uid's session of type typ.
func (x *userIndex) sessionOf(uid string, typ uint8) (string, bool) {
	sh := x.shard(uid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.users[uid]; e != nil {
		return e.sessionOf(typ)
	}
	return "", false
}

// sessions returns a copy of the list of uid's sessions.
func (x *userIndex) sessions(uid string) []UserSession {
	sh := x.shard(uid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.users[uid]; e != nil && len(e.sessions) > 0 {
		return append([]UserSession(nil), e.sessions...)
	}
	return nil
}

// setOnline makes u the online connection of u.ID and returns the one it
// replaces (nil if none) and the user's sessions.
func (x *userIndex) setOnline(u *User) (prev *User, sessions []UserSession) {
	sh := x.shard(u.ID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.users[u.ID]
	if e == nil {
		e = &userEntry{}
		sh.users[u.ID] = e
	}
	prev, e.online = e.online, u
	return prev, append([]UserSession(nil), e.sessions...)
}

// setOffline clears uid's online connection if it is still u, and reports
// whether it was.
func (x *userIndex) setOffline(u *User) bool {
	sh := x.shard(u.ID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.users[u.ID]
	if e == nil || e.online != u {
		return false
	}
	e.online = nil
	if e.idle() {
		delete(sh.users, u.ID)
	}
	return true
}

// onlineBytes is online for a user ID held in a byte slice (a network
// buffer); it does not allocate.
func (x *userIndex) onlineBytes(uid []byte) (*User, bool) {
	sh := &x.shards[maphash.Bytes(x.seed, uid)%uint64(len(x.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.users[string(uid)]; e != nil && e.online != nil {
		return e.online, true
	}
	return nil, false
}

// lostMembership is a local user's membership of a session whose owner
// was lost.
type lostMembership struct {
	conn Conn // the user's connection, or nil
	typ  uint8
	id   string
}

// dropSessionsOf forgets every membership of a session owned by node
// and returns them.
func (x *userIndex) dropSessionsOf(node string) []lostMembership {
	var lost []lostMembership
	for i := range x.shards {
		sh := &x.shards[i]
		sh.mu.Lock()
		for uid, e := range sh.users {
			kept := e.sessions[:0]
			for _, us := range e.sessions {
				if idOwnedBy(us.ID, node) {
					l := lostMembership{typ: us.Type, id: us.ID}
					if e.online != nil {
						l.conn = e.online.Conn
					}
					lost = append(lost, l)
					continue
				}
				kept = append(kept, us)
			}
			e.sessions = kept
			if e.idle() {
				delete(sh.users, uid)
			}
		}
		sh.mu.Unlock()
	}
	return lost
}

// moveAway clears uid's online connection, whatever it is, and the
// memberships of sessions that are not owned by node (this node): the
// user signed in on another node, which takes those over. It returns the
// connection and every membership. The memberships of sessions owned
// here stay: this node, as their owner, keeps the user's slot.
func (x *userIndex) moveAway(uid, node string) (*User, []UserSession) {
	sh := x.shard(uid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.users[uid]
	if e == nil {
		return nil, nil
	}
	prev, all := e.online, append([]UserSession(nil), e.sessions...)
	e.online = nil
	kept := e.sessions[:0]
	for _, us := range e.sessions {
		if idOwnedBy(us.ID, node) {
			kept = append(kept, us)
		}
	}
	e.sessions = kept
	if e.idle() {
		delete(sh.users, uid)
	}
	return prev, all
}

// online returns uid's online connection.
func (x *userIndex) online(uid string) (*User, bool) {
	sh := x.shard(uid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.users[uid]; e != nil && e.online != nil {
		return e.online, true
	}
	return nil, false
}

// entryLocked returns uid's entry in sh, creating it. sh.mu must be held.
func (sh *userShard) entryLocked(uid string) *userEntry {
	e := sh.users[uid]
	if e == nil {
		e = &userEntry{}
		sh.users[uid] = e
	}
	return e
}

// admitCreate charges uid's budgets for one more session: ErrLimitExceeded
// when it holds cfg.MaxEmptyPerUser empty sessions, ErrRateLimited past
// cfg.CreateRate.
func (x *userIndex) admitCreate(uid string, now time.Time, cfg *Config) error {
	sh := x.shard(uid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.entryLocked(uid)
	defer func() {
		if e.idle() {
			delete(sh.users, uid)
		}
	}()
	if cfg.MaxEmptyPerUser > 0 && e.empty >= cfg.MaxEmptyPerUser {
		return ErrLimitExceeded
	}
	if !e.creates.Take(cfg.CreateRate, now, 1) {
		return ErrRateLimited
	}
	return nil
}

// emptyHeld adds d to the count of empty sessions uid created, and
// returns the count.
func (x *userIndex) emptyHeld(uid string, d int) int {
	if uid == "" {
		return 0
	}
	sh := x.shard(uid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.entryLocked(uid)
	e.empty = max(e.empty+d, 0)
	n := e.empty
	if e.idle() {
		delete(sh.users, uid)
	}
	return n
}

// admitInvites charges inviter uid's budget for n invites; it reports
// false (nothing charged) past cfg.InviteRate.
func (x *userIndex) admitInvites(uid string, n int, now time.Time, cfg *Config) bool {
	return x.charge(uid, func(e *userEntry) *rate.Bucket { return &e.invites }, cfg.InviteRate, now, float64(n))
}

// admitInvite charges target uid's budget for one invite received; it
// reports false past cfg.InviteReceiveRate.
func (x *userIndex) admitInvite(uid string, now time.Time, cfg *Config) bool {
	return x.charge(uid, func(e *userEntry) *rate.Bucket { return &e.invitesIn }, cfg.InviteReceiveRate, now, 1)
}

// charge draws n from the bucket of uid's entry that bucket picks, under
// limit l, and reports whether it could.
func (x *userIndex) charge(uid string, bucket func(*userEntry) *rate.Bucket, l rate.Limit, now time.Time, n float64) bool {
	sh := x.shard(uid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.entryLocked(uid)
	ok := bucket(e).Take(l, now, n)
	if e.idle() {
		delete(sh.users, uid)
	}
	return ok
}
