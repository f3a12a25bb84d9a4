// Package clientconn is the connection core shared by Covey's clients (the
// client SDK and the load driver's lean client): one signed-in connection
// to a Covey server, with a reader goroutine that matches replies to calls
// and hands pushes to a callback, and a writer goroutine that writes
// queued frames in batches and pings the server every heartbeat.
//
// The package does not dial or sign in: its user opens the connection,
// performs the sign-in exchange (see [Exchange]) and then hands the
// connection to [Start]. It speaks PROTOCOL.md through package wire and
// does per message only what every client needs: no copies of pushes, no
// allocation on the push path, no channel hand-off.
//
// Errors are this package's own sentinels ([ErrClosed], [ErrServerTimeout],
// [ErrDisconnected], [ErrProtocol], [ErrSendBufferFull]) and types
// ([*Error], [*ByeError], [*MismatchError]); a client maps them to its own
// exported errors.
package clientconn
