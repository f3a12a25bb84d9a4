package server

import (
	"fmt"
	"sync"
	"time"

	"github.com/coveyhq/covey/session"
	"github.com/coveyhq/covey/wire"
)

// HandlerFunc runs one application command (ver 1..255) from a signed-in
// player. It returns the reply payload, or an error: a wire.Status (such
// as the session package's errors) is sent as it is, anything else as
// StatusInternal. The reply is skipped for a successful request sent with
// seq 0 (fire-and-forget).
//
// It runs on the connection's network goroutine and must not block; to
// reply after waiting, call r.Defer. A panic is recovered, logged and
// answered with StatusInternal.
type HandlerFunc func(r *Request) (reply []byte, err error)

// Request is one application command. It and its Payload are valid only
// until the handler returns.
type Request struct {
	Ver     uint8
	Cmd     uint16
	Seq     uint32
	Payload []byte
	// User is the signed-in player; pass it to the session table's calls.
	User *session.User

	c        *conn
	h        *handler
	deferred bool
	done     func(reply []byte, err error) // Defer's function, once called
}

// Defer makes the handler's return value ignored and returns a function
// that sends the reply instead. Call that function once (later calls do
// nothing), from any goroutine; it copies what it needs from r, so it
// stays valid after the handler returns. Calling Defer again returns the
// same function. The reply keeps its place: replies to the connection's
// later requests wait until it is sent. Past maxLateReplies (256) waiting
// on the connection, the request is answered Unavailable at once, in its
// turn, and the function does nothing; a handler that panics after Defer
// is answered StatusInternal. So is one whose reply has not come within
// Config.DeferTimeout (30 s by default): the reply, if it comes later, is
// dropped.
func (r *Request) Defer() func(reply []byte, err error) {
	if r.done != nil {
		return r.done // called twice: one reply, one place
	}
	r.deferred = true
	c, ver, cmd, seq := r.c, r.Ver, r.Cmd, r.Seq
	ticket, ordered := c.order.take()
	if !ordered {
		// Over the late-reply bound: answered Unavailable now, in its
		// turn; the handler's reply, when it comes, is dropped.
		c.send(wire.Header{Ver: ver, Cmd: wire.Cmd(cmd), Flags: wire.FlagReply, Seq: seq, Status: wire.StatusUnavailable}, nil)
		r.done = func([]byte, error) {}
		return r.done
	}
	var once sync.Once
	var timer *time.Timer
	answer := func(reply []byte, err error) bool {
		sent := false
		once.Do(func() {
			status := wire.StatusOf(err)
			h := wire.Header{Ver: ver, Cmd: wire.Cmd(cmd), Flags: wire.FlagReply, Seq: seq, Status: status}
			c.order.fill(c.nc, ticket, seq != 0 || status != wire.StatusOK, h, reply)
			sent = true
		})
		return sent
	}
	if d := r.h.cfg.DeferTimeout; d > 0 {
		log, user := r.h.log, r.User.ID
		timer = time.AfterFunc(d, func() {
			if answer(nil, wire.StatusInternal) {
				log.Error("application handler's deferred reply did not come in time: answered Internal",
					"ver", ver, "cmd", cmd, "user", user, "timeout", d)
			}
		})
	}
	r.done = func(reply []byte, err error) {
		if answer(reply, err) && timer != nil {
			timer.Stop()
		}
	}
	return r.done
}

// Handle registers h for application command ver/cmd. ver 0 is Covey's
// own namespace. Call it before Start; it panics on ver 0, on a command
// registered twice, or after Start.
func (s *Server) Handle(ver uint8, cmd uint16, h HandlerFunc) {
	key := uint32(ver)<<16 | uint32(cmd)
	switch {
	case ver == 0:
		panic("server: ver 0 is reserved for built-in commands")
	case s.started.Load():
		panic("server: Handle after Start")
	case s.handlers[key] != nil:
		panic(fmt.Sprintf("server: ver %d cmd %d registered twice", ver, cmd))
	}
	s.handlers[key] = h
}

// application runs the handler registered for f's ver/cmd.
func (h *handler) application(c *conn, f wire.Frame) {
	fn := h.handlers[uint32(f.Ver)<<16|uint32(f.Cmd)]
	if fn == nil {
		c.reply(f, wire.StatusUnknownCommand, nil)
		return
	}
	c.req = Request{Ver: f.Ver, Cmd: uint16(f.Cmd), Seq: f.Seq, Payload: f.Payload, User: c.user, c: c, h: h}
	reply, panicked, err := h.runHandler(fn, &c.req)
	switch {
	case !c.req.deferred:
		c.reply(f, wire.StatusOf(err), reply)
	case panicked:
		c.req.done(nil, wire.StatusInternal) // its place is filled: nothing waits behind it forever
	}
	c.req = Request{}
}

func (h *handler) runHandler(fn HandlerFunc, r *Request) (reply []byte, panicked bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("application handler panicked", "ver", r.Ver, "cmd", r.Cmd, "user", r.User.ID, "panic", p)
			reply, panicked, err = nil, true, wire.StatusInternal
		}
	}()
	reply, err = fn(r)
	return reply, false, err
}
