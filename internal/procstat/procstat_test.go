package procstat

import (
	"os"
	"testing"
	"time"
)

func TestParseProc(t *testing.T) {
	// A command name with a space and a parenthesis, as the kernel shows it.
	stat := "4242 (covey (srv) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 1000 800000000 3000 18446744073709551615\n"
	cpu, err := ParseStatCPU([]byte(stat))
	if err != nil || cpu != 3250*time.Millisecond {
		t.Errorf("ParseStatCPU = %v, %v; want 3.25s", cpu, err)
	}
	if _, err := ParseStatCPU([]byte("4242 (covey) S 1 2")); err == nil {
		t.Error("ParseStatCPU accepted a short line")
	}
	status := "Name:\tcovey\nVmPeak:\t  900000 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n"
	rss, err := ParseStatusRSS([]byte(status))
	if err != nil || rss != 12345*1024 {
		t.Errorf("ParseStatusRSS = %d, %v; want %d", rss, err, 12345*1024)
	}
	if _, err := ParseStatusRSS([]byte("Name:\tcovey\n")); err == nil {
		t.Error("ParseStatusRSS accepted a status without VmRSS")
	}
}

// TestReadProcSelf reads this process, which uses CPU and memory.
func TestReadProcSelf(t *testing.T) {
	s, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSS < 1<<20 {
		t.Errorf("RSS = %d bytes, implausibly small", s.RSS)
	}
	if s.CPU < 0 || s.CPU > SelfCPU()+time.Second {
		t.Errorf("CPU = %v, driver's own getrusage says %v", s.CPU, SelfCPU())
	}
}
