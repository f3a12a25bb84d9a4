package netio

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"
	gerrors "github.com/panjf2000/gnet/v2/pkg/errors"
)

// DialPeer connects to another node's mesh address (its Config.MeshAddr)
// and adds the connection to this server's TCP engine as a [KindPeer]
// Conn, on the event loops clients use, with the peer limits (PeerWire,
// PeerMaxOutbound, PeerIdleTimeout; MaxConns does not apply). The Handler
// gets OnOpen for it, in which c.State() already returns state (so the
// cluster finds its link object there before any frame arrives), then
// OnFrame and OnClose as for a peer that connected to MeshAddr. DialPeer
// returns that Conn after OnOpen has returned; it may already be closing
// (if the Handler closed it, or the peer went away).
//
// DialPeer blocks while it dials and until an event loop has registered
// the connection, at most until ctx is done: give ctx a deadline, or the
// dial alone may take the kernel's connect timeout (minutes). On failure
// the Handler never sees the connection and the error is the dial's (a
// *net.OpError: errors.Is(err, syscall.ECONNREFUSED) for a closed port),
// ctx.Err(), ErrServerClosed once Shutdown has started, an error if the
// TCP engine does not run (neither TCPAddr nor MeshAddr is set), or one
// saying the open-file bound refused it (counted in Stats.RefusedPeers).
//
// Call it from a goroutine of the caller's own (the cluster's dialer),
// never from a Handler callback: those must not block, and on TCP the
// call would wait for an event loop to run OnOpen, possibly the loop it
// blocks (then only ctx ends it). Concurrent calls are fine.
func (s *Server) DialPeer(ctx context.Context, addr string, state any) (*Conn, error) {
	f := s.tcp
	if f == nil {
		return nil, errNoEngine
	}
	if s.isClosing() {
		return nil, ErrServerClosed
	}
	// Dialed here, not by gnet (NewNetAddrContext): gnet's Register dials
	// with net.Dial, which no context or deadline bounds.
	dialer := net.Dialer{KeepAlive: tcpKeepAlive} // Go sets TCP_NODELAY
	nc, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("netio: dial peer: %w", err)
	}

	// gnet's Register dups nc's descriptor (and closes nc) on a goroutine
	// of its worker pool, then has the chosen loop run OnOpen with d as
	// the connection's context; res delivers after OnOpen returned.
	d := &peerDial{state: state}
	var res <-chan gnet.RegisteredResult
	err = ErrServerClosed
	f.mu.RLock() // as wake: no Register reaches an engine told to stop
	if !f.stopped {
		res, err = f.eng.Register(gnet.NewContext(gnet.NewNetConnContext(context.Background(), nc), d))
	}
	f.mu.RUnlock()
	if err != nil {
		nc.Close() // gnet did not take it
		if errors.Is(err, gerrors.ErrEngineInShutdown) {
			err = ErrServerClosed
		}
		if errors.Is(err, ErrServerClosed) {
			return nil, err
		}
		return nil, fmt.Errorf("netio: register peer connection: %w", err)
	}

	got := false
	select {
	case r := <-res:
		got = true
		err = r.Err
		if err == nil {
			err = errNotRegistered // the loop failed to poll it: OnOpen did not run
		} else {
			err = fmt.Errorf("netio: register peer connection: %w", err)
		}
	case <-ctx.Done():
		err = ctx.Err()
	case <-f.runDone:
		err = ErrServerClosed
	}
	if d.abandon() {
		// OnOpen has not run; if it ever does, it closes the connection
		// without a Handler call.
		return nil, err
	}
	if !got {
		<-res // OnOpen is running or has run: the result follows at once
	}
	if d.err != nil {
		return nil, d.err
	}
	return d.conn, nil
}

// isClosing reports whether Shutdown has started.
func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// peerDial is the context DialPeer registers a connection with: OnOpen
// finds it as the gnet connection's context and settles the outcome.
type peerDial struct {
	state any // for Conn.SetState before Handler.OnOpen

	// phase says who settles the dial: OnOpen (claim) or DialPeer giving
	// up (abandon), whichever comes first.
	phase atomic.Int32

	// Set by OnOpen after claim, read by DialPeer after the
	// RegisteredResult (sent after OnOpen returned).
	conn *Conn
	err  error
}

// The phases of a peerDial.
const (
	dialWaiting   = 0
	dialClaimed   = 1 // OnOpen runs: it sets conn or err
	dialAbandoned = 2 // DialPeer returned an error: OnOpen must close the connection
)

// claim reports whether OnOpen may open the connection (DialPeer is still
// waiting for it). Event loop.
func (d *peerDial) claim() bool { return d.phase.CompareAndSwap(dialWaiting, dialClaimed) }

// abandon reports whether DialPeer gave up before OnOpen claimed the
// connection.
func (d *peerDial) abandon() bool { return d.phase.CompareAndSwap(dialWaiting, dialAbandoned) }

// fail records why OnOpen refused a claimed connection. A nil d (an
// accepted connection) is a no-op. Event loop.
func (d *peerDial) fail(err error) {
	if d != nil {
		d.err = err
	}
}
