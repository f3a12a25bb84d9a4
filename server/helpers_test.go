package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/xtaci/kcp-go/v5"

	"github.com/coveyhq/covey/internal/kcptest"
	"github.com/coveyhq/covey/wire"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 10 * time.Second

// startServer runs an in-process dev-mode server on loopback ports chosen
// by the kernel, with both transports and both HTTP listeners, and stops
// it at the end of the test.
func startServer(t testing.TB, mutate ...func(*Config)) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.TCPAddr, cfg.KCPAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.Logger = discardLogger()
	// Two loops whatever the machine (the default is one on two cores):
	// the scenarios' deliveries, replies and mesh frames cross loops, as
	// on a larger node. The server binaries of cmd/server's tests and of
	// the multi-process cluster test run the default.
	cfg.EventLoops = 2
	for _, m := range mutate {
		m(&cfg)
	}
	return startConfigured(t, cfg, nil)
}

// startConfigured runs a server of cfg, with before (if not nil) run
// between New and Start to register application handlers, and stops it at
// the end of the test.
func startConfigured(t testing.TB, cfg Config, before func(*Server)) *Server {
	t.Helper()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(srv)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return srv
}

// transports lists the transports every end-to-end test runs on.
var transports = []string{"tcp", "kcp"}

func (s *Server) addrOf(network string) string {
	if network == "kcp" {
		return s.KCPAddr().String()
	}
	return s.TCPAddr().String()
}

// rawClient speaks frames to the server directly, bypassing the SDK, the
// way a client written from PROTOCOL.md alone would.
type rawClient struct {
	t       testing.TB
	network string
	c       net.Conn
	dec     *wire.Decoder
	buf     []byte
	seq     uint32

	// asSent makes next return frames as the server sent them, compressed
	// payloads still compressed and FlagCompressed set, read with
	// wire.Config.Split from in instead of through dec. Set it before the
	// first read.
	asSent bool
	in     []byte
}

func dialRaw(t testing.TB, network, addr string) *rawClient {
	t.Helper()
	var c net.Conn
	var err error
	if network == "kcp" {
		var s *kcp.UDPSession
		if s, err = kcptest.DialPlain(addr); err == nil { // the UDP packet layer, plaintext
			c = s
		}
	} else {
		c, err = net.DialTimeout("tcp", addr, testTimeout)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, network: network, c: c, dec: wire.NewDecoder(wire.DefaultConfig()), buf: make([]byte, 64<<10)}
}

// write sends raw bytes.
func (r *rawClient) write(b []byte) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(testTimeout))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// request sends a request frame and returns its seq.
func (r *rawClient) request(ver uint8, cmd wire.Cmd, payload []byte) uint32 {
	r.seq++
	r.write(wire.AppendFrame(nil, wire.Header{Ver: ver, Cmd: cmd, Seq: r.seq}, payload))
	return r.seq
}

// next returns the next frame from the server, or an error if the
// connection closed (io.EOF) or nothing came within the test timeout.
func (r *rawClient) next() (wire.Frame, error) {
	r.t.Helper()
	for {
		f, err := r.buffered()
		if err == nil {
			f.Payload = append([]byte(nil), f.Payload...)
			return f, nil
		}
		if !errors.Is(err, wire.ErrNeedMore) {
			return wire.Frame{}, err
		}
		r.c.SetReadDeadline(time.Now().Add(testTimeout))
		n, err := r.c.Read(r.buf)
		if n > 0 {
			if r.asSent {
				r.in = append(r.in, r.buf[:n]...)
			} else {
				r.dec.Write(r.buf[:n])
			}
			continue
		}
		if err != nil {
			return wire.Frame{}, err
		}
	}
}

// buffered returns the next frame already read, or wire.ErrNeedMore. Its
// payload is valid until the next read.
func (r *rawClient) buffered() (wire.Frame, error) {
	if !r.asSent {
		return r.dec.Next()
	}
	f, n, err := wire.DefaultConfig().Split(r.in)
	if err != nil {
		return wire.Frame{}, err
	}
	if n == 0 {
		return wire.Frame{}, wire.ErrNeedMore
	}
	r.in = r.in[n:]
	return f, nil
}

// reply waits for the reply to seq, skipping pushes, and returns it.
func (r *rawClient) reply(seq uint32) wire.Frame {
	r.t.Helper()
	for {
		f, err := r.next()
		if err != nil {
			r.t.Fatalf("waiting for reply %d: %v", seq, err)
		}
		if f.Flags&wire.FlagReply != 0 && f.Seq == seq {
			return f
		}
	}
}

// call sends a request and returns its reply.
func (r *rawClient) call(cmd wire.Cmd, payload []byte) wire.Frame {
	r.t.Helper()
	return r.reply(r.request(0, cmd, payload))
}

// signIn signs in with a dev-mode user ID and checks the reply.
func (r *rawClient) signIn(uid string) wire.SignInReply {
	r.t.Helper()
	req := wire.SignInRequest{MinVersion: 1, MaxVersion: 1, UserID: uid}
	f := r.call(wire.CmdSignIn, req.Append(nil))
	var rep wire.SignInReply
	if f.Status != wire.StatusOK || rep.Consume(f.Payload) != nil || rep.UserID != uid {
		r.t.Fatalf("sign-in as %s: status %v, reply %+v", uid, f.Status, rep)
	}
	return rep
}

// expectBye reads until the server's Bye push and then the close, and
// returns the Bye's status. Replies before it are skipped.
func (r *rawClient) expectBye() wire.Status {
	r.t.Helper()
	return r.expectByeMsg().Status
}

// expectByeMsg reads until a Bye push, checks that the connection closes
// after it, and returns the Bye.
func (r *rawClient) expectByeMsg() wire.Bye {
	r.t.Helper()
	for {
		f, err := r.next()
		if err != nil {
			r.t.Fatalf("connection ended (%v) without a Bye", err)
		}
		if f.Flags&wire.FlagPush != 0 && f.Cmd == wire.CmdBye {
			var bye wire.Bye
			if err := bye.Consume(f.Payload); err != nil {
				r.t.Fatalf("bad Bye: %v", err)
			}
			r.expectClosed()
			return bye
		}
	}
}

// expectClosed reads until the server closes the connection. KCP has no
// close on the wire (kcp-go never notices a peer going away), so there the
// Bye push is the only sign and this returns at once.
func (r *rawClient) expectClosed() {
	r.t.Helper()
	if r.network == "kcp" {
		return
	}
	for {
		_, err := r.next()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			r.t.Fatal("the server did not close the connection")
		}
		return
	}
}

func discardLogger() *slog.Logger {
	if os.Getenv("COVEY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
