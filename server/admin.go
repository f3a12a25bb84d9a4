package server

import (
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	"slices"
	"strings"

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
//	/debug/pprof/   Go profiles, only with Config.Pprof; cmdline with the
//	                secrets redacted
func (s *Server) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	if s.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", s.cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	s.handleHealth(mux)
	return mux
}

// cmdline serves /debug/pprof/cmdline as pprof.Cmdline does (the
// process's arguments, NUL-separated), with the secrets redacted
// (redactArgs): the configuration's Secret, APIKey and Cluster.Secret
// wherever they appear, and the value of every flag named like a secret.
func (s *Server) cmdline(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	args := redactArgs(os.Args, s.cfg.Secret, s.cfg.APIKey, s.cfg.Cluster.Secret)
	io.WriteString(w, strings.Join(args, "\x00"))
}

// redacted replaces a secret in what the admin listener shows.
const redacted = "REDACTED"

// redactArgs returns a copy of args (a command line, the program first) in
// which every occurrence of one of secrets is redacted, and so is the
// value of every flag whose name says it holds a secret (secretFlagName):
// "-secret=V", "--api-key=V", and the argument after "-secret". It
// redacts too much rather than too little: a bool flag so named would
// take the next argument with it.
func redactArgs(args []string, secrets ...string) []string {
	secrets = slices.DeleteFunc(slices.Clone(secrets), func(s string) bool { return s == "" })
	// Longest first: a secret may contain another.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	out := make([]string, len(args))
	valueNext := false
	for i, a := range args {
		if valueNext {
			out[i], valueNext = redacted, false
			continue
		}
		for _, secret := range secrets {
			a = strings.ReplaceAll(a, secret, redacted)
		}
		if name, ok := strings.CutPrefix(a, "-"); i > 0 && ok {
			name, _, hasValue := strings.Cut(strings.TrimPrefix(name, "-"), "=")
			switch {
			case !secretFlagName(name):
			case hasValue:
				a = a[:strings.IndexByte(a, '=')+1] + redacted
			default:
				valueNext = true
			}
		}
		out[i] = a
	}
	return out
}

// secretFlagName reports whether a flag of that name (without its dashes)
// may hold a secret: cmd/server's -secret, -api-key and -cluster-secret,
// and the like in a program that embeds the server.
func secretFlagName(name string) bool {
	name = strings.ToLower(name)
	for _, w := range [...]string{"secret", "key", "password", "passwd", "token", "credential"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}
