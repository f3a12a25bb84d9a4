package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	os.Exit(mainExit(os.Args[1:], os.Stdout, os.Stderr))
}

// mainExit runs the command with args and returns its exit status: 0 on
// success, 1 for a correctness violation or a run that could not take
// place, 2 for bad flags.
func mainExit(args []string, stdout, stderr io.Writer) int {
	cfg, jsonPath, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 2
	}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "loadtest:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "loadtest:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, cfg)
	if errors.Is(err, errBadConfig) {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	res.writeSummary(stdout)
	if jsonPath != "" {
		if err := res.writeJSON(jsonPath); err != nil {
			fmt.Fprintln(stderr, "loadtest:", err)
			return 1
		}
	}
	if res.failed() {
		return 1
	}
	return 0
}

// parseFlags turns the command line into a Config and the -json path.
func parseFlags(args []string, stderr io.Writer) (Config, string, error) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: loadtest [flags]\n\nSimulated Covey players; see `go doc ./cmd/loadtest`.\n\nFlags:")
		fs.PrintDefaults()
	}
	addrs := fs.String("addr", strings.Join(cfg.Addrs, ","), "server `addresses`, comma-separated; players are spread over them round-robin")
	fs.StringVar(&cfg.Transport, "transport", cfg.Transport, "tcp or kcp")
	fs.StringVar(&cfg.Scenario, "scenario", cfg.Scenario, "broadcast, max, churn, properties or idle")
	fs.IntVar(&cfg.Sessions, "sessions", cfg.Sessions, "sessions (broadcast, max, properties)")
	fs.IntVar(&cfg.Members, "members", cfg.Members, "members per session; group size for churn")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "messages per second per member (broadcast)")
	fs.IntVar(&cfg.Size, "size", cfg.Size, "payload bytes per message, at least 16 (broadcast, max)")
	fs.IntVar(&cfg.Window, "window", cfg.Window, "undelivered messages per sender (max)")
	fs.DurationVar(&cfg.Backoff, "backoff", cfg.Backoff, "after an Overloaded refusal, send nothing for this long (broadcast; 0: keep the rate)")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "players (churn, idle)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measurement window, after the ramp-up")
	fs.DurationVar(&cfg.Drain, "drain", cfg.Drain, "longest wait for messages in flight after the senders stop")
	jsonPath := fs.String("json", "", "write the result as JSON to `file`")
	fs.Var((*pidList)(&cfg.ServerPIDs), "server-pid", "server `PIDs`, comma-separated, to read CPU time and RSS of from /proc, summed (one per node of a cluster)")
	fs.IntVar(&cfg.RampBatch, "ramp-batch", cfg.RampBatch, "players that connect at once during the ramp-up")
	fs.DurationVar(&cfg.RampTimeout, "ramp-timeout", cfg.RampTimeout, "bound on the ramp-up")
	fs.DurationVar(&cfg.CallTimeout, "call-timeout", cfg.CallTimeout, "bound on each request")
	fs.StringVar(&cfg.Spread, "spread", cfg.Spread, "with several -addr: player (player i on address i mod n) or session (a session's members on one address)")
	fs.StringVar(&cfg.Secret, "secret", "", "the servers' token secret: sign players in with connect tokens the driver issues, encrypted (default: development mode); also COVEY_SECRET")
	fs.BoolVar(&cfg.Plaintext, "plaintext", false, "with -secret, sign in with the token on a plaintext connection (servers with -allow-plaintext)")
	quiet := fs.Bool("quiet", false, "no progress line")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write the driver's own CPU profile to `file`")
	if err := fs.Parse(args); err != nil {
		return cfg, "", err
	}
	if fs.NArg() > 0 {
		return cfg, "", fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.Secret == "" {
		cfg.Secret = os.Getenv("COVEY_SECRET")
	}
	cfg.Addrs = strings.Split(*addrs, ",")
	for i := range cfg.Addrs {
		cfg.Addrs[i] = strings.TrimSpace(cfg.Addrs[i])
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	return cfg, *jsonPath, cfg.check()
}

// pidList is the value of -server-pid: process IDs, comma-separated.
type pidList []int

func (l *pidList) String() string {
	if l == nil {
		return ""
	}
	s := make([]string, len(*l))
	for i, pid := range *l {
		s[i] = strconv.Itoa(pid)
	}
	return strings.Join(s, ",")
}

// Set parses "PID" or "PID,PID,...". Config.check refuses PIDs below 1
// and repeats.
func (l *pidList) Set(v string) error {
	var pids []int
	for f := range strings.SplitSeq(v, ",") {
		pid, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("%q is not a process ID", strings.TrimSpace(f))
		}
		pids = append(pids, pid)
	}
	*l = pids
	return nil
}
