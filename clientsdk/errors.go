package clientsdk

import (
	"errors"
	"strconv"

	"github.com/coveyhq/covey/wire"
)

// Errors of the client itself. Compare them with errors.Is: some are
// returned wrapped around the network error that caused them.
var (
	// ErrClosed is returned by every call on a closed client, and by calls
	// that were waiting for a reply when the client closed (whatever the
	// reason: see [Client.Err]).
	ErrClosed = errors.New("clientsdk: client closed")

	// ErrEventOverflow is the reason a client closes itself when the
	// application did not receive from [Client.Events] fast enough and the
	// event queue (Config.EventBuffer events) overflowed. No event is ever
	// dropped silently: the client stops instead.
	ErrEventOverflow = errors.New("clientsdk: event queue overflow: the application did not read Events fast enough")

	// ErrServerTimeout is the reason a client closes itself when the server
	// sent no byte for three heartbeat intervals (the server answers every
	// ping, so a live server is never that quiet).
	ErrServerTimeout = errors.New("clientsdk: no data from the server for three heartbeats")

	// ErrDisconnected is the reason a client closes itself when the
	// connection fails (the server closed it, or a read or write error). It
	// is returned wrapped together with the network error.
	ErrDisconnected = errors.New("clientsdk: connection lost")

	// ErrProtocol reports bytes from the server that do not follow the
	// protocol: an invalid frame (the client closes, with ErrProtocol and
	// the wire error as the reason), or a reply or push whose payload does
	// not decode (the call fails, or an AsyncError event reports the push).
	ErrProtocol = errors.New("clientsdk: protocol violation by the server")

	// ErrSendBufferFull is returned, without sending anything, by a call
	// made while more than a few megabytes of earlier frames are still
	// waiting to be written: the server or the network is not keeping up.
	// The client stays open; the call may be retried later.
	ErrSendBufferFull = errors.New("clientsdk: send buffer full")

	// ErrBadConfig is returned by Dial, wrapped with details, for an
	// invalid Config.
	ErrBadConfig = errors.New("clientsdk: invalid config")
)

// Statuses the server replies with, re-exported as errors so that callers
// need not import wire: errors.Is(err, clientsdk.ErrSessionFull) holds
// for an error returned by a call whose reply carried
// wire.StatusSessionFull. Each is the wire.Status itself, so
// errors.Is(err, wire.StatusSessionFull) holds too, and the server's
// session package returns the very same values.
var (
	// Connection-level statuses (0-15).
	ErrBadRequest      error = wire.StatusBadRequest      // malformed payload (also returned locally for out-of-range arguments)
	ErrUnknownCommand  error = wire.StatusUnknownCommand  // no handler for this ver/cmd
	ErrUnauthenticated error = wire.StatusUnauthenticated // a command before signing in
	ErrAuthFailed      error = wire.StatusAuthFailed      // bad or expired token, or refused user ID
	ErrInternal        error = wire.StatusInternal        // unexpected server error
	ErrServerOffline   error = wire.StatusServerOffline   // the node is offline or draining
	ErrTooLarge        error = wire.StatusTooLarge        // payload over the server's limit (also checked locally)
	ErrSlowConsumer    error = wire.StatusSlowConsumer    // bye: the client did not read fast enough
	ErrReplaced        error = wire.StatusReplaced        // bye: the user signed in elsewhere
	ErrShuttingDown    error = wire.StatusShuttingDown    // bye: the server is shutting down

	// Session statuses (16 and up).
	ErrInvalidSessionID  error = wire.StatusInvalidSessionID  // not a session ID this cluster issues
	ErrSessionNotFound   error = wire.StatusSessionNotFound   // the session does not exist (any more)
	ErrSessionFull       error = wire.StatusSessionFull       // the session has reached its max members
	ErrNotMember         error = wire.StatusNotMember         // the user is not a member of the session
	ErrAlreadyInSession  error = wire.StatusAlreadyInSession  // the user is already in a session of this type
	ErrJoinRejected      error = wire.StatusJoinRejected      // the session's OnJoin hook vetoed the join
	ErrCannotKickSelf    error = wire.StatusCannotKickSelf    // the owner cannot kick itself
	ErrNotOwner          error = wire.StatusNotOwner          // the operation is reserved to the session owner
	ErrCannotInviteSelf  error = wire.StatusCannotInviteSelf  // a user cannot invite itself
	ErrUserNotFound      error = wire.StatusUserNotFound      // an invite target is not online
	ErrRecipientNotFound error = wire.StatusRecipientNotFound // a message recipient is not a member
	ErrNoInvite          error = wire.StatusNoInvite          // no invite, or the invite has expired
	ErrBadProperty       error = wire.StatusBadProperty       // property key or value refused (also checked locally)
	ErrPropertyExists    error = wire.StatusPropertyExists    // SetPropertyIfNotExists found the key
	ErrNotNumeric        error = wire.StatusNotNumeric        // increment of a non-numeric property
	ErrBadMaxMembers     error = wire.StatusBadMaxMembers     // max members must be greater than 1
	ErrCompareFailed     error = wire.StatusCompareFailed     // compare-and-set found another value
	ErrTooManyProperties error = wire.StatusTooManyProperties // the session's property limit was reached
	ErrBadSessionType    error = wire.StatusBadSessionType    // the session exists with another type
)

// StatusError is the error of a call whose reply carried a status other
// than StatusOK, or that the client refused locally with the status the
// server would have replied with (StatusBadProperty for a value with no
// property encoding, StatusTooLarge for a payload over the server's limit,
// StatusBadRequest for an out-of-range argument). It unwraps to the
// Status, so errors.Is(err, wire.StatusSessionFull) works.
type StatusError struct {
	// Op names the command: a built-in command's name ("Join",
	// "SetProperty", ...) or "ver/cmd" for an application command.
	Op     string
	Status wire.Status
}

// Error returns "clientsdk: " followed by Op and the status text.
func (e *StatusError) Error() string {
	return "clientsdk: " + e.Op + ": " + e.Status.Error()
}

// Unwrap returns e.Status.
func (e *StatusError) Unwrap() error { return e.Status }

// ByeError is [Client.Err] after the server said goodbye with a Bye push:
// Status is its reason (StatusReplaced, StatusSlowConsumer,
// StatusShuttingDown, ...) and Reason the server's explanation. It
// unwraps to the Status, so errors.Is(c.Err(), wire.StatusReplaced) works.
type ByeError struct {
	Status wire.Status
	Reason string
}

// Error returns "clientsdk: server said bye: " and the status and reason.
func (e *ByeError) Error() string {
	s := "clientsdk: server said bye: " + e.Status.Error()
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	return s
}

// Unwrap returns e.Status.
func (e *ByeError) Unwrap() error { return e.Status }

// opName returns the Op of a StatusError for a command.
func opName(ver uint8, cmd wire.Cmd) string {
	if ver == 0 {
		return cmd.String()
	}
	return strconv.Itoa(int(ver)) + "/0x" + strconv.FormatUint(uint64(cmd), 16)
}

// statusError returns the error of a call of ver/cmd refused with s.
func statusError(ver uint8, cmd wire.Cmd, s wire.Status) error {
	return &StatusError{Op: opName(ver, cmd), Status: s}
}
