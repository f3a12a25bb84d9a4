package auth

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// steadyLive is how many tokens a guard holds in the benchmarks: a node
// signing in 1,000 players a second with 5-minute tokens.
const steadyLive = 300_000

// fillGuard remembers n tokens in g with random ids, expiring over the
// 300 s after now.
func fillGuard(b *testing.B, g *ReplayGuard, n int, now int64) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		if err := g.use(r.Uint64(), now+1+int64(i*300/n), now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify is the cost of a sign-in's token check: v1 and v2 tokens
// without single use (the same token each time), and single-use v2 tokens,
// each a new one, into a guard that holds steadyLive tokens.
func BenchmarkVerify(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	for _, name := range []string{"v1", "v2"} {
		b.Run(name, func(b *testing.B) {
			s, _ := NewSigner([]byte(testSecret))
			tok, _ := s.Issue("player-1234567", now.Add(5*time.Minute))
			if name == "v2" {
				single, _ := singleUseSigner(b, 0)
				tok, _ = single.Issue("player-1234567", now.Add(5*time.Minute))
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(tok)))
			for b.Loop() {
				if _, err := s.Verify(tok, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("v2-single-use", func(b *testing.B) {
		s, g := singleUseSigner(b, 0)
		fillGuard(b, g, steadyLive, now.Unix())
		// New tokens in batches, issued outside the timer; 1,000 sign-ins
		// a second of the guard's clock, each token for 5 minutes, so that
		// the oldest expire as new ones come.
		batch := make([]string, 4096)
		at := func(i int) time.Time { return now.Add(time.Duration(i) * time.Millisecond) }
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if i%len(batch) == 0 {
				b.StopTimer()
				for j := range batch {
					batch[j], _ = s.Issue("player-"+strconv.Itoa(i+j), at(i+j).Add(5*time.Minute))
				}
				b.StartTimer()
			}
			if _, err := s.Verify(batch[i%len(batch)], at(i)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(g.Len()), "live")
	})
}

// BenchmarkReplayGuardUse is the guard's share of a single-use Verify, at
// steadyLive tokens: remember a new token while the clock moves on and
// the oldest expire (about one swept per token remembered), from one
// goroutine and from GOMAXPROCS.
func BenchmarkReplayGuardUse(b *testing.B) {
	const start = 1_800_000_000
	b.Run("serial", func(b *testing.B) {
		g := NewReplayGuard(0)
		fillGuard(b, g, steadyLive, start)
		r := rand.New(rand.NewPCG(3, 4))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			// 1,000 a second, each for 300 s.
			now := int64(start + i/1000)
			if err := g.use(r.Uint64(), now+300, now); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(g.Len()), "live")
	})
	b.Run("parallel", func(b *testing.B) {
		g := NewReplayGuard(0)
		fillGuard(b, g, steadyLive, start)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			r := rand.New(rand.NewPCG(rand.Uint64(), 5))
			now := int64(start)
			for i := 0; pb.Next(); i++ {
				if i%1000 == 0 {
					now = max(now+1, g.clock.Load())
				}
				if err := g.use(r.Uint64(), now+300, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkReplayGuardMemory measures the heap a full guard of
// DefaultReplayGuardCapacity tokens holds, per token (B/token); run it
// with -benchtime 1x.
func BenchmarkReplayGuardMemory(b *testing.B) {
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		g := NewReplayGuard(0)
		fillGuard(b, g, g.Capacity(), 1_800_000_000)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(g.Len()), "B/token")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB")
		runtime.KeepAlive(g)
	}
}
