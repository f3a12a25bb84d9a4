// Package procstat reads a process's CPU time and resident memory from
// /proc (Linux), for the load test driver and the benchmark floor.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat: 1/CLK_TCK
// seconds, and CLK_TCK is 100 on Linux.
const clockTick = 10 * time.Millisecond

// ErrFormat reports a /proc file that does not parse.
var ErrFormat = errors.New("procstat: unexpected /proc format")

// Sample is a process's CPU time and resident memory at one instant.
type Sample struct {
	CPU time.Duration // user + system time since the process started
	RSS uint64        // resident set size, bytes
}

// Read reads the CPU time of process pid from /proc/PID/stat (utime +
// stime) and its resident memory from /proc/PID/status (VmRSS).
func Read(pid int) (Sample, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return Sample{}, err
	}
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return Sample{}, err
	}
	cpu, err := ParseStatCPU(stat)
	if err != nil {
		return Sample{}, err
	}
	rss, err := ParseStatusRSS(status)
	if err != nil {
		return Sample{}, err
	}
	return Sample{CPU: cpu, RSS: rss}, nil
}

// ParseStatCPU returns utime + stime from the contents of /proc/PID/stat.
// The command name (field 2) may hold spaces and parentheses, so fields
// are counted from the last ')': utime and stime are fields 14 and 15.
func ParseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, ErrFormat
	}
	f := bytes.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, ErrFormat
	}
	utime, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, ErrFormat
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// ParseStatusRSS returns VmRSS, in bytes, from the contents of
// /proc/PID/status.
func ParseStatusRSS(status []byte) (uint64, error) {
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, ErrFormat
		}
		kb, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			return 0, ErrFormat
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("%w: no VmRSS", ErrFormat)
}

// SelfCPU returns the driver's own CPU time, user + system.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
