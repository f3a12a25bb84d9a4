// Package netio is Covey's network front end: it accepts game clients over
// TCP (a gnet v2 engine) and over KCP (its own engine on one UDP socket,
// or several on one port with Config.KCPReaders,
// speaking kcp-go v5's segments inside PROTOCOL.md's UDP packet layer,
// which validates a sender's address before anything is kept for it and
// encrypts a session's datagrams; or bare, with Config.KCPRawSegments),
// and the cluster's links to other nodes
// over TCP on the same gnet engine, splits their byte
// streams into [wire] frames, and hands every connection to the server as
// one [Conn] type, so nothing above netio knows which transport a player is
// on.
//
// # Model
//
// [Listen] starts the enabled front ends and calls a [Handler] for each
// connection: OnOpen, then OnFrame for each inbound frame, then OnClose
// exactly once (OnOpen comes on accept for TCP, with the first complete
// frame for KCP). Calls for one connection never overlap. On TCP they run on
// the connection's gnet event loop; on KCP on the reader goroutine of the
// KCP engine whose socket the session's datagrams reach (one engine per
// socket, Config.KCPReaders), except OnClose, and OnFrame after a
// Release (below), which may run on its writer goroutine (under the
// session's mutex). Handlers must not block.
//
// A Handler that cannot decide a frame's outcome at once (it waits for
// another node) may hold the connection: [Conn.Hold] in OnFrame stops the
// frames after it, and [Conn.Release], from any goroutine, hands them over
// in order on the connection's own goroutine (TCP: its event loop; KCP:
// the reader or the writer, under the session's mutex). Meanwhile TCP
// reads on into gnet's inbound buffer, up to a bound (ErrInboundHeld), and
// KCP leaves what arrives in the session's receive queue, whose window
// closes: the client stops sending. A held connection is not idle. What
// waited is lost if the client closes its TCP connection meanwhile (gnet
// discards its buffer on EOF): a client that must know its requests ran
// sends a Bye and reads the server's.
//
// # Peers
//
// The cluster's links to other nodes are Conns of [KindPeer] (clients are
// [KindClient]) on the same gnet engine, with the same buffers, flusher,
// splitter and Handler. The engine serves Config.MeshAddr next to TCPAddr
// (or alone): what it accepts there is a peer. [Server.DialPeer] dials
// another node's MeshAddr and registers the link on the engine, with its
// State set before OnOpen. Peers have their own limits (PeerWire: 1 MiB
// frames, no compression; PeerMaxOutbound: 64 MiB, then ErrSlowConsumer;
// PeerIdleTimeout: 3s of silence, then ErrPeerSilent), take no MaxConns
// place (only the open-file bound applies) and are counted by
// [Server.Peers], not Conns. Their frames mean nothing to netio. KCP is
// for clients only.
//
// # Outbound
//
// Frames sent to a connection ([Conn.Deliver], [Conn.Send], from any
// goroutine) are appended to one contiguous pending buffer under the
// connection's mutex. The goroutine that owns the connection's I/O swaps it
// with a spare buffer and writes the whole batch with one write:
//
//   - TCP: a frame queued from another goroutine sets a "flush scheduled"
//     flag and, if it was clear, calls gnet's Conn.Wake once; gnet then runs
//     OnTraffic on the connection's event loop (after that loop's pass of
//     I/O events), which writes the batch with one Conn.Write. Frames queued
//     while the connection's own OnTraffic runs (replies from OnFrame) wait
//     for the one write at the end of that OnTraffic. Per-frame AsyncWrite
//     costs ~20x more CPU (shared/reference/libraries.md).
//   - KCP: the same flag puts the session on the engine's dirty list. The
//     engine's reader flushes that list at the end of each batch of
//     datagrams it read; otherwise the first mark wakes the engine's
//     writer. Flushing a session hands its batch to its KCP state machine
//     in chunks cut at frame boundaries, as far as the window allows (what
//     does not fit stays queued in netio), and the datagrams of every
//     session flushed together leave with one sendmmsg.
//
// The queue is bounded: when the bytes pending for a connection plus those
// already handed to the transport and not yet sent (gnet's outbound buffer
// on TCP; the part of the batch KCP had no room for) would exceed
// Config.MaxOutbound, the frame is dropped and the connection is closed
// with [ErrSlowConsumer] after a best-effort Bye push. Producers never
// block. The bytes queued never exceed MaxOutbound (only a closing Bye
// may pass it); since each of netio's two buffers may keep a capacity of
// about MaxOutbound after a burst, the heap a connection's outbound path
// can hold is bounded by about 3×MaxOutbound on TCP (with gnet's buffer),
// and 2×MaxOutbound plus the KCP state machine's queue (two windows and one
// chunk) on KCP.
//
// gnet's OutboundBuffered may only be read on the event loop, so the TCP
// figure is the one seen at the connection's last loop pass (every read,
// every flush), plus the batch being written. gnet only drains its buffer
// between passes, so the figure is an upper bound: the budget never lets
// more through, and it may close a client that had just caught up.
//
// # Closing
//
// A connection closes when the peer goes away, when it is idle for
// Config.IdleTimeout (PeerIdleTimeout for a peer link; on KCP also when its
// handshake times out: see Limits), when it sends a bad or oversized frame
// (Bye StatusBadRequest or StatusTooLarge), when it is a slow consumer (Bye
// StatusSlowConsumer), on [Conn.Close], or on [Server.Shutdown] (Bye
// StatusShuttingDown). When netio closes it, the last batch (what was
// queued, then the Bye) is written only after Handler.OnClose has returned,
// so a client that received its Bye can count on the server being done with
// that connection. On KCP, which has no close handshake, the session then
// stays until its last segments are acknowledged (at most min(IdleTimeout,
// 2s); 250ms for a slow consumer or an unauthenticated client), so that
// they are retransmitted if lost.
//
// # Limits
//
// The server holds at most Config.MaxConns client connections, TCP and KCP
// together (default 100,000), each counted from when its front end
// registers it until it is removed after its last write (or its linger,
// on KCP). TCP connections are also kept 1,280 below the open-file limit
// (gnet stops its whole engine when accept fails with EMFILE), and at most
// MaxConns/10 KCP sessions may be in their handshake at once (below). The
// counts are atomic integers: a front end takes a place before it
// allocates anything for a connection, and nothing is counted per frame.
// Over a limit a TCP connection gets a Bye push (wire.StatusServerOffline,
// reason "server full") and is closed on accept; a KCP ChallengeResponse
// gets a Reject (the same status and reason: its sender has proved its
// address), and with KCPRawSegments a first segment is dropped with no
// reply (a forged source address must not get datagrams), the client's
// retransmission of it opening the session if a place has freed up
// meanwhile. Neither reaches the Handler; [Stats] counts both.
//
// On KCP the packet layer (kcppacket.go) keeps nothing for a sender and
// runs nothing it sent until it has echoed the cookie of a Challenge,
// which only a sender that receives the datagrams sent to its address
// can; before that a sender gets one Challenge or Reject (at most 231
// bytes) per 1,200-byte ConnectRequest and nothing for anything else, so
// a forged source address gets fewer bytes than the forger sent. A
// session's Data packets are sealed with its own keys (or, on a
// plaintext connection, PlainData packets are accepted only from its
// address); a packet that does not open is dropped and counted and
// changes nothing. Only a validated ChallengeResponse (packet layer) or a
// first segment (KCPRawSegments, which any forged datagram can send)
// creates a session, and a session that has not delivered one complete
// frame Config.KCPHandshakeTimeout (default 5s; PreAuthTimeout if
// shorter) after it was created is dropped (ErrIdle, no Bye, no Handler
// call); nor does Shutdown send it a Bye. What sessions in their
// handshake hold is thus bounded in number by MaxConns/10 and in time by
// the handshake timeout; one that delivers a complete frame reaches the
// Handler, whose sign-in rules then apply, and the pre-auth limits
// (below).
//
// # Pre-auth limits
//
// A client connection (TCP or KCP) is unauthenticated until the Handler
// calls [Conn.Authenticated], which the server does when a sign-in
// succeeds; a peer is authenticated from the start (the cluster bounds
// its own handshake). An unauthenticated client holds a place, a file
// descriptor on TCP, and a partial frame in its buffers without having
// proved anything, so its time is bounded: Config.PreAuthTimeout (default
// 5s) after its front end registered it (TCP: accept; KCP: the session's
// creation)
// it is closed whatever it sent since, a client trickling a byte now and
// then included (IdleTimeout would never close it). It gets a Bye push
// (StatusUnauthenticated, "sign in within 5s"; on KCP a short linger as
// for a slow consumer) and OnClose gets ErrPreAuthTimeout; a KCP session
// that has not delivered a complete frame yet is dropped without a Bye
// (see Limits). The sweeps run every quarter of PreAuthTimeout (at most
// every second), so a connection may outlive its deadline by that much.
//
// Until then the largest frame accepted from it is also small:
// Config.PreAuthMaxPayload (default 4 KiB; the largest valid SignIn is
// 519 bytes), as sent and after decompression. A header announcing more
// closes the connection at once, before its payload is read, with a Bye
// (StatusTooLarge) and ErrTooLarge, so an unauthenticated connection
// holds at most one partial frame of that size: on TCP gnet buffers it
// in a power of two, 8 KiB more than a connection without one at the
// default (TestPreAuthMemory), where a partial frame of Config.Wire's
// MaxPayload would cost twice that: 128 KiB at the default 64 KiB, 32 MiB
// at 16 MiB. The limit lifts from the frame after the one whose OnFrame
// called Authenticated, even within one read. The checks cost an atomic
// load per frame and one per connection per sweep.
//
// # Encryption
//
// With Config.TicketKey, client connections may be encrypted
// (PROTOCOL.md, Transport security). On TCP the first byte of a client
// connection decides: secure.HelloMagic (0xC7, which no frame starts
// with) starts a ClientHello, anything else a plaintext frame (refused
// with a Bye StatusNotEncrypted under Config.RequireEncryption). The
// ClientHello is read whole (at most 213 bytes), its ticket opened, and
// answered with a plaintext ServerHello (a fresh random nonce); from
// then on both directions are ChaCha20-Poly1305 records under the keys
// derived from the ticket's key and that nonce, and [Conn.Ticket] names
// the player before its first frame reaches the Handler. A hello that is
// malformed (StatusBadRequest), whose ticket does not open or has
// expired, or that reaches a server without a TicketKey
// (StatusAuthFailed) gets a plaintext Bye, and OnClose [ErrHandshake].
// Frames queued to a client before its first byte wait for it, within
// MaxOutbound.
//
// Each flush seals its batch into records of up to 64 KiB in a buffer of
// the connection's (20 bytes per record; no allocation once warm:
// BenchmarkSealBatch), so an encrypted connection's outbound path may
// hold one more buffer of about MaxOutbound. Inbound, each record is
// opened whole into a buffer of at most 64 KiB and its plaintext fed to a
// [wire.Decoder] (one partial frame plus one record). Before sign-in a
// record may be at most the pre-auth frame limit plus a frame header, a
// tag and its own header (4,130 bytes at the default); a longer one, or
// one over 64 KiB of plaintext after sign-in, closes the connection with
// a sealed Bye StatusTooLarge. A record that fails authentication is
// dropped and counted in Stats.TCPForgedRecords: it neither closes the
// connection nor moves the record counter, and it is not activity for
// IdleTimeout (a stream in which no record opens any more goes idle).
// Peer links are plaintext (authenticated by the cluster's handshake).
//
// On KCP the packet layer (kcppacket.go) validates every sender's address
// with a stateless cookie before the server keeps anything for it, and
// carries each KCP datagram in a Data packet sealed with the session's
// keys (or a PlainData packet on a plaintext connection). A cookie opens
// one session, and a live session is replaced by another handshake from
// its address only once it has been silent for 2 s.
//
// # Goroutines
//
// The [Server] owns every goroutine netio starts and waits for them in
// [Server.Shutdown]: the goroutine running the gnet engine (which owns its
// event loops and ticker), and the reader and writer of each KCP socket's
// engine (Config.KCPReaders). Nothing
// starts a goroutine per connection or per frame. DialPeer runs on its
// caller's goroutine; gnet's Register hands the dialed socket to a
// goroutine of gnet's own worker pool, which gives it to an event loop.
//
// # Locks
//
// Lock order: Server.mu (the connection registry) and Conn.mu (the outbound
// buffer) are never held together, and neither is held across I/O, a
// channel send or a Handler call. tcpFront.mu is read-locked alone, around
// gnet Execute and Register calls, so none reaches an engine that has been
// told to stop. On KCP a session's mutex comes first: it is held while its
// Handler calls run and while it is flushed, and the engine's session map,
// dirty list and active list, Conn.mu and Server.mu may be taken under it,
// never the other way round.
package netio
