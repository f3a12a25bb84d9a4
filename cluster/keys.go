package cluster

import (
	"crypto/hkdf"
	"crypto/sha256"

	"github.com/coveyhq/covey/wire"
)

// KeySize is the length of the keys derived from the cluster secret, in
// bytes: 32, which makes the gossip key an AES-256-GCM key.
const KeySize = 32

// Info strings of the key derivations. Values are part of the protocol: a
// node deriving with another string cannot talk to the rest of the cluster.
const (
	gossipKeyInfo = "covey gossip"
)

// MeshKey returns the key that authenticates mesh handshakes (the HMAC key K
// of design §3.2): HKDF-SHA256 of secret with no salt and info "covey mesh",
// KeySize bytes. It is safe for concurrent use.
func MeshKey(secret []byte) []byte {
	k, err := wire.MeshKey(secret) // the protocol's definition, with its vectors
	if err != nil {
		panic("cluster: " + err.Error())
	}
	return k
}

// GossipKey returns memberlist's SecretKey, which encrypts and
// authenticates gossip with AES-256-GCM: HKDF-SHA256 of secret with no salt
// and info "covey gossip", KeySize bytes. It differs from MeshKey for the
// same secret. It is safe for concurrent use.
func GossipKey(secret []byte) []byte { return deriveKey(secret, gossipKeyInfo) }

func deriveKey(secret []byte, info string) []byte {
	k, err := hkdf.Key(sha256.New, secret, nil, info, KeySize)
	if err != nil {
		// hkdf.Key fails only for a length over 255 hash sizes.
		panic("cluster: " + err.Error())
	}
	return k
}
