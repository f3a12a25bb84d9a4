// Command loadtest is Covey's load test driver: it plays simulated players
// against one or more running servers over TCP or KCP, through the real
// protocol, and reports throughput, delivery latency, exact message loss,
// errors by kind and, given the servers' PIDs, their CPU and memory.
//
//	go build -o /tmp/covey ./cmd/server && /tmp/covey & SERVER=$!
//	go run ./cmd/loadtest -scenario broadcast -sessions 100 -members 8 -rate 10 \
//		-duration 10s -server-pid $SERVER -json /tmp/broadcast.json
//
// Flags:
//
//	-addr LIST        server addresses, comma-separated (default 127.0.0.1:7700);
//	                  players are spread over them round-robin (see -spread)
//	-transport T      tcp or kcp
//	-scenario S       broadcast, max, churn, properties or idle
//	-sessions N       sessions (broadcast, max, properties)
//	-members N        members per session; group size of churn
//	-rate R           messages per second per member (broadcast)
//	-size N           payload bytes per message, at least 16 (broadcast, max)
//	-window N         undelivered messages per sender (max)
//	-clients N        players (churn, idle)
//	-duration D       measurement window, after the ramp-up
//	-drain D          longest wait for messages in flight after the window (default 2s)
//	-json FILE        write the result as JSON
//	-server-pid PIDS  read the servers' CPU time and RSS from /proc: one PID,
//	                  or one per node of a cluster, comma-separated (summed)
//	-ramp-batch N     players that connect at once during the ramp-up
//	-ramp-timeout D   bound on the ramp-up
//	-call-timeout D   bound on each request
//	-spread S         player (player i on address i mod n) or session (all
//	                  members of a session on one address, for nodes that
//	                  do not share sessions)
//	-quiet            no progress line
//	-cpuprofile FILE  the driver's own CPU profile
//
// # Scenarios
//
//   - broadcast: -sessions sessions of -members players each. Every member
//     sends -rate messages per second of -size bytes (fire-and-forget
//     Broadcast requests, seq 0); the server delivers each to every other
//     member. Latency is from the send (the moment the driver queues the
//     frame) to the receipt (the moment the receiving connection's reader
//     decodes it).
//   - max: the same, but each sender keeps at most -window of its messages
//     undelivered (a message counts as delivered once every other member has
//     it) and sends again as soon as it may: saturation throughput.
//   - churn: -clients players, in groups of -members, loop: connect, the
//     first creates a session, the others join, the creator kicks the last,
//     the rest leave, all disconnect. Reports sessions created per second,
//     join latency (the latency figures) and errors by kind.
//   - properties: -sessions x -members; every member loops reading the
//     session property "counter" and compare-and-setting it from the value
//     read to that value plus one, retrying on StatusCompareFailed. At the
//     end each session's counter must equal its number of successful
//     updates; a mismatch is reported and the driver exits with status 1.
//     Latency is the compare-and-set round trip.
//   - idle: -clients connections that only heartbeat. With -server-pid it
//     reports the server's memory per connection (its RSS after connecting
//     minus before; use a freshly started server, since one that has run
//     other load keeps its heap) and CPU per connection over the window.
//     Latency is the ping round trip.
//
// # Phases
//
// Players connect in batches of -ramp-batch (each batch dials and signs in
// concurrently, the next starts when it is done), then sessions are
// created and joined. The measurement window starts once every player has
// joined, so the ramp is excluded, and lasts -duration. Then senders stop
// and the driver waits for the messages in flight, up to -drain, before it
// counts losses (over KCP, where a datagram the network dropped is resent
// only after a timeout, a longer -drain may be needed). Server CPU and
// driver CPU are read at the start of the
// window and after the drain (so they cover the work behind every delivery
// counted); the server's RSS is sampled every second in between. With
// several -server-pid processes (the nodes of a cluster, each on its own
// -addr) the server figures are their sums: CPU seconds, RSS and its peak,
// and deliveries per server CPU-second over the cluster; the summary and
// the JSON ("servers") also give each process's own CPU and RSS. The
// processes are read one after the other, microseconds apart.
//
// # Loss accounting
//
// Each message carries its send time (8 bytes, nanoseconds since the
// driver started, monotonic), the sender's index (4 bytes) and the
// sender's sequence number (4 bytes), padded to -size with incompressible
// bytes. Every receiver tracks, per sender of its session, the next
// sequence it expects and how many it got: the transports are reliable and
// the server keeps each sender's order, so a sequence ahead of the
// expected one means the messages in between were lost, and one behind is
// a duplicate or a reordering (counted as errors "duplicate" and
// "out_of_order"). After the drain, a receiver still connected should have
// every message its session's other members sent; one that disconnected
// should have every message up to the last one it got. lost is that
// expectation minus the messages received: exact, with in-flight messages
// not counted.
//
// # Output
//
// A progress line on stderr every second (connected players, messages sent
// and delivered per second, p99 latency over the last second, lost so far
// and errors), a summary on stdout at the end, and with -json FILE the
// result as a JSON object (see [Result]).
//
// The exit status is 0 on success, 1 when the run found a correctness
// violation (lost messages, duplicates, reordering, a property counter
// that does not match its updates) or could not run at all, 2 for bad
// flags. Errors such as timeouts or refused joins are reported but do not
// change the exit status: under overload they are results, not failures.
// A broadcast the server refuses with StatusOverloaded (an overloaded KCP
// front end sheds fan-outs, PROTOCOL.md Limits) is counted as the error
// "overloaded" and expected by no receiver, so it is not lost; the
// senders keep their rate, unless -backoff D: then a sender refused sends
// nothing for D, as PROTOCOL.md asks a client to, and its messages due
// meanwhile are counted as "held_back", not sent. In max a
// refused message keeps its place in the window (the refusal does not say
// which message it was), so a sender stops after Window refusals. For a
// receiver that disconnected, a refusal counts as not expected when it
// came back before its sender had sent past the receiver's last message;
// one that came back later may have been of an earlier message and stays
// expected, so with refusals and departures lost may count a refusal,
// never hide a loss.
//
// # Client
//
// The driver speaks the protocol with its own lean client built on package
// wire (conn.go), not with clientsdk, because it shares the machine with
// the server and clientsdk costs more CPU per received message: it decodes
// the session and sender IDs into strings, copies the message, boxes an
// Event and hands it over a channel to another goroutine (4 allocations,
// about 200 bytes, per message). BenchmarkReceive (bench_test.go) measured
// on the 2-core development machine, in CPU time of the client process per
// message: with frames arriving one at a time (a broadcast run) about
// 7.8 µs for the lean client against 8.7 µs for clientsdk, over a floor of
// 7.1 µs for a bare read loop (the wake-up and the read system call
// dominate); with frames arriving in bursts (saturation) about 0.25 µs
// against 0.57 µs. Each
// connection has one reader goroutine, decoding with wire.Decoder, and one
// writer goroutine that coalesces everything queued since its last write
// and pings every heartbeat. Senders in the broadcast scenario are driven
// by a few pacer goroutines, each serving many senders in send-time order.
// In a broadcast run the driver's CPU goes mostly to the kernel: a write
// per message sent (on loopback the write also delivers into the server's
// socket) and, per message received, a wake-up and two reads (the second
// finds the socket empty and parks the reader).
package main
