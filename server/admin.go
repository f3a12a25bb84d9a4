package server

import (
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultAdminAddr is cmd/server's admin listener address. DefaultConfig
// leaves Config.AdminAddr empty (off), so that a program embedding the
// server opens no fixed port it did not ask for.
const DefaultAdminAddr = "127.0.0.1:7709"

// adminMux serves the admin HTTP API, for operators, Prometheus and
// probes, never for the internet:
//
//	GET  /metrics   Prometheus metrics
//	GET  /healthz   as on the public listener
//	GET  /readyz    as on the public listener
//	/debug/pprof/   Go profiles, only with Config.Pprof
func (s *Server) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	if s.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	s.handleHealth(mux)
	return mux
}
