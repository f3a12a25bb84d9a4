package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coveyhq/covey/clientsdk"
	"github.com/coveyhq/covey/netio"
	"github.com/coveyhq/covey/wire"
)

// TestBinary builds the server, runs it as a real process with no flags
// (ports moved to kernel-chosen ones through the environment), plays a
// little through the SDK on both transports, then sends SIGTERM: connected
// clients are told why and the process exits cleanly within 10 s.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "covey-server")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), "COVEY_TCP_ADDR=127.0.0.1:0", "COVEY_KCP_ADDR=127.0.0.1:0", "COVEY_HTTP_ADDR=127.0.0.1:0")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	// Wait for the listening lines and read the addresses from them.
	lines := bufio.NewScanner(stderr)
	listening := regexp.MustCompile(`msg=listening listener=(tcp|kcp) addr=(\S+)`)
	var tcpAddr, kcpAddr string
	devWarned := false
	for (tcpAddr == "" || kcpAddr == "") && lines.Scan() {
		line := lines.Text()
		if regexp.MustCompile(`DEV MODE`).MatchString(line) {
			devWarned = true
		}
		if m := listening.FindStringSubmatch(line); m != nil && m[1] == "tcp" {
			tcpAddr = m[2]
		} else if m != nil {
			kcpAddr = m[2]
		}
	}
	if tcpAddr == "" || kcpAddr == "" {
		t.Fatal("the server never said it was listening")
	}
	if !devWarned {
		t.Fatal("dev mode was not announced")
	}
	go func() { // keep draining the logs
		for lines.Scan() {
		}
	}()

	a, err := clientsdk.Dial(ctx, clientsdk.Config{Network: "tcp", Addr: tcpAddr, UserID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := clientsdk.Dial(ctx, clientsdk.Config{Network: "kcp", Addr: kcpAddr, UserID: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	id, err := a.Create(ctx, 1, 4, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Join(ctx, 1, id); err != nil {
		t.Fatal(err)
	}
	if err := b.Broadcast(ctx, 1, []byte("over kcp")); err != nil {
		t.Fatal(err)
	}
	for ev := range a.Events() {
		if e, ok := ev.(clientsdk.BroadcastReceived); ok && string(e.Msg) == "over kcp" {
			break
		}
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*clientsdk.Client{a, b} {
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatal("a client was not disconnected at shutdown")
		}
		var bye *clientsdk.ByeError
		if !asBye(c.Err(), &bye) || bye.Status != wire.StatusShuttingDown {
			t.Fatalf("client ended with %v, want a Bye with StatusShuttingDown", c.Err())
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("server exit: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("shutdown took %v", took)
	}
}

func asBye(err error, target **clientsdk.ByeError) bool { return errors.As(err, target) }

// env returns a lookupEnv over vars ("KEY=value" each).
func env(vars ...string) func(string) (string, bool) {
	m := make(map[string]string)
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// TestMaxConnsFlag checks how -max-conns and COVEY_MAX_CONNS reach the
// server's configuration.
func TestMaxConnsFlag(t *testing.T) {
	cfg, err := parseConfig(nil, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxConns != netio.DefaultMaxConns {
		t.Errorf("default MaxConns = %d, want %d", cfg.MaxConns, netio.DefaultMaxConns)
	}
	if cfg, err = parseConfig(nil, env("COVEY_MAX_CONNS=500"), io.Discard); err != nil || cfg.MaxConns != 500 {
		t.Errorf("COVEY_MAX_CONNS=500: MaxConns = %d (%v)", cfg.MaxConns, err)
	}
	if cfg, err = parseConfig([]string{"-max-conns", "7"}, env("COVEY_MAX_CONNS=500"), io.Discard); err != nil || cfg.MaxConns != 7 {
		t.Errorf("-max-conns 7 (env 500): MaxConns = %d (%v)", cfg.MaxConns, err)
	}
}

// TestPreAuthTimeoutFlag checks how -preauth-timeout and
// COVEY_PREAUTH_TIMEOUT reach the server's configuration, and what -h
// says of it.
func TestPreAuthTimeoutFlag(t *testing.T) {
	cfg, err := parseConfig(nil, env(), io.Discard)
	if err != nil || cfg.PreAuthTimeout != netio.DefaultPreAuthTimeout || netio.DefaultPreAuthTimeout != 5*time.Second {
		t.Errorf("default PreAuthTimeout = %v (%v), want 5s", cfg.PreAuthTimeout, err)
	}
	if cfg, err = parseConfig(nil, env("COVEY_PREAUTH_TIMEOUT=2s"), io.Discard); err != nil || cfg.PreAuthTimeout != 2*time.Second {
		t.Errorf("COVEY_PREAUTH_TIMEOUT=2s: PreAuthTimeout = %v (%v)", cfg.PreAuthTimeout, err)
	}
	if cfg, err = parseConfig([]string{"-preauth-timeout", "750ms"}, env("COVEY_PREAUTH_TIMEOUT=2s"), io.Discard); err != nil || cfg.PreAuthTimeout != 750*time.Millisecond {
		t.Errorf("-preauth-timeout 750ms (env 2s): PreAuthTimeout = %v (%v)", cfg.PreAuthTimeout, err)
	}
	var stdout strings.Builder
	if code := run(process{args: []string{"-h"}, lookupEnv: env(), stdout: &stdout, stderr: io.Discard}); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	if !regexp.MustCompile(`(?m)^  -preauth-timeout D\s+COVEY_PREAUTH_TIMEOUT\s+.*not signed in.*\(default 5s\)$`).MatchString(stdout.String()) {
		t.Errorf("-h has no line for -preauth-timeout with its default 5s:\n%s", stdout.String())
	}
}

// TestBadEnvValueIsAnError: a variable that does not parse stops the
// start, and the error names the variable and the value (not a secret's).
func TestBadEnvValueIsAnError(t *testing.T) {
	for _, c := range []struct{ env, want string }{
		{"COVEY_MAX_PAYLOAD=abc", `COVEY_MAX_PAYLOAD="abc": not a number`},
		{"COVEY_MAX_PAYLOAD=99999999", `COVEY_MAX_PAYLOAD="99999999": must be 1 to 16777216`},
		{"COVEY_MAX_CONNS=-1", `COVEY_MAX_CONNS="-1": must be 1 to `},
		{"COVEY_MAX_OUTBOUND=1e6", `COVEY_MAX_OUTBOUND="1e6": not a number`},
		{"COVEY_HEARTBEAT=5", `COVEY_HEARTBEAT="5": not a duration`},
		{"COVEY_TOKEN_TTL=-1m", `COVEY_TOKEN_TTL="-1m": must be positive`},
		{"COVEY_KCP_INTERVAL=fast", `COVEY_KCP_INTERVAL="fast": not a duration`},
		{"COVEY_PREAUTH_TIMEOUT=0s", `COVEY_PREAUTH_TIMEOUT="0s": must be positive`},
		{"COVEY_NODE=node a", `COVEY_NODE="node a": must be 1 to 64 characters`},
		{"COVEY_TCP_ADDR=7700", `COVEY_TCP_ADDR="7700": missing port in address`},
		{"COVEY_LOG_LEVEL=verbose", `COVEY_LOG_LEVEL="verbose": must be debug, info, warn or error`},
		{"COVEY_LOG_FORMAT=xml", `COVEY_LOG_FORMAT="xml": must be text or json`},
		{"COVEY_PPROF=yes please", `COVEY_PPROF="yes please": must be 1, true or on, or 0, false or off`},
		{"COVEY_SECRET=hunter2", `COVEY_SECRET: auth: secret must be at least 16 bytes (got 7 bytes)`},
	} {
		_, err := parseConfig(nil, env(c.env), io.Discard)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %s...", c.env, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the secret is echoed: %v", err)
		}
	}
	// Through run: printed once with the hint, exit status 1.
	var stdout, stderr strings.Builder
	code := run(process{lookupEnv: env("COVEY_MAX_PAYLOAD=abc"), stdout: &stdout, stderr: &stderr})
	want := "covey: COVEY_MAX_PAYLOAD=\"abc\": not a number\n" + usageHint + "\n"
	if code != 1 || stderr.String() != want || stdout.Len() != 0 {
		t.Errorf("run = %d, stderr %q, want 1 and %q", code, stderr.String(), want)
	}
	// The flag wins over a bad variable, which then does not matter.
	if cfg, err := parseConfig([]string{"-max-payload", "1024"}, env("COVEY_MAX_PAYLOAD=abc"), io.Discard); err != nil || cfg.MaxPayload != 1024 {
		t.Errorf("-max-payload 1024 over COVEY_MAX_PAYLOAD=abc: %d, %v", cfg.MaxPayload, err)
	}
	// A bad flag value is named the same way.
	if _, err := parseConfig([]string{"-max-payload", "abc"}, env(), io.Discard); err == nil || err.Error() != `-max-payload="abc": not a number` {
		t.Errorf("-max-payload abc: %v", err)
	}
}

// TestPprofSwitch: COVEY_PPROF is off for 0, false and off, on for 1,
// true and on; the -pprof flag takes the same words.
func TestPprofSwitch(t *testing.T) {
	for v, want := range map[string]bool{"0": false, "false": false, "off": false, "OFF": false, "": false,
		"1": true, "true": true, "on": true, "True": true} {
		cfg, err := parseConfig(nil, env("COVEY_PPROF="+v), io.Discard)
		if err != nil || cfg.Pprof != want {
			t.Errorf("COVEY_PPROF=%q: Pprof = %v (%v), want %v", v, cfg.Pprof, err, want)
		}
	}
	for args, want := range map[string]bool{"-pprof": true, "-pprof=false": false, "-pprof=0": false, "-pprof=on": true} {
		cfg, err := parseConfig([]string{args}, env("COVEY_PPROF=1"), io.Discard)
		if err != nil || cfg.Pprof != want {
			t.Errorf("%s (COVEY_PPROF=1): Pprof = %v (%v), want %v", args, cfg.Pprof, err, want)
		}
	}
}

// TestHelpListsEveryFlag: -h prints, on stdout, one line per flag that
// names its variable, and exits 0; the package doc lists the same pairs.
func TestHelpListsEveryFlag(t *testing.T) {
	var stdout, stderr strings.Builder
	if code := run(process{args: []string{"-h"}, lookupEnv: env(), stdout: &stdout, stderr: &stderr}); code != 0 || stderr.Len() != 0 {
		t.Fatalf("-h: exit %d, stderr %q", code, stderr.String())
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(src[:strings.Index(string(src), "package main")])
	for _, o := range options {
		line := regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(o.name) + `\b.*\s` + o.env + `\b.*\(default .+\)$`)
		if !line.MatchString(stdout.String()) {
			t.Errorf("-h has no line for -%s with %s and its default", o.name, o.env)
		}
		if !regexp.MustCompile(`(?m)^//\s+-` + regexp.QuoteMeta(o.name) + `\b.*\s` + o.env + `\b`).MatchString(doc) {
			t.Errorf("the package doc has no line for -%s with %s", o.name, o.env)
		}
	}
	if n := strings.Count(stdout.String(), "\n  -"); n != len(options) {
		t.Errorf("-h lists %d flags, want %d:\n%s", n, len(options), stdout.String())
	}
}

// TestBadFlagPrintedOnce: an unknown flag is one error line and the hint,
// exit status 2.
func TestBadFlagPrintedOnce(t *testing.T) {
	var stdout, stderr strings.Builder
	code := run(process{args: []string{"-bogus"}, lookupEnv: env(), stdout: &stdout, stderr: &stderr})
	want := "covey: flag provided but not defined: -bogus\n" + usageHint + "\n"
	if code != 2 || stderr.String() != want || stdout.Len() != 0 {
		t.Errorf("-bogus: exit %d, stderr %q, stdout %q; want 2 and %q", code, stderr.String(), stdout.String(), want)
	}
}

// TestAddressInUse: a listener that cannot open is named, with its
// address and the reason, and nothing is left running.
func TestAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	for _, flagName := range []string{"-http", "-tcp"} {
		args := []string{"-tcp", "127.0.0.1:0", "-kcp", "127.0.0.1:0", "-http", "127.0.0.1:0", flagName, taken}
		var stderr syncBuffer
		code := run(process{args: args, lookupEnv: env(), stdout: io.Discard, stderr: &stderr})
		listener := strings.ToUpper(flagName[1:])
		want := "covey: server: " + listener + " listener " + taken + ": address already in use\n"
		if code != 1 || !strings.HasSuffix(stderr.String(), want) || strings.Count(stderr.String(), "covey:") != 1 {
			t.Errorf("%s %s: exit %d, stderr:\n%s\nwant it to end with %q", flagName, taken, code, stderr.String(), want)
		}
	}
}

// syncBuffer is a bytes.Buffer that the server's goroutines and the test
// may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestJSONLogs runs a node with -log-format json to its shutdown: every
// line is a JSON object, with the lifecycle lines (listening per listener,
// draining, stopped) at info level.
func TestJSONLogs(t *testing.T) {
	var stderr syncBuffer
	signals := make(chan os.Signal, 1)
	done := make(chan int)
	go func() {
		done <- run(process{
			args:      []string{"-log-format", "json", "-node", "n1"},
			lookupEnv: env("COVEY_TCP_ADDR=127.0.0.1:0", "COVEY_KCP_ADDR=127.0.0.1:0", "COVEY_HTTP_ADDR=127.0.0.1:0"),
			stdout:    io.Discard, stderr: &stderr, signals: signals,
		})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(stderr.String(), `"msg":"listening"`) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no listening lines:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	signals <- syscall.SIGTERM
	if code := <-done; code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}

	listeners := map[string]bool{}
	var msgs []string
	for _, line := range strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON line: %q (%v)", line, err)
		}
		msg, _ := rec["msg"].(string)
		msgs = append(msgs, msg)
		switch msg {
		case "listening":
			if rec["level"] != "INFO" || rec["node"] != "n1" || rec["mode"] != "dev" || rec["addr"] == "" {
				t.Errorf("listening line: %v", rec)
			}
			listeners[rec["listener"].(string)] = true
		case "draining":
			if rec["level"] != "INFO" || rec["reason"] != "SIGTERM" {
				t.Errorf("draining line: %v", rec)
			}
		case "stopped":
			if up, ok := rec["uptime"].(float64); rec["level"] != "INFO" || rec["reason"] != "SIGTERM" || !ok || up <= 0 {
				t.Errorf("stopped line: %v", rec)
			}
		}
	}
	if len(listeners) != 3 || !listeners["tcp"] || !listeners["kcp"] || !listeners["http"] {
		t.Errorf("listening lines for %v, want tcp, kcp and http", listeners)
	}
	if n := len(msgs); n < 2 || msgs[n-2] != "draining" || msgs[n-1] != "stopped" {
		t.Errorf("the log does not end with draining, stopped: %q", msgs)
	}
}
