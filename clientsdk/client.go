package clientsdk

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/coveyhq/covey/internal/clientconn"
	"github.com/coveyhq/covey/wire"
)

// Internal sizes and timeouts.
const (
	// readBufferSize is the size of each Read from the connection.
	readBufferSize = 32 << 10
	// minOutbound is the least number of bytes of frames that may wait for
	// the writer before calls fail with ErrSendBufferFull.
	minOutbound = 4 << 20
	// maxRetained is the largest buffer kept for reuse after a spike.
	maxRetained = 256 << 10
	// closeFlushTimeout bounds Close's last write of frames already queued.
	closeFlushTimeout = time.Second
	// signInSeq is the seq of the sign-in request; calls start after it.
	signInSeq = 1
)

// Client is a connection to a Covey server, signed in as one user. Create
// one with [Dial]. All its methods are safe for concurrent use by any
// number of goroutines, including the one that receives from Events.
//
// A client runs two goroutines: a reader, which matches replies to calls
// and queues events, and a writer, which writes queued frames in batches
// (one write for all the frames queued since the last one) and pings the
// server every heartbeat. Calls never wait for the network to accept their
// bytes: they queue their frame and wait only for the reply. Close stops
// both goroutines and waits for them; the client also stops by itself when
// the connection fails (see Err).
type Client struct {
	cc           *clientconn.Conn // the connection core: goroutines, calls, Bye
	userID       string
	sid          string
	maxSend      int         // the largest payload the server accepts
	maxMessage   int         // the largest Msg of a Broadcast, MessageTo or Invite
	version      uint16      // the protocol version the server chose
	wcfg         wire.Config // compression of outgoing payloads
	compressFrom int         // payload size from which wcfg may compress; 0 never

	events chan Event // written only by the reader, closed by it on exit

	errMu sync.Mutex // guards err
	err   error      // cc's cause mapped to this package's errors, once closed
}

// Dial connects to the server described by cfg and signs in, offering the
// protocol versions this SDK speaks (wire.MinProtocolVersion to
// wire.ProtocolVersion). It returns a ready client, or an error: a
// [*ByeError] with the server's status and reason if it refused the
// sign-in (errors.Is(err, ErrAuthFailed), or wire.StatusBadVersion when
// it speaks no version this SDK does), a [*StatusError] if it refused and
// closed without a Bye, ctx's error (or context.DeadlineExceeded after
// cfg.DialTimeout), or a network error. Dial blocks until then.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	ticket := cfg.ticket()
	conn, err := clientconn.Dial(hctx, cfg.Network, cfg.Addr, ticket)
	if err != nil {
		var bye *clientconn.ByeError
		if errors.As(err, &bye) {
			return nil, mapErr(bye) // the handshake refused: the server's status and reason
		}
		return nil, fmt.Errorf("clientsdk: dial %s %s: %w", cfg.Network, cfg.Addr, mapErr(err))
	}
	if ticket != nil {
		cfg.Token = "" // the ticket signs in (PROTOCOL.md, Signing in on an encrypted connection)
	}
	dec := wire.NewDecoder(cfg.Wire)
	buf := make([]byte, readBufferSize)
	rep, err := signIn(hctx, conn, cfg, dec, buf)
	if err != nil {
		conn.Close()
		return nil, err
	}

	c := &Client{
		userID:  rep.UserID,
		sid:     rep.SID,
		maxSend: wire.DefaultMaxPayload,
		version: rep.Version,
		wcfg:    cfg.Wire,
		events:  make(chan Event, cfg.EventBuffer),
	}
	heartbeat := DefaultHeartbeat
	if rep.HeartbeatMillis > 0 {
		heartbeat = time.Duration(rep.HeartbeatMillis) * time.Millisecond
	}
	if rep.MaxPayload > 0 {
		c.maxSend = int(min(rep.MaxPayload, wire.MaxMaxPayload))
	}
	c.maxMessage = int(min(rep.MaxMessage, uint32(c.maxSend)))
	if t := cfg.Wire.CompressThreshold; t > 0 {
		c.compressFrom = max(t, wire.DefaultCompressThreshold)
	}
	c.cc = clientconn.New(conn, dec, buf, clientconn.Config{
		Heartbeat:    heartbeat,
		DeadAfter:    deadHeartbeats * heartbeat,
		MaxOut:       max(minOutbound, 4*(wire.HeaderSize+c.maxSend)),
		CloseTimeout: closeFlushTimeout,
		LastSeq:      signInSeq,
		OnPush:       c.handlePush,
		OnFailure:    c.handleFailure,
		OnStop:       func() { close(c.events) },
	})
	go c.writeLoop()
	go c.readLoop()
	return c, nil
}

// readLoop is the reader goroutine: it reads the connection, matches
// replies to calls and queues events. On exit it closes Events, then Done.
func (c *Client) readLoop() { c.cc.ReadLoop() }

// writeLoop is the writer goroutine: it writes queued frames in batches
// and pings every heartbeat.
func (c *Client) writeLoop() { c.cc.WriteLoop() }

// signIn sends the sign-in request on conn and waits for its reply, within
// ctx. Frames that follow the reply stay in dec for the reader.
func signIn(ctx context.Context, conn net.Conn, cfg Config, dec *wire.Decoder, buf []byte) (wire.SignInReply, error) {
	var rep wire.SignInReply
	// Deadlines bound the exchange; cancelling ctx forces one in the past.
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (wire.SignInReply, error) {
		stop()
		var ne net.Error
		if ctx.Err() == nil && errors.As(err, &ne) && ne.Timeout() {
			// The connection's deadline is ctx's: ctx is ending too.
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return rep, fmt.Errorf("clientsdk: sign in to %s: %w", cfg.Addr, err)
	}

	rep, err := clientconn.SignIn(conn, dec, buf, signInSeq, cfg.Token, cfg.UserID)
	var bye *clientconn.ByeError
	var refused wire.Status
	switch {
	case errors.As(err, &bye):
		stop()
		return rep, mapErr(bye) // refused: the server's status and reason as they are
	case errors.As(err, &refused):
		stop()
		return rep, statusError(0, wire.CmdSignIn, refused)
	case err != nil:
		return fail(mapErr(err))
	case !stop():
		return fail(ctx.Err()) // cancelled just now: the deadline may be in the past
	}
	conn.SetDeadline(time.Time{})
	return rep, nil
}

// UserID returns the user the client signed in as. It never changes.
func (c *Client) UserID() string { return c.userID }

// SID returns the server-assigned ID of this connection. It never
// changes.
func (c *Client) SID() string { return c.sid }

// MaxMessage returns the largest message, in bytes, that Broadcast,
// MessageTo and Invite accept on this server (SignInReply.MaxMessage): a
// longer one fails with wire.StatusTooLarge. It never changes.
func (c *Client) MaxMessage() int { return c.maxMessage }

// ProtocolVersion returns the protocol version the server chose at sign-in.
// It never changes.
func (c *Client) ProtocolVersion() uint16 { return c.version }

// Events returns the channel of the client's events: pushes from the
// server and failures of fire-and-forget calls, in the order they
// arrived. It is the same channel on every call, and it is closed once the
// client has closed and every queued event has been received.
//
// The application must keep receiving: the client queues up to
// Config.EventBuffer events and closes itself with ErrEventOverflow when
// the queue is full, rather than drop events or stall replies. It is safe
// to make calls on the client from the goroutine that receives events.
func (c *Client) Events() <-chan Event { return c.events }

// Done returns a channel that is closed when the client has closed and
// its goroutines have exited; Err then says why.
func (c *Client) Done() <-chan struct{} { return c.cc.Done() }

// Err returns nil while the client is open, then why it closed: ErrClosed
// after Close; a [*ByeError] when the server said goodbye (for example
// errors.Is(err, wire.StatusReplaced) when the user signed in elsewhere);
// ErrEventOverflow, ErrServerTimeout, ErrDisconnected or ErrProtocol (the
// last two wrapping the cause).
func (c *Client) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.err == nil {
		if err := c.cc.Err(); err != nil {
			c.err = mapErr(err)
		}
	}
	return c.err
}

// Close closes the client: new calls fail with ErrClosed at once, as do
// calls still waiting for a reply. Frames already queued (such as a
// BroadcastAsync just before) are still sent, followed by a Bye request
// that signs the user out at once (a KCP server would otherwise notice
// only after three heartbeats). The connection is closed when the server
// has answered with its own Bye, so that it has received everything (KCP
// drops what it has not delivered when closed), or after a second. Close
// waits for the client's goroutines to exit; then Done is closed, and
// Events is closed once drained. It is idempotent, always returns nil,
// and may be called from any goroutine, including the one receiving
// events.
func (c *Client) Close() error {
	c.cc.Close()
	return nil
}

// mapErr maps an error of package clientconn to this package's: its
// sentinels to ours, a Bye to a [*ByeError]. Other errors (such as
// ErrEventOverflow, returned by emit to close the connection) are
// returned as they are.
func mapErr(err error) error {
	switch err {
	case clientconn.ErrClosed:
		return ErrClosed
	case clientconn.ErrServerTimeout:
		return ErrServerTimeout
	case clientconn.ErrSendBufferFull:
		return ErrSendBufferFull
	}
	switch e := err.(type) {
	case *clientconn.ByeError:
		return &ByeError{Status: e.Status, Reason: e.Reason}
	case *clientconn.Error:
		kind := ErrDisconnected
		if e.Kind == clientconn.ErrProtocol {
			kind = ErrProtocol
		}
		if e.What != "" {
			return fmt.Errorf("%w: %s: %w", kind, e.What, e.Err)
		}
		return fmt.Errorf("%w: %w", kind, e.Err)
	}
	return err
}

// handlePush is the connection's OnPush: it turns a push into an event.
// f.Payload is valid only during the call.
func (c *Client) handlePush(f wire.Frame) error {
	if f.Ver != 0 {
		return c.emit(AppMessage{Ver: f.Ver, Cmd: uint16(f.Cmd), Payload: clone(f.Payload)})
	}
	ev, err := decodePush(f)
	switch {
	case err != nil:
		return c.emit(AsyncError{Cmd: uint16(f.Cmd), Err: fmt.Errorf("%w: %s push: %w", ErrProtocol, f.Cmd, err)})
	case ev == nil:
		return nil // a push this version does not know
	}
	return c.emit(ev)
}

// handleFailure is the connection's OnFailure: the failure of a
// fire-and-forget call becomes an AsyncError event.
func (c *Client) handleFailure(f wire.Frame) error {
	return c.emit(AsyncError{Ver: f.Ver, Cmd: uint16(f.Cmd), Err: statusError(f.Ver, f.Cmd, f.Status)})
}

// emit queues ev for the application. If the queue is full it returns
// ErrEventOverflow, which closes the client: the reader never waits for
// the application.
func (c *Client) emit(ev Event) error {
	select {
	case c.events <- ev:
		return nil
	default:
		return ErrEventOverflow
	}
}

// outFrame is an outgoing frame under construction: b holds HeaderSize
// bytes reserved for the header, then the payload. Frames are pooled; the
// methods that encode a request build one and hand it to roundTrip or
// sendAsync, which free it.
type outFrame struct {
	b []byte
	z []byte // the whole frame, compressed, when compression applies
}

var framePool = sync.Pool{New: func() any { return new(outFrame) }}

// newFrame returns an empty frame from the pool.
func newFrame() *outFrame {
	f := framePool.Get().(*outFrame)
	if cap(f.b) < wire.HeaderSize {
		f.b = make([]byte, wire.HeaderSize, 256)
	}
	f.b = f.b[:wire.HeaderSize]
	return f
}

// free returns f to the pool, unless it grew large.
func (f *outFrame) free() {
	if cap(f.b) > maxRetained {
		f.b = nil
	}
	if cap(f.z) > maxRetained {
		f.z = nil
	}
	framePool.Put(f)
}

// complete completes f as a ver/cmd request (seq 0, set when queued) and
// returns the whole frame, which f owns, or a *StatusError if the payload
// is over the server's limit.
func (c *Client) complete(ver uint8, cmd wire.Cmd, f *outFrame) ([]byte, error) {
	payload := len(f.b) - wire.HeaderSize
	if payload > c.maxSend {
		return nil, statusError(ver, cmd, wire.StatusTooLarge)
	}
	h := wire.Header{Ver: ver, Cmd: cmd}
	if c.compressFrom > 0 && payload >= c.compressFrom {
		f.z = c.wcfg.AppendFrame(f.z[:0], h, f.b[wire.HeaderSize:])
		return f.z, nil
	}
	h.Length = uint32(payload)
	wire.AppendHeader(f.b[:0], h) // fills the reserved bytes
	return f.b, nil
}

// roundTrip sends f as a ver/cmd request, frees f, and waits for the reply
// or the end of ctx. It returns the reply's payload (owned by the caller),
// a *StatusError for a non-OK status, ErrClosed, or ctx's error (the call
// is then forgotten and its reply, if any, dropped).
func (c *Client) roundTrip(ctx context.Context, ver uint8, cmd wire.Cmd, f *outFrame) ([]byte, error) {
	defer f.free()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	frame, err := c.complete(ver, cmd, f)
	if err != nil {
		return nil, err
	}
	p, err := c.cc.Call(ctx, frame)
	switch e := err.(type) {
	case nil:
		return p, nil
	case wire.Status:
		return nil, statusError(ver, cmd, e)
	case *clientconn.MismatchError:
		return nil, fmt.Errorf("%w: reply to %s has command %s", ErrProtocol, opName(e.Ver, e.Cmd), opName(e.ReplyVer, e.ReplyCmd))
	}
	return nil, mapErr(err)
}

// sendAsync sends f as a ver/cmd request with seq 0 and frees f. It does
// not wait: the server replies only on failure (an AsyncError event).
func (c *Client) sendAsync(ver uint8, cmd wire.Cmd, f *outFrame) error {
	defer f.free()
	frame, err := c.complete(ver, cmd, f)
	if err != nil {
		return err
	}
	return mapErr(c.cc.Send(frame, false))
}
