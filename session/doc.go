// Package session is Covey's session table: players grouped into sessions
// (parties, lobbies, squads) that they create, join, leave and are kicked
// from, with broadcasts, direct messages, invites, shared properties,
// membership and property change events, and ticks.
//
// It implements the semantics of the Diarkis Session module
// (shared/reference/diarkis-session-api.txt) as a Go library with
// synchronous, context-taking calls in place of callbacks.
//
// # Architecture
//
// A [Table] holds every session of one node. Sessions are kept in shards
// keyed by a hash of the session ID; users are kept in a separate sharded
// index that records which session of each type a user is in. No global
// lock is taken on any hot path.
//
// Session IDs are UUID v4 strings that name the node owning the session
// ("<uuid>@<node>", see [NewID]). In a cluster ([Table.SetRemote]) the
// table also holds members connected to other nodes (User.Node), reached
// through the Remote with one Fanout per node, and the session API works
// on sessions other nodes own: such a call runs on the owner and waits for
// its answer (remoteapi.go). Calls on this node's sessions never block on
// I/O.
//
// There is no goroutine per session. Empty-session TTLs and ticks run on one
// shared timer heap owned by the table. A broadcast reads an immutable
// member snapshot and never waits for a join; its frame is encoded once and
// the same bytes are handed to every member's [Conn].
//
// Properties are bounded in count and in encoded size (a budget of the
// payload limit minus wire.PushReserve), so that a reply holding all of
// them and every PropertiesChanged push fit the payload limit. After each
// successful write the other members (all of them, when the game's server
// code wrote) get one PropertiesChanged push, in the order the writes
// were applied, unless the session was created with [Spec].Quiet.
//
// # Locking
//
// Lock order: a Session's mu, then a user shard lock, then the scheduler's
// lock; a table shard lock is never held with another. A shard lock guards
// its map; a Session's mu guards members, properties, invites, hooks and
// ticks; a user shard lock guards its users; the scheduler's lock guards its
// heap. Nothing that can block runs under any of them: hooks, tick
// callbacks and Conn.Deliver are called after unlocking. One documented
// exception: the compare-and-update callback of [Session.UpdateProperty]
// runs under the session lock.
//
// A Session's notifyMu comes after its mu and guards no data, only the
// order of the session's pushes about its members and properties
// (MemberJoined, MemberLeft, Kicked, OwnerChanged, PropertiesChanged,
// then SessionDeleted last): they reach every member in the order of the
// changes they report, as the member list and the properties went. A
// writer takes it while still holding mu, releases mu, hands the push to
// each member's Conn.Deliver (and the Remote's fan-out), then releases
// notifyMu (a hand-off: the next writer applies its change meanwhile but
// delivers only after); a deletion takes it after the change, which no
// later change follows. No other lock of this package is taken under
// notifyMu, and no hook runs under it, so Deliver runs under no data lock;
// as Deliver never blocks, a writer waits for notifyMu at most one fan-out
// of copies.
package session
