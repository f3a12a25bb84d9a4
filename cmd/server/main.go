// Command server runs a Covey node.
//
// With no flags it is a single dev-mode node on loopback: TCP and KCP on
// 127.0.0.1:7700, public HTTP on 127.0.0.1:7701, admin HTTP on
// 127.0.0.1:7709, players sign in with any user ID.
// Every flag can also be set by environment variable (the flag wins; an
// empty variable counts as unset, except for the addresses, where ""
// disables the listener):
//
//	-tcp ADDR           COVEY_TCP_ADDR       TCP listen address ("" disables)
//	-kcp ADDR           COVEY_KCP_ADDR       KCP (UDP) listen address ("" disables)
//	-http ADDR          COVEY_HTTP_ADDR      public HTTP listen address: /v1/token, /healthz, /readyz ("" disables)
//	-admin ADDR         COVEY_ADMIN_ADDR     admin HTTP listen address: /metrics, /healthz, /readyz, /debug/pprof/ ("" disables)
//	-secret S           COVEY_SECRET         token signing secret (>= 16 bytes); none = dev mode
//	-secret-file PATH   COVEY_SECRET_FILE    file holding the token signing secret
//	-api-key K          COVEY_API_KEY        key game backends present to POST /v1/token
//	-api-key-file PATH  COVEY_API_KEY_FILE   file holding the API key
//	-single-use-tokens  COVEY_SINGLE_USE_TOKENS=1 every token signs in once
//	-allow-plaintext    COVEY_ALLOW_PLAINTEXT=1  with a secret, accept unencrypted client connections too
//	-kcp-raw-segments   COVEY_KCP_RAW_SEGMENTS=1 bare kcp-go segments on the KCP port: no address validation, no encryption
//	-token-ttl D        COVEY_TOKEN_TTL      default token lifetime
//	-node NAME          COVEY_NODE           node name written into session IDs (1-64 of A-Z a-z 0-9 . _ -)
//	-mesh ADDR          COVEY_MESH_ADDR      cluster: TCP address of the links to other nodes ("" = single node)
//	-gossip ADDR        COVEY_GOSSIP_ADDR    cluster: membership address, UDP and TCP (with -mesh)
//	-join ADDRS         COVEY_JOIN           cluster: gossip host:port of nodes to join, comma-separated
//	-advertise-mesh A   COVEY_MESH_ADVERTISE   cluster: mesh address other nodes dial, if not the bound one
//	-advertise-gossip A COVEY_GOSSIP_ADVERTISE cluster: gossip address others reach, if not the bound one
//	-cluster-secret S   COVEY_CLUSTER_SECRET cluster: link and gossip secret (>= 16 bytes); none only on loopback
//	-cluster-secret-file PATH COVEY_CLUSTER_SECRET_FILE cluster: file holding the cluster secret
//	-heartbeat D        COVEY_HEARTBEAT      client ping interval; silent 3x this = disconnected
//	-max-payload N      COVEY_MAX_PAYLOAD    largest frame payload in bytes (at most 16 MiB)
//	-max-outbound N     COVEY_MAX_OUTBOUND   bytes queued per connection before it is a slow consumer
//	-max-conns N        COVEY_MAX_CONNS      most connections held, TCP and KCP together; more are refused
//	-event-loops N      COVEY_EVENT_LOOPS    TCP event loops (default one per CPU but one, at least 1)
//	-kcp-interval D     COVEY_KCP_INTERVAL   KCP update interval (20ms above ~5k KCP sessions)
//	-kcp-readers N      COVEY_KCP_READERS    UDP sockets and reader goroutines serving KCP (default 1; more: Linux)
//	-kcp-overload-wait D COVEY_KCP_OVERLOAD_WAIT KCP datagrams unread this long: refuse broadcasts with Overloaded (default 30ms; off: never)
//	-preauth-timeout D  COVEY_PREAUTH_TIMEOUT  sign-in deadline: a connection not signed in this long after connecting is closed
//	-log-level L        COVEY_LOG_LEVEL      debug, info, warn or error
//	-log-format F       COVEY_LOG_FORMAT     text (slog's key=value) or json (one object a line)
//	-no-limits          COVEY_NO_LIMITS=1    lift every rate and budget (load tests only)
//	-pprof              COVEY_PPROF=1        serve Go profiles under /debug/pprof/ on the admin listener (0/false/off, 1/true/on)
//
// Secrets are best given by variable or file: a flag's value is in the
// process list, which every user of the machine can read, so -secret,
// -api-key and -cluster-secret log a warning (the admin listener's
// /debug/pprof/cmdline redacts them). A file holds the secret alone, one
// trailing newline (LF or CRLF) dropped, as a mounted Kubernetes Secret
// does. A secret and its file are one setting: the flag wins over the
// variable, and giving both flags, or both variables, stops the server.
//
// A value that does not parse, in a flag or a variable, stops the server
// before it starts, with a message naming the flag or variable and the
// value (secrets are not echoed). A listener that cannot open says which
// one and why ("HTTP listener 127.0.0.1:7701: address already in use").
//
// The public HTTP listener serves, with a secret, POST /v1/token to game
// backends, and /healthz and /readyz; it may face the internet. The admin
// listener serves /metrics (Prometheus), /healthz, /readyz and, with
// -pprof, /debug/pprof/; it is for operators, Prometheus and probes, so it
// stays on loopback or a private network (in dev mode, loopback only).
// Both bound each client's headers (8 KiB), request, reply and idle time,
// and their connections (112 public, 16 admin; at the limit the connection
// idle the longest is closed for a new one); README.md gives the numbers.
// Among the metrics: covey_disconnects_total{reason},
// covey_signin_failures_total{reason}, covey_sessions_created_total,
// covey_sessions_deleted_total, covey_sessions_empty and
// covey_build_info{version,go_version,revision}; README.md lists them all.
//
// Lifecycle lines are logged at info level: "listening" once per listener
// (listener, addr, node, mode), "draining" when a signal starts the
// shutdown, "stopped" with the reason and the uptime. SIGINT or SIGTERM
// stops accepting, tells connected clients why, and exits within 10
// seconds.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/coveyhq/covey/auth"
	"github.com/coveyhq/covey/netio"
	"github.com/coveyhq/covey/server"
	"github.com/coveyhq/covey/session"
	"github.com/coveyhq/covey/wire"
)

const shutdownTimeout = 10 * time.Second

// usageHint follows every configuration error.
const usageHint = "run 'server -h' for the flags and their environment variables"

func main() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	os.Exit(run(process{
		args: os.Args[1:], lookupEnv: os.LookupEnv,
		stdout: os.Stdout, stderr: os.Stderr, signals: signals,
	}))
}

// process is what run takes from the process it runs in: main passes the
// real ones, tests their own.
type process struct {
	args      []string
	lookupEnv func(key string) (string, bool)
	stdout    io.Writer // -h
	stderr    io.Writer // logs and errors
	signals   <-chan os.Signal
}

// run starts a node as p asks, serves until a signal arrives on
// p.signals, shuts down and returns the exit code: 0, 1 for an error, 2
// for a command line that does not parse. Every error is printed once, to
// p.stderr.
func run(p process) int {
	cfg, err := parseConfig(p.args, p.lookupEnv, p.stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(p.stdout)
		return 0
	case err != nil:
		fmt.Fprintf(p.stderr, "covey: %v\n%s\n", err, usageHint)
		if errors.As(err, new(*cmdLineError)) {
			return 2
		}
		return 1
	}
	if err := serve(cfg, p.signals); err != nil {
		fmt.Fprintln(p.stderr, "covey:", err)
		return 1
	}
	return 0
}

// serve runs the node until a signal arrives, then drains it.
func serve(cfg server.Config, signals <-chan os.Signal) error {
	start := time.Now()
	srv, err := server.New(cfg)
	if err != nil {
		return explain(err, cfg)
	}
	if err := srv.Start(); err != nil {
		return err
	}
	reason := signalName(<-signals)
	log := cfg.Logger
	log.Info("draining", "reason", reason, "conns", srv.Conns(), "timeout", shutdownTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(ctx)
	uptime := time.Since(start).Round(time.Millisecond)
	if err != nil {
		log.Error("stopped", "reason", reason, "uptime", uptime, "err", err)
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped", "reason", reason, "uptime", uptime)
	return nil
}

func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// explain adds to the server's configuration errors the flags that cause
// them.
func explain(err error, cfg server.Config) error {
	switch {
	case errors.Is(err, server.ErrNoListener):
		return fmt.Errorf("%w: -tcp and -kcp (COVEY_TCP_ADDR, COVEY_KCP_ADDR) are both empty", err)
	case errors.Is(err, server.ErrNoAPIKey):
		return fmt.Errorf("%w: set COVEY_API_KEY (or COVEY_API_KEY_FILE) with the secret", err)
	case errors.Is(err, server.ErrClusterConfig):
		return fmt.Errorf("%w: set -gossip (COVEY_GOSSIP_ADDR) with -mesh", err)
	case errors.Is(err, server.ErrClusterSecret):
		return fmt.Errorf("%w: set COVEY_CLUSTER_SECRET (-mesh=%q -gossip=%q)", err, cfg.Cluster.MeshAddr, cfg.Cluster.GossipAddr)
	case errors.Is(err, server.ErrDevModeNotLoopback):
		return fmt.Errorf("%w (-tcp=%q -kcp=%q -http=%q -admin=%q)", err, cfg.TCPAddr, cfg.KCPAddr, cfg.HTTPAddr, cfg.AdminAddr)
	case errors.Is(err, server.ErrPprofNoAdmin):
		return fmt.Errorf("%w: set -admin (COVEY_ADMIN_ADDR) with -pprof", err)
	}
	return err
}

// settings is what the options set: the server's configuration and the
// logger's.
type settings struct {
	server.Config
	logLevel  slog.Level
	logFormat string // "text" or "json"
}

// option is one setting: a flag and the environment variable that sets the
// same thing when the flag is not given.
type option struct {
	name, env string
	arg       string // what the value is, for -h; "" for a switch
	usage     string
	secret    bool                              // never echo the value; warn when it is a flag
	sameAs    string                            // the option this one also sets, another way (-secret for -secret-file)
	keepEmpty bool                              // an empty variable is a value (""), not unset
	set       func(s *settings, v string) error // parses and checks v
	show      func(s *settings) string          // the value, for -h's defaults
}

// options lists every flag, in the order of -h and of the doc comment.
var options = []option{
	{name: "tcp", env: "COVEY_TCP_ADDR", arg: "ADDR", usage: `TCP listen address ("" disables)`, keepEmpty: true,
		set:  func(s *settings, v string) error { return setAddr(&s.TCPAddr, v) },
		show: func(s *settings) string { return s.TCPAddr }},
	{name: "kcp", env: "COVEY_KCP_ADDR", arg: "ADDR", usage: `KCP (UDP) listen address ("" disables)`, keepEmpty: true,
		set:  func(s *settings, v string) error { return setAddr(&s.KCPAddr, v) },
		show: func(s *settings) string { return s.KCPAddr }},
	{name: "http", env: "COVEY_HTTP_ADDR", arg: "ADDR", usage: `public HTTP listen address: /v1/token, /healthz, /readyz ("" disables)`, keepEmpty: true,
		set:  func(s *settings, v string) error { return setAddr(&s.HTTPAddr, v) },
		show: func(s *settings) string { return s.HTTPAddr }},
	{name: "admin", env: "COVEY_ADMIN_ADDR", arg: "ADDR", usage: `admin HTTP listen address: /metrics, /healthz, /readyz, /debug/pprof/; keep it private ("" disables)`, keepEmpty: true,
		set:  func(s *settings, v string) error { return setAddr(&s.AdminAddr, v) },
		show: func(s *settings) string { return s.AdminAddr }},
	{name: "secret", env: "COVEY_SECRET", arg: "S", usage: "token signing secret, >= 16 bytes (prefer the variable or -secret-file)", secret: true,
		set: setSecret, show: func(s *settings) string { return "none = dev mode" }},
	{name: "secret-file", env: "COVEY_SECRET_FILE", arg: "PATH", usage: "file holding the token signing secret", sameAs: "secret",
		set: fromFile(setSecret), show: func(s *settings) string { return "none" }},
	{name: "api-key", env: "COVEY_API_KEY", arg: "K", usage: "API key game backends present to POST /v1/token (prefer the variable or -api-key-file)", secret: true,
		set: setAPIKey, show: func(s *settings) string { return "none" }},
	{name: "api-key-file", env: "COVEY_API_KEY_FILE", arg: "PATH", usage: "file holding the API key", sameAs: "api-key",
		set: fromFile(setAPIKey), show: func(s *settings) string { return "none" }},
	{name: "single-use-tokens", env: "COVEY_SINGLE_USE_TOKENS", usage: "every token signs in once (0/false/off, 1/true/on)",
		set:  func(s *settings, v string) error { return setSwitch(&s.SingleUseTokens, v) },
		show: func(s *settings) string { return onOff(s.SingleUseTokens) }},
	{name: "allow-plaintext", env: "COVEY_ALLOW_PLAINTEXT", usage: "with a secret, accept unencrypted client connections too, as clients before encryption make them (0/false/off, 1/true/on)",
		set:  func(s *settings, v string) error { return setSwitch(&s.AllowPlaintext, v) },
		show: func(s *settings) string { return onOff(s.AllowPlaintext) }},
	{name: "kcp-raw-segments", env: "COVEY_KCP_RAW_SEGMENTS", usage: "serve bare kcp-go segments on the KCP port: no address validation, no encryption; trusted networks only (0/false/off, 1/true/on)",
		set:  func(s *settings, v string) error { return setSwitch(&s.KCPRawSegments, v) },
		show: func(s *settings) string { return onOff(s.KCPRawSegments) }},
	{name: "token-ttl", env: "COVEY_TOKEN_TTL", arg: "D", usage: "default token lifetime",
		set:  func(s *settings, v string) error { return setDuration(&s.TokenTTL, v) },
		show: func(s *settings) string { return s.TokenTTL.String() }},
	{name: "node", env: "COVEY_NODE", arg: "NAME", usage: "node name written into session IDs",
		set: func(s *settings, v string) error {
			if !session.ValidNodeName(v) {
				return fmt.Errorf("must be 1 to %d characters of A-Z a-z 0-9 . _ -", session.MaxNodeNameLen)
			}
			s.Node = v
			return nil
		},
		show: func(s *settings) string { return s.Node }},
	{name: "mesh", env: "COVEY_MESH_ADDR", arg: "ADDR", usage: `cluster: TCP address of the links to other nodes ("" = single node)`,
		set:  func(s *settings, v string) error { return setAddr(&s.Cluster.MeshAddr, v) },
		show: func(s *settings) string { return orNone(s.Cluster.MeshAddr, "none: a single node") }},
	{name: "gossip", env: "COVEY_GOSSIP_ADDR", arg: "ADDR", usage: "cluster: membership address, UDP and TCP (with -mesh)",
		set:  func(s *settings, v string) error { return setAddr(&s.Cluster.GossipAddr, v) },
		show: func(s *settings) string { return orNone(s.Cluster.GossipAddr, "none") }},
	{name: "join", env: "COVEY_JOIN", arg: "ADDRS", usage: "cluster: gossip addresses (host:port, comma-separated; DNS names resolved at each retry) of nodes to join",
		set: func(s *settings, v string) error {
			s.Cluster.Join = nil
			for _, a := range strings.Split(v, ",") {
				if a = strings.TrimSpace(a); a == "" {
					continue
				}
				if _, _, err := net.SplitHostPort(a); err != nil {
					return fmt.Errorf("%q is not host:port", a)
				}
				s.Cluster.Join = append(s.Cluster.Join, a)
			}
			return nil
		},
		show: func(s *settings) string { return orNone(strings.Join(s.Cluster.Join, ","), "none: start a cluster") }},
	{name: "advertise-mesh", env: "COVEY_MESH_ADVERTISE", arg: "ADDR", usage: "cluster: mesh address other nodes dial, if not the bound one",
		set:  func(s *settings, v string) error { return setAddr(&s.Cluster.MeshAdvertise, v) },
		show: func(s *settings) string { return orNone(s.Cluster.MeshAdvertise, "the bound address") }},
	{name: "advertise-gossip", env: "COVEY_GOSSIP_ADVERTISE", arg: "ADDR", usage: "cluster: gossip address other nodes reach, if not the bound one",
		set:  func(s *settings, v string) error { return setAddr(&s.Cluster.GossipAdvertise, v) },
		show: func(s *settings) string { return orNone(s.Cluster.GossipAdvertise, "the bound address") }},
	{name: "cluster-secret", env: "COVEY_CLUSTER_SECRET", arg: "S", usage: "cluster: secret of the links and gossip, >= 16 bytes (prefer the variable or -cluster-secret-file); none only on loopback", secret: true,
		set: setClusterSecret, show: func(s *settings) string { return "none" }},
	{name: "cluster-secret-file", env: "COVEY_CLUSTER_SECRET_FILE", arg: "PATH", usage: "cluster: file holding the cluster secret", sameAs: "cluster-secret",
		set: fromFile(setClusterSecret), show: func(s *settings) string { return "none" }},
	{name: "heartbeat", env: "COVEY_HEARTBEAT", arg: "D", usage: "client ping interval; silent 3x this = disconnected",
		set:  func(s *settings, v string) error { return setDuration(&s.Heartbeat, v) },
		show: func(s *settings) string { return s.Heartbeat.String() }},
	{name: "max-payload", env: "COVEY_MAX_PAYLOAD", arg: "N", usage: "largest frame payload, bytes",
		set: func(s *settings, v string) error {
			n, err := parseCount(v, wire.MaxMaxPayload)
			s.MaxPayload = uint32(n)
			return err
		},
		show: func(s *settings) string { return strconv.Itoa(int(s.MaxPayload)) }},
	{name: "max-outbound", env: "COVEY_MAX_OUTBOUND", arg: "N", usage: "bytes queued per connection before it is a slow consumer",
		set:  func(s *settings, v string) (err error) { s.MaxOutbound, err = parseCount(v, 1<<40); return err },
		show: func(s *settings) string { return strconv.Itoa(s.MaxOutbound) }},
	{name: "max-conns", env: "COVEY_MAX_CONNS", arg: "N", usage: "most connections held, TCP and KCP together (TCP also stays below the open-file limit); more are refused",
		set:  func(s *settings, v string) (err error) { s.MaxConns, err = parseCount(v, 1<<30); return err },
		show: func(s *settings) string { return strconv.Itoa(s.MaxConns) }},
	{name: "event-loops", env: "COVEY_EVENT_LOOPS", arg: "N", usage: "TCP event loops (several nodes sharing cores: 1 each)",
		set: func(s *settings, v string) (err error) { s.EventLoops, err = parseCount(v, 1024); return err },
		show: func(s *settings) string {
			if s.EventLoops == 0 {
				return strconv.Itoa(netio.DefaultEventLoops()) + " (one per CPU but one)"
			}
			return strconv.Itoa(s.EventLoops)
		}},
	{name: "kcp-interval", env: "COVEY_KCP_INTERVAL", arg: "D", usage: "KCP update interval (20ms above ~5k KCP sessions)",
		set:  func(s *settings, v string) error { return setDuration(&s.KCPInterval, v) },
		show: func(s *settings) string { return s.KCPInterval.String() }},
	{name: "kcp-readers", env: "COVEY_KCP_READERS", arg: "N", usage: "UDP sockets, each with its own reader goroutine, serving KCP on one port (SO_REUSEPORT, Linux): more use more cores",
		set:  func(s *settings, v string) (err error) { s.KCPReaders, err = parseCount(v, 64); return err },
		show: func(s *settings) string { return strconv.Itoa(max(s.KCPReaders, 1)) }},
	{name: "kcp-overload-wait", env: "COVEY_KCP_OVERLOAD_WAIT", arg: "D", usage: "KCP datagrams unread this long: refuse broadcasts and messages from KCP clients with Overloaded until caught up (off: never)",
		set: func(s *settings, v string) error {
			if v == "off" {
				s.KCPOverloadWait = -1
				return nil
			}
			return setDuration(&s.KCPOverloadWait, v)
		},
		show: func(s *settings) string {
			switch {
			case s.KCPOverloadWait < 0:
				return "off"
			case s.KCPOverloadWait == 0:
				return netio.DefaultKCPOverloadWait.String()
			}
			return s.KCPOverloadWait.String()
		}},
	{name: "preauth-timeout", env: "COVEY_PREAUTH_TIMEOUT", arg: "D", usage: "sign-in deadline: a connection not signed in this long after connecting is closed, whatever it sends",
		set:  func(s *settings, v string) error { return setDuration(&s.PreAuthTimeout, v) },
		show: func(s *settings) string { return s.PreAuthTimeout.String() }},
	{name: "log-level", env: "COVEY_LOG_LEVEL", arg: "L", usage: "debug, info, warn or error",
		set: func(s *settings, v string) error {
			switch strings.ToLower(v) {
			case "debug", "info", "warn", "error":
				return s.logLevel.UnmarshalText([]byte(v))
			}
			return errors.New("must be debug, info, warn or error")
		},
		show: func(s *settings) string { return strings.ToLower(s.logLevel.String()) }},
	{name: "log-format", env: "COVEY_LOG_FORMAT", arg: "F", usage: "text (key=value) or json (one object a line)",
		set: func(s *settings, v string) error {
			if v != "text" && v != "json" {
				return errors.New("must be text or json")
			}
			s.logFormat = v
			return nil
		},
		show: func(s *settings) string { return s.logFormat }},
	{name: "no-limits", env: "COVEY_NO_LIMITS", usage: "lift every per-connection and per-user rate and budget: for load tests only (0/false/off, 1/true/on)",
		set: func(s *settings, v string) error {
			switch strings.ToLower(v) {
			case "1", "true", "on":
				s.Limits = server.NoLimits()
			case "0", "false", "off":
				s.Limits = server.Limits{}
			default:
				return errors.New("must be 0/false/off or 1/true/on")
			}
			return nil
		},
		show: func(s *settings) string {
			if s.Limits == server.NoLimits() {
				return "on"
			}
			return "off"
		}},
	{name: "pprof", env: "COVEY_PPROF", usage: "serve Go profiles under /debug/pprof/ on the admin listener (0/false/off, 1/true/on)",
		set:  func(s *settings, v string) error { return setSwitch(&s.Pprof, v) },
		show: func(s *settings) string { return "off" }},
}

// setSwitch sets an on/off setting from 1, true or on, or 0, false or off
// (any case).
func setSwitch(dst *bool, v string) error {
	switch strings.ToLower(v) {
	case "1", "true", "on":
		*dst = true
	case "0", "false", "off":
		*dst = false
	default:
		return errors.New("must be 1, true or on, or 0, false or off")
	}
	return nil
}

// onOff shows an on/off setting.
func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// The setters of the secrets, for their flag and their file. Their errors
// never contain the value.
func setSecret(s *settings, v string) error {
	if _, err := auth.NewSigner([]byte(v)); err != nil {
		return fmt.Errorf("%w (got %d bytes)", err, len(v))
	}
	s.Secret = v
	return nil
}

func setAPIKey(s *settings, v string) error { s.APIKey = v; return nil }

func setClusterSecret(s *settings, v string) error {
	if len(v) < 16 {
		return fmt.Errorf("must be at least 16 bytes (got %d)", len(v))
	}
	s.Cluster.Secret = v
	return nil
}

// fromFile returns a setter that reads the value from the file its
// argument names, without one trailing newline, and passes it to set.
func fromFile(set func(s *settings, v string) error) func(s *settings, path string) error {
	return func(s *settings, path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				return pe.Err // the path is in the message already
			}
			return err
		}
		v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if v == "" {
			return errors.New("the file is empty")
		}
		return set(s, v)
	}
}

func defaultSettings() settings {
	s := settings{Config: server.DefaultConfig(), logLevel: slog.LevelInfo, logFormat: "text"}
	s.AdminAddr = server.DefaultAdminAddr
	return s
}

// orNone is v, or none when v is empty (for -h's defaults).
func orNone(v, none string) string {
	if v == "" {
		return none
	}
	return v
}

func setAddr(dst *string, v string) error {
	if v != "" {
		if _, _, err := net.SplitHostPort(v); err != nil {
			var ae *net.AddrError
			if errors.As(err, &ae) {
				return errors.New(ae.Err)
			}
			return err
		}
	}
	*dst = v
	return nil
}

func setDuration(dst *time.Duration, v string) error {
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return errors.New("not a duration (such as 500ms, 5s, 2m)")
	case d <= 0:
		return errors.New("must be positive")
	}
	*dst = d
	return nil
}

// parseCount parses a number from 1 to limit.
func parseCount(v string, limit int) (int, error) {
	n, err := strconv.Atoi(v)
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("must be 1 to %d", limit)
	case err != nil:
		return 0, errors.New("not a number")
	case n < 1 || n > limit:
		return 0, fmt.Errorf("must be 1 to %d", limit)
	}
	return n, nil
}

// cmdLineError is a command line that does not parse (an unknown flag, a
// flag without its value): the flag package's message.
type cmdLineError struct{ err error }

func (e *cmdLineError) Error() string { return e.err.Error() }
func (e *cmdLineError) Unwrap() error { return e.err }

// rawFlag holds a flag's text until parseConfig checks it.
type rawFlag struct {
	v      string
	isBool bool
}

func (f *rawFlag) String() string     { return f.v }
func (f *rawFlag) Set(v string) error { f.v = v; return nil }
func (f *rawFlag) IsBoolFlag() bool   { return f.isBool }

// parseConfig returns the configuration that the flags in args and the
// environment variables (read with lookupEnv) ask for, with a logger
// writing to logs; flag.ErrHelp for -h. Each value is checked where it
// was given: the error names the flag or the variable and the value.
func parseConfig(args []string, lookupEnv func(string) (string, bool), logs io.Writer) (server.Config, error) {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run prints the error once, -h prints the usage
	fs.Usage = func() {}
	raw := make([]rawFlag, len(options))
	for i, o := range options {
		raw[i].isBool = o.arg == ""
		fs.Var(&raw[i], o.name, o.usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return server.Config{}, err
		}
		return server.Config{}, &cmdLineError{err}
	}
	if fs.NArg() > 0 {
		return server.Config{}, &cmdLineError{fmt.Errorf("unexpected argument %q (every setting is a flag)", fs.Arg(0))}
	}
	given := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	// Where each option's value comes from: its flag, else its variable.
	type source struct {
		where, v string
		flag, ok bool
	}
	src := make([]source, len(options))
	for i, o := range options {
		if given[o.name] {
			src[i] = source{where: "-" + o.name, v: raw[i].v, flag: true, ok: true}
		} else if ev, ok := lookupEnv(o.env); ok && (ev != "" || o.keepEmpty) {
			src[i] = source{where: o.env, v: ev, ok: true}
		}
	}
	// A setting given two ways (-secret and -secret-file): a flag wins
	// over a variable; two flags or two variables are an error.
	for i, o := range options {
		if o.sameAs == "" || !src[i].ok {
			continue
		}
		j := slices.IndexFunc(options, func(p option) bool { return p.name == o.sameAs })
		switch {
		case !src[j].ok:
		case src[i].flag == src[j].flag:
			return server.Config{}, fmt.Errorf("%s and %s set the same thing: give one of them", src[j].where, src[i].where)
		case src[i].flag:
			src[j].ok = false
		default:
			src[i].ok = false
		}
	}

	s := defaultSettings()
	var onCmdLine []option // secrets given as flags
	for i, o := range options {
		if !src[i].ok {
			continue
		}
		if err := o.set(&s, src[i].v); err != nil {
			if o.secret {
				return server.Config{}, fmt.Errorf("%s: %v", src[i].where, err)
			}
			return server.Config{}, fmt.Errorf("%s=%q: %v", src[i].where, src[i].v, err)
		}
		if o.secret && src[i].flag {
			onCmdLine = append(onCmdLine, o)
		}
	}
	opts := &slog.HandlerOptions{Level: s.logLevel}
	if s.logFormat == "json" {
		s.Logger = slog.New(slog.NewJSONHandler(logs, opts))
	} else {
		s.Logger = slog.New(slog.NewTextHandler(logs, opts))
	}
	for _, o := range onCmdLine {
		s.Logger.Warn("secret on the command line: every user of this machine can read it in the process list",
			"flag", "-"+o.name, "instead", o.env+" or -"+o.name+"-file")
	}
	return s.Config, nil
}

// printUsage writes -h: every flag with its variable, what it sets and its
// default.
func printUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: server [flags]

Runs a Covey node; with no flags, a dev-mode node on loopback (players sign in
with any user ID they claim). Each flag can also be set by the environment
variable beside it; the flag wins. An empty variable counts as unset, except
for the addresses, where "" disables the listener.

`)
	def := defaultSettings()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, o := range options {
		name, env := "-"+o.name, o.env
		if o.arg != "" {
			name += " " + o.arg
		} else {
			env += "=1"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s (default %s)\n", name, env, o.usage, o.show(&def))
	}
	tw.Flush()
	fmt.Fprint(w, `
Durations are like 500ms, 5s, 2m. With a secret, an API key is required too.
A secret given as a flag is in the process list, where every user of the
machine can read it (the server warns): give it by variable or file instead.
A file holds the value alone; one trailing newline is dropped.
`)
}
