package clientconn

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/coveyhq/covey/wire"
)

// maxRetained is the largest write buffer kept for reuse after a spike.
const maxRetained = 256 << 10

// Config describes a started connection. The callbacks are set before
// [Start] and not changed after; they must not block, and nil means
// ignore.
type Config struct {
	// Heartbeat is the interval of the writer's pings. It must be > 0.
	Heartbeat time.Duration
	// DeadAfter is the silence from the server (or the duration of a
	// write) after which the connection closes with ErrServerTimeout.
	DeadAfter time.Duration
	// DeadlineInterval is how often the reader moves its read deadline:
	// 0 before every read; otherwise at most once per interval (sparing a
	// timer update per read), so that the server is declared gone after
	// DeadAfter-DeadlineInterval to DeadAfter of silence.
	DeadlineInterval time.Duration
	// MaxOut bounds the bytes waiting for the writer: past it, sends and
	// calls fail with ErrSendBufferFull (a frame alone is always queued).
	MaxOut int
	// CloseTimeout bounds each step of a graceful close: the last write,
	// then the wait for the server's Bye in answer.
	CloseTimeout time.Duration
	// CloseWait is how long [Conn.Close] waits for the goroutines before
	// it closes the connection itself; 0 means CloseTimeout.
	CloseWait time.Duration
	// LastSeq is the last request seq used before Start (the sign-in's);
	// requests continue after it.
	LastSeq uint32

	// OnPush is called on the reader goroutine with every push other than
	// a ver-0 Bye; f.Payload is valid only during the call. A non-nil
	// error closes the connection with it as the cause.
	OnPush func(f wire.Frame) error
	// OnFailure is called on the reader goroutine with every reply with
	// seq 0 and a status other than OK: the failure of a fire-and-forget
	// request. f.Payload is valid only during the call. A non-nil error
	// closes the connection with it as the cause.
	OnFailure func(f wire.Frame) error
	// OnPing is called on the writer goroutine when it queues a ping.
	OnPing func()
	// OnPong is called on the reader goroutine when the reply to the last
	// ping arrives, with the time since the ping was queued.
	OnPong func(rtt time.Duration)
	// OnDown is called once when the connection closes or fails, with the
	// cause (ErrClosed after Close), on whichever goroutine closed it: the
	// reader, the writer, or the one calling Close.
	OnDown func(cause error)
	// OnStop is called once on the reader goroutine when both goroutines
	// have finished, just before Done is closed.
	OnStop func()
}

// Conn is a started connection: see [Start]. All its methods are safe for
// concurrent use by any number of goroutines, except that Close must not
// be called from a callback.
//
// A Conn runs two goroutines: a reader, which decodes frames, completes
// calls and hands pushes and failures to the callbacks, and a writer,
// which writes everything queued since its last write with one write and
// queues a ping every heartbeat. Sends and calls never wait for the
// network: they queue their frame (calls then wait for the reply). The
// Conn stops when closed (gracefully: a Bye request, then the server's
// Bye) or when the connection fails; Done is then closed once both
// goroutines have exited.
type Conn struct {
	nc   net.Conn
	cfg  Config
	dec  *wire.Decoder // owned by the reader
	rbuf []byte        // owned by the reader

	kick        chan struct{} // capacity 1: out became non-empty
	quit        chan struct{} // closed by shutdown
	readStopped chan struct{} // closed when the reader stops reading
	writerDone  chan struct{} // closed when the writer has exited and closed nc
	done        chan struct{} // closed when both goroutines have exited

	// mu is the Conn's only lock; nothing blocking runs under it. Callers
	// may hold their own locks when they call a Conn's methods.
	mu      sync.Mutex
	seq     uint32           // the last seq handed out
	pending map[uint32]*Call // calls waiting for their reply, by seq; nil once closed
	closed  bool
	err     error     // why the Conn closed; set with closed
	out     []byte    // frames waiting for the writer
	outN    int       // counted frames in out
	unsent  int       // counted frames queued but never written
	pingSeq uint32    // seq of the last ping
	pingAt  time.Time // when it was queued
}

// Call is a request waiting for its reply.
// Calls are pooled by the Conn: ch is empty whenever a Call is in the
// pool. Its fields are guarded by the Conn's lock while it is pending.
type Call struct {
	ch  chan result // capacity 1; receives exactly one result per use
	ver uint8
	cmd wire.Cmd
}

// result is the outcome of a call, sent by the reader or by shutdown.
type result struct {
	payload []byte // a copy owned by the caller
	err     error
}

var callPool = sync.Pool{New: func() any { return &Call{ch: make(chan result, 1)} }}

// Start takes over nc, signed in already, and starts the reader and
// writer goroutines: it is New, then go ReadLoop and go WriteLoop. dec
// holds what was read after the sign-in reply (its frames are handled
// first) and buf is the reader's read buffer; both belong to the Conn
// from now on.
func Start(nc net.Conn, dec *wire.Decoder, buf []byte, cfg Config) *Conn {
	c := New(nc, dec, buf, cfg)
	go c.WriteLoop()
	go c.ReadLoop()
	return c
}

// New is Start without starting the goroutines: the caller must run
// ReadLoop and WriteLoop, each once on a goroutine of its own (for
// example to have its own name for them in stack traces). No other
// method may be called before both are started.
func New(nc net.Conn, dec *wire.Decoder, buf []byte, cfg Config) *Conn {
	c := &Conn{
		nc:          nc,
		cfg:         cfg,
		dec:         dec,
		rbuf:        buf,
		kick:        make(chan struct{}, 1),
		quit:        make(chan struct{}),
		readStopped: make(chan struct{}),
		writerDone:  make(chan struct{}),
		done:        make(chan struct{}),
	}
	c.seq = cfg.LastSeq
	c.pending = make(map[uint32]*Call)
	return c
}

// Done returns a channel closed when both goroutines have exited.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns nil while the Conn is open, then why it closed: ErrClosed
// after Close, ErrServerTimeout, an [*Error] of kind ErrDisconnected or
// ErrProtocol, a [*ByeError], or an error returned by a callback.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// PendingCalls returns how many calls are waiting for their reply.
func (c *Conn) PendingCalls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// Unsent returns how many counted frames (see [Conn.Send]) were queued
// but never written because the connection failed.
func (c *Conn) Unsent() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unsent
}

// Close closes the Conn gracefully: sends and calls fail with ErrClosed
// from now on, as do calls still waiting. Frames already queued are
// written, then a Bye request, and the connection is closed when the
// server has answered with its own Bye (so it has received everything) or
// after Config.CloseWait. Close waits for the goroutines to exit. It is
// idempotent and may be called from any goroutine but a callback.
func (c *Conn) Close() {
	c.shutdown(ErrClosed)
	wait := c.cfg.CloseWait
	if wait == 0 {
		wait = c.cfg.CloseTimeout
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.nc.Close() // the server is not answering: stop waiting for it
		<-c.done
	}
}

// shutdown closes the Conn for cause unless it is closed already: pending
// calls fail and the writer is told to stop. Unless cause is ErrClosed (a
// graceful close, which the writer completes), what is queued is dropped
// and the connection closed, which stops a blocked read or write. It does
// not wait.
func (c *Conn) shutdown(cause error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed, c.err = true, cause
	pending := c.pending
	c.pending = nil
	if cause != ErrClosed {
		c.unsent += c.outN
		c.out, c.outN = nil, 0
	}
	c.mu.Unlock()
	for _, cl := range pending {
		cl.ch <- result{err: ErrClosed}
	}
	close(c.quit)
	if cause != ErrClosed {
		c.nc.Close()
	}
	if c.cfg.OnDown != nil {
		c.cfg.OnDown(cause)
	}
}

// fail closes the Conn for a transport error err.
func (c *Conn) fail(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.shutdown(ErrServerTimeout)
	} else {
		c.shutdown(&Error{Kind: ErrDisconnected, Err: err})
	}
}

// ReadLoop is the reader goroutine (see [New]): it reads the connection
// and handles each frame until the Conn closes. On exit it waits for the
// writer, then calls OnStop and closes Done.
func (c *Conn) ReadLoop() {
	dec, buf := c.dec, c.rbuf
	defer func() {
		close(c.readStopped)
		<-c.writerDone
		if c.cfg.OnStop != nil {
			c.cfg.OnStop()
		}
		close(c.done)
	}()
	if !c.drain(dec) { // frames that arrived with the sign-in reply
		return
	}
	var deadlineSet time.Time
	for {
		// Every read must bring something within DeadAfter: the server
		// answers each ping. KCP would never notice a dead peer.
		if iv := c.cfg.DeadlineInterval; iv == 0 {
			c.nc.SetReadDeadline(time.Now().Add(c.cfg.DeadAfter))
		} else if now := time.Now(); now.Sub(deadlineSet) >= iv {
			c.nc.SetReadDeadline(now.Add(c.cfg.DeadAfter))
			deadlineSet = now
		}
		n, err := c.nc.Read(buf)
		dec.Write(buf[:n])
		if !c.drain(dec) {
			return
		}
		if err != nil {
			c.fail(err)
			return
		}
	}
}

// drain handles the complete frames in dec. It returns false when the
// reader must stop.
func (c *Conn) drain(dec *wire.Decoder) bool {
	for {
		f, err := dec.Next()
		if errors.Is(err, wire.ErrNeedMore) {
			return true
		}
		if err != nil {
			c.shutdown(&Error{Kind: ErrProtocol, Err: err})
			return false
		}
		if !c.handle(f) {
			return false
		}
	}
}

// handle handles one frame; f.Payload is valid only during the call. It
// returns false when the reader must stop.
func (c *Conn) handle(f wire.Frame) bool {
	var err error
	switch {
	case f.Flags&wire.FlagReply != 0:
		err = c.handleReply(f)
	case f.Flags&wire.FlagPush == 0:
		// Servers send no requests: ignored.
	case f.Ver == 0 && f.Cmd == wire.CmdBye:
		var m wire.Bye
		if err := m.Consume(f.Payload); err != nil {
			c.shutdown(&Error{Kind: ErrProtocol, What: "Bye", Err: err})
		} else {
			c.shutdown(&ByeError{Status: m.Status, Reason: m.Reason})
		}
		return false
	case c.cfg.OnPush != nil:
		err = c.cfg.OnPush(f)
	}
	if err != nil {
		c.shutdown(err)
		return false
	}
	return true
}

// handleReply completes the call f answers. A reply with seq 0 is the
// failure of a fire-and-forget request.
func (c *Conn) handleReply(f wire.Frame) error {
	if f.Seq == 0 {
		if f.Status == wire.StatusOK || c.cfg.OnFailure == nil {
			return nil
		}
		return c.cfg.OnFailure(f)
	}
	c.mu.Lock()
	if f.Seq == c.pingSeq && f.Ver == 0 && f.Cmd == wire.CmdPing {
		at := c.pingAt
		c.mu.Unlock()
		if c.cfg.OnPong != nil {
			c.cfg.OnPong(time.Since(at))
		}
		return nil
	}
	cl := c.pending[f.Seq]
	if cl != nil {
		delete(c.pending, f.Seq)
	}
	c.mu.Unlock()
	if cl == nil {
		return nil // an older ping's reply, or a call that gave up
	}
	var r result
	switch {
	case f.Ver != cl.ver || f.Cmd != cl.cmd:
		r.err = &MismatchError{Ver: cl.ver, Cmd: cl.cmd, ReplyVer: f.Ver, ReplyCmd: f.Cmd}
	case f.Status != wire.StatusOK:
		r.err = f.Status
	default:
		r.payload = append([]byte(nil), f.Payload...)
	}
	cl.ch <- r // never blocks: capacity 1, one result per call
	return nil
}

// WriteLoop is the writer goroutine (see [New]): it writes what was
// queued, one write per batch, and pings every heartbeat, until the Conn
// closes. On exit it closes the connection, which stops the reader.
func (c *Conn) WriteLoop() {
	defer close(c.writerDone)
	defer c.nc.Close()
	ticker := time.NewTicker(c.cfg.Heartbeat)
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
		if err := c.flush(&spare, c.cfg.DeadAfter); err != nil {
			c.fail(err)
			return
		}
	}
}

// byeRequest is the payload of the Bye request of a leaving client.
var byeRequest = (&wire.Bye{}).Append(nil)

// finish ends a graceful close: it writes what is queued and a Bye
// request, then waits for the reader to stop, which it does on the
// server's Bye in answer or when the server closes the connection, for at
// most CloseTimeout.
func (c *Conn) finish(spare *[]byte) {
	c.mu.Lock()
	c.out = wire.AppendFrame(c.out, wire.Header{Cmd: wire.CmdBye}, byeRequest)
	c.mu.Unlock()
	if c.flush(spare, c.cfg.CloseTimeout) != nil {
		return
	}
	t := time.NewTimer(c.cfg.CloseTimeout)
	defer t.Stop()
	select {
	case <-c.readStopped:
	case <-t.C:
	}
}

// flush writes the queued frames with one write, within timeout. Only the
// writer calls it. If the write fails, the counted frames it carried count
// as unsent.
func (c *Conn) flush(spare *[]byte, timeout time.Duration) error {
	c.mu.Lock()
	batch, n := c.out, c.outN
	c.out, c.outN = (*spare)[:0], 0
	c.mu.Unlock()
	if len(batch) == 0 {
		*spare = batch
		return nil
	}
	c.nc.SetWriteDeadline(time.Now().Add(timeout))
	_, err := c.nc.Write(batch)
	if err != nil && n > 0 {
		c.mu.Lock()
		c.unsent += n
		c.mu.Unlock()
	}
	if cap(batch) > maxRetained {
		batch = nil
	}
	*spare = batch[:0]
	return err
}

// queuePing queues a ping and remembers when, for OnPong.
func (c *Conn) queuePing() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.pingSeq = c.nextSeq()
	c.pingAt = time.Now()
	c.out = wire.AppendHeader(c.out, wire.Header{Cmd: wire.CmdPing, Seq: c.pingSeq})
	c.mu.Unlock()
	if c.cfg.OnPing != nil {
		c.cfg.OnPing()
	}
}

// nextSeq hands out the next request seq: never 0, never one in use
// (by a pending call or the last ping). c.mu must be held.
func (c *Conn) nextSeq() uint32 {
	for {
		c.seq++
		s := c.seq
		if s == 0 || s == c.pingSeq {
			continue
		}
		if _, busy := c.pending[s]; !busy {
			return s
		}
	}
}

// enqueue copies frame into out with seq written into its header, and
// registers cl under seq if cl is not nil (then seq is allocated here).
// It does not block.
func (c *Conn) enqueue(frame []byte, counted bool, cl *Call) (uint32, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, ErrClosed
	}
	if len(c.out) > 0 && len(c.out)+len(frame) > c.cfg.MaxOut {
		c.mu.Unlock()
		return 0, ErrSendBufferFull
	}
	var seq uint32
	if cl != nil {
		seq = c.nextSeq()
		c.pending[seq] = cl
	}
	wake := len(c.out) == 0 // else a wake-up is pending already
	start := len(c.out)
	c.out = append(c.out, frame...)
	binary.BigEndian.PutUint32(c.out[start+8:start+12], seq)
	if counted {
		c.outN++
	}
	c.mu.Unlock()
	if wake {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
	return seq, nil
}

// Send queues frame, a complete request frame, as a fire-and-forget
// request: its seq is written as 0, so the server replies only on failure
// (see Config.OnFailure). frame is copied: the caller keeps it. If
// counted, the frame counts in Unsent when the connection fails before
// writing it. Send does not block; it returns ErrClosed or
// ErrSendBufferFull when the frame is not queued. Concurrent sends are
// queued in some order: callers that need an order must serialize.
func (c *Conn) Send(frame []byte, counted bool) error {
	_, err := c.enqueue(frame, counted, nil)
	return err
}

// Call queues frame, a complete request frame, with a fresh seq, and
// waits for the reply, the end of ctx, or the Conn's. frame is copied: the
// caller keeps it. Call returns the reply's payload (a copy owned by the
// caller); the reply's wire.Status when it is not OK; a [*MismatchError]
// when the reply is for another ver/cmd; ErrClosed; ErrSendBufferFull; or
// ctx's error (the call is then forgotten and its reply, if any,
// dropped). It is safe to call from any goroutine but the reader's (a
// callback).
func (c *Conn) Call(ctx context.Context, frame []byte) ([]byte, error) {
	cl := callPool.Get().(*Call)
	cl.ver, cl.cmd = frame[4], wire.Cmd(binary.BigEndian.Uint16(frame[5:7]))
	seq, err := c.enqueue(frame, false, cl)
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
	return r.payload, r.err
}

// Exchange performs a request/reply exchange on nc before Start, such as
// the sign-in: it writes frame, then reads into buf, decodes with dec and
// passes each frame to handle (f.Payload is valid only during the call)
// until handle returns done or an error. Frames after the last one
// handled stay in dec, for Start. It returns handle's error, an [*Error]
// of kind ErrProtocol for an invalid frame, or the write's or read's
// error. Deadlines are the caller's. It runs on the caller's goroutine and
// must not overlap any other use of nc, dec or buf.
func Exchange(nc net.Conn, dec *wire.Decoder, buf, frame []byte, handle func(f wire.Frame) (done bool, err error)) error {
	if _, err := nc.Write(frame); err != nil {
		return err
	}
	for {
		n, rerr := nc.Read(buf)
		dec.Write(buf[:n])
		for {
			f, err := dec.Next()
			if errors.Is(err, wire.ErrNeedMore) {
				break
			}
			if err != nil {
				return &Error{Kind: ErrProtocol, Err: err}
			}
			if done, err := handle(f); done || err != nil {
				return err
			}
		}
		if rerr != nil {
			return rerr
		}
	}
}
