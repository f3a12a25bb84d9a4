package wire

import (
	"errors"
	"strconv"
)

// Status is the result code of a reply frame, and the reason carried by a
// [Bye] push. Status implements error, so the server and the client SDK use
// the same values as error sentinels: a handler returns
// wire.StatusSessionFull, the reply carries 18, and the SDK returns
// wire.StatusSessionFull again, so errors.Is works across the network.
//
// Values are part of the protocol: only append. 0-15 are connection-level
// results, 16 to 0xEFFF are session results, and MeshStatusFirst to 0xFFFF
// are mesh-only: servers exchange them on mesh connections and never send
// them to a client (see [Status.IsMesh]).
type Status uint16

// MeshStatusFirst is the first status of the mesh-only range.
const MeshStatusFirst Status = 0xF000

// Status codes. Values are part of the protocol: only append.
const (
	StatusOK              Status = 0  // success
	StatusBadRequest      Status = 1  // malformed payload
	StatusUnknownCommand  Status = 2  // no handler for this ver/cmd
	StatusUnauthenticated Status = 3  // a command other than sign-in before signing in, or no sign-in within the deadline
	StatusAuthFailed      Status = 4  // bad or expired token
	StatusInternal        Status = 5  // unexpected server error
	StatusServerOffline   Status = 6  // the node is offline, draining or full
	StatusTooLarge        Status = 7  // frame or payload too large
	StatusSlowConsumer    Status = 8  // bye: the client did not read fast enough
	StatusReplaced        Status = 9  // bye: the user signed in elsewhere
	StatusShuttingDown    Status = 10 // bye: the server is shutting down
	StatusBadVersion      Status = 11 // sign-in: no protocol version in common with the server
	StatusNotEncrypted    Status = 12 // sign-in or handshake: this server accepts encrypted connections only

	StatusInvalidSessionID  Status = 16 // not a session ID this cluster issues
	StatusSessionNotFound   Status = 17 // the session does not exist (any more)
	StatusSessionFull       Status = 18 // the session has reached its max members
	StatusNotMember         Status = 19 // the user is not a member of the session
	StatusAlreadyInSession  Status = 20 // the user is already in a session of this type
	StatusJoinRejected      Status = 21 // the session's OnJoin hook vetoed the join
	StatusCannotKickSelf    Status = 22 // the owner cannot kick itself
	StatusNotOwner          Status = 23 // the operation is reserved to the session owner
	StatusCannotInviteSelf  Status = 24 // a user cannot invite itself
	StatusUserNotFound      Status = 25 // the invite target is not online
	StatusRecipientNotFound Status = 26 // a message recipient is not a member
	StatusNoInvite          Status = 27 // no invite, or the invite has expired
	StatusBadProperty       Status = 28 // property key invalid or value type refused
	StatusPropertyExists    Status = 29 // set-if-not-exists found the key
	StatusNotNumeric        Status = 30 // increment of a non-numeric property
	StatusBadMaxMembers     Status = 31 // max members must be greater than 1
	StatusCompareFailed     Status = 32 // compare-and-set found another value
	StatusTooManyProperties Status = 33 // the session's property limit was reached
	StatusBadSessionType    Status = 34 // the session exists with another type
	StatusOverflow          Status = 35 // an increment would leave the int64 range
	StatusPropertiesFull    Status = 36 // the session's properties would exceed their size budget
	StatusUnavailable       Status = 37 // the node that owns the session cannot be reached now; retry
	StatusRateLimited       Status = 38 // too many requests in too little time: slow down, then retry
	StatusLimitExceeded     Status = 39 // a budget is used up (sessions held on this node or by this user)
	StatusOverloaded        Status = 40 // the node is behind its traffic: the message was not sent; slow down, then retry

	// Mesh only, from MeshStatusFirst.
	StatusStale Status = 0xF000 // fenced: the request's epoch or generation is older than the receiver's
)

// errorText returns "covey: " and the description of s, or "" if s is not
// defined. Keeping the prefix in the constants makes Error and String
// allocation-free for defined values.
func (s Status) errorText() string {
	switch s {
	case StatusOK:
		return "covey: ok"
	case StatusBadRequest:
		return "covey: bad request"
	case StatusUnknownCommand:
		return "covey: unknown command"
	case StatusUnauthenticated:
		return "covey: not signed in"
	case StatusAuthFailed:
		return "covey: authentication failed"
	case StatusInternal:
		return "covey: internal error"
	case StatusServerOffline:
		return "covey: server offline"
	case StatusTooLarge:
		return "covey: too large"
	case StatusSlowConsumer:
		return "covey: slow consumer"
	case StatusReplaced:
		return "covey: signed in elsewhere"
	case StatusShuttingDown:
		return "covey: server shutting down"
	case StatusBadVersion:
		return "covey: no common protocol version"
	case StatusNotEncrypted:
		return "covey: encrypted connections only"
	case StatusInvalidSessionID:
		return "covey: invalid session id"
	case StatusSessionNotFound:
		return "covey: session not found"
	case StatusSessionFull:
		return "covey: session full"
	case StatusNotMember:
		return "covey: not a member"
	case StatusAlreadyInSession:
		return "covey: already in a session of this type"
	case StatusJoinRejected:
		return "covey: join rejected"
	case StatusCannotKickSelf:
		return "covey: cannot kick self"
	case StatusNotOwner:
		return "covey: not the owner"
	case StatusCannotInviteSelf:
		return "covey: cannot invite self"
	case StatusUserNotFound:
		return "covey: user not found"
	case StatusRecipientNotFound:
		return "covey: recipient not found"
	case StatusNoInvite:
		return "covey: no invite"
	case StatusBadProperty:
		return "covey: bad property"
	case StatusPropertyExists:
		return "covey: property exists"
	case StatusNotNumeric:
		return "covey: property not numeric"
	case StatusBadMaxMembers:
		return "covey: bad max members"
	case StatusCompareFailed:
		return "covey: compare failed"
	case StatusTooManyProperties:
		return "covey: too many properties"
	case StatusBadSessionType:
		return "covey: bad session type"
	case StatusOverflow:
		return "covey: integer overflow"
	case StatusPropertiesFull:
		return "covey: properties over their size budget"
	case StatusUnavailable:
		return "covey: unavailable, retry"
	case StatusRateLimited:
		return "covey: rate limited, slow down"
	case StatusLimitExceeded:
		return "covey: limit exceeded"
	case StatusOverloaded:
		return "covey: overloaded"
	case StatusStale:
		return "covey: stale epoch or generation"
	}
	return ""
}

// String returns a short description of s, such as "session full", or
// "status(N)" for a value this version does not define.
func (s Status) String() string {
	if t := s.errorText(); t != "" {
		return t[len(errorPrefix):]
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

const errorPrefix = "covey: "

// Error returns "covey: " followed by [Status.String], for example
// "covey: session full". StatusOK also has a text ("covey: ok") but is
// never returned as an error by Covey.
func (s Status) Error() string {
	if t := s.errorText(); t != "" {
		return t
	}
	return errorPrefix + s.String()
}

// IsMesh reports whether s is in the mesh-only range (MeshStatusFirst to
// 0xFFFF). A server that relays a mesh reply to a client acts on such a
// status instead of relaying it.
func (s Status) IsMesh() bool { return s >= MeshStatusFirst }

// StatusOf returns the status to reply with for err: StatusOK for nil; the
// Status in err's chain if there is one (errors.As); StatusTooLarge for
// ErrTooLarge and StatusBadRequest for the codec's other errors; else
// StatusInternal.
func StatusOf(err error) Status {
	if err == nil {
		return StatusOK
	}
	if s, ok := err.(Status); ok {
		return s
	}
	var s Status
	switch {
	case errors.As(err, &s):
		return s
	case errors.Is(err, ErrTooLarge):
		return StatusTooLarge
	case errors.Is(err, ErrShort), errors.Is(err, ErrTrailing), errors.Is(err, ErrBadValue),
		errors.Is(err, ErrCorrupt), errors.Is(err, ErrBadFlags), errors.Is(err, ErrBadUTF8):
		return StatusBadRequest
	}
	return StatusInternal
}
