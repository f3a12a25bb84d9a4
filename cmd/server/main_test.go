package main

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

// TestMaxConnsFlag checks how -max-conns and COVEY_MAX_CONNS reach the
// server's configuration.
func TestMaxConnsFlag(t *testing.T) {
	t.Setenv("COVEY_MAX_CONNS", "") // restored after the test
	os.Unsetenv("COVEY_MAX_CONNS")
	cfg, err := parseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxConns != netio.DefaultMaxConns {
		t.Errorf("default MaxConns = %d, want %d", cfg.MaxConns, netio.DefaultMaxConns)
	}
	t.Setenv("COVEY_MAX_CONNS", "500")
	if cfg, err = parseConfig(nil); err != nil || cfg.MaxConns != 500 {
		t.Errorf("COVEY_MAX_CONNS=500: MaxConns = %d (%v)", cfg.MaxConns, err)
	}
	if cfg, err = parseConfig([]string{"-max-conns", "7"}); err != nil || cfg.MaxConns != 7 {
		t.Errorf("-max-conns 7 (env 500): MaxConns = %d (%v)", cfg.MaxConns, err)
	}
}
