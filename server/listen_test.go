package server

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
)

// TestListenErrorNamesListener starts a node on addresses already taken,
// one listener at a time: Start fails with a ListenError that names the
// listener and the address and says why in a few words.
func TestListenErrorNamesListener(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	taken, takenUDP := tcp.Addr().String(), udp.LocalAddr().String()

	for _, c := range []struct {
		listener, addr string
		mutate         func(*Config)
	}{
		{"tcp", taken, func(c *Config) { c.TCPAddr = taken }},
		{"kcp", takenUDP, func(c *Config) { c.KCPAddr = takenUDP }},
		{"http", taken, func(c *Config) { c.HTTPAddr = taken }},
		{"admin", taken, func(c *Config) { c.AdminAddr = taken }},
	} {
		cfg := DefaultConfig()
		cfg.TCPAddr, cfg.KCPAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg.AdminAddr = "127.0.0.1:0"
		cfg.Logger = discardLogger()
		c.mutate(&cfg)
		srv, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = srv.Start()
		var le *ListenError
		if !errors.As(err, &le) || le.Listener != c.listener || le.Addr != c.addr || !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("%s on a taken address: Start = %v, want a ListenError for it matching EADDRINUSE", c.listener, err)
			continue
		}
		want := "server: " + strings.ToUpper(c.listener) + " listener " + c.addr + ": address already in use"
		if err.Error() != want {
			t.Errorf("error text %q, want %q", err, want)
		}
	}
}
