package clientsdk

import (
	"fmt"
	"testing"
)

// BenchmarkRequest measures round trips of application requests to the
// fake server over loopback, from many goroutines at once, so that the
// writer coalesces frames.
func BenchmarkRequest(b *testing.B) {
	for _, network := range []string{"tcp", "kcp"} {
		for _, size := range []int{64, 1024} {
			b.Run(fmt.Sprintf("%s/%dB", network, size), func(b *testing.B) {
				s := startServer(b, network)
				c := dial(b, s)
				payload := make([]byte, size)
				b.ReportAllocs()
				b.SetBytes(int64(size))
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					ctx := testCtx(b)
					for pb.Next() {
						if _, err := c.Request(ctx, 1, 1, payload); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
