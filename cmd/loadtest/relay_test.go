package main

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coveyhq/covey/wire"
)

// relayAction is what a pushRelay does with one of the driver's messages.
type relayAction struct {
	drop  bool
	delay time.Duration // before forwarding it (and, in order, what follows it)
}

// pushRelay stands between the driver and a server on loopback, so that
// tests can lose or delay a message on its way, where the driver cannot
// see it: it forwards what the driver sends as it is, and what the server
// sends frame by frame, asking act about every BroadcastReceived push that
// carries a driver message.
type pushRelay struct {
	t      *testing.T
	ln     net.Listener
	target string
	act    func(sender, seq uint32) relayAction

	wg     sync.WaitGroup
	mu     sync.Mutex
	nc     []net.Conn // every connection the relay made or accepted
	closed bool       // the test is over: close what comes
}

// startRelay listens on a loopback port and relays each connection to
// target until the end of the test.
func startRelay(t *testing.T, target string, act func(sender, seq uint32) relayAction) *pushRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &pushRelay{t: t, ln: ln, target: target, act: act}
	r.wg.Go(r.accept)
	t.Cleanup(func() {
		ln.Close()
		r.mu.Lock()
		r.closed = true
		for _, c := range r.nc {
			c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

// addr returns the address the driver should dial.
func (r *pushRelay) addr() string { return r.ln.Addr().String() }

// track records c for the cleanup, or closes it if the cleanup has run.
func (r *pushRelay) track(c net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		return
	}
	r.nc = append(r.nc, c)
}

// closing reports whether err is how a relayed connection ends: closed by
// either side, or by the relay's cleanup.
func closing(err error) bool {
	return err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

func (r *pushRelay) accept() {
	for {
		client, err := r.ln.Accept()
		if err != nil {
			return
		}
		srv, err := net.Dial("tcp", r.target)
		if err != nil {
			r.t.Errorf("relay: %v", err)
			client.Close()
			return
		}
		r.track(client)
		r.track(srv)
		r.wg.Go(func() {
			_, _ = io.Copy(srv, client)
			srv.Close()
		})
		r.wg.Go(func() {
			if err := r.forward(client, srv); !closing(err) {
				r.t.Errorf("relay: %v", err)
			}
			client.Close()
		})
	}
}

// forward copies frames from srv to client, one write per frame, applying
// act to the driver's messages.
func (r *pushRelay) forward(client, srv net.Conn) error {
	cfg := wire.Config{MaxPayload: wire.MaxMaxPayload}
	buf := make([]byte, 0, 64<<10)
	rd := make([]byte, 32<<10)
	for {
		n, err := srv.Read(rd)
		buf = append(buf, rd[:n]...)
		for {
			f, size, serr := cfg.Split(buf)
			if serr != nil {
				return serr
			}
			if size == 0 || size > len(buf) {
				break
			}
			a := r.actOn(f)
			if a.delay > 0 {
				time.Sleep(a.delay) // the delay under test, not a wait
			}
			if !a.drop {
				if _, werr := client.Write(buf[:size]); werr != nil {
					return werr
				}
			}
			buf = append(buf[:0], buf[size:]...)
		}
		if err != nil {
			return err
		}
	}
}

// actOn returns act's answer for a push carrying a driver message, and
// forward for every other frame.
func (r *pushRelay) actOn(f wire.Frame) relayAction {
	if f.Flags&wire.FlagPush == 0 || f.Ver != 0 || f.Cmd != wire.CmdBroadcastReceived || f.Flags&wire.FlagCompressed != 0 {
		return relayAction{}
	}
	msg, ok := consumeMessagePush(f.Payload)
	if !ok {
		return relayAction{}
	}
	_, sender, seq, ok := parsePayload(msg)
	if !ok {
		return relayAction{}
	}
	return r.act(sender, seq)
}
