package server

import (
	"context"
	"testing"
	"time"

	"github.com/coveyhq/covey/clientsdk"
)

// BenchmarkExecRoundTrip is the latency of a command for a session that
// another node owns (design §8.4): a GetProperty from a member connected
// to the other node of a 2-node cluster (client -> its node -> Exec to the
// owner -> reply -> client), alternating with the same command from a
// member on the owner's node. It reports both means (remote-ns,
// local-ns; ns/op is their sum) and remote/local. Both nodes run in this
// process: their two event loops compete for its Ps, which -cpu sets.
//
//	go test -run XXX -bench ExecRoundTrip ./server
func BenchmarkExecRoundTrip(b *testing.B) {
	tc := startCluster(b, 2, func(c *Config) { c.Limits = NoLimits() }) // a load test
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dial := func(srv *Server, uid string) *clientsdk.Client {
		c, err := clientsdk.Dial(ctx, clientsdk.Config{Addr: srv.addrOf("tcp"), UserID: uid})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	const typ = 1
	owner := dial(tc.nodes[0], "owner")
	id, err := owner.Create(ctx, typ, 4, 0, map[string]any{"k": int64(7)})
	if err != nil {
		b.Fatal(err)
	}
	local, remote := dial(tc.nodes[0], "local"), dial(tc.nodes[1], "remote")
	for _, c := range []*clientsdk.Client{local, remote} {
		if err := c.Join(ctx, typ, id); err != nil {
			b.Fatal(err)
		}
	}
	get := func(c *clientsdk.Client) time.Duration {
		start := time.Now()
		v, ok, err := c.GetProperty(ctx, typ, "k")
		if err != nil || !ok || v != int64(7) {
			b.Fatalf("GetProperty = %v, %v, %v; want 7, true, nil", v, ok, err)
		}
		return time.Since(start)
	}
	var onLocal, onRemote time.Duration
	b.ReportAllocs()
	for b.Loop() {
		onLocal += get(local)
		onRemote += get(remote)
	}
	n := float64(b.N)
	b.ReportMetric(float64(onLocal.Nanoseconds())/n, "local-ns")
	b.ReportMetric(float64(onRemote.Nanoseconds())/n, "remote-ns")
	b.ReportMetric(float64(onRemote)/float64(onLocal), "remote/local")
}
