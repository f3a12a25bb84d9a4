package clientconn

import (
	"errors"
	"fmt"

	"github.com/coveyhq/covey/wire"
)

// Errors of a connection. They are plain values, safe to share between
// goroutines; compare them with == or errors.Is.
var (
	// ErrClosed is returned by sends and calls on a connection that is
	// closed or closes while they wait, and is the cause of a connection
	// closed with [Conn.Close].
	ErrClosed = errors.New("clientconn: connection closed")
	// ErrServerTimeout is the cause of a connection closed because the
	// server sent nothing for Config.DeadAfter, or a write took that long.
	ErrServerTimeout = errors.New("clientconn: no data from the server")
	// ErrDisconnected is the Kind of an [*Error] that is the cause of a
	// connection closed because the server closed it or the transport
	// failed.
	ErrDisconnected = errors.New("clientconn: disconnected")
	// ErrProtocol is the Kind of an [*Error] that is the cause of a
	// connection closed because the server broke the protocol; a
	// [*MismatchError] also matches it.
	ErrProtocol = errors.New("clientconn: protocol violation by the server")
	// ErrSendBufferFull is returned, without queuing anything, by a send or
	// call on a connection that already has Config.MaxOut bytes waiting.
	ErrSendBufferFull = errors.New("clientconn: send buffer full")
)

// Error is a failure with a cause: Kind is ErrDisconnected or ErrProtocol,
// What (optional) names what failed, such as "Bye", and Err is the cause.
// An Error is not modified after it is created, so it may be shared
// between goroutines.
type Error struct {
	Kind error
	What string
	Err  error
}

// Error returns Kind's message, then What's and Err's.
func (e *Error) Error() string {
	if e.What != "" {
		return e.Kind.Error() + ": " + e.What + ": " + e.Err.Error()
	}
	return e.Kind.Error() + ": " + e.Err.Error()
}

// Unwrap returns Kind and Err, so that errors.Is matches either.
func (e *Error) Unwrap() []error { return []error{e.Kind, e.Err} }

// ByeError is the cause of a connection closed because the server said
// goodbye with a Bye push. It is not modified after it is created.
type ByeError struct {
	Status wire.Status
	Reason string
}

// Error returns the Bye's status and reason.
func (e *ByeError) Error() string {
	if e.Reason == "" {
		return "clientconn: server said bye: " + e.Status.String()
	}
	return "clientconn: server said bye: " + e.Status.String() + ": " + e.Reason
}

// Unwrap returns the Bye's status.
func (e *ByeError) Unwrap() error { return e.Status }

// MismatchError is returned by [Conn.Call] when the reply to a request has
// another ver/cmd than the request. It matches ErrProtocol. It is not
// modified after it is created.
type MismatchError struct {
	Ver, ReplyVer uint8    // the request's ver, the reply's
	Cmd, ReplyCmd wire.Cmd // the request's cmd, the reply's
}

// Error describes the mismatch.
func (e *MismatchError) Error() string {
	return fmt.Sprintf("%v: reply to %d/%s has command %d/%s", ErrProtocol, e.Ver, e.Cmd, e.ReplyVer, e.ReplyCmd)
}

// Is reports whether target is ErrProtocol.
func (e *MismatchError) Is(target error) bool { return target == ErrProtocol }
