// Package cluster joins Covey nodes into one cluster
// (shared/design/cluster.md).
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
package cluster
