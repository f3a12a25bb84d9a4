package netio

import (
	"errors"
	"time"

	"github.com/coveyhq/covey/secure"
)

// Reasons of the refusals of a client's handshake, the same on both
// transports (a Bye on TCP, a Reject on KCP). Values are what clients
// show their users.
const (
	reasonDevMode      = "no encryption in development mode"
	reasonExpired      = "ticket expired"
	reasonBadTicket    = "bad ticket"
	reasonNotEncrypted = "this server accepts encrypted connections only"
	reasonFull         = "server full"
)

// openTicket opens the ticket of a client's handshake (a ClientHello's
// or a ConnectRequest's) at now. reason is "" when it opens; otherwise it
// says why it is refused, always with wire.StatusAuthFailed: the server
// has no ticket key (development mode), the ticket has expired, or it
// does not open (sealed with another secret, or altered). Any goroutine.
func (s *Server) openTicket(b []byte, now time.Time) (t secure.Ticket, reason string) {
	if s.cfg.TicketKey == nil {
		return t, reasonDevMode
	}
	t, err := s.cfg.TicketKey.OpenTicket(b, now)
	switch {
	case errors.Is(err, secure.ErrExpired):
		return t, reasonExpired
	case err != nil:
		return t, reasonBadTicket
	}
	return t, ""
}
