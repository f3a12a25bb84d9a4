package netio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xtaci/kcp-go/v5"

	"github.com/coveyhq/covey/internal/kcptune"
	"github.com/coveyhq/covey/wire"
)

// KCP settings (shared/reference/libraries.md: measured for game traffic).
const (
	kcpSocketBuffer = 4 << 20 // listener SO_RCVBUF/SO_SNDBUF (the kernel caps it at 2*rmem_max)
	kcpReadBuffer   = 4 << 10

	// kcpChunk is the most bytes handed to one UDPSession.Write (more if
	// one frame is larger). Write accepts a whole call once the send
	// window has room, so this bounds what kcp-go queues beyond the
	// window; chunks end on frame boundaries, so a chunk that fails
	// leaves the stream at a frame boundary and the Bye can follow.
	kcpChunk = 64 << 10

	// kcpCloseFlush bounds the final flush (pending frames and the Bye)
	// of a closing KCP connection, if IdleTimeout is longer.
	kcpCloseFlush = 2 * time.Second

	// kcpWriteStep is the longest a single UDPSession.Write may block:
	// a write waiting for the peer's window is retried in steps until
	// IdleTimeout, so that the writer notices an abort (slow consumer)
	// within a step. kcp-go reads the write deadline without its lock,
	// so no other goroutine may set it while the writer is in Write.
	kcpWriteStep = 250 * time.Millisecond

	// Bounds of the linger after the last frames of a closing session.
	kcpLingerMin = 20 * time.Millisecond
	kcpLingerMax = 500 * time.Millisecond
)

// kcpFront accepts KCP sessions.
type kcpFront struct {
	s      *Server
	l      *kcp.Listener
	closed atomic.Bool // stop was called
}

// kcpConn is the KCP part of a Conn: the session, and the reader and
// writer goroutines that own it. Only the reader sets the session's read
// deadline and only the writer its write deadline: kcp-go reads them
// without its lock.
type kcpConn struct {
	c    *Conn
	sess *kcp.UDPSession

	signal   chan struct{} // 1 slot: a flush is due
	dead     chan struct{} // closed by kill
	killOnce sync.Once
	aborted  atomic.Bool // slow consumer: the writer abandons its write

	spare []byte // the writer's buffer swapped with pending
	small int    // see keep

	// hmu serializes Handler calls between the reader (OnOpen, OnFrame,
	// and OnClose when the session fails) and the writer (OnClose before
	// the last batch of a connection netio closes). The reader holds it
	// while it handles the frames of one read, never across Read.
	hmu     sync.Mutex
	opened  bool // OnOpen was called
	hclosed bool // Conn.finish was called
}

func (s *Server) startKCP() error {
	l, err := kcp.ListenWithOptions(s.cfg.KCPAddr, nil, 0, 0)
	if err != nil {
		return fmt.Errorf("netio: kcp listen %s: %w", s.cfg.KCPAddr, err)
	}
	if err := l.SetReadBuffer(kcpSocketBuffer); err != nil {
		s.log.Warn("netio: kcp listener read buffer", "err", err)
	}
	if err := l.SetWriteBuffer(kcpSocketBuffer); err != nil {
		s.log.Warn("netio: kcp listener write buffer", "err", err)
	}
	f := &kcpFront{s: s, l: l}
	s.kcp = f
	s.wg.Add(1)
	go f.acceptLoop()
	return nil
}

// acceptLoop accepts sessions and starts a reader and a writer for each.
// Owned by the Server (wg); it returns when the listener is closed.
func (f *kcpFront) acceptLoop() {
	s := f.s
	defer s.wg.Done()
	for {
		sess, err := f.l.AcceptKCP()
		if err != nil {
			if !f.closed.Load() {
				s.log.Error("netio: kcp accept failed; no more KCP connections", "err", err)
				return
			}
			// The listener is closed: close the sessions kcp-go created
			// and queued meanwhile. AcceptKCP picks at random among a
			// queued session, the closed listener and its read error, so
			// only many errors in a row make an empty queue likely
			// (64: a queued session is missed with odds (2/3)^64).
			for misses := 0; misses < 64; {
				if sess, err := f.l.AcceptKCP(); err == nil {
					_ = sess.Close()
					misses = 0
				} else {
					misses++
				}
			}
			return
		}
		f.open(sess)
	}
}

// open configures an accepted session and starts its goroutines.
func (f *kcpFront) open(sess *kcp.UDPSession) {
	s := f.s
	kcptune.Tune(sess, s.cfg.KCPInterval)

	c := newConn(s, KCP, sess.RemoteAddr())
	k := &kcpConn{c: c, sess: sess, signal: make(chan struct{}, 1), dead: make(chan struct{})}
	c.io = k
	if !s.register(c) {
		_ = sess.Close()
		return
	}
	c.lastRead.Store(s.now())
	s.wg.Add(2)
	go k.writeLoop()
	go k.readLoop()
}

// stop closes the listener, which ends acceptLoop. The sessions it
// accepted share its socket: Shutdown calls stop once they are closed.
func (f *kcpFront) stop() {
	f.closed.Store(true)
	_ = f.l.Close()
}

// readLoop reads and decodes frames until the session fails or the
// connection closes. It calls OnOpen and OnFrame, and OnClose if the
// session failed (ErrIdle, ErrPeerClosed) before the writer did.
//
// OnOpen is called when the first bytes of data arrive, not when kcp-go
// creates the session: kcp-go creates a session for any packet from an
// unknown address, including the ACK a client sends for our Bye after we
// closed its session. Such a session is never shown to the Handler; it
// idles out.
func (k *kcpConn) readLoop() {
	c := k.c
	s := c.srv
	defer s.wg.Done()
	dec := wire.NewDecoder(s.cfg.Wire)
	buf := make([]byte, kcpReadBuffer)
	var cause error
	for !c.closing.Load() {
		_ = k.sess.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		n, err := k.sess.Read(buf)
		if err != nil {
			cause = kcpReadCause(err)
			break
		}
		c.lastRead.Store(s.now())
		s.bytesIn.Add(uint64(n))
		dec.Write(buf[:n])
		k.hmu.Lock()
		if k.hclosed {
			k.hmu.Unlock()
			break
		}
		was := c.holdFlush()
		if !k.opened && !c.closing.Load() {
			k.opened = true
			s.open(c)
		}
		for !c.closing.Load() {
			fr, err := dec.Next()
			if err != nil {
				if !errors.Is(err, wire.ErrNeedMore) {
					c.badFrame(err)
				}
				break
			}
			s.h.OnFrame(c, fr)
		}
		k.releaseFlush(was)
		k.hmu.Unlock()
	}
	if cause != nil {
		c.closeWith(cause, false, 0, "", false) // wakes the writer
	}
	k.handlerClose(cause)
}

// handlerClose calls Conn.finish (OnClose) unless it was called already.
// Reader or writer.
func (k *kcpConn) handlerClose(cause error) {
	k.hmu.Lock()
	defer k.hmu.Unlock()
	if !k.hclosed {
		k.hclosed = true
		k.c.finish(cause, k.opened)
	}
}

// releaseFlush ends a batch started by holdFlush: unless a flush was
// already scheduled before, it wakes the writer if the batch queued
// something.
func (k *kcpConn) releaseFlush(was bool) {
	if was {
		return
	}
	c := k.c
	c.mu.Lock()
	if len(c.pending) == 0 && !c.closing.Load() {
		c.scheduled = false
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	k.wake()
}

// kcpReadCause maps a read error: kcp-go reports its deadline with a
// net.Error whose Timeout is true.
func kcpReadCause(err error) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return ErrIdle
	case errors.Is(err, io.ErrClosedPipe):
		return ErrPeerClosed // replaced by a new session from the same address
	}
	return fmt.Errorf("%w: %w", ErrPeerClosed, err)
}

// writeLoop writes each batch when signalled, until the connection
// closes (see closeOut).
func (k *kcpConn) writeLoop() {
	c := k.c
	defer c.srv.wg.Done()
	for range k.signal {
		batch, closing := c.takePending(k.spare, 0)
		if closing {
			k.closeOut(batch)
			return
		}
		err := k.write(batch, time.Time{})
		k.spare = keep(batch, &k.small)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.Is(err, errAborted) || errors.As(err, &ne) && ne.Timeout() {
			// The peer did not take a chunk within IdleTimeout. (If the
			// budget closed the connection, this is a no-op.)
			c.mu.Lock()
			c.slowConsumerLocked(0)
		} else {
			c.closeWith(kcpReadCause(err), false, 0, "", false)
		}
	}
}

// closeOut ends a closing connection: it calls OnClose (unless the reader
// did), writes the last batch (ending with the Bye, if any) within
// min(IdleTimeout, kcpCloseFlush) (kcpWriteStep for a slow consumer),
// lingers, closes the session (which
// ends the reader's Read) and removes the connection from the server.
func (k *kcpConn) closeOut(batch []byte) {
	c := k.c
	k.handlerClose(nil)
	wait := min(c.srv.cfg.IdleTimeout, kcpCloseFlush)
	if k.aborted.Load() {
		wait = kcpWriteStep // a slow consumer's window is full: do not wait long for it
	}
	deadline := time.Now().Add(wait)
	if err := k.write(batch, deadline); err == nil && len(batch) > 0 {
		k.linger(deadline)
	}
	_ = k.sess.Close()
	c.srv.remove(c)
}

// linger keeps a session that just sent its last frames (the Bye) open
// for about two round trips, so that kcp-go retransmits them if they are
// lost and the peer's ACKs reach this session (after Close they would
// make kcp-go create a new one). KCP has no close handshake and kcp-go
// does not tell when everything was acknowledged.
func (k *kcpConn) linger(deadline time.Time) {
	d := 2*time.Duration(k.sess.GetSRTT())*time.Millisecond + 2*k.c.srv.cfg.KCPInterval
	d = min(max(d, kcpLingerMin), kcpLingerMax, time.Until(deadline))
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-k.dead:
	}
}

// write hands b to the session in chunks cut at frame boundaries. A chunk
// must be accepted within IdleTimeout (or by final, for the last batch of
// a closing connection); the wait is cut into kcpWriteStep steps so that
// an abort is seen. Outside the final batch it accounts for what kcp-go
// accepted.
func (k *kcpConn) write(b []byte, final time.Time) error {
	idle := k.c.srv.cfg.IdleTimeout
	for len(b) > 0 {
		n := chunkLen(b)
		until := final
		if final.IsZero() {
			until = time.Now().Add(idle)
		}
		for {
			if final.IsZero() && k.aborted.Load() {
				return errAborted
			}
			step := time.Now().Add(kcpWriteStep)
			if until.Before(step) {
				step = until
			}
			_ = k.sess.SetWriteDeadline(step)
			k.c.writes.Add(1)
			_, err := k.sess.Write(b[:n]) // all or nothing
			if err == nil {
				k.c.srv.bytesOut.Add(uint64(n))
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Now().Before(until) {
				continue
			}
			return err
		}
		b = b[n:]
		if final.IsZero() {
			k.c.sent(n)
		}
	}
	return nil
}

// chunkLen returns the length of the first chunk of b: whole frames up to
// kcpChunk bytes, at least one frame. Frames are trusted to be well
// formed; if one claims more bytes than b holds, the rest of b is one
// chunk.
func chunkLen(b []byte) int {
	n := 0
	for n < len(b) {
		if len(b)-n < wire.HeaderSize {
			return len(b)
		}
		size := wire.HeaderSize + int(binary.BigEndian.Uint32(b[n:]))
		if size > len(b)-n {
			return len(b)
		}
		if n > 0 && n+size > kcpChunk {
			return n
		}
		n += size
	}
	return n
}

// wake signals the writer; the 1-slot channel coalesces signals.
func (k *kcpConn) wake() {
	select {
	case k.signal <- struct{}{}:
	default:
	}
}

// abort makes the writer give up the write it is blocked in (the window
// is full because the peer does not read) within kcpWriteStep, so the
// slow consumer is closed soon rather than after IdleTimeout.
func (k *kcpConn) abort() { k.aborted.Store(true) }

// kill closes the session; the reader and the writer then return.
func (k *kcpConn) kill() {
	k.killOnce.Do(func() {
		close(k.dead)
		_ = k.sess.Close()
	})
}
