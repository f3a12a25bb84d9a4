package server

import (
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/coveyhq/covey/auth"
)

const httpHeaderTimeout = 5 * time.Second

// HTTP connection bounds: at most httpMaxConns at once (more wait in the
// listen backlog), and idle keep-alive connections closed after
// httpIdleTimeout.
const (
	httpMaxConns    = 128
	httpIdleTimeout = 60 * time.Second
)

// httpMux serves the HTTP API:
//
//	POST /v1/token  a game backend exchanges its API key and a user ID for a
//	                sign-in token (not in dev mode)
//	GET  /healthz   200 while the process runs
//	GET  /readyz    200 while the node accepts new sessions, 503 when offline
//	                or, in a cluster, until every node it knows is linked
//	GET  /metrics   Prometheus metrics
//	/debug/pprof/   Go profiles, only with Config.Pprof
func (s *Server) httpMux() (*http.ServeMux, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	if s.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
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
	return mux, nil
}
