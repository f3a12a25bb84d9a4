package main

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/coveyhq/covey/internal/clientconn"
	"github.com/coveyhq/covey/wire"
)

// Errors of the driver's client. Compare them with errors.Is.
var (
	// errDial wraps the failure to open a connection.
	errDial = errors.New("loadtest: dial")
	// The connection core's errors, under the names the driver uses
	// (see internal/clientconn); a server's Bye is a *clientconn.ByeError.
	errClosed         = clientconn.ErrClosed
	errDisconnected   = clientconn.ErrDisconnected
	errServerTimeout  = clientconn.ErrServerTimeout
	errProtocol       = clientconn.ErrProtocol
	errSendBufferFull = clientconn.ErrSendBufferFull
	// errBadReply reports a reply payload that does not decode.
	errBadReply = errors.New("loadtest: malformed reply")
)

// Error kinds that are not derived from a status. They are the keys of
// Result.ErrorsByKind.
const (
	kindDial         = "dial"         // could not connect
	kindDisconnected = "disconnected" // the server closed the connection or the transport failed
	kindTimeout      = "timeout"      // a call, the sign-in or the heartbeat timed out
	kindProtocol     = "protocol"     // the server broke the protocol
	kindSendFull     = "send_buffer_full"
	kindDuplicate    = "duplicate"    // a message received twice
	kindOutOfOrder   = "out_of_order" // a message older than one already received, not known to be a duplicate
	kindBadMessage   = "bad_message"  // a broadcast whose payload is not the driver's
	kindHeldBack     = "held_back"    // a broadcast not sent: its sender backs off after Overloaded (Config.Backoff)
	kindMismatch     = "property_mismatch"
	kindUnverified   = "property_unverified" // no member could read the final counter
	kindOther        = "other"
)

// errorKind returns the short name under which err is counted: the
// status's name in snake case for a status (as a reply or as a Bye, the
// latter prefixed "bye_"), or one of the kind constants.
func errorKind(err error) string {
	var bye *clientconn.ByeError
	if errors.As(err, &bye) {
		return "bye_" + statusKind(bye.Status)
	}
	var st wire.Status
	if errors.As(err, &st) {
		return statusKind(st)
	}
	var ne net.Error
	switch {
	case errors.Is(err, errServerTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return kindTimeout
	case errors.Is(err, errSendBufferFull):
		return kindSendFull
	case errors.Is(err, errProtocol), errors.Is(err, errBadReply), errors.Is(err, wire.ErrTooLarge),
		errors.Is(err, wire.ErrBadFlags), errors.Is(err, wire.ErrCorrupt):
		return kindProtocol
	case errors.Is(err, errDial), errors.Is(err, syscall.ECONNREFUSED):
		return kindDial
	case errors.Is(err, errDisconnected), errors.Is(err, errClosed), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return kindDisconnected
	}
	return kindOther
}

// statusKind returns s's name in snake case, such as "session_full".
func statusKind(s wire.Status) string {
	return strings.ReplaceAll(s.String(), " ", "_")
}
