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

	"github.com/coveyhq/covey/wire"
)

// KCP settings (shared/reference/libraries.md: measured for game traffic).
const (
	kcpSocketBuffer = 4 << 20 // listener SO_RCVBUF/SO_SNDBUF (the kernel caps it at 2*rmem_max)
	kcpWindow       = 128     // send and receive windows, in segments
	kcpMTU          = 1200
	kcpResend       = 2 // fast resend after 2 duplicate ACKs
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
// writer goroutines that own it.
type kcpConn struct {
	c    *Conn
	sess *kcp.UDPSession

	signal     chan struct{} // 1 slot: a flush is due
	writerDone chan struct{} // closed when the writer has closed the session
	dead       chan struct{} // closed by kill
	killOnce   sync.Once

	spare []byte // the writer's buffer swapped with pending
	small int    // see keep

	// mu orders write deadlines: abort must win over the writer arming
	// the next one.
	mu      sync.Mutex
	aborted bool // slow consumer: abandon writes
	final   bool // the last flush runs under its own deadline
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
			// and queued meanwhile. AcceptKCP picks at random between a
			// queued session and the closed listener, so a few errors in
			// a row are needed to be fairly sure the queue is empty.
			for misses := 0; misses < 8; {
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
	sess.SetStreamMode(true) // our frames are length-prefixed, as on TCP
	sess.SetWriteDelay(false)
	sess.SetNoDelay(1, int(s.cfg.KCPInterval/time.Millisecond), kcpResend, 1)
	sess.SetWindowSize(kcpWindow, kcpWindow)
	sess.SetMtu(kcpMTU)
	sess.SetACKNoDelay(true)

	c := newConn(s, KCP, sess.RemoteAddr())
	k := &kcpConn{c: c, sess: sess, signal: make(chan struct{}, 1), writerDone: make(chan struct{}), dead: make(chan struct{})}
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
// connection closes, waits for the writer, and calls OnClose. It is the
// only goroutine calling the Handler for this connection.
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
	opened := false
	for !c.closing.Load() {
		_ = k.sess.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		n, err := k.sess.Read(buf)
		if err != nil {
			cause = kcpReadCause(err)
			break
		}
		c.lastRead.Store(s.now())
		dec.Write(buf[:n])
		was := c.holdFlush()
		if !opened && !c.closing.Load() {
			opened = true
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
	}
	if cause != nil {
		c.closeWith(cause, false, 0, "", false)
	}
	<-k.writerDone
	c.finish(cause, opened)
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

// writeLoop writes each batch when signalled; after the last batch of a
// closing connection it closes the session, which also ends the reader's
// Read.
func (k *kcpConn) writeLoop() {
	c := k.c
	s := c.srv
	defer s.wg.Done()
	defer close(k.writerDone)
	defer k.sess.Close()
	for range k.signal {
		batch, closing := c.takePending(k.spare, 0)
		if closing {
			deadline := time.Now().Add(min(s.cfg.IdleTimeout, kcpCloseFlush))
			k.mu.Lock()
			k.final = true
			_ = k.sess.SetWriteDeadline(deadline)
			k.mu.Unlock()
			if err := k.write(batch, true); err == nil && len(batch) > 0 {
				k.linger(deadline)
			}
			return
		}
		err := k.write(batch, false)
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

// write hands b to the session in chunks cut at frame boundaries, each
// under a deadline of IdleTimeout (or the final deadline), and accounts
// for what kcp-go accepted.
func (k *kcpConn) write(b []byte, final bool) error {
	for len(b) > 0 {
		n := chunkLen(b)
		if !final {
			k.mu.Lock()
			if k.aborted {
				k.mu.Unlock()
				return errAborted
			}
			_ = k.sess.SetWriteDeadline(time.Now().Add(k.c.srv.cfg.IdleTimeout))
			k.mu.Unlock()
		}
		k.c.writes.Add(1)
		if _, err := k.sess.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
		if !final {
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
// is full because the peer does not read), so the slow consumer closes
// now rather than after IdleTimeout.
func (k *kcpConn) abort() {
	k.mu.Lock()
	k.aborted = true
	if !k.final {
		_ = k.sess.SetWriteDeadline(time.Now())
	}
	k.mu.Unlock()
}

// kill closes the session; the reader and the writer then return.
func (k *kcpConn) kill() {
	k.killOnce.Do(func() {
		close(k.dead)
		_ = k.sess.Close()
	})
}
