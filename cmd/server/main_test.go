package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
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
	bin := buildServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), "COVEY_TCP_ADDR=127.0.0.1:0", "COVEY_KCP_ADDR=127.0.0.1:0", "COVEY_HTTP_ADDR=127.0.0.1:0",
		"COVEY_ADMIN_ADDR=127.0.0.1:0")
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

// buildServer builds the server into a temporary directory and returns
// the binary's path.
func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "covey-server")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestPprofCmdlineHidesSecrets runs the binary with -pprof and the secret,
// the API key and the cluster secret on its command line:
// /debug/pprof/cmdline on the admin listener shows none of them.
func TestPprofCmdlineHidesSecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const secret, apiKey, clusterSecret = "cmdline-secret-0123456789", "cmdline-api-key", "cmdline-cluster-secret-0123"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildServer(t), "-pprof", "-secret", secret, "-api-key="+apiKey,
		"-cluster-secret", clusterSecret, "-mesh", "127.0.0.1:0", "-gossip", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "COVEY_TCP_ADDR=127.0.0.1:0", "COVEY_KCP_ADDR=127.0.0.1:0", "COVEY_HTTP_ADDR=127.0.0.1:0",
		"COVEY_ADMIN_ADDR=127.0.0.1:0")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stderr)
	listening := regexp.MustCompile(`msg=listening listener=admin addr=(\S+)`)
	admin := ""
	for admin == "" && lines.Scan() {
		if m := listening.FindStringSubmatch(lines.Text()); m != nil {
			admin = m[1]
		}
	}
	if admin == "" {
		t.Fatal("the server never said it was listening on the admin address")
	}
	go func() { // keep draining the logs
		for lines.Scan() {
		}
	}()
	resp, err := http.Get("http://" + admin + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "-pprof\x00-secret\x00REDACTED\x00") {
		t.Errorf("cmdline: %d %q", resp.StatusCode, body)
	}
	for _, s := range []string{secret, apiKey, clusterSecret} {
		if strings.Contains(string(body), s) {
			t.Errorf("cmdline shows %q: %q", s, body)
		}
	}
}

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

// TestAdminFlag: the admin listener is on 127.0.0.1:7709 by default, moved
// by -admin or COVEY_ADMIN_ADDR and turned off by an empty one; -pprof
// without it stops the start.
func TestAdminFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  []string
		want string
	}{
		{nil, nil, "127.0.0.1:7709"},
		{nil, []string{"COVEY_ADMIN_ADDR=127.0.0.1:9000"}, "127.0.0.1:9000"},
		{nil, []string{"COVEY_ADMIN_ADDR="}, ""},
		{[]string{"-admin", "127.0.0.1:9001"}, []string{"COVEY_ADMIN_ADDR="}, "127.0.0.1:9001"},
		{[]string{"-admin="}, nil, ""},
	} {
		cfg, err := parseConfig(c.args, env(c.env...), io.Discard)
		if err != nil || cfg.AdminAddr != c.want {
			t.Errorf("%q %q: AdminAddr = %q (%v), want %q", c.args, c.env, cfg.AdminAddr, err, c.want)
		}
	}
	var stderr strings.Builder
	code := run(process{args: []string{"-pprof", "-admin="}, lookupEnv: env(), stdout: io.Discard, stderr: &stderr})
	if want := "-pprof"; code != 1 || !strings.Contains(stderr.String(), "set -admin (COVEY_ADMIN_ADDR) with "+want) {
		t.Errorf("-pprof -admin=: exit %d, stderr %q", code, stderr.String())
	}
}

// TestSecretsFromFiles: each secret can be read from a file, named by a
// flag or a variable, without its trailing newline.
func TestSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	secret := file("secret", "file-secret-0123456789\n")
	apiKey := file("api-key", "file-api-key\r\n")
	cluster := file("cluster", "file-cluster-secret-0123")
	for _, c := range []struct {
		args, env []string
	}{
		{[]string{"-secret-file", secret, "-api-key-file", apiKey, "-cluster-secret-file=" + cluster}, nil},
		{nil, []string{"COVEY_SECRET_FILE=" + secret, "COVEY_API_KEY_FILE=" + apiKey, "COVEY_CLUSTER_SECRET_FILE=" + cluster}},
		// The flag wins over the variable, the file's flag too.
		{[]string{"-secret-file", secret, "-api-key-file", apiKey, "-cluster-secret-file", cluster},
			[]string{"COVEY_SECRET=env-secret-0123456789", "COVEY_API_KEY=env-key", "COVEY_CLUSTER_SECRET=env-cluster-0123456789"}},
	} {
		cfg, err := parseConfig(c.args, env(c.env...), io.Discard)
		if err != nil || cfg.Secret != "file-secret-0123456789" || cfg.APIKey != "file-api-key" || cfg.Cluster.Secret != "file-cluster-secret-0123" {
			t.Errorf("%q %q: %q %q %q (%v)", c.args, c.env, cfg.Secret, cfg.APIKey, cfg.Cluster.Secret, err)
		}
	}
	if cfg, err := parseConfig([]string{"-secret", "flag-secret-0123456789"}, env("COVEY_SECRET_FILE="+secret), io.Discard); err != nil || cfg.Secret != "flag-secret-0123456789" {
		t.Errorf("-secret over COVEY_SECRET_FILE: %q (%v)", cfg.Secret, err)
	}
}

// TestSecretFileErrors: a secret given twice the same way, a file that
// cannot be read, is empty or holds a bad value stop the start, naming
// the flag or variable and the path, never the content.
func TestSecretFileErrors(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	empty := filepath.Join(dir, "empty")
	must(t, os.WriteFile(short, []byte("hunter2\n"), 0o600))
	must(t, os.WriteFile(empty, []byte("\n"), 0o600))
	missing := filepath.Join(dir, "missing")
	for _, c := range []struct {
		args, env []string
		want      string
	}{
		{[]string{"-secret", "flag-secret-0123456789", "-secret-file", short}, nil, "-secret and -secret-file set the same thing: give one of them"},
		{nil, []string{"COVEY_API_KEY=k", "COVEY_API_KEY_FILE=" + short}, "COVEY_API_KEY and COVEY_API_KEY_FILE set the same thing: give one of them"},
		{[]string{"-secret-file", short}, nil, `-secret-file="` + short + `": auth: secret must be at least 16 bytes (got 7 bytes)`},
		{nil, []string{"COVEY_CLUSTER_SECRET_FILE=" + short}, `COVEY_CLUSTER_SECRET_FILE="` + short + `": must be at least 16 bytes (got 7)`},
		{[]string{"-api-key-file", empty}, nil, `-api-key-file="` + empty + `": the file is empty`},
		{[]string{"-api-key-file", missing}, nil, `-api-key-file="` + missing + `": no such file or directory`},
	} {
		_, err := parseConfig(c.args, env(c.env...), io.Discard)
		if err == nil || err.Error() != c.want {
			t.Errorf("%q %q: %v, want %s", c.args, c.env, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the secret is echoed: %v", err)
		}
	}
}

// TestSecretFlagWarns: a secret given as a flag is logged as a warning
// (the flag's name, never the value); by variable or file it is not.
func TestSecretFlagWarns(t *testing.T) {
	var logs strings.Builder
	_, err := parseConfig([]string{"-secret", "flag-secret-0123456789", "-api-key=flag-key", "-cluster-secret", "flag-cluster-0123456789"}, env(), &logs)
	must(t, err)
	for _, name := range []string{"secret", "api-key", "cluster-secret"} {
		if !regexp.MustCompile(`level=WARN msg="secret on the command line[^"]*" flag=-` + name + ` instead="COVEY_\S+ or -` + name + `-file"`).MatchString(logs.String()) {
			t.Errorf("no warning for -%s:\n%s", name, logs.String())
		}
	}
	if strings.Contains(logs.String(), "flag-") {
		t.Errorf("a secret is logged:\n%s", logs.String())
	}
	logs.Reset()
	path := filepath.Join(t.TempDir(), "key")
	must(t, os.WriteFile(path, []byte("file-key"), 0o600))
	_, err = parseConfig([]string{"-api-key-file", path}, env("COVEY_SECRET=env-secret-0123456789"), &logs)
	must(t, err)
	if logs.Len() != 0 {
		t.Errorf("warnings for secrets by variable or file:\n%s", logs.String())
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
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
	for _, flagName := range []string{"-http", "-admin", "-tcp"} {
		args := []string{"-tcp", "127.0.0.1:0", "-kcp", "127.0.0.1:0", "-http", "127.0.0.1:0", "-admin", "127.0.0.1:0", flagName, taken}
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
			lookupEnv: env("COVEY_TCP_ADDR=127.0.0.1:0", "COVEY_KCP_ADDR=127.0.0.1:0", "COVEY_HTTP_ADDR=127.0.0.1:0", "COVEY_ADMIN_ADDR=127.0.0.1:0"),
			stdout:    io.Discard, stderr: &stderr, signals: signals,
		})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(stderr.String(), `"msg":"listening"`) < 4 {
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
	if len(listeners) != 4 || !listeners["tcp"] || !listeners["kcp"] || !listeners["http"] || !listeners["admin"] {
		t.Errorf("listening lines for %v, want tcp, kcp, http and admin", listeners)
	}
	if n := len(msgs); n < 2 || msgs[n-2] != "draining" || msgs[n-1] != "stopped" {
		t.Errorf("the log does not end with draining, stopped: %q", msgs)
	}
}
