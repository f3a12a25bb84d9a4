// Package kcpconn is Covey's KCP client connection: a [net.Conn] over a
// UDP socket of its own, driven by the goroutines that use it instead of
// goroutines of its own.
//
// kcp-go's client session runs three goroutines per connection (a reader,
// a post-processor that writes each outgoing packet with its own
// sendmmsg, and timer-scheduler work every update) and hands every packet
// between them. For a game client that is noise; for the load driver,
// which runs thousands of clients in one process, it was most of its CPU
// (bench/README.md). Here:
//
//   - Read reads a datagram from the socket on the caller's goroutine and
//     feeds it to the KCP state machine; the ACKs it calls for wait up to
//     AckDelay, for the updater or for data that Write sends (an answer
//     to a window probe goes at once);
//   - Write hands the bytes to KCP and writes the segments on the caller's
//     goroutine, waiting only if the send window is full;
//   - one goroutine per process (see updater.go) sends the waiting ACKs
//     and runs the retransmission timers of the connections that have
//     data in flight, and exits when none has either. It belongs to no Conn, which is why it is the package's
//     and not its users' to stop: it ends by itself once every Conn's data
//     is acknowledged or the Conn is closed (a closed Conn leaves its list
//     at the next pass).
//
// The socket is read only inside Read, so a Conn makes progress (takes
// ACKs, answers data) only while a Read is pending, as Covey's clients
// always have one (clientconn's reader). A Conn never gives up by itself:
// like kcp-go it keeps retransmitting to a silent peer, and its user's
// read deadline is what detects one. The socket is connected, so an ICMP
// "port unreachable" (no server at the address) fails Read with
// ECONNREFUSED, where an unconnected socket would wait for the deadline.
//
// The segments on the wire are KCP's, tuned as in package kcptune (stream
// mode, nodelay, no congestion window, window 128, MTU 1200). Dial and
// DialTicket carry them in PROTOCOL.md's UDP packet layer, as Covey's
// server expects: the handshake (handshake.go) runs inside the dial, on
// the caller's goroutine, and then each datagram is sealed in a Data
// packet (or prefixed as PlainData), and a datagram from the server that
// does not open is dropped. DialRaw sends them bare, for kcp-go peers and
// servers with raw segments.
package kcpconn
