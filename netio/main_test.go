package netio

import (
	"flag"
	"os"
	"testing"
)

// TestMain bounds the fuzzer's minimization of FuzzKCPDatagram's inputs
// to 5 s, unless -fuzzminimizetime is given. That target's coverage
// includes the server's own goroutines (the KCP engine's timers, the
// idle sweep), so a new input's coverage often cannot be reproduced:
// minimizing it then ran for the default full minute, with no progress
// to show (one such stall in some 10-minute runs); with 5 s, 10 minutes
// at -parallel 1 ran 2.33M execs with no 3-s interval at a standstill.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.fuzzminimizetime" })
	if !set {
		_ = flag.Set("test.fuzzminimizetime", "5s")
	}
	os.Exit(m.Run())
}
