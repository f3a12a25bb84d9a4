package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/coveyhq/covey/internal/procstat"
)

// Scenario names, the values of -scenario.
const (
	scenarioBroadcast  = "broadcast"
	scenarioMax        = "max"
	scenarioChurn      = "churn"
	scenarioProperties = "properties"
	scenarioIdle       = "idle"
)

var scenarios = []string{scenarioBroadcast, scenarioMax, scenarioChurn, scenarioProperties, scenarioIdle}

// Ways to spread players over several addresses, the values of -spread.
const (
	spreadPlayer  = "player"  // player i connects to address i mod n
	spreadSession = "session" // every member of session j connects to address j mod n
)

// Config is what one run does. Start from DefaultConfig; main fills it
// from the flags.
type Config struct {
	// Addrs are the servers' addresses; players are spread over them
	// round-robin (see Spread).
	Addrs []string
	// Transport is "tcp" or "kcp".
	Transport string
	// Scenario is one of broadcast, max, churn, properties, idle.
	Scenario string
	// Sessions and Members shape broadcast, max and properties; Members is
	// also the group size of churn.
	Sessions, Members int
	// Rate is the messages per second each member sends (broadcast).
	Rate float64
	// Size is the payload size of a message, at least minPayloadSize.
	Size int
	// Window is how many of its messages a sender may have undelivered
	// (max).
	Window int
	// Backoff is how long a sender sends nothing after the server refused
	// one of its messages with StatusOverloaded (broadcast), as PROTOCOL.md
	// asks a client to; its messages due meanwhile are not sent (counted
	// as held_back). 0 keeps the rate whatever the server says.
	Backoff time.Duration
	// Clients is the number of players of churn and idle.
	Clients int
	// Duration is the measurement window.
	Duration time.Duration
	// Drain is the longest wait for messages in flight after the senders
	// stop.
	Drain time.Duration
	// ServerPIDs are the server processes whose CPU time and RSS are read
	// from /proc, and summed: one for a single node, one per node for a
	// cluster. None: no server figures.
	ServerPIDs []int
	// RampBatch is how many players connect at once during the ramp-up.
	RampBatch int
	// RampTimeout bounds the ramp-up: connecting, creating and joining.
	RampTimeout time.Duration
	// CallTimeout bounds each request that waits for a reply.
	CallTimeout time.Duration
	// Spread is spreadPlayer or spreadSession.
	Spread string
	// Secret, the servers' token secret, makes the driver sign players in
	// as a game backend would have them: with a connect token it issues
	// itself for each (package auth), on an encrypted connection unless
	// Plaintext. Without it players sign in in development mode.
	Secret string
	// Plaintext sends each player's token in a plaintext sign-in (servers
	// run with -allow-plaintext) instead of encrypting the connection.
	Plaintext bool
	// Progress receives a progress line every second; nil for none.
	Progress io.Writer

	cpuProfile string // main only: where to write the driver's CPU profile
	// readProcess reads one server process; nil is procstat.Read. Tests
	// set it to count what the driver sums.
	readProcess func(pid int) (procstat.Sample, error)
}

// DefaultConfig returns the flags' defaults.
func DefaultConfig() Config {
	return Config{
		Addrs:       []string{"127.0.0.1:7700"},
		Transport:   "tcp",
		Scenario:    scenarioBroadcast,
		Sessions:    10,
		Members:     4,
		Rate:        10,
		Size:        64,
		Window:      16,
		Clients:     100,
		Duration:    10 * time.Second,
		Drain:       2 * time.Second,
		RampBatch:   200,
		RampTimeout: 60 * time.Second,
		CallTimeout: 10 * time.Second,
		Spread:      spreadPlayer,
	}
}

// errBadConfig wraps every error of Config.check.
var errBadConfig = errors.New("loadtest: invalid configuration")

// check reports the first invalid field.
func (c Config) check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", errBadConfig, fmt.Sprintf(format, a...))
	}
	switch {
	case len(c.Addrs) == 0:
		return bad("no address")
	case c.Secret != "" && len(c.Secret) < 16:
		return bad("-secret: at least 16 bytes")
	case c.Plaintext && c.Secret == "":
		return bad("-plaintext needs -secret (development mode is always plaintext)")
	case c.Transport != "tcp" && c.Transport != "kcp":
		return bad("-transport %q: want tcp or kcp", c.Transport)
	case !slices.Contains(scenarios, c.Scenario):
		return bad("-scenario %q: want one of %v", c.Scenario, scenarios)
	case c.Spread != spreadPlayer && c.Spread != spreadSession:
		return bad("-spread %q: want player or session", c.Spread)
	case c.Duration <= 0:
		return bad("-duration must be positive")
	case c.Drain < 0:
		return bad("-drain must not be negative")
	case c.RampBatch < 1:
		return bad("-ramp-batch must be at least 1")
	case c.RampTimeout <= 0 || c.CallTimeout <= 0:
		return bad("-ramp-timeout and -call-timeout must be positive")
	}
	for _, a := range c.Addrs {
		if a == "" {
			return bad("empty address in -addr")
		}
	}
	for i, pid := range c.ServerPIDs {
		if pid <= 0 {
			return bad("-server-pid %d: not a process ID", pid)
		}
		if slices.Contains(c.ServerPIDs[:i], pid) {
			return bad("-server-pid %d given twice: its CPU would count twice", pid)
		}
	}
	switch c.Scenario {
	case scenarioBroadcast, scenarioMax, scenarioProperties:
		if c.Sessions < 1 {
			return bad("-sessions must be at least 1")
		}
		if c.Members < 2 || c.Members > 65535 {
			return bad("-members must be 2 to 65535")
		}
	case scenarioChurn:
		if c.Members < 2 || c.Members > 65535 {
			return bad("-members (the churn group size) must be 2 to 65535")
		}
		if c.Clients < c.Members {
			return bad("-clients must be at least -members (%d)", c.Members)
		}
	case scenarioIdle:
		if c.Clients < 1 {
			return bad("-clients must be at least 1")
		}
	}
	switch c.Scenario {
	case scenarioBroadcast:
		if c.Rate <= 0 || c.Rate > 1e6 {
			return bad("-rate must be above 0 and at most 1e6")
		}
		if c.Backoff < 0 {
			return bad("-backoff must not be negative")
		}
	case scenarioMax:
		if c.Window < 1 {
			return bad("-window must be at least 1")
		}
	}
	if (c.Scenario == scenarioBroadcast || c.Scenario == scenarioMax) &&
		(c.Size < minPayloadSize || c.Size > maxPayloadSize) {
		return bad("-size must be %d to %d bytes", minPayloadSize, maxPayloadSize)
	}
	return nil
}

// players returns the number of players the run uses.
func (c Config) players() int {
	switch c.Scenario {
	case scenarioChurn:
		return c.Clients / c.Members * c.Members
	case scenarioIdle:
		return c.Clients
	}
	return c.Sessions * c.Members
}
