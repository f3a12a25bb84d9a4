package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coveyhq/covey/auth"
	"github.com/coveyhq/covey/cluster"
	"github.com/coveyhq/covey/netio"
	"github.com/coveyhq/covey/session"
)

// Server is one Covey node. Create it with New, register application
// handlers with Handle, then Start it; Shutdown stops it.
type Server struct {
	cfg     Config
	log     *slog.Logger
	table   *session.Table
	signer  *auth.Signer // nil in dev mode
	barred  floodBar     // users cut for flooding, barred from signing in for a while
	metrics *metrics
	mesh    mesh          // nil: a single node
	node    *cluster.Node // nil: a single node

	handlers map[uint32]HandlerFunc // ver<<16|cmd; written only before Start
	started  atomic.Bool

	net    *netio.Server
	public *httpListener // Config.HTTPAddr; nil if off
	admin  *httpListener // Config.AdminAddr; nil if off
}

// New checks cfg and returns a server that is not yet listening.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, handlers: make(map[uint32]HandlerFunc)}
	if cfg.Secret != "" {
		var sc auth.SignerConfig
		if cfg.SingleUseTokens {
			sc.SingleUse = auth.NewReplayGuard(0)
		}
		if s.signer, err = auth.NewSignerWith([]byte(cfg.Secret), sc); err != nil {
			return nil, err
		}
	}
	if s.table, err = session.New(cfg.session()); err != nil {
		return nil, err
	}
	if cfg.Cluster.enabled() {
		s.node, err = cluster.New(cluster.Config{
			Name: cfg.Node, Cluster: cfg.Cluster.Name, Secret: clusterSecret(cfg.Cluster.Secret),
			Gossip: cfg.Cluster.GossipAddr, GossipAdvertise: cfg.Cluster.GossipAdvertise, Join: cfg.Cluster.Join,
			MeshAdvertise: cfg.Cluster.MeshAdvertise, Logger: cfg.Logger,
			CallTimeout: cfg.Cluster.CallTimeout, MaxPayload: cfg.peerMaxPayload(), Faults: cfg.Cluster.Faults,
		}, s.table, (*handler)(s))
		if err != nil {
			return nil, err
		}
		s.mesh = s.node
		s.table.SetRemote(s.node)
	}
	s.metrics = newMetrics(s)
	return s, nil
}

// clusterSecret is the cluster secret's bytes (nil for none).
func clusterSecret(secret string) []byte {
	if secret == "" {
		return nil
	}
	return []byte(secret)
}

// Cluster returns the node's cluster membership, or nil for a single
// node.
func (s *Server) Cluster() *cluster.Node { return s.node }

// Sessions returns the node's session table, for application code that
// uses the session API directly (broadcasts from game logic, hooks, ticks).
func (s *Server) Sessions() *session.Table { return s.table }

// DevMode reports whether players sign in with self-declared user IDs.
func (s *Server) DevMode() bool { return s.signer == nil }

// ErrStarted is returned by Start on a second call.
var ErrStarted = errors.New("server: already started")

// Start opens the listeners and returns once they accept connections.
func (s *Server) Start() error {
	if !s.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	if s.DevMode() {
		s.log.Warn("DEV MODE: no secret configured; players sign in with ANY user ID they claim. " +
			"Listening on loopback only. Set COVEY_SECRET and COVEY_API_KEY for real deployments.")
	}
	ncfg := s.cfg.netio()
	if s.signer != nil {
		ncfg.TicketKey = s.signer.TicketKey()
	}
	ns, err := netio.Listen(ncfg, (*handler)(s))
	if err != nil {
		var le *netio.ListenError
		if errors.As(err, &le) {
			return &ListenError{Listener: le.Transport.String(), Addr: le.Addr, Err: le.Err}
		}
		return err
	}
	s.net = ns // before the admin listener, whose /metrics reads it
	if s.node != nil {
		if err := s.node.Start(ns); err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = ns.Shutdown(ctx, "server failed to start")
			return err
		}
	}
	if s.cfg.HTTPAddr != "" || s.cfg.AdminAddr != "" {
		if err := s.startHTTP(); err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = ns.Shutdown(ctx, "server failed to start")
			return err
		}
	}
	mode := "token"
	if s.DevMode() {
		mode = "dev"
	}
	for _, l := range [...]struct {
		kind string
		addr net.Addr
	}{{"tcp", ns.TCPAddr()}, {"kcp", ns.KCPAddr()}, {"http", s.HTTPAddr()}, {"admin", s.AdminAddr()}} {
		if l.addr != nil {
			s.log.Info("listening", "listener", l.kind, "addr", l.addr.String(), "node", s.cfg.Node, "mode", mode)
		}
	}
	return nil
}

// ListenError is a listener Start could not open: Listener is "tcp",
// "kcp", "http" or "admin", Addr the configured address, Err the cause (for
// instance one matching syscall.EADDRINUSE).
type ListenError struct {
	Listener string
	Addr     string
	Err      error
}

// Error says which listener failed and why, without the socket call's
// own wording ("HTTP listener 127.0.0.1:7701: address already in use").
func (e *ListenError) Error() string {
	cause := e.Err
	var se *os.SyscallError
	var oe *net.OpError
	switch {
	case errors.As(cause, &se):
		cause = se.Err
	case errors.As(cause, &oe) && oe.Err != nil:
		cause = oe.Err
	}
	return "server: " + strings.ToUpper(e.Listener) + " listener " + e.Addr + ": " + cause.Error()
}

func (e *ListenError) Unwrap() error { return e.Err }

// startHTTP opens the public and the admin HTTP listeners that are on;
// if one fails, neither is left open.
func (s *Server) startHTTP() error {
	if s.cfg.HTTPAddr != "" {
		mux, err := s.publicMux()
		if err != nil {
			return err
		}
		if s.public, err = listenHTTP("http", s.cfg.HTTPAddr, mux, orLimits(s.cfg.publicHTTP, publicHTTPLimits), s.log); err != nil {
			return err
		}
	}
	if s.cfg.AdminAddr != "" {
		var err error
		if s.admin, err = listenHTTP("admin", s.cfg.AdminAddr, s.adminMux(), orLimits(s.cfg.adminHTTP, adminHTTPLimits), s.log); err != nil {
			if s.public != nil {
				s.public.closeNow()
				s.public = nil
			}
			return err
		}
	}
	return nil
}

// TCPAddr returns the TCP listener's address, nil if off or not started.
func (s *Server) TCPAddr() net.Addr {
	if s.net == nil {
		return nil
	}
	return s.net.TCPAddr()
}

// KCPAddr returns the KCP listener's address, nil if off or not started.
func (s *Server) KCPAddr() net.Addr {
	if s.net == nil {
		return nil
	}
	return s.net.KCPAddr()
}

// HTTPAddr returns the public HTTP listener's address, nil if off or not
// started.
func (s *Server) HTTPAddr() net.Addr {
	if s.public == nil {
		return nil
	}
	return s.public.Addr()
}

// AdminAddr returns the admin HTTP listener's address, nil if off or not
// started.
func (s *Server) AdminAddr() net.Addr {
	if s.admin == nil {
		return nil
	}
	return s.admin.Addr()
}

// Conns returns how many client connections are open.
func (s *Server) Conns() int {
	if s.net == nil {
		return 0
	}
	return s.net.Conns()
}

// Shutdown takes the node offline (no new sessions), tells every connected
// client why with a Bye push, closes the connections, stops the listeners
// and the session table. It returns when done or when ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.table.SetOffline(true)
	var err error
	if s.node != nil {
		// Leave first: the other nodes clean up at once instead of after
		// a timeout.
		timeout := 2 * time.Second
		if d, ok := ctx.Deadline(); ok {
			timeout = min(timeout, time.Until(d))
		}
		err = s.node.Shutdown(timeout)
	}
	if s.net != nil {
		if nerr := s.net.Shutdown(ctx, "server shutting down"); err == nil {
			err = nerr
		}
	}
	s.stopHTTP(ctx)
	s.table.Close()
	return err
}

// stopHTTP closes both HTTP listeners at once, letting requests in
// progress finish until ctx ends.
func (s *Server) stopHTTP(ctx context.Context) {
	var wg sync.WaitGroup
	for _, l := range []*httpListener{s.public, s.admin} {
		if l != nil {
			wg.Go(func() { l.close(ctx) })
		}
	}
	wg.Wait()
}
