package session

import (
	"errors"

	"github.com/coveyhq/covey/wire"
)

// Errors returned by the table. Each is a [wire.Status], so the same value
// reaches a client as a reply status and the client SDK returns it again:
// errors.Is(err, session.ErrSessionFull) holds on both sides of the network.
var (
	ErrServerOffline     error = wire.StatusServerOffline     // node is offline or draining: no new sessions
	ErrBadMaxMembers     error = wire.StatusBadMaxMembers     // max members must be greater than 1
	ErrInvalidSessionID  error = wire.StatusInvalidSessionID  // not a session ID this cluster issues
	ErrSessionNotFound   error = wire.StatusSessionNotFound   // the session no longer exists
	ErrBadSessionType    error = wire.StatusBadSessionType    // the session exists with another type
	ErrSessionFull       error = wire.StatusSessionFull       // the session has reached its max members
	ErrNotMember         error = wire.StatusNotMember         // the user is not a member of the session
	ErrAlreadyInSession  error = wire.StatusAlreadyInSession  // the user is already in a session of this type
	ErrJoinRejected      error = wire.StatusJoinRejected      // the session's OnJoin hook refused the user
	ErrCannotKickSelf    error = wire.StatusCannotKickSelf    // the owner cannot be kicked, nor kick itself
	ErrNotOwner          error = wire.StatusNotOwner          // the operation is for the session owner
	ErrCannotInviteSelf  error = wire.StatusCannotInviteSelf  // a user cannot invite itself
	ErrUserNotFound      error = wire.StatusUserNotFound      // the user is not online
	ErrRecipientNotFound error = wire.StatusRecipientNotFound // a message recipient is not a member
	ErrNoInvite          error = wire.StatusNoInvite          // no invite, or it has expired
	ErrBadProperty       error = wire.StatusBadProperty       // property key or value refused
	ErrPropertyExists    error = wire.StatusPropertyExists    // SetPropertyIfNotExists found the key
	ErrNotNumeric        error = wire.StatusNotNumeric        // increment of a non-integer property
	ErrOverflow          error = wire.StatusOverflow          // an increment would leave the int64 range
	ErrCompareFailed     error = wire.StatusCompareFailed     // compare-and-set found another value
	ErrTooManyProperties error = wire.StatusTooManyProperties // the session's property limit was reached
	ErrPropertiesFull    error = wire.StatusPropertiesFull    // the properties would exceed their size budget
	ErrTooLarge          error = wire.StatusTooLarge          // the push would exceed the maximum payload
	ErrBadRequest        error = wire.StatusBadRequest        // a request over a limit (e.g. too many invite targets)
	ErrClosed            error = wire.StatusShuttingDown      // the table is closed
	ErrRateLimited       error = wire.StatusRateLimited       // a per-user rate (creates, invites) was exceeded
	ErrLimitExceeded     error = wire.StatusLimitExceeded     // sessions per node, or empty sessions per user, at their cap
)

// Op names the kind of operation that failed, for the reference's
// IsJoinError-style helpers.
type Op uint8

// Operations, in the reference's error families.
const (
	OpCreate      Op = iota + 1 // NewSession: IsSessionError
	OpJoin                      // JoinSessionByID: IsJoinError
	OpAccept                    // accepting an invite: IsAcceptError
	OpLeave                     // LeaveSessionByID: IsLeaveError
	OpKick                      // KickFromSession: IsKickError
	OpInvite                    // SendInvite: IsInviteError
	OpSend                      // Broadcast, MessageTo: IsSendError
	OpMember                    // member queries: IsMemberError
	OpOwner                     // IsOwner: IsOwnerError
	OpPropertyGet               // property reads: IsPropertyGetError
	OpPropertySet               // property writes: IsPropertySetError
)

var opNames = [...]string{
	OpCreate: "create", OpJoin: "join", OpAccept: "accept invite", OpLeave: "leave",
	OpKick: "kick", OpInvite: "invite", OpSend: "send", OpMember: "member query",
	OpOwner: "owner query", OpPropertyGet: "get property", OpPropertySet: "set property",
}

// String returns the operation's name.
func (o Op) String() string {
	if int(o) < len(opNames) && opNames[o] != "" {
		return opNames[o]
	}
	return "unknown"
}

// OpError is the error every table operation returns: which operation
// failed, on which session, and why. Match the cause with errors.Is against
// the Err* values and the family with the Is*Error helpers.
type OpError struct {
	Op        Op
	SessionID string // empty when the session was not known
	Err       error
}

// Error describes the failure.
func (e *OpError) Error() string {
	if e.SessionID == "" {
		return "session: " + e.Op.String() + ": " + e.Err.Error()
	}
	return "session: " + e.Op.String() + " " + e.SessionID + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *OpError) Unwrap() error { return e.Err }

func opErr(op Op, id string, err error) error {
	if err == nil {
		return nil
	}
	return &OpError{Op: op, SessionID: id, Err: err}
}

func isOp(err error, op Op) bool {
	var oe *OpError
	return errors.As(err, &oe) && oe.Op == op
}

// IsSessionError reports whether err is or contains a session creation error.
func IsSessionError(err error) bool { return isOp(err, OpCreate) }

// IsJoinError reports whether err is or contains a join error.
func IsJoinError(err error) bool { return isOp(err, OpJoin) }

// IsAcceptError reports whether err is or contains an invite-accept error.
func IsAcceptError(err error) bool { return isOp(err, OpAccept) }

// IsLeaveError reports whether err is or contains a leave error.
func IsLeaveError(err error) bool { return isOp(err, OpLeave) }

// IsKickError reports whether err is or contains a kick error.
func IsKickError(err error) bool { return isOp(err, OpKick) }

// IsInviteError reports whether err is or contains an invite error.
func IsInviteError(err error) bool { return isOp(err, OpInvite) }

// IsSendError reports whether err is or contains a broadcast or message error.
func IsSendError(err error) bool { return isOp(err, OpSend) }

// IsMemberError reports whether err is or contains a member query error.
func IsMemberError(err error) bool { return isOp(err, OpMember) }

// IsOwnerError reports whether err is or contains an owner query error.
func IsOwnerError(err error) bool { return isOp(err, OpOwner) }

// IsPropertyGetError reports whether err is or contains a property read error.
func IsPropertyGetError(err error) bool { return isOp(err, OpPropertyGet) }

// IsPropertySetError reports whether err is or contains a property write error.
func IsPropertySetError(err error) bool { return isOp(err, OpPropertySet) }
