package server

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/coveyhq/covey/auth"
	"github.com/coveyhq/covey/internal/rate"
	"github.com/coveyhq/covey/netio"
	"github.com/coveyhq/covey/session"
	"github.com/coveyhq/covey/wire"
)

// bg is the context of table calls: they are local and never wait.
var bg = context.Background()

// conn is the server's state of one client connection. Its fields are
// used only from the connection's own netio callbacks, which never overlap.
type conn struct {
	nc      *netio.Conn
	user    *session.User // nil until signed in
	scratch []byte        // reply payload encoding
	req     Request       // reused for application handlers
	status  wire.Status   // of the last reply queued, for metrics
	order   replyOrder    // replies that come later (other nodes, Defer)
	cmds    rate.Bucket   // Limits.CommandsPerSecond
	bytes   rate.Bucket   // Limits.BytesPerSecond
	refused rate.Bucket   // Limits.FloodBurst, refilled at CommandsPerSecond
	// leaving is set by a Bye request or a refusal: the connection closes
	// once the replies before it are out, and reads nothing more.
	leaving bool

	// execReply is set on the owner's side of a command another node
	// forwarded (exec.go): the reply goes back to that node.
	execReply func(status wire.Status, payload []byte)

	exec wire.Exec // forward's, while it sends
}

// handler is the Server seen as the netio.Handler of its front ends.
type handler Server

// OnOpen implements netio.Handler.
func (h *handler) OnOpen(nc *netio.Conn) {
	if nc.Kind() == netio.KindPeer {
		if h.node != nil {
			h.node.OnOpen(nc)
		} else {
			nc.Close(wire.StatusUnknownCommand, "not a cluster node")
		}
		return
	}
	nc.SetState(&conn{nc: nc})
	h.metrics.connOpened(nc.Transport())
}

// OnClose implements netio.Handler: a signed-in player leaves its sessions
// (unless a newer sign-in of the same user replaced this connection).
func (h *handler) OnClose(nc *netio.Conn, err error) {
	if nc.Kind() == netio.KindPeer {
		if h.node != nil {
			h.node.OnClose(nc, err)
		}
		return
	}
	h.metrics.connClosed(nc.Transport(), disconnectReasonOf(err))
	c, _ := nc.State().(*conn)
	if c == nil || c.user == nil {
		return
	}
	h.table.Disconnect(c.user)
	if h.node != nil {
		h.node.SignOut(c.user)
	}
	h.log.Debug("player disconnected", "user", c.user.ID, "transport", nc.Transport().String(), "reason", err)
}

// OnFrame implements netio.Handler: it runs the command and counts it.
func (h *handler) OnFrame(nc *netio.Conn, f wire.Frame) {
	if nc.Kind() == netio.KindPeer {
		if h.node != nil {
			h.node.OnFrame(nc, f)
		}
		return
	}
	c, _ := nc.State().(*conn)
	if c == nil || c.leaving {
		return
	}
	start := time.Now()
	c.status = wire.StatusOK
	if c.user != nil && !h.admit(c, f, start) {
		h.metrics.rateLimited.Add(1)
		if !c.refused.Take(rate.Limit{PerSecond: h.cfg.Limits.CommandsPerSecond, Burst: h.cfg.Limits.FloodBurst}, start, 1) {
			c.nc.Close(wire.StatusRateLimited, floodReason)
			h.barred.bar(c.user.ID, start, h.cfg.Limits.FloodBarTime)
			h.metrics.floodCut.Add(1)
			return
		}
		c.reply(f, wire.StatusRateLimited, nil)
	} else {
		h.dispatch(c, f)
	}
	h.metrics.observe(f.Ver, f.Cmd, c.status, start)
}

// floodReason is the Bye text of a connection closed for flooding
// (Limits.FloodBurst).
const floodReason = "flooding: requests kept coming after RateLimited"

// admit charges a signed-in connection's rate limits for frame f and
// reports whether it is within them: a request over them is answered
// StatusRateLimited and not run. Bye is always admitted.
func (h *handler) admit(c *conn, f wire.Frame, now time.Time) bool {
	if f.Ver == 0 && f.Cmd == wire.CmdBye {
		return true
	}
	l := &h.cfg.Limits
	cmdLimit := rate.Limit{PerSecond: l.CommandsPerSecond, Burst: l.CommandBurst}
	byteLimit := rate.Limit{PerSecond: l.BytesPerSecond, Burst: l.ByteBurst}
	return c.cmds.Take(cmdLimit, now, 1) && c.bytes.Take(byteLimit, now, float64(wire.HeaderSize+len(f.Payload)))
}

// dispatch checks the frame's kind and the connection's sign-in, then runs
// the command.
func (h *handler) dispatch(c *conn, f wire.Frame) {
	switch {
	case f.Flags&(wire.FlagReply|wire.FlagPush) != 0:
		c.refuse(f, wire.StatusBadRequest, "clients send requests only")
		return
	case f.Ver == 0 && f.Cmd.IsMesh():
		c.refuse(f, wire.StatusUnknownCommand, "server-to-server command on a client connection")
		return
	case f.Ver == 0 && f.Cmd == wire.CmdBye:
		// The client is leaving: on KCP this is the only way the server
		// learns it at once instead of after the idle timeout. The
		// replies to its earlier requests leave first (PROTOCOL.md, Bye).
		c.leaving = true
		c.order.closeWhenSent(c.nc, wire.StatusOK, "goodbye")
		return
	case c.user == nil:
		if f.Ver == 0 && f.Cmd == wire.CmdSignIn {
			h.signIn(c, f)
		} else {
			c.refuse(f, wire.StatusUnauthenticated, "sign in first")
		}
		return
	case f.Ver == 0 && (f.Cmd == wire.CmdBroadcast || f.Cmd == wire.CmdMessageTo) && c.nc.Overloaded():
		// Shed here, before a fan-out to this node's players or a forward
		// to the session's owner: see netio.Conn.Overloaded.
		c.reply(f, wire.StatusOverloaded, nil)
	case f.Ver == 0:
		if !h.forwarded(c, f) {
			h.builtin(c, f)
		}
	default:
		h.application(c, f)
	}
}

// reply answers request f. A request with seq 0 gets no reply on success,
// except a Ping: a heartbeat is always answered, so that a client can
// count on hearing from the server once per heartbeat.
func (c *conn) reply(f wire.Frame, status wire.Status, payload []byte) {
	c.status = status
	if c.execReply != nil {
		c.execReply(status, payload)
		return
	}
	if f.Seq == 0 && status == wire.StatusOK && (f.Ver != 0 || f.Cmd != wire.CmdPing) {
		return
	}
	c.send(wire.Header{Ver: f.Ver, Cmd: f.Cmd, Flags: wire.FlagReply, Seq: f.Seq, Status: status}, payload)
}

// send sends reply h now, or in its turn behind replies still to come. A
// client that lets maxQueuedReplies wait so is closed.
func (c *conn) send(h wire.Header, payload []byte) {
	if !c.order.busy() {
		c.nc.Send(h, payload)
		return
	}
	if !c.order.queueReady(c.nc, h, payload) {
		c.leaving = true
		c.nc.Close(wire.StatusSlowConsumer, tooManyQueued)
	}
}

// later returns the function that answers f once its result is known,
// in f's turn (replyOrder), or back to the node that forwarded it; call
// it once. Over the late-reply bound (false) f is answered
// StatusUnavailable, in its turn, and the function does nothing.
func (c *conn) later(f wire.Frame) (func(status wire.Status, payload []byte), bool) {
	if c.execReply != nil {
		return c.execReply, true
	}
	ticket, ok := c.order.take()
	if !ok {
		c.reply(f, wire.StatusUnavailable, nil)
		return func(wire.Status, []byte) {}, false
	}
	nc := c.nc
	hdr := wire.Header{Ver: f.Ver, Cmd: f.Cmd, Flags: wire.FlagReply, Seq: f.Seq}
	return func(st wire.Status, payload []byte) {
		hdr.Status = st
		c.order.fill(nc, ticket, hdr.Seq != 0 || st != wire.StatusOK, hdr, payload)
	}, true
}

// replyErr answers f with the status of err (StatusOK for nil).
func (c *conn) replyErr(f wire.Frame, err error) {
	c.reply(f, wire.StatusOf(err), nil)
}

// refuse answers f with status and closes the connection: the client broke
// the protocol.
func (c *conn) refuse(f wire.Frame, status wire.Status, reason string) {
	c.status = status
	c.send(wire.Header{Ver: f.Ver, Cmd: f.Cmd, Flags: wire.FlagReply, Seq: f.Seq, Status: status}, nil)
	c.leaving = true
	c.order.closeWhenSent(c.nc, status, reason)
}

// badVersionReason is the Bye text of a sign-in with no protocol version in
// common: the range this server speaks.
var badVersionReason = "this server speaks protocol versions " +
	strconv.Itoa(int(wire.MinProtocolVersion)) + " to " + strconv.Itoa(int(wire.ProtocolVersion))

// signIn authenticates the connection from its first frame.
func (h *handler) signIn(c *conn, f wire.Frame) {
	var req wire.SignInRequest
	if err := req.Consume(f.Payload); err != nil || f.Seq == 0 {
		// seq 0 would get no reply: the client would never learn its SID.
		h.refuseSignIn(c, f, signInMalformed, "malformed sign-in")
		return
	}
	version, ok := wire.ChooseVersion(req.MinVersion, req.MaxVersion)
	if !ok {
		h.refuseSignIn(c, f, signInBadVersion, badVersionReason)
		return
	}
	var uid string
	ticket, encrypted := c.nc.Ticket()
	switch {
	case encrypted:
		// netio opened the ticket (only with the signer's key) and
		// checked its expiry; the ticket alone says who signs in.
		if req.Token != "" || req.UserID != "" {
			h.refuseSignIn(c, f, signInCredentialsOnTicket, "an encrypted connection signs in with its ticket: send no token or user ID")
			return
		}
		now := time.Now()
		if !now.Before(time.Unix(ticket.Expires, 0)) {
			// Opened in time, but expired before the sign-in came.
			h.refuseSignIn(c, f, signInExpired, "ticket expired")
			return
		}
		if err := h.signer.UseTicket(ticket, now); err != nil {
			why, reason := tokenFailure(err)
			h.refuseSignIn(c, f, why, reason)
			return
		}
		uid = ticket.UserID
	case h.signer != nil && !h.cfg.AllowPlaintext:
		// netio refuses plaintext connections first (RequireEncryption),
		// but for bare KCP segments (KCPRawSegments), which it cannot.
		h.refuseSignIn(c, f, signInNotEncrypted, "this server accepts encrypted connections only")
		return
	case req.Token != "" && req.UserID != "":
		h.refuseSignIn(c, f, signInBoth, "sign in with a token or a user ID, not both")
		return
	case h.signer != nil && req.Token != "":
		id, err := h.signer.Verify(req.Token, time.Now())
		if err != nil {
			why, reason := tokenFailure(err)
			h.refuseSignIn(c, f, why, reason)
			return
		}
		uid = id
	case h.signer == nil && req.Token == "" && auth.ValidUserID(req.UserID):
		uid = req.UserID
	default:
		why, reason := credentialsFailure(h.signer == nil, &req)
		h.refuseSignIn(c, f, why, reason)
		return
	}
	if left, barred := h.barred.barred(uid, time.Now()); barred {
		h.refuseSignIn(c, f, signInBarred, "closed for flooding: sign in again in "+left.Round(time.Second).String())
		return
	}
	c.user = &session.User{ID: uid, SID: uuid.NewString(), Conn: c.nc}
	c.nc.Authenticated() // lifts netio's pre-auth limits from the next frame on
	rep := wire.SignInReply{
		Version: version, UserID: uid, SID: c.user.SID,
		HeartbeatMillis: uint32(h.cfg.Heartbeat / time.Millisecond),
		MaxPayload:      h.cfg.MaxPayload, MaxMessage: wire.MaxMessageFor(h.cfg.MaxPayload),
	}
	c.scratch = rep.Append(c.scratch[:0])
	if h.node == nil {
		c.reply(f, wire.StatusOK, c.scratch)
	}
	if prev := h.table.Connect(c.user); prev != nil {
		if pc, ok := prev.Conn.(*netio.Conn); ok {
			pc.Close(wire.StatusReplaced, "signed in from another connection")
		}
	}
	if h.node != nil {
		// In a cluster the reply waits until the presence directory has
		// the user and a connection on another node has handed its
		// memberships over; commands sent meanwhile run after it (the
		// connection is held), so that they find those memberships.
		done, _ := c.later(f) // the first late reply: always under the bound
		reply := slices.Clone(c.scratch)
		nc := c.nc
		nc.Hold() // before SignIn: done may run at once, on any goroutine
		h.node.SignIn(c.user, func() {
			done(wire.StatusOK, reply)
			nc.Release()
		})
	}
	h.log.Debug("player signed in", "user", uid, "transport", c.nc.Transport().String())
}
