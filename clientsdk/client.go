package clientsdk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/coveyhq/covey/internal/kcptune"
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
	conn         net.Conn
	userID       string
	sid          string
	heartbeat    time.Duration
	deadAfter    time.Duration // silence from the server that means it is gone
	maxSend      int           // the largest payload the server accepts
	maxOut       int           // bound of out
	wcfg         wire.Config   // compression of outgoing payloads
	compressFrom int           // payload size from which wcfg may compress; 0 never

	events      chan Event    // written only by the reader, closed by it on exit
	kick        chan struct{} // capacity 1: out became non-empty
	quit        chan struct{} // closed by shutdown
	readStopped chan struct{} // closed when the reader stops reading
	writerDone  chan struct{} // closed when the writer has exited and closed conn
	done        chan struct{} // closed when both goroutines have exited

	// Lock order: mu is the only lock; nothing blocking runs under it.
	mu      sync.Mutex
	closed  bool
	err     error            // why the client closed; set with closed
	seq     uint32           // the last seq handed out
	pending map[uint32]*call // calls waiting for their reply, by seq; nil once closed
	out     []byte           // frames waiting for the writer
}

// call is a request waiting for its reply. Calls are pooled: ch is empty
// whenever a call is in the pool.
type call struct {
	ch  chan result // capacity 1; receives exactly one result per use
	ver uint8
	cmd wire.Cmd
}

// result is the outcome of a call, sent by the reader or by shutdown.
type result struct {
	status  wire.Status
	payload []byte // a copy owned by the caller
	err     error  // set when no valid reply arrived
}

var callPool = sync.Pool{New: func() any { return &call{ch: make(chan result, 1)} }}

// Dial connects to the server described by cfg and signs in. It returns a
// ready client, or an error: a [*StatusError] if the server refused the
// sign-in (errors.Is(err, wire.StatusAuthFailed)), a [*ByeError] if it said
// goodbye instead, ctx's error (or context.DeadlineExceeded after
// cfg.DialTimeout), or a network error. Dial blocks until then.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	conn, err := dialConn(hctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("clientsdk: dial %s %s: %w", cfg.Network, cfg.Addr, err)
	}
	dec := wire.NewDecoder(cfg.Wire)
	buf := make([]byte, readBufferSize)
	rep, err := signIn(hctx, conn, cfg, dec, buf)
	if err != nil {
		conn.Close()
		return nil, err
	}

	c := &Client{
		conn:        conn,
		userID:      rep.UserID,
		sid:         rep.SID,
		heartbeat:   DefaultHeartbeat,
		maxSend:     wire.DefaultMaxPayload,
		wcfg:        cfg.Wire,
		events:      make(chan Event, cfg.EventBuffer),
		kick:        make(chan struct{}, 1),
		quit:        make(chan struct{}),
		readStopped: make(chan struct{}),
		writerDone:  make(chan struct{}),
		done:        make(chan struct{}),
		seq:         signInSeq,
		pending:     make(map[uint32]*call),
	}
	if rep.HeartbeatMillis > 0 {
		c.heartbeat = time.Duration(rep.HeartbeatMillis) * time.Millisecond
	}
	c.deadAfter = deadHeartbeats * c.heartbeat
	if rep.MaxPayload > 0 {
		c.maxSend = int(min(rep.MaxPayload, wire.MaxMaxPayload))
	}
	c.maxOut = max(minOutbound, 4*(wire.HeaderSize+c.maxSend))
	if t := cfg.Wire.CompressThreshold; t > 0 {
		c.compressFrom = max(t, wire.DefaultCompressThreshold)
	}
	go c.writeLoop()
	go c.readLoop(dec, buf)
	return c, nil
}

// dialConn opens the transport connection.
func dialConn(ctx context.Context, cfg Config) (net.Conn, error) {
	if cfg.Network == "tcp" {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", cfg.Addr)
	}
	s, err := kcptune.Dial(cfg.Addr)
	if err != nil {
		return nil, err
	}
	return s, nil
}

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

	req := wire.SignInRequest{Token: cfg.Token, UserID: cfg.UserID}
	frame := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdSignIn, Seq: signInSeq}, req.Append(nil))
	if _, err := conn.Write(frame); err != nil {
		return fail(err)
	}
	for {
		n, rerr := conn.Read(buf)
		dec.Write(buf[:n])
		for {
			f, err := dec.Next()
			if errors.Is(err, wire.ErrNeedMore) {
				break
			}
			if err != nil {
				return fail(fmt.Errorf("%w: %w", ErrProtocol, err))
			}
			switch {
			case f.Flags&wire.FlagReply != 0 && f.Seq == signInSeq && f.Ver == 0 && f.Cmd == wire.CmdSignIn:
				if f.Status != wire.StatusOK {
					stop()
					return rep, statusError(0, wire.CmdSignIn, f.Status)
				}
				if err := rep.Consume(f.Payload); err != nil {
					return fail(fmt.Errorf("%w: SignIn reply: %w", ErrProtocol, err))
				}
				if !stop() {
					return fail(ctx.Err()) // cancelled just now: the deadline may be in the past
				}
				conn.SetDeadline(time.Time{})
				return rep, nil
			case f.Flags&wire.FlagPush != 0 && f.Ver == 0 && f.Cmd == wire.CmdBye:
				var m wire.Bye
				if err := m.Consume(f.Payload); err != nil {
					return fail(fmt.Errorf("%w: Bye: %w", ErrProtocol, err))
				}
				stop()
				return rep, &ByeError{Status: m.Status, Reason: m.Reason}
			}
			// Nothing else is expected before the sign-in reply: ignore it.
		}
		if rerr != nil {
			return fail(rerr)
		}
	}
}

// UserID returns the user the client signed in as. It never changes.
func (c *Client) UserID() string { return c.userID }

// SID returns the server-assigned ID of this connection. It never
// changes.
func (c *Client) SID() string { return c.sid }

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
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns nil while the client is open, then why it closed: ErrClosed
// after Close; a [*ByeError] when the server said goodbye (for example
// errors.Is(err, wire.StatusReplaced) when the user signed in elsewhere);
// ErrEventOverflow, ErrServerTimeout, ErrDisconnected or ErrProtocol (the
// last two wrapping the cause).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
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
	c.shutdown(ErrClosed)
	t := time.NewTimer(closeFlushTimeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.conn.Close() // the server is not answering: stop waiting for it
		<-c.done
	}
	return nil
}

// shutdown closes the client for the given reason, unless it is closed
// already: it fails pending calls and tells the writer to stop. Unless the
// reason is ErrClosed (a graceful Close, which the writer completes), it
// also closes the connection, which stops a blocked read or write. It does
// not wait.
func (c *Client) shutdown(cause error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed, c.err = true, cause
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, cl := range pending {
		cl.ch <- result{err: ErrClosed}
	}
	close(c.quit)
	if cause != ErrClosed {
		c.conn.Close()
	}
}

// readLoop is the reader goroutine: it reads the connection, handles each
// frame, and owns dec and buf. On exit it waits for the writer, then
// closes events and done.
func (c *Client) readLoop(dec *wire.Decoder, buf []byte) {
	defer func() {
		close(c.readStopped)
		<-c.writerDone
		close(c.events)
		close(c.done)
	}()
	if !c.drain(dec) { // frames that arrived with the sign-in reply
		return
	}
	for {
		// Every read must bring something within three heartbeats: the
		// server answers each ping. KCP would never notice a dead peer.
		c.conn.SetReadDeadline(time.Now().Add(c.deadAfter))
		n, err := c.conn.Read(buf)
		dec.Write(buf[:n])
		if !c.drain(dec) {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.shutdown(ErrServerTimeout)
			} else {
				c.shutdown(fmt.Errorf("%w: %w", ErrDisconnected, err))
			}
			return
		}
	}
}

// drain handles the complete frames in dec. It returns false when the
// reader must stop.
func (c *Client) drain(dec *wire.Decoder) bool {
	for {
		f, err := dec.Next()
		if errors.Is(err, wire.ErrNeedMore) {
			return true
		}
		if err != nil {
			c.shutdown(fmt.Errorf("%w: %w", ErrProtocol, err))
			return false
		}
		if !c.handle(f) {
			return false
		}
	}
}

// handle handles one frame from the server. f.Payload is valid only during
// the call. It returns false when the reader must stop.
func (c *Client) handle(f wire.Frame) bool {
	switch {
	case f.Flags&wire.FlagReply != 0:
		return c.handleReply(f)
	case f.Flags&wire.FlagPush == 0:
		return true // servers send no requests: ignored
	case f.Ver != 0:
		return c.emit(AppMessage{Ver: f.Ver, Cmd: uint16(f.Cmd), Payload: clone(f.Payload)})
	case f.Cmd == wire.CmdBye:
		var m wire.Bye
		if err := m.Consume(f.Payload); err != nil {
			c.shutdown(fmt.Errorf("%w: Bye: %w", ErrProtocol, err))
		} else {
			c.shutdown(&ByeError{Status: m.Status, Reason: m.Reason})
		}
		return false
	}
	ev, err := decodePush(f)
	switch {
	case err != nil:
		return c.emit(AsyncError{Cmd: uint16(f.Cmd), Err: fmt.Errorf("%w: %s push: %w", ErrProtocol, f.Cmd, err)})
	case ev == nil:
		return true // a push this version does not know
	}
	return c.emit(ev)
}

// handleReply completes the call f answers. A reply with seq 0 is the
// failure of a fire-and-forget call.
func (c *Client) handleReply(f wire.Frame) bool {
	if f.Seq == 0 {
		if f.Status == wire.StatusOK {
			return true
		}
		return c.emit(AsyncError{Ver: f.Ver, Cmd: uint16(f.Cmd), Err: statusError(f.Ver, f.Cmd, f.Status)})
	}
	c.mu.Lock()
	cl := c.pending[f.Seq]
	if cl != nil {
		delete(c.pending, f.Seq)
	}
	c.mu.Unlock()
	if cl == nil {
		return true // a ping's reply, or a call that gave up (its context ended)
	}
	r := result{status: f.Status}
	switch {
	case f.Ver != cl.ver || f.Cmd != cl.cmd:
		r.err = fmt.Errorf("%w: reply to %s has command %s", ErrProtocol, opName(cl.ver, cl.cmd), opName(f.Ver, f.Cmd))
	case f.Status == wire.StatusOK:
		r.payload = clone(f.Payload)
	}
	cl.ch <- r // never blocks: capacity 1, one result per call
	return true
}

// emit queues ev for the application. If the queue is full it closes the
// client with ErrEventOverflow and returns false: the reader never waits
// for the application.
func (c *Client) emit(ev Event) bool {
	select {
	case c.events <- ev:
		return true
	default:
		c.shutdown(ErrEventOverflow)
		return false
	}
}

// writeLoop is the writer goroutine: it writes what calls queued, one
// write per batch, and pings every heartbeat. It owns the heartbeat ticker
// and, on exit, closes the connection, which stops the reader.
func (c *Client) writeLoop() {
	defer close(c.writerDone)
	defer c.conn.Close()
	ticker := time.NewTicker(c.heartbeat)
	defer ticker.Stop()
	var spare []byte // the previous batch's buffer, reused
	for {
		select {
		case <-c.kick:
		case <-ticker.C:
			c.queuePing()
		case <-c.quit:
			c.mu.Lock()
			graceful := c.err == ErrClosed
			c.mu.Unlock()
			if graceful {
				c.finish(&spare)
			}
			return
		}
		if err := c.flush(&spare, c.deadAfter); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.shutdown(ErrServerTimeout)
			} else {
				c.shutdown(fmt.Errorf("%w: %w", ErrDisconnected, err))
			}
			return
		}
	}
}

// finish is the end of a graceful Close: it writes the frames still
// queued followed by a Bye request, and waits for the reader to stop,
// which it does on the server's Bye push in answer or when the server
// closes the connection. The server has then received everything. (Close
// closes the connection if that takes too long.)
func (c *Client) finish(spare *[]byte) {
	c.mu.Lock()
	c.out = wire.AppendFrame(c.out, wire.Header{Cmd: wire.CmdBye}, byeRequest)
	c.mu.Unlock()
	if c.flush(spare, closeFlushTimeout) == nil {
		<-c.readStopped
	}
}

// byeRequest is the payload of the Bye request of a leaving client.
var byeRequest = (&wire.Bye{}).Append(nil)

// flush writes the queued frames with one write, within timeout. Only the
// writer calls it.
func (c *Client) flush(spare *[]byte, timeout time.Duration) error {
	c.mu.Lock()
	batch := c.out
	c.out = (*spare)[:0]
	c.mu.Unlock()
	if len(batch) == 0 {
		*spare = batch
		return nil
	}
	c.conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := c.conn.Write(batch)
	if cap(batch) > maxRetained {
		batch = nil
	}
	*spare = batch[:0]
	return err
}

// queuePing queues a ping. Its seq is not registered: the reply is only
// there to keep the connection from looking idle, and is dropped.
func (c *Client) queuePing() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.out = wire.AppendHeader(c.out, wire.Header{Cmd: wire.CmdPing, Seq: c.nextSeq()})
	}
}

// nextSeq returns the next request seq: never 0, never one still waiting
// for its reply. c.mu must be held.
func (c *Client) nextSeq() uint32 {
	for {
		c.seq++
		if c.seq == 0 {
			continue
		}
		if _, busy := c.pending[c.seq]; !busy {
			return c.seq
		}
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

// enqueue completes f as a ver/cmd request and queues it for the writer.
// With cl it takes a seq, registered for cl; without, seq 0 (no reply
// on success). It returns the seq. It does not block.
func (c *Client) enqueue(ver uint8, cmd wire.Cmd, f *outFrame, cl *call) (uint32, error) {
	payload := len(f.b) - wire.HeaderSize
	if payload > c.maxSend {
		return 0, statusError(ver, cmd, wire.StatusTooLarge)
	}
	// Build the whole frame outside the lock, with seq 0 for now.
	h := wire.Header{Ver: ver, Cmd: cmd}
	frame := f.b
	if c.compressFrom > 0 && payload >= c.compressFrom {
		f.z = c.wcfg.AppendFrame(f.z[:0], h, f.b[wire.HeaderSize:])
		frame = f.z
	} else {
		h.Length = uint32(payload)
		wire.AppendHeader(f.b[:0], h) // fills the reserved bytes
	}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, ErrClosed
	}
	if len(c.out) > 0 && len(c.out)+len(frame) > c.maxOut {
		c.mu.Unlock()
		return 0, ErrSendBufferFull
	}
	var seq uint32
	if cl != nil {
		seq = c.nextSeq()
		c.pending[seq] = cl
	}
	binary.BigEndian.PutUint32(frame[8:12], seq)
	wake := len(c.out) == 0 // else a wake-up is pending already
	c.out = append(c.out, frame...)
	c.mu.Unlock()
	if wake {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
	return seq, nil
}

// roundTrip sends f as a ver/cmd request, frees f, and waits for the reply
// or the end of ctx. It returns the reply's payload (owned by the caller),
// a *StatusError for a non-OK status, ErrClosed, or ctx's error (the call
// is then forgotten and its reply, if any, dropped).
func (c *Client) roundTrip(ctx context.Context, ver uint8, cmd wire.Cmd, f *outFrame) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		f.free()
		return nil, err
	}
	cl := callPool.Get().(*call)
	cl.ver, cl.cmd = ver, cmd
	seq, err := c.enqueue(ver, cmd, f, cl)
	f.free()
	if err != nil {
		callPool.Put(cl)
		return nil, err
	}
	var r result
	select {
	case r = <-cl.ch:
	case <-ctx.Done():
		c.mu.Lock()
		mine := c.pending[seq] == cl
		if mine {
			delete(c.pending, seq)
		}
		c.mu.Unlock()
		if mine {
			callPool.Put(cl)
			return nil, ctx.Err()
		}
		r = <-cl.ch // the reader or shutdown took it: the result is on its way
	}
	callPool.Put(cl)
	switch {
	case r.err != nil:
		return nil, r.err
	case r.status != wire.StatusOK:
		return nil, statusError(ver, cmd, r.status)
	}
	return r.payload, nil
}

// sendAsync sends f as a ver/cmd request with seq 0 and frees f. It does
// not wait: the server replies only on failure (an AsyncError event).
func (c *Client) sendAsync(ver uint8, cmd wire.Cmd, f *outFrame) error {
	_, err := c.enqueue(ver, cmd, f, nil)
	f.free()
	return err
}
