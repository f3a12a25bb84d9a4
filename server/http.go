package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"

	"github.com/coveyhq/covey/auth"
)

// The node has two HTTP listeners. The public one (Config.HTTPAddr) is
// what game backends and the internet reach; the admin one
// (Config.AdminAddr, admin.go) is for operators, Prometheus and probes.
// Each has its own connection budget and timeouts (httpLimits), so that
// clients of one cannot starve the other.

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
		mux.Handle("/v1/token", issuer)
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

const httpHeaderTimeout = 5 * time.Second

// HTTP connection bounds: at most httpMaxConns at once, both listeners
// together (more wait in the listen backlog), and idle keep-alive
// connections closed after httpIdleTimeout.
const (
	httpMaxConns    = 128
	httpIdleTimeout = 60 * time.Second
)

// httpListener is one running HTTP listener, public or admin.
type httpListener struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{} // closed when Serve has returned
}

// listenHTTP opens addr and serves h on it from a goroutine that close
// waits for; kind ("http" or "admin") names it in errors and logs.
func listenHTTP(kind, addr string, h http.Handler, log *slog.Logger) (*httpListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &ListenError{Listener: kind, Addr: addr, Err: err}
	}
	l := &httpListener{
		srv: &http.Server{Handler: h, ReadHeaderTimeout: httpHeaderTimeout, IdleTimeout: httpIdleTimeout},
		ln:  ln, done: make(chan struct{}),
	}
	// The HTTP side is bounded so that it cannot take the descriptors
	// netio keeps in reserve for itself (netio's fdReserve).
	limited := netutil.LimitListener(ln, httpMaxConns/2)
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
