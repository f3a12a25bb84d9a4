package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/coveyhq/covey/internal/clientconn"
	"github.com/coveyhq/covey/secure"
	"github.com/coveyhq/covey/wire"
)

// Client sizes and timeouts.
const (
	// maxOutbound is how many bytes may wait for a connection's writer;
	// past it, frames are dropped and counted (errSendBufferFull).
	maxOutbound = 4 << 20
	// closeTimeout bounds a graceful close: the last write, then the wait
	// for the server's Bye.
	closeTimeout = time.Second
	// defaultHeartbeat is the ping interval when the server announces none.
	defaultHeartbeat = 5 * time.Second
	// signInSeq is the seq of the sign-in request; calls start after it.
	signInSeq = 1
)

// dialConfig describes one connection to open.
type dialConfig struct {
	Network string // "tcp" or "kcp"
	Addr    string
	UserID  string // dev-mode sign-in
	// Token is a connect token (token mode): the connection is encrypted
	// with it, unless Plaintext, which sends it in a plaintext sign-in.
	Token     string
	Plaintext bool
	// ReadBuffer is the size of each read from the transport.
	ReadBuffer int
}

// conn is the driver's lean client: one player's connection, signed in. It
// speaks the protocol of PROTOCOL.md through package wire and the shared
// connection core (internal/clientconn) and nothing else, and does per
// message only what the load test needs (no copies, no event values, no
// channel hand-off).
//
// After [conn.start], a conn runs the core's two goroutines: a reader,
// which decodes frames with a wire.Decoder, completes calls and hands
// pushes to onPush, and a writer, which writes everything queued since its
// last write with one write and queues a ping every heartbeat. Queuing
// never blocks: past maxOutbound bytes the frame is dropped with
// errSendBufferFull. The conn stops when closed (gracefully: a Bye
// request, then the server's Bye) or when the connection fails.
type conn struct {
	nc        net.Conn
	heartbeat time.Duration

	// Callbacks, set before start and not changed after. They must not
	// block; nil means ignore. onPush, onPong and onError are called on
	// the reader goroutine, onPing on the writer's; onFail and onDown on
	// either, or on the goroutine that calls close.
	onPush  func(f wire.Frame)      // a push other than Bye; f.Payload is valid during the call
	onPing  func()                  // the writer queued a heartbeat ping
	onPong  func(rtt time.Duration) // the reply to the last ping arrived
	onError func(err error)         // a fire-and-forget request failed (err is its wire.Status)
	onFail  func(err error)         // the connection failed, once; not called after close
	onDown  func()                  // the conn closed or failed, once, before onFail

	dec  *wire.Decoder // handed to cc by start
	rbuf []byte        // handed to cc by start

	cc *clientconn.Conn // set by start
}

// dial connects and signs in, within ctx. The conn is not started: set its
// callbacks, then call start.
func dial(ctx context.Context, cfg dialConfig) (*conn, error) {
	var ticket *secure.ClientTicket
	token := cfg.Token
	if token != "" && !cfg.Plaintext {
		ct, err := secure.ParseConnectToken(token)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errDial, err)
		}
		ticket, token = &ct, "" // the ticket signs in
	}
	nc, err := clientconn.Dial(ctx, cfg.Network, cfg.Addr, ticket)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errDial, err)
	}
	c := &conn{
		nc:        nc,
		heartbeat: defaultHeartbeat,
		dec:       wire.NewDecoder(wire.Config{}),
		rbuf:      make([]byte, max(cfg.ReadBuffer, 512)),
	}
	rep, err := c.signIn(ctx, token, cfg.UserID)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if rep.HeartbeatMillis > 0 {
		c.heartbeat = time.Duration(rep.HeartbeatMillis) * time.Millisecond
	}
	return c, nil
}

// signIn sends the sign-in (a token, a dev-mode user ID, or neither on an
// encrypted connection) and waits for its reply. Frames that follow the
// reply stay in c.dec for the reader.
func (c *conn) signIn(ctx context.Context, token, userID string) (wire.SignInReply, error) {
	var rep wire.SignInReply
	if dl, ok := ctx.Deadline(); ok {
		c.nc.SetDeadline(dl)
	}
	defer c.nc.SetDeadline(time.Time{})
	rep, err := clientconn.SignIn(c.nc, c.dec, c.rbuf, signInSeq, token, userID)
	if errors.Is(err, clientconn.ErrProtocol) {
		err = fmt.Errorf("%w: %w", errBadReply, err)
	}
	return rep, err
}

// start starts the reader and writer goroutines. Call it once, after
// setting the callbacks.
func (c *conn) start() {
	cfg := clientconn.Config{
		Heartbeat: c.heartbeat,
		DeadAfter: 3 * c.heartbeat,
		// The read deadline is moved at most every half heartbeat, not at
		// every read (a timer update per message): the server is declared
		// gone after 2.5 to 3 heartbeats of silence.
		DeadlineInterval: c.heartbeat / 2,
		MaxOut:           maxOutbound,
		CloseTimeout:     closeTimeout,
		CloseWait:        2 * closeTimeout,
		LastSeq:          signInSeq,
		OnPing:           c.onPing,
		OnPong:           c.onPong,
		OnDown: func(cause error) {
			if c.onDown != nil {
				c.onDown()
			}
			if cause != clientconn.ErrClosed && c.onFail != nil {
				c.onFail(cause)
			}
		},
	}
	if onPush := c.onPush; onPush != nil {
		cfg.OnPush = func(f wire.Frame) error { onPush(f); return nil }
	}
	if onError := c.onError; onError != nil {
		cfg.OnFailure = func(f wire.Frame) error { onError(f.Status); return nil }
	}
	c.cc = clientconn.Start(c.nc, c.dec, c.rbuf, cfg)
}

// alive reports whether the conn is neither closed nor failed.
func (c *conn) alive() bool { return c.cc.Err() == nil }

// unsentMessages returns how many broadcast messages were queued but never
// written because the connection failed.
func (c *conn) unsentMessages() int { return c.cc.Unsent() }

// close closes the conn gracefully: frames already queued are written,
// then a Bye request, and the connection is closed once the server has
// answered with its own Bye (so the server has processed everything and
// signed the user out) or after closeTimeout. It waits for the goroutines
// to exit. It is idempotent and safe from any goroutine but the conn's own.
func (c *conn) close() { c.cc.Close() }

// queueBroadcast queues frame, a fire-and-forget Broadcast request (see
// appendBroadcastFrame), counted in unsentMessages if the connection
// fails before writing it. frame is copied. It does not block; it returns
// errClosed or errSendBufferFull when the message is not queued. Callers
// that need their messages written in sequence order must serialize
// their calls.
func (c *conn) queueBroadcast(frame []byte) error {
	return c.cc.Send(frame, true)
}

// call sends a ver-0 request with payload and waits for its reply, ctx's
// end, or the conn's. It returns the reply's payload (a copy), the
// wire.Status of a reply other than OK, errClosed, errSendBufferFull,
// errProtocol for a reply to another command, or ctx's error (the reply,
// if any, is then dropped).
func (c *conn) call(ctx context.Context, cmd wire.Cmd, payload []byte) ([]byte, error) {
	p, err := c.cc.Call(ctx, wire.AppendFrame(nil, wire.Header{Cmd: cmd}, payload))
	return p, err
}
