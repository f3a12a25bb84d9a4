package netio

import "errors"

// Reasons a connection was closed, passed to [Handler.OnClose]. Compare
// them with errors.Is: some are wrapped (an error from Close also matches
// the wire.Status given to it; a peer error also matches the socket error).
var (
	// ErrIdle: no byte was received for Config.IdleTimeout.
	ErrIdle = errors.New("netio: idle timeout")

	// ErrPreAuthTimeout: a client connection was not authenticated
	// ([Conn.Authenticated]) within Config.PreAuthTimeout of its arrival.
	ErrPreAuthTimeout = errors.New("netio: not authenticated within the pre-auth timeout")

	// ErrPeerSilent: no byte was received on a peer connection for
	// Config.PeerIdleTimeout: the mesh link is presumed dead.
	ErrPeerSilent = errors.New("netio: peer link silent")

	// ErrSlowConsumer: the connection's outbound queue exceeded
	// Config.MaxOutbound, or Config.PeerMaxOutbound for a peer (or, on
	// KCP, a write did not complete within Config.IdleTimeout).
	ErrSlowConsumer = errors.New("netio: slow consumer")

	// ErrInboundHeld: a TCP client sent more than Config.MaxOutbound (or
	// two of its largest frames or records, if that is more) while its
	// frames were held ([Conn.Hold]) for an earlier request's outcome. Its
	// Bye has wire.StatusSlowConsumer.
	ErrInboundHeld = errors.New("netio: too much input while an earlier request was held")

	// ErrPeerClosed: the peer closed the connection or the socket failed.
	ErrPeerClosed = errors.New("netio: closed by peer")

	// ErrTooLarge: the peer sent a frame whose length, or decompressed
	// length, exceeds Config.Wire's MaxPayload (PeerWire's for a peer;
	// Config.PreAuthMaxPayload before a client is authenticated).
	ErrTooLarge = errors.New("netio: frame too large")

	// ErrBadFrame: the peer sent a frame with invalid flags or a corrupt
	// compressed payload.
	ErrBadFrame = errors.New("netio: bad frame")

	// ErrServerClosed: the server shut down ([Server.Shutdown]).
	ErrServerClosed = errors.New("netio: server closed")

	// ErrHandshake: a TCP client's first bytes were refused: a ClientHello
	// that is malformed or whose ticket does not open or has expired, one
	// on a server without Config.TicketKey, or a frame on a server with
	// Config.RequireEncryption. The error passed to OnClose also matches
	// the status of the Bye the client got.
	ErrHandshake = errors.New("netio: encrypted handshake refused")

	// ErrClosedByServer: [Conn.Close] was called. The error passed to
	// OnClose also matches the wire.Status given to Close.
	ErrClosedByServer = errors.New("netio: closed by server")
)

// Reasons DialPeer fails, besides the dial's own errors, ctx.Err() and
// ErrServerClosed.
var (
	errNoEngine      = errors.New("netio: no TCP engine to dial peers on: set TCPAddr or MeshAddr")
	errPeerRefused   = errors.New("netio: peer connection refused: open-file limit reached")
	errNotRegistered = errors.New("netio: peer connection not registered by gnet")
)

// ListenError is a front end that could not open its listener: Listen
// returns it, with the cause in Err (a *net.OpError from the socket
// calls, for instance one matching syscall.EADDRINUSE).
type ListenError struct {
	Transport Transport
	Addr      string // as configured
	Err       error
}

func (e *ListenError) Error() string {
	return "netio: " + e.Transport.String() + " listen " + e.Addr + ": " + e.Err.Error()
}

func (e *ListenError) Unwrap() error { return e.Err }
