// Package cluster joins Covey nodes into one cluster
// (shared/design/cluster.md).
//
// # Keys
//
// [MeshKey] and [GossipKey] derive the mesh's HMAC key and memberlist's
// AES-256-GCM key from the one cluster secret.
package cluster
