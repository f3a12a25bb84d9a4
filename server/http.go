package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coveyhq/covey/auth"
)

// The node has two HTTP listeners. The public one (Config.HTTPAddr) is
// what game backends and the internet reach; the admin one
// (Config.AdminAddr, admin.go) is for operators, Prometheus and probes.
// Each has its own connection budget and timeouts (httpLimits), so that
// clients of one cannot starve the other, and within one, idle and slow
// clients cannot lock the others out for longer than the timeouts
// (connLimiter).

// publicMux serves the public HTTP API:
//
//	POST /v1/token  a game backend exchanges its API key and a user ID for a
//	                sign-in token (not in dev mode); bodies over
//	                tokenMaxBody are refused
//	GET  /healthz   200 while the process runs
//	GET  /readyz    200 while the node accepts new sessions, 503 when offline
//	                or, in a cluster, until every node it knows is linked
func (s *Server) publicMux() (*http.ServeMux, error) {
	mux := http.NewServeMux()
	if s.signer != nil {
		issuer, err := auth.NewIssuer(s.signer, auth.IssuerConfig{APIKey: s.cfg.APIKey, DefaultTTL: s.cfg.TokenTTL})
		if err != nil {
			return nil, err
		}
		mux.Handle("/v1/token", limitBody(tokenMaxBody, issuer))
	} else {
		mux.HandleFunc("/v1/token", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "dev mode: no tokens are issued; clients sign in with a user ID", http.StatusNotFound)
		})
	}
	s.handleHealth(mux)
	return mux, nil
}

// handleHealth adds /healthz and /readyz to mux; both listeners serve
// them, so that a probe may use either.
func (s *Server) handleHealth(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.table.Offline() {
			http.Error(w, "offline", http.StatusServiceUnavailable)
			return
		}
		if s.node != nil && !s.node.Ready() {
			http.Error(w, "joining the cluster", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
}

// httpLimits bound one HTTP listener: its connections, the time a client
// may take over a request, and the size of what it may send.
type httpLimits struct {
	// maxConns is the most connections open at once (see connLimiter).
	maxConns int
	// readHeaderTimeout, readTimeout, writeTimeout and idleTimeout are
	// http.Server's: the request's headers, the whole request, the
	// handler and the reply, and the wait for the next request of a
	// keep-alive connection.
	readHeaderTimeout, readTimeout, writeTimeout, idleTimeout time.Duration
	// maxHeaderBytes caps the request line and headers.
	maxHeaderBytes int
}

// The two listeners' bounds. Together they hold 128 connections (and one
// more each for a moment, see connLimiter), what netio's fdReserve sets
// aside for HTTP. The public listener's
// clients are game backends sending a few hundred bytes, hence short
// timeouts; the admin one allows a 30 s CPU profile (pprof's default, a
// profile must end within writeTimeout).
var (
	publicHTTPLimits = httpLimits{
		maxConns:          112,
		readHeaderTimeout: 3 * time.Second,
		readTimeout:       5 * time.Second,
		writeTimeout:      10 * time.Second,
		idleTimeout:       5 * time.Second,
		maxHeaderBytes:    8 << 10,
	}
	adminHTTPLimits = httpLimits{
		maxConns:          16,
		readHeaderTimeout: 5 * time.Second,
		readTimeout:       10 * time.Second,
		writeTimeout:      60 * time.Second,
		idleTimeout:       5 * time.Second,
		maxHeaderBytes:    8 << 10,
	}
)

// orLimits is lim, or def when lim is the zero value.
func orLimits(lim, def httpLimits) httpLimits {
	if lim == (httpLimits{}) {
		return def
	}
	return lim
}

// tokenMaxBody is the largest POST /v1/token body accepted, in bytes: a
// TokenRequest is a user ID and a number.
const tokenMaxBody = 4 << 10

// limitBody refuses a body larger than limit with 413, before reading it
// when the request declares its length, and closes the connection after.
func limitBody(limit int64, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			w.Header().Set("Connection", "close")
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		h.ServeHTTP(w, r)
	})
}

// httpListener is one running HTTP listener, public or admin.
type httpListener struct {
	srv   *http.Server
	ln    net.Listener
	conns *connLimiter  // ln, bounded
	done  chan struct{} // closed when Serve has returned
}

// listenHTTP opens addr and serves h on it within lim, from a goroutine
// that close waits for; kind ("http" or "admin") names it in errors and
// logs.
func listenHTTP(kind, addr string, h http.Handler, lim httpLimits, log *slog.Logger) (*httpListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &ListenError{Listener: kind, Addr: addr, Err: err}
	}
	limited := newConnLimiter(ln, lim.maxConns)
	l := &httpListener{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: lim.readHeaderTimeout,
			ReadTimeout:       lim.readTimeout,
			WriteTimeout:      lim.writeTimeout,
			IdleTimeout:       lim.idleTimeout,
			MaxHeaderBytes:    lim.maxHeaderBytes,
			ConnState:         limited.track,
		},
		ln: ln, conns: limited, done: make(chan struct{}),
	}
	go func() {
		defer close(l.done)
		if err := l.srv.Serve(limited); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http listener stopped", "listener", kind, "err", err)
		}
	}()
	return l, nil
}

// Addr is the bound address.
func (l *httpListener) Addr() net.Addr { return l.ln.Addr() }

// close stops accepting, lets requests in progress finish until ctx ends,
// then closes whatever is left, and returns once the serving goroutine has.
func (l *httpListener) close(ctx context.Context) {
	if err := l.srv.Shutdown(ctx); err != nil {
		l.srv.Close()
	}
	<-l.done
}

// closeNow is close for a listener that never served anyone (Start
// failing after it opened).
func (l *httpListener) closeNow() {
	l.srv.Close()
	<-l.done
}

// connLimiter is a listener that holds at most limit connections at once
// (one more for a moment), so that the HTTP side cannot take the descriptors
// netio keeps in reserve (netio's fdReserve), without letting idle or slow
// clients lock others out. At the limit, Accept still accepts while some
// connection is idle (a keep-alive between requests), and then closes the
// one idle the longest to make room; when none is idle, it waits for one
// to close or go idle, leaving new connections in the listen backlog. The
// http.Server's timeouts bound that wait: a connection is idle or closed
// within its ReadTimeout plus WriteTimeout, as long as handlers return
// within WriteTimeout (ours do; pprof refuses longer profiles). Its track
// method must be the http.Server's ConnState hook.
//
// Closing an idle connection races with a request arriving on it just
// then, as any server's closing of idle keep-alive connections does
// (IdleTimeout, http.Server.Shutdown): that request fails, and clients
// retry it if it is idempotent.
type connLimiter struct {
	net.Listener
	limit int

	mu    sync.Mutex
	conns map[*limitedConn]struct{} // open
	n     int                       // places taken: len(conns), plus one while Accept waits

	wake      chan struct{} // capacity 1: a connection closed or went idle
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

func newConnLimiter(ln net.Listener, limit int) *connLimiter {
	return &connLimiter{
		Listener: ln, limit: limit,
		conns: make(map[*limitedConn]struct{}, limit),
		wake:  make(chan struct{}, 1), done: make(chan struct{}),
	}
}

// limitedConn is a connection that gives its place back on Close.
type limitedConn struct {
	net.Conn
	l         *connLimiter
	idleSince time.Time // zero unless idle; l.mu
	closeOnce sync.Once
}

// Accept takes a place, accepts, and if that went over the limit closes
// the connection idle the longest. Called by http.Server.Serve's goroutine
// only.
func (l *connLimiter) Accept() (net.Conn, error) {
	if err := l.take(); err != nil {
		return nil, err
	}
	c, err := l.Listener.Accept()
	if err != nil {
		l.mu.Lock()
		l.n--
		l.mu.Unlock()
		return nil, err
	}
	lc := &limitedConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[lc] = struct{}{}
	var victim *limitedConn
	if l.n > l.limit {
		if victim = l.oldestIdle(); victim != nil {
			victim.idleSince = time.Time{}
		}
	}
	l.mu.Unlock()
	if victim != nil {
		victim.Close() // gives its place back
	}
	return lc, nil
}

// take waits until there is a free place, or an idle connection to close
// for one, and takes it; it fails once l is closed.
func (l *connLimiter) take() error {
	for {
		l.mu.Lock()
		if l.n < l.limit || l.n == l.limit && l.oldestIdle() != nil {
			l.n++
			l.mu.Unlock()
			return nil
		}
		l.mu.Unlock()
		select {
		case <-l.wake:
		case <-l.done:
			return net.ErrClosed
		}
	}
}

// oldestIdle returns the connection idle the longest, or nil if none is.
// l.mu must be held.
func (l *connLimiter) oldestIdle() *limitedConn {
	var oldest *limitedConn
	for c := range l.conns {
		if !c.idleSince.IsZero() && (oldest == nil || c.idleSince.Before(oldest.idleSince)) {
			oldest = c
		}
	}
	return oldest
}

// track is the http.Server's ConnState hook: it notes which connections
// are idle, and wakes a waiting Accept when one goes idle.
func (l *connLimiter) track(c net.Conn, state http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	if state == http.StateIdle {
		lc.idleSince = time.Now()
	} else {
		lc.idleSince = time.Time{}
	}
	l.mu.Unlock()
	if state == http.StateIdle {
		l.signal()
	}
}

// signal wakes a waiting Accept without blocking.
func (l *connLimiter) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// counts returns how many connections are open, and how many of them are
// idle. Any goroutine.
func (l *connLimiter) counts() (open, idle int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		if !c.idleSince.IsZero() {
			idle++
		}
	}
	return len(l.conns), idle
}

// Close stops Accept, waiting or not, and closes the listener; open
// connections are the http.Server's to close.
func (l *connLimiter) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Close closes the connection and gives its place back; any goroutine,
// any number of times.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		l := c.l
		l.mu.Lock()
		delete(l.conns, c)
		l.n--
		l.mu.Unlock()
		l.signal()
	})
	return err
}
