package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/coveyhq/covey/internal/kcptune"
	"github.com/coveyhq/covey/wire"
)

// Client sizes and timeouts.
const (
	// maxOutbound is how many bytes may wait for a connection's writer;
	// past it, frames are dropped and counted (errSendBufferFull).
	maxOutbound = 4 << 20
	// maxRetainedBuffer is the largest write buffer kept for reuse.
	maxRetainedBuffer = 256 << 10
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
	// ReadBuffer is the size of each read from the transport.
	ReadBuffer int
}

// conn is the driver's lean client: one player's connection, signed in. It
// speaks the protocol of PROTOCOL.md through package wire and nothing
// else, and does per message only what the load test needs (no copies, no
// event values, no channel hand-off).
//
// After [conn.start], a conn runs two goroutines: a reader, which decodes
// frames with a wire.Decoder, completes calls and hands pushes to onPush,
// and a writer, which writes everything queued since its last write with
// one write and queues a ping every heartbeat. Queuing never blocks: past
// maxOutbound bytes the frame is dropped with errSendBufferFull. The conn
// stops when closed (gracefully: a Bye request, then the server's Bye) or
// when the connection fails; done is then closed once both goroutines
// have exited.
type conn struct {
	nc        net.Conn
	heartbeat time.Duration
	deadAfter time.Duration // silence from the server that means it is gone

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

	dec  *wire.Decoder // owned by the reader
	rbuf []byte        // owned by the reader

	kick        chan struct{} // capacity 1: out became non-empty
	quit        chan struct{} // closed by shutdown
	readStopped chan struct{} // closed when the reader stops reading
	writerDone  chan struct{} // closed when the writer has exited and closed nc
	done        chan struct{} // closed when both goroutines have exited

	// mu is the conn's only lock. Lock order: a sender's mu, then this.
	// Nothing blocking runs under it.
	mu      sync.Mutex
	closed  bool
	err     error                  // why the conn closed; errClosed after close
	seq     uint32                 // the last seq handed out
	pending map[uint32]chan result // calls waiting for their reply; nil once closed
	out     []byte                 // frames waiting for the writer
	outMsgs int                    // broadcast messages in out
	unsent  int                    // broadcast messages queued but never written (the conn failed)
	pingSeq uint32                 // seq of the last ping
	pingAt  time.Time              // when it was queued
}

// result is the outcome of a call.
type result struct {
	payload []byte // a copy owned by the caller
	err     error
}

// dial connects and signs in, within ctx. The conn is not started: set its
// callbacks, then call start.
func dial(ctx context.Context, cfg dialConfig) (*conn, error) {
	nc, err := dialTransport(ctx, cfg.Network, cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errDial, err)
	}
	c := &conn{
		nc:          nc,
		heartbeat:   defaultHeartbeat,
		dec:         wire.NewDecoder(wire.Config{}),
		rbuf:        make([]byte, max(cfg.ReadBuffer, 512)),
		kick:        make(chan struct{}, 1),
		quit:        make(chan struct{}),
		readStopped: make(chan struct{}),
		writerDone:  make(chan struct{}),
		done:        make(chan struct{}),
		seq:         signInSeq,
		pending:     make(map[uint32]chan result),
	}
	rep, err := c.signIn(ctx, cfg.UserID)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if rep.HeartbeatMillis > 0 {
		c.heartbeat = time.Duration(rep.HeartbeatMillis) * time.Millisecond
	}
	c.deadAfter = 3 * c.heartbeat
	return c, nil
}

// dialTransport opens the transport connection, with the KCP settings
// PROTOCOL.md recommends.
func dialTransport(ctx context.Context, network, addr string) (net.Conn, error) {
	if network == "tcp" {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	s, err := kcptune.Dial(addr)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// signIn sends the dev-mode sign-in and waits for its reply. Frames that
// follow the reply stay in c.dec for the reader.
func (c *conn) signIn(ctx context.Context, userID string) (wire.SignInReply, error) {
	var rep wire.SignInReply
	if dl, ok := ctx.Deadline(); ok {
		c.nc.SetDeadline(dl)
	}
	defer c.nc.SetDeadline(time.Time{})
	req := wire.SignInRequest{UserID: userID}
	frame := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdSignIn, Seq: signInSeq}, req.Append(nil))
	if _, err := c.nc.Write(frame); err != nil {
		return rep, err
	}
	for {
		n, rerr := c.nc.Read(c.rbuf)
		c.dec.Write(c.rbuf[:n])
		for {
			f, err := c.dec.Next()
			if errors.Is(err, wire.ErrNeedMore) {
				break
			}
			if err != nil {
				return rep, fmt.Errorf("%w: %w", errProtocol, err)
			}
			switch {
			case f.Flags&wire.FlagReply != 0 && f.Seq == signInSeq && f.Cmd == wire.CmdSignIn:
				if f.Status != wire.StatusOK {
					return rep, f.Status
				}
				if err := rep.Consume(f.Payload); err != nil {
					return rep, fmt.Errorf("%w: %w", errBadReply, err)
				}
				return rep, nil
			case f.Flags&wire.FlagPush != 0 && f.Ver == 0 && f.Cmd == wire.CmdBye:
				var m wire.Bye
				if err := m.Consume(f.Payload); err != nil {
					return rep, fmt.Errorf("%w: %w", errProtocol, err)
				}
				return rep, &byeError{status: m.Status}
			}
		}
		if rerr != nil {
			return rep, rerr
		}
	}
}

// start starts the reader and writer goroutines. Call it once, after
// setting the callbacks.
func (c *conn) start() {
	go c.writeLoop()
	go c.readLoop()
}

// alive reports whether the conn is neither closed nor failed.
func (c *conn) alive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.closed
}

// unsentMessages returns how many broadcast messages were queued but never
// written because the connection failed.
func (c *conn) unsentMessages() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unsent
}

// close closes the conn gracefully: frames already queued are written,
// then a Bye request, and the connection is closed once the server has
// answered with its own Bye (so the server has processed everything and
// signed the user out) or after closeTimeout. It waits for the goroutines
// to exit. It is idempotent and safe from any goroutine but the conn's own.
func (c *conn) close() {
	c.shutdown(errClosed)
	t := time.NewTimer(2 * closeTimeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.nc.Close()
		<-c.done
	}
}

// shutdown closes the conn for cause unless it is closed already: pending
// calls fail, the writer is told to stop, and unless cause is errClosed
// (a graceful close, which the writer completes) the connection is closed
// and onFail called. It does not wait.
func (c *conn) shutdown(cause error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed, c.err = true, cause
	pending := c.pending
	c.pending = nil
	if cause != errClosed {
		c.unsent += c.outMsgs
		c.out, c.outMsgs = nil, 0
	}
	c.mu.Unlock()
	for _, ch := range pending {
		ch <- result{err: errClosed}
	}
	close(c.quit)
	if c.onDown != nil {
		c.onDown()
	}
	if cause != errClosed {
		c.nc.Close()
		if c.onFail != nil {
			c.onFail(cause)
		}
	}
}

// readLoop is the reader goroutine. On exit it waits for the writer, then
// closes done.
func (c *conn) readLoop() {
	defer func() {
		close(c.readStopped)
		<-c.writerDone
		close(c.done)
	}()
	if !c.drain() { // frames that came with the sign-in reply
		return
	}
	// The read deadline is moved at most every half heartbeat, not at
	// every read (a timer update per message): the server is declared
	// gone after 2.5 to 3 heartbeats of silence.
	var deadlineSet time.Time
	for {
		if now := time.Now(); now.Sub(deadlineSet) >= c.heartbeat/2 {
			c.nc.SetReadDeadline(now.Add(c.deadAfter))
			deadlineSet = now
		}
		n, err := c.nc.Read(c.rbuf)
		c.dec.Write(c.rbuf[:n])
		if !c.drain() {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.shutdown(errServerTimeout)
			} else {
				c.shutdown(fmt.Errorf("%w: %w", errDisconnected, err))
			}
			return
		}
	}
}

// drain handles the complete frames in c.dec. It returns false when the
// reader must stop.
func (c *conn) drain() bool {
	for {
		f, err := c.dec.Next()
		if errors.Is(err, wire.ErrNeedMore) {
			return true
		}
		if err != nil {
			c.shutdown(fmt.Errorf("%w: %w", errProtocol, err))
			return false
		}
		if !c.handle(f) {
			return false
		}
	}
}

// handle handles one frame; f.Payload is valid only during the call. It
// returns false when the reader must stop.
func (c *conn) handle(f wire.Frame) bool {
	switch {
	case f.Flags&wire.FlagReply != 0:
		c.handleReply(f)
	case f.Flags&wire.FlagPush == 0:
		// Servers send no requests.
	case f.Ver == 0 && f.Cmd == wire.CmdBye:
		var m wire.Bye
		if err := m.Consume(f.Payload); err != nil {
			c.shutdown(fmt.Errorf("%w: Bye: %w", errProtocol, err))
		} else {
			c.shutdown(&byeError{status: m.Status})
		}
		return false
	case c.onPush != nil:
		c.onPush(f)
	}
	return true
}

// handleReply completes the call f answers. A reply with seq 0 is the
// failure of a fire-and-forget request.
func (c *conn) handleReply(f wire.Frame) {
	if f.Seq == 0 {
		if f.Status != wire.StatusOK && c.onError != nil {
			c.onError(f.Status)
		}
		return
	}
	c.mu.Lock()
	if f.Seq == c.pingSeq && f.Cmd == wire.CmdPing {
		at := c.pingAt
		c.mu.Unlock()
		if c.onPong != nil {
			c.onPong(time.Since(at))
		}
		return
	}
	ch := c.pending[f.Seq]
	delete(c.pending, f.Seq)
	c.mu.Unlock()
	switch {
	case ch == nil: // a call that gave up
	case f.Status != wire.StatusOK:
		ch <- result{err: f.Status}
	default:
		ch <- result{payload: append([]byte(nil), f.Payload...)}
	}
}

// writeLoop is the writer goroutine: it writes what was queued, one write
// per batch, and pings every heartbeat. On exit it closes the connection.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	defer c.nc.Close()
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
			graceful := c.err == errClosed
			c.mu.Unlock()
			if graceful {
				c.finish(&spare)
			}
			return
		}
		if err := c.flush(&spare, c.deadAfter); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.shutdown(errServerTimeout)
			} else {
				c.shutdown(fmt.Errorf("%w: %w", errDisconnected, err))
			}
			return
		}
	}
}

// byeRequest is the payload of the Bye request of a leaving client.
var byeRequest = (&wire.Bye{}).Append(nil)

// finish ends a graceful close: it writes what is queued and a Bye
// request, then waits for the reader to stop, which it does on the
// server's Bye in answer, or for closeTimeout.
func (c *conn) finish(spare *[]byte) {
	c.mu.Lock()
	c.out = wire.AppendFrame(c.out, wire.Header{Cmd: wire.CmdBye}, byeRequest)
	c.mu.Unlock()
	if c.flush(spare, closeTimeout) != nil {
		return
	}
	t := time.NewTimer(closeTimeout)
	defer t.Stop()
	select {
	case <-c.readStopped:
	case <-t.C:
	}
}

// flush writes the queued frames with one write, within timeout. Only the
// writer calls it. If the write fails, the broadcast messages it carried
// count as unsent.
func (c *conn) flush(spare *[]byte, timeout time.Duration) error {
	c.mu.Lock()
	batch, msgs := c.out, c.outMsgs
	c.out, c.outMsgs = (*spare)[:0], 0
	c.mu.Unlock()
	if len(batch) == 0 {
		*spare = batch
		return nil
	}
	c.nc.SetWriteDeadline(time.Now().Add(timeout))
	_, err := c.nc.Write(batch)
	if err != nil && msgs > 0 {
		c.mu.Lock()
		c.unsent += msgs
		c.mu.Unlock()
	}
	if cap(batch) > maxRetainedBuffer {
		batch = nil
	}
	*spare = batch[:0]
	return err
}

// queuePing queues a ping and remembers when, for onPong.
func (c *conn) queuePing() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.pingSeq = c.nextSeq()
	c.pingAt = time.Now()
	c.out = wire.AppendHeader(c.out, wire.Header{Cmd: wire.CmdPing, Seq: c.pingSeq})
	c.mu.Unlock()
	if c.onPing != nil {
		c.onPing()
	}
}

// nextSeq returns the next request seq: never 0, never one in use. c.mu
// must be held.
func (c *conn) nextSeq() uint32 {
	for {
		c.seq++
		if c.seq == 0 || c.seq == c.pingSeq {
			continue
		}
		if _, busy := c.pending[c.seq]; !busy {
			return c.seq
		}
	}
}

// wake tells the writer that out is not empty. wasEmpty is whether it was
// before the caller appended: otherwise a wake-up is pending already.
func (c *conn) wake(wasEmpty bool) {
	if !wasEmpty {
		return
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// queueBroadcast queues a fire-and-forget Broadcast request carrying the
// driver's payload (see appendBroadcastFrame). It does not block; it
// returns errClosed or errSendBufferFull when the message is not queued.
// Callers that need their messages written in sequence order must
// serialize their calls.
func (c *conn) queueBroadcast(ts int64, sender, seq uint32, size int) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	if len(c.out) > 0 && len(c.out)+broadcastFrameSize(size) > maxOutbound {
		c.mu.Unlock()
		return errSendBufferFull
	}
	wasEmpty := len(c.out) == 0
	c.out = appendBroadcastFrame(c.out, ts, sender, seq, size)
	c.outMsgs++
	c.mu.Unlock()
	c.wake(wasEmpty)
	return nil
}

// call sends a ver-0 request with payload and waits for its reply, ctx's
// end, or the conn's. It returns the reply's payload (a copy), the
// wire.Status of a reply other than OK, errClosed, errSendBufferFull or
// ctx's error (the reply, if any, is then dropped).
func (c *conn) call(ctx context.Context, cmd wire.Cmd, payload []byte) ([]byte, error) {
	ch := make(chan result, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errClosed
	}
	if len(c.out) > 0 && len(c.out)+wire.HeaderSize+len(payload) > maxOutbound {
		c.mu.Unlock()
		return nil, errSendBufferFull
	}
	seq := c.nextSeq()
	c.pending[seq] = ch
	wasEmpty := len(c.out) == 0
	c.out = wire.AppendFrame(c.out, wire.Header{Cmd: cmd, Seq: seq}, payload)
	c.mu.Unlock()
	c.wake(wasEmpty)
	select {
	case r := <-ch:
		return r.payload, r.err
	case <-ctx.Done():
		c.mu.Lock()
		if c.pending != nil {
			delete(c.pending, seq)
		}
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}
