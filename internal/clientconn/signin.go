package clientconn

import (
	"errors"
	"fmt"
	"net"

	"github.com/coveyhq/covey/wire"
)

// SignIn signs in on nc before Start: it sends a SignIn request with seq
// that offers the protocol versions this module speaks
// (wire.MinProtocolVersion to wire.ProtocolVersion) with token or userID,
// and waits for the reply. A refused sign-in is followed by the server's
// Bye, which SignIn waits for so that the error carries the server's
// reason: it returns a [*ByeError] (which unwraps to the status, e.g.
// wire.StatusAuthFailed or wire.StatusBadVersion), or the reply's
// wire.Status if the connection closes without a Bye. A reply that names
// a version outside the offered range is ErrProtocol. Frames after the
// reply stay in dec, for Start. Deadlines are the caller's; it runs on the
// caller's goroutine like [Exchange].
func SignIn(nc net.Conn, dec *wire.Decoder, buf []byte, seq uint32, token, userID string) (wire.SignInReply, error) {
	req := wire.SignInRequest{
		MinVersion: wire.MinProtocolVersion, MaxVersion: wire.ProtocolVersion,
		Token: token, UserID: userID,
	}
	frame := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdSignIn, Seq: seq}, req.Append(nil))
	var rep wire.SignInReply
	var refused wire.Status // the reply's status, once refused
	err := Exchange(nc, dec, buf, frame, func(f wire.Frame) (bool, error) {
		switch {
		case f.Flags&wire.FlagPush != 0 && f.Ver == 0 && f.Cmd == wire.CmdBye:
			var m wire.Bye
			if err := m.Consume(f.Payload); err != nil {
				return true, &Error{Kind: ErrProtocol, What: "Bye", Err: err}
			}
			return true, &ByeError{Status: m.Status, Reason: m.Reason}
		case f.Flags&wire.FlagReply == 0 || f.Seq != seq || f.Ver != 0 || f.Cmd != wire.CmdSignIn:
			return false, nil // nothing else is expected before the reply: ignored
		case f.Status != wire.StatusOK:
			refused = f.Status
			return false, nil // the Bye with the reason follows
		}
		if err := rep.Consume(f.Payload); err != nil {
			return true, &Error{Kind: ErrProtocol, What: "SignIn reply", Err: err}
		}
		if rep.Version < req.MinVersion || rep.Version > req.MaxVersion {
			return true, &Error{Kind: ErrProtocol, What: "SignIn reply", Err: fmt.Errorf("version %d, offered %d to %d", rep.Version, req.MinVersion, req.MaxVersion)}
		}
		return true, nil
	})
	var bye *ByeError
	switch {
	case err == nil:
		return rep, nil
	case errors.As(err, &bye):
		return rep, err
	case refused != wire.StatusOK:
		return rep, refused // closed before its Bye came
	}
	return rep, err
}
