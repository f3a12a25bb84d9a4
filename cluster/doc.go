// Package cluster joins Covey nodes into one cluster, following
// shared/design/cluster.md where this doc does not say otherwise.
//
// # Model
//
// A [Node] is this process's member of the cluster. It ties three things
// together: the membership (memberlist gossip: who is alive, and where
// their mesh listens), one mesh link to each other node (a netio peer
// connection on the clients' gnet engine, speaking Covey's frames; see
// PROTOCOL.md, Mesh), and the session table, for which it implements
// session.Remote. A session lives on the node that created it (its ID
// names it); commands for it from other nodes arrive as Exec requests,
// which the server runs with the same code as for its own clients
// ([Executor]); its broadcasts and pushes leave as one Fanout per member
// node. Every message takes one hop: nothing is relayed to a third node.
//
// # Links
//
// Of two nodes, the one whose name sorts first dials (dialLoop, while
// memberlist counts the other alive, backing off to 2 s); the handshake
// proves both ends hold the cluster secret (HMAC under [MeshKey]). A
// link is pinged every second and closed by netio when silent for 3 s.
// Requests are matched by seq, time out after 2 s, and fail with
// StatusUnavailable when their link closes.
//
// # Failure
//
// A node is lost when its link closes or goes silent, when a newer link
// replaces it, or when memberlist declares it gone, whichever comes
// first; then Table.NodeLost drops every membership that crosses the pair
// at once, on both ends. Unlike the design, there is no grace period for
// a link that comes back within 3 s: keeping memberships across a lost
// link would need a resynchronisation (the design's PeerSync) to find the
// frames lost with it, and without the grace a reconnected pair shares
// nothing, so no ghost member can outlive a loss. The cost is that a
// brief link flap drops the memberships that crossed it. A session never
// moves, so a partition can never give one two owners.
//
// # Presence
//
// presence.go keeps a directory of which node each user is connected
// to, sharded over the nodes by a rendezvous hash of the user ID: a
// sign-in claims the user there, and a claim that finds the user on
// another node takes it over (that node closes its connection with
// Bye Replaced and hands over the memberships, which then point here).
// Invites find their targets through it. It is soft state: when the set
// of nodes changes, every node claims its users again.
//
// # Membership
//
// [StartMembership] runs this node's member of an embedded SWIM gossip
// group (hashicorp/memberlist, with Lifeguard): discovery, each node's
// gossip address and metadata, and failure detection. It reports joins,
// metadata updates and departures on one goroutine
// ([MembershipConfig].Events), and keeps joining the seeds and the members
// it lost, since memberlist does not re-merge a healed partition by itself.
//
// memberlist alone is a slow and one-sided failure signal: an isolated node
// may go on seeing the others alive. The mesh's link liveness is the quick
// one (design §4.1).
//
// # Keys
//
// [MeshKey] and [GossipKey] derive the mesh's HMAC key and memberlist's
// AES-256-GCM key from the one cluster secret.
//
// # Tests
//
// [Faults] cuts chosen pairs of nodes apart, both ways, for tests that run
// several nodes in one process: its memberlist transport drops their
// packets and refuses their connections, and the mesh asks it too.
//
// # Lock order
//
// memberlist calls the Membership's delegates under its own node lock;
// they take Membership.mu and nothing else. Membership.mu is never held
// while calling memberlist, the Events callback, the logger or the network.
// Faults.mu is a leaf lock, held for no I/O.
//
// In a Node: peer.lostMu, then Node.mu, then link.mu, then netio's Conn
// lock (a leaf: frames are queued under link.mu so that a request is
// written before its link can fail it). Table.NodeLost runs under
// peer.lostMu and no other lock of this package. Call completions run
// with no lock of this package held, but for those a lost or replaced
// link fails, which run under its peer.lostMu: they may take Node.mu and
// what comes after it, never peer.lostMu.
package cluster
