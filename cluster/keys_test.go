package cluster

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// Key vectors, computed once and checked against an independent RFC 5869
// implementation (Python's hmac/hashlib). A change here breaks every
// cluster that mixes old and new nodes.
var keyVectors = []struct {
	secret       string
	mesh, gossip string
}{
	{"", "bf6f0d0da26e91b1681686974260e531c5893aefbfb98e417b4682539ed61617", "b750669f55d029cadcc536f3586285c40ddb02090b72afa9c9ca26f29ac2d773"},
	{"covey test secret", "c896a866d937e4c5e05b243ca5b340feb24098de2e8a858e788071733683f9a8", "f04bbe72f584f17b3d766ecdf620cdc32ee9458de003e172181326b0f57514fd"},
	{"0123456789abcdef0123456789abcdef", "93db40b9e3c1db0513849bac12546c3f41cb805a405d9a4ee6e7b9bc5eba655c", "78987fd5c76401dfc8ed78040e3c05b5f7b3ca54f0688f6952d8999829afe717"},
}

func TestKeysMatchVectors(t *testing.T) {
	for _, v := range keyVectors {
		if got := hex.EncodeToString(MeshKey([]byte(v.secret))); got != v.mesh {
			t.Errorf("MeshKey(%q) = %s, want %s", v.secret, got, v.mesh)
		}
		if got := hex.EncodeToString(GossipKey([]byte(v.secret))); got != v.gossip {
			t.Errorf("GossipKey(%q) = %s, want %s", v.secret, got, v.gossip)
		}
	}
}

func TestMeshAndGossipKeysDiffer(t *testing.T) {
	for _, v := range keyVectors {
		m, g := MeshKey([]byte(v.secret)), GossipKey([]byte(v.secret))
		if len(m) != KeySize || len(g) != KeySize {
			t.Fatalf("key sizes %d, %d, want %d", len(m), len(g), KeySize)
		}
		if bytes.Equal(m, g) {
			t.Errorf("secret %q: mesh and gossip keys are equal", v.secret)
		}
	}
}
