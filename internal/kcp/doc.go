// Package kcp is the KCP ARQ state machine of github.com/xtaci/kcp-go/v5
// (v5.6.24, files kcp.go and ringbuffer.go, MIT licence in LICENSE), with
// the few methods kcp-go keeps unexported that an engine driving many
// sessions from a few goroutines needs: Flush (send now, not at the next
// 10 ms update), SetStreamMode, Conv, ProbePending (a window probe
// waits for an answer), AckPending (ACKs wait for a Flush), Unsent, Resent (a
// count of retransmitted segments, for the engine's metrics), and
// SetInputFlush (Input's flush when an ACK slides the window made a
// datagram of its own, before the engine's flush of the same session). kcp-go's maintainer declined to export
// them (xtaci/kcp-go#297).
//
// Only the state machine is here; the UDP sessions, listener, goroutines
// and timers of kcp-go are replaced by netio's KCP engine. The segments on
// the wire are kcp-go's, so kcp-go clients (the SDK) talk to it unchanged
// (no FEC, no block crypt).
//
// Changes from upstream: the methods at the end of kcp.go, pool.go in
// place of kcp-go's packet pool and SNMP table, no global atomic stores on
// every flush or segment, and window probes (WASK, sent while the peer's
// receive window is zero) after 100 ms backing off to 1 s, where upstream
// waits 7 s backing off to 120 s: a lost window update (WINS) stalled a
// session for that long, and under overload on loopback (the load test's
// KCP 1000×8) UDP datagrams are lost by the million. In stream mode, Input
// refuses a data segment with a fragment count (InputFragment): upstream
// stores it, and a message of more fragments than the receive window is
// never assembled and blocks the stream for good. Receiving a segment no
// longer allocates: the receive heap is typed (container/heap boxed every
// segment pushed and popped) and the buffer pool holds array pointers (a
// slice put in a sync.Pool is boxed). RingBuffer.Clear zeroes only the
// slots in use, where upstream zeroed the whole array on every ACK that
// emptied a send buffer (0.46-0.52 µs against 16 ns for 256 slots,
// BenchmarkRingDiscardAll). A flush looks for retransmissions only among the
// segments it sends for the first time, unless one in flight may be due
// (ts_resend, the earliest time one can be, has come, or an ACK skipped
// one): upstream looks at every segment in flight on every flush, 13% of
// the server's CPU at the load test's KCP 1000x8 @5.
package kcp
