package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/coveyhq/covey/server"
)

// TestReadmeShowsThisProgram keeps README.md's SDK example and this file
// the same program.
func TestReadmeShowsThisProgram(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, src) {
		t.Fatal("README.md does not contain examples/quickstart/main.go verbatim: update the README")
	}
}

// TestQuickstart runs the program against an in-process server.
func TestQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go run")
	}
	cfg := server.DefaultConfig()
	cfg.TCPAddr, cfg.KCPAddr, cfg.HTTPAddr = "127.0.0.1:0", "", ""
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	// KCP and TCP must share the port, as they do by default: pick the TCP
	// port, then ask for KCP on the same one.
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	addr := srv.TCPAddr().String()
	srv.Shutdown(context.Background())
	cfg.TCPAddr, cfg.KCPAddr = addr, addr
	if srv, err = server.New(cfg); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Skipf("port %s was taken in between: %v", addr, err)
	}
	defer srv.Shutdown(context.Background())

	out, err := exec.Command("go", "run", ".", "-addr", addr).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{`bob: invited by alice`, `bob: alice says "welcome, bob"`, `members: [alice bob]`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
