package netio

import (
	"testing"
	"time"

	"github.com/coveyhq/covey/wire"
)

func TestConfigDefaultsPeer(t *testing.T) {
	for name, c := range map[string]Config{"withDefaults": Config{}.withDefaults(), "DefaultConfig": DefaultConfig()} {
		if c.PeerMaxOutbound != 64<<20 || c.PeerIdleTimeout != 3*time.Second || c.MeshAddr != "" {
			t.Errorf("%s: PeerMaxOutbound %d, PeerIdleTimeout %v, MeshAddr %q", name, c.PeerMaxOutbound, c.PeerIdleTimeout, c.MeshAddr)
		}
		if c.PeerWire != (wire.Config{MaxPayload: 1 << 20}) {
			t.Errorf("%s: PeerWire %+v, want 1 MiB payloads and no compression", name, c.PeerWire)
		}
	}
	// A PeerWire with only a threshold keeps it and gets the peer payload
	// limit, not the client one.
	c := Config{PeerWire: wire.Config{CompressThreshold: 4096}}.withDefaults()
	if c.PeerWire != (wire.Config{MaxPayload: DefaultPeerMaxPayload, CompressThreshold: 4096}) {
		t.Errorf("PeerWire %+v", c.PeerWire)
	}
}

func TestKindString(t *testing.T) {
	if KindClient != 0 || KindClient.String() != "client" || KindPeer.String() != "peer" || Kind(7).String() != "kind(7)" {
		t.Fatal("Kind values or String")
	}
	if (&Conn{}).Kind() != KindClient {
		t.Fatal("the zero Conn is not a client")
	}
}
