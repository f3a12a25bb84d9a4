// Package clientsdk is the Go client SDK of Covey: what a game client uses
// to sign in to a Covey server over TCP or KCP and create, join and talk in
// sessions. It speaks the protocol of PROTOCOL.md through package wire and
// depends on nothing of the server.
//
// # Connecting
//
// [Dial] connects and signs in, with a token in signed mode (Config.Token,
// obtained by the game backend from the server's HTTP API) or a user ID in
// development mode (Config.UserID), and returns a ready [Client]:
//
//	c, err := clientsdk.Dial(ctx, clientsdk.Config{Network: "kcp", Addr: "play.example:7700", Token: tok})
//	if errors.Is(err, wire.StatusAuthFailed) { ... }
//	defer c.Close()
//
// # Calls
//
// Every session operation of the server is a method taking a context
// (Create, Join, Broadcast, SetProperty, ...), and Request calls the game's
// own commands. All are safe for concurrent use and block only their
// caller: requests are tagged with a sequence number and replies matched
// by it, so any number of calls may be in flight on one connection. A call
// that fails on the server returns a [*StatusError]; since it unwraps to
// the [wire.Status], errors.Is(err, wire.StatusSessionFull) (or
// clientsdk.ErrSessionFull, the same value) tests for it, exactly as
// server code tests the session package's errors. A call whose ctx ends
// first returns ctx's error (the request may still take effect on the
// server; its late reply is dropped), and calls on a closed client, or
// waiting when it closes, return [ErrClosed]. BroadcastAsync and Send do
// not wait; their failures come back as [AsyncError] events.
//
// # Events
//
// Pushes from the server (members joining and leaving, invites,
// broadcasts, messages, property changes, the game's own pushes) arrive
// in order on [Client.Events] as typed [Event] values. The client never
// waits for the application: events are queued, up to Config.EventBuffer
// of them, and a client whose application lets the queue overflow closes
// itself with [ErrEventOverflow] rather than drop events. Calls may be
// made from the goroutine that receives events.
//
// Arguments the server would refuse are refused locally, with the same
// status and no round trip: a property value that is not a bool, integer,
// float or string (StatusBadProperty), a payload over the server's limit
// (StatusTooLarge), a TTL over 65,535 seconds (StatusBadRequest).
//
// # Lifetime
//
// A client owns two goroutines, a reader and a writer that also sends the
// heartbeat pings (on KCP, one more goroutine per process runs the
// retransmission timers while any client has data in flight); outgoing frames are written in batches, one write for
// everything queued since the previous one. The client closes when Close
// is called (it then sends a Bye request, so that the server signs the
// user out at once), when the server says goodbye ([*ByeError], for example
// StatusReplaced when the same user signed in elsewhere), when the
// connection fails, or when the server is silent for three heartbeats
// (KCP would never notice a vanished server by itself). Then every
// waiting call returns [ErrClosed], [Client.Err] says why, Events is
// closed after its last event, and [Client.Done] is closed once both
// goroutines have exited. A closed client cannot be reused: dial again.
//
// # Buffers
//
// Byte slices passed to the client are not retained after the call
// returns. Byte slices returned by it (Request's reply, events' Msg and
// Payload) are copies owned by the caller.
package clientsdk
