// Command server runs a Covey node.
//
// With no flags it is a single dev-mode node on loopback: TCP and KCP on
// 127.0.0.1:7700, HTTP on 127.0.0.1:7701, players sign in with any user ID.
// Every flag can also be set by environment variable (the flag wins):
//
//	-tcp ADDR           COVEY_TCP_ADDR       TCP listen address ("" disables)
//	-kcp ADDR           COVEY_KCP_ADDR       KCP (UDP) listen address ("" disables)
//	-http ADDR          COVEY_HTTP_ADDR      HTTP listen address ("" disables)
//	-secret S           COVEY_SECRET         token signing secret (>= 16 bytes); none = dev mode
//	-api-key K          COVEY_API_KEY        key game backends present to POST /v1/token
//	-token-ttl D        COVEY_TOKEN_TTL      default token lifetime
//	-node NAME          COVEY_NODE           node name written into session IDs
//	-heartbeat D        COVEY_HEARTBEAT      client ping interval; silent 3x this = disconnected
//	-max-payload N      COVEY_MAX_PAYLOAD    largest frame payload in bytes
//	-max-outbound N     COVEY_MAX_OUTBOUND   bytes queued per connection before it is a slow consumer
//	-max-conns N        COVEY_MAX_CONNS      most connections held, TCP and KCP together; more are refused
//	-kcp-interval D     COVEY_KCP_INTERVAL   KCP update interval (20ms above ~5k KCP sessions)
//	-log-level L        COVEY_LOG_LEVEL      debug, info, warn or error
//	-pprof              COVEY_PPROF=1        serve Go profiles under /debug/pprof/ on HTTP
//
// The HTTP listener also serves /metrics (Prometheus), /healthz, /readyz
// and, with a secret, POST /v1/token.
//
// SIGINT or SIGTERM stops accepting, tells connected clients why, and exits
// within 10 seconds.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/coveyhq/covey/server"
)

const shutdownTimeout = 10 * time.Second

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "covey:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg, err := parseConfig(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	cfg.Logger.Info("shutting down", "timeout", shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return srv.Shutdown(sctx)
}

// parseConfig returns the configuration the flags and environment
// variables ask for (flag.ErrHelp for -h).
func parseConfig(args []string) (server.Config, error) {
	cfg := server.DefaultConfig()
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.StringVar(&cfg.TCPAddr, "tcp", env("COVEY_TCP_ADDR", cfg.TCPAddr), "TCP listen address (\"\" disables)")
	fs.StringVar(&cfg.KCPAddr, "kcp", env("COVEY_KCP_ADDR", cfg.KCPAddr), "KCP (UDP) listen address (\"\" disables)")
	fs.StringVar(&cfg.HTTPAddr, "http", env("COVEY_HTTP_ADDR", cfg.HTTPAddr), "HTTP listen address (\"\" disables)")
	fs.StringVar(&cfg.Secret, "secret", env("COVEY_SECRET", ""), "token signing secret, >= 16 bytes (prefer the env var); empty = dev mode")
	fs.StringVar(&cfg.APIKey, "api-key", env("COVEY_API_KEY", ""), "API key for POST /v1/token (prefer the env var)")
	fs.StringVar(&cfg.Node, "node", env("COVEY_NODE", cfg.Node), "node name written into session IDs")
	fs.DurationVar(&cfg.TokenTTL, "token-ttl", envDuration("COVEY_TOKEN_TTL", cfg.TokenTTL), "default token lifetime")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", envDuration("COVEY_HEARTBEAT", cfg.Heartbeat), "client ping interval")
	fs.DurationVar(&cfg.KCPInterval, "kcp-interval", envDuration("COVEY_KCP_INTERVAL", cfg.KCPInterval), "KCP update interval")
	maxPayload := fs.Uint("max-payload", uint(envInt("COVEY_MAX_PAYLOAD", int(cfg.MaxPayload))), "largest frame payload, bytes")
	fs.IntVar(&cfg.MaxOutbound, "max-outbound", envInt("COVEY_MAX_OUTBOUND", cfg.MaxOutbound), "bytes queued per connection before disconnecting it")
	fs.IntVar(&cfg.MaxConns, "max-conns", envInt("COVEY_MAX_CONNS", cfg.MaxConns), "most connections held, TCP and KCP together (TCP also stays below the open-file limit); more are refused")
	fs.BoolVar(&cfg.Pprof, "pprof", env("COVEY_PPROF", "") != "", "serve Go profiles under /debug/pprof/ on the HTTP listener")
	logLevel := fs.String("log-level", env("COVEY_LOG_LEVEL", "info"), "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	cfg.MaxPayload = uint32(min(*maxPayload, 1<<32-1))

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return cfg, fmt.Errorf("bad -log-level %q", *logLevel)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	return cfg, nil
}

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(key); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
		fmt.Fprintf(os.Stderr, "covey: ignoring %s=%q: not a duration\n", key, v)
	}
	return def
}

func envInt(key string, def int) int {
	if v, ok := os.LookupEnv(key); ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
		fmt.Fprintf(os.Stderr, "covey: ignoring %s=%q: not an integer\n", key, v)
	}
	return def
}
