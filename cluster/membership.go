package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/coveyhq/covey/session"
)

// MaxMetaSize is the most bytes of metadata a node may publish
// (memberlist's limit, which it enforces with a panic; Membership returns
// ErrMetaTooLarge instead).
const MaxMetaSize = memberlist.MetaMaxSize

// DefaultRejoinInterval is how often the rejoin loop runs when
// MembershipConfig.RejoinInterval is zero. A healed partition re-merges
// within about one interval: 0.3–1.0 s after the heal in
// TestMembershipPartitionIsSeenAndHeals, 2.07 s after a 35 s partition.
const DefaultRejoinInterval = 2 * time.Second

// defaultBroadcastTimeout bounds UpdateMeta and Leave when they are given
// no timeout: memberlist would wait without limit.
const defaultBroadcastTimeout = 5 * time.Second

// The rejoin loop also tries the address of a member it lost (dead, or
// left: memberlist v0.7.0 does not tell which) for rejoinLostFor, so that a
// partition heals even when the nodes on the other side are not seeds. The
// table holds at most maxLost members; the oldest is dropped first.
const (
	rejoinLostFor = 10 * time.Minute
	maxLost       = 1024
)

// seedLookupTimeout bounds the DNS lookup of one seed hostname.
const seedLookupTimeout = 2 * time.Second

// Errors returned by StartMembership and Membership's methods.
var (
	ErrBadNodeName  = errors.New("cluster: a node name is 1 to 64 characters of A-Z a-z 0-9 . _ -")
	ErrBadAddress   = errors.New("cluster: bad address")
	ErrMetaTooLarge = errors.New("cluster: node metadata is over 512 bytes")
	ErrNameConflict = errors.New("cluster: another node is alive under this node's name")
	ErrTimeout      = errors.New("cluster: gossip broadcast not sent within the timeout")
	ErrClosed       = errors.New("cluster: membership has left or is shut down")
)

// MembershipConfig configures StartMembership. Start from
// DefaultMembershipConfig; the zero value of a field means its default.
type MembershipConfig struct {
	// Node is this node's name, unique in the cluster and stable across
	// restarts: 1 to 64 characters of [A-Za-z0-9._-] (the names session
	// IDs carry, session.ValidNodeName).
	Node string
	// Bind is the gossip address, "ip:port", for both UDP and TCP. An empty
	// IP binds every interface (then Advertise is required); port 0 picks a
	// port that is free for both.
	Bind string
	// Advertise is the "ip:port" other nodes reach this one at; "" means
	// the bound address, and port 0 the bound port.
	Advertise string
	// Seeds are "host:port" gossip addresses of nodes to join; this node's
	// own address among them is skipped. At start each is tried once;
	// reaching none is not an error (the first node of a cluster has nobody
	// to join), the rejoin loop keeps trying. Hostnames are resolved again
	// at every try (a headless Service's A records).
	Seeds []string
	// Secret is the cluster secret; gossip is encrypted and authenticated
	// with GossipKey(Secret). Empty means unencrypted gossip, which a
	// caller must allow only when every address is on loopback.
	Secret []byte
	// Meta returns this node's metadata, at most MaxMetaSize bytes. It is
	// called by StartMembership and by each UpdateMeta, on their caller's
	// goroutine; the slice is copied. nil means no metadata.
	Meta func() []byte
	// RejoinInterval is how often the rejoin loop joins the seeds, and one
	// member lost in the last 10 minutes, whose addresses are not among the
	// alive members. memberlist does not re-merge a partition healed after
	// its GossipToTheDeadTime (30 s) by itself (hashicorp/memberlist#222).
	// A try of an address that does not answer takes up to memberlist's TCP
	// timeout (10 s) and delays the next. Default DefaultRejoinInterval.
	RejoinInterval time.Duration
	// Events, if set, receives the membership changes: called on one
	// goroutine, in order for each node, never under memberlist's locks or
	// Membership's. It should return quickly. While it is slow, the changes
	// of one node are coalesced (see Event), so nothing piles up and
	// memberlist never waits for it.
	Events func(Event)
	// WrapTransport, if set (tests), is called once with the UDP and TCP
	// transport bound to Bind; memberlist uses what it returns, e.g.
	// Faults.Transport.
	WrapTransport func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
	// Logger receives the membership's logs, memberlist's own at debug
	// level; nil means slog.Default().
	Logger *slog.Logger

	// tune, if set (tests), changes memberlist's configuration last.
	tune func(*memberlist.Config)
}

// DefaultMembershipConfig returns the configuration of a dev-mode node on
// loopback: gossip on 127.0.0.1:7703, no seeds, no secret.
func DefaultMembershipConfig() MembershipConfig {
	return MembershipConfig{
		Node:           "local",
		Bind:           "127.0.0.1:7703",
		RejoinInterval: DefaultRejoinInterval,
	}
}

// EventKind says what happened to a node. The values are not part of any
// protocol.
type EventKind uint8

const (
	// EventJoin: the node became alive, or this Events callback had not
	// seen it yet. The local node's own join comes first.
	EventJoin EventKind = iota + 1
	// EventUpdate: an alive node's metadata (or address) changed.
	EventUpdate
	// EventLeave: the node left gracefully or was declared dead.
	// memberlist v0.7.0 does not tell which (the state it passes is
	// shadowed, design §4.1): announce a graceful leave in the metadata or
	// on the mesh before Leave.
	EventLeave
)

func (k EventKind) String() string {
	switch k {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventLeave:
		return "leave"
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is one membership change given to MembershipConfig.Events.
//
// When Events falls behind, the changes of a node not yet delivered are
// merged into the fewest events that take the callback from what it last
// saw of the node to the node's latest state: join then update gives one
// join with the latest metadata; a leave followed by a join is kept as
// both; a join then leave of a node the callback never saw gives nothing.
// Events of one node keep their order; nodes come in the order of their
// first undelivered change.
type Event struct {
	Kind EventKind
	Node NodeInfo
}

// NodeInfo is what the membership knows of a node. Meta is shared with the
// membership's view and with other callers: do not modify it.
type NodeInfo struct {
	Name string // node name
	Addr string // gossip address, "ip:port"
	Meta []byte // metadata, at most MaxMetaSize bytes
}

// Membership is this node's member of the cluster's gossip group. Its
// methods are safe for concurrent use. Shutdown must not be called from
// the Events callback (it waits for the callback to return).
type Membership struct {
	ml     *memberlist.Memberlist
	log    *slog.Logger
	events func(Event)
	seeds  []string
	every  time.Duration
	name   string
	local  string // advertised gossip address
	bound  string // bound address when Bind names an IP, else ""

	metaSource func() []byte
	meta       atomic.Pointer[[]byte] // what NodeMeta gives memberlist, checked
	metaMu     sync.Mutex             // serializes UpdateMeta

	// stateMu orders Leave and UpdateMeta (read side) before Shutdown
	// (write side): memberlist panics on a Leave after Shutdown.
	stateMu sync.RWMutex
	closed  bool        // Shutdown has begun; under stateMu
	left    atomic.Bool // Leave was called

	mu        sync.Mutex              // guards the fields below; a leaf lock
	view      map[string]NodeInfo     // alive and suspect members, as memberlist reported them
	lost      map[string]lostMember   // members lost within rejoinLostFor, by name
	pending   map[string]*pendingNode // changes Events has not been given yet
	order     []string                // names in pending, by first change
	conflicts []conflict              // name conflicts not logged yet
	dropped   int                     // conflicts not kept (conflicts full)
	selfClash string                  // address of the first node seen claiming our name

	wake     chan struct{} // capacity 1: pending or conflicts has news
	stop     chan struct{} // closed by Shutdown
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup // the event goroutine and the rejoin loop
	shutDone chan struct{}
	shutErr  error
}

type lostMember struct {
	addr string
	at   time.Time
}

// pendingNode is the undelivered news about one node.
type pendingNode struct {
	name     string
	alive    bool     // the node's latest state
	info     NodeInfo // its latest info, when alive
	left     bool     // it left or died since the last delivered state
	leftInfo NodeInfo // what it was when it left
}

type conflict struct {
	name, known, other string
	self               bool // the name is ours
}

// StartMembership binds the gossip address, starts memberlist, tries each
// seed once and starts the rejoin loop. It blocks while it tries the seeds
// (up to memberlist's 10 s TCP timeout for a seed that does not answer).
//
// It fails with ErrNameConflict when a seed's cluster has another node alive
// under cfg.Node (memberlist's "Conflicting address"): the name must be
// unique. A node restarted at another address before the cluster saw it die
// is refused the same way, so a caller may retry after a few seconds; the
// cluster then still ignores it until memberlist's DeadNodeReclaimTime
// (30 s) has passed since the death. A restart at the same address is
// taken at once. Not reaching any seed is not an error.
func StartMembership(cfg MembershipConfig) (*Membership, error) {
	if !session.ValidNodeName(cfg.Node) {
		return nil, ErrBadNodeName
	}
	bindIP, bindPort, err := splitIPPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("%w: bind %q: %v", ErrBadAddress, cfg.Bind, err)
	}
	advIP, advPort := bindIP, 0
	if cfg.Advertise != "" {
		if advIP, advPort, err = splitIPPort(cfg.Advertise); err != nil {
			return nil, fmt.Errorf("%w: advertise %q: %v", ErrBadAddress, cfg.Advertise, err)
		}
	}
	if advIP.IsUnspecified() {
		return nil, fmt.Errorf("%w: advertise an IP other nodes can reach (bind %q has none)", ErrBadAddress, cfg.Bind)
	}
	for _, s := range cfg.Seeds {
		if host, port, err := net.SplitHostPort(s); err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("%w: seed %q is not host:port", ErrBadAddress, s)
		}
	}
	var meta []byte
	if cfg.Meta != nil {
		meta = bytes.Clone(cfg.Meta())
	}
	if len(meta) > MaxMetaSize {
		return nil, ErrMetaTooLarge
	}
	if cfg.RejoinInterval <= 0 {
		cfg.RejoinInterval = DefaultRejoinInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	mlog := slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)

	nt, err := bindTransport(bindIP, bindPort, mlog)
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip on %s: %w", cfg.Bind, err)
	}
	port := nt.GetAutoBindPort()
	if advPort == 0 {
		advPort = port
	}
	var tr memberlist.NodeAwareTransport = nt
	if cfg.WrapTransport != nil {
		tr = cfg.WrapTransport(nt)
	}

	m := newMembership(cfg.Node, cfg.Events, cfg.Logger)
	m.metaSource = cfg.Meta
	m.seeds = slices.Clone(cfg.Seeds)
	m.every = cfg.RejoinInterval
	m.local = net.JoinHostPort(advIP.String(), strconv.Itoa(advPort))
	if !bindIP.IsUnspecified() {
		m.bound = net.JoinHostPort(bindIP.String(), strconv.Itoa(port))
	}
	m.meta.Store(&meta)

	mc := memberlistConfig()
	mc.Name = cfg.Node
	mc.BindAddr = bindIP.String()
	mc.BindPort = port
	mc.AdvertiseAddr = advIP.String()
	mc.AdvertisePort = advPort
	mc.Transport = tr
	mc.Logger = mlog
	d := delegate{m}
	mc.Delegate, mc.Events, mc.Conflict, mc.Merge = d, d, d, d
	if len(cfg.Secret) > 0 {
		mc.SecretKey = GossipKey(cfg.Secret)
	}
	if cfg.tune != nil {
		cfg.tune(mc)
	}

	m.startDeliver()
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = tr.Shutdown() // memberlist leaves it open when it fails early
		m.stopGoroutines()
		return nil, fmt.Errorf("cluster: memberlist: %w", err)
	}
	m.ml = ml

	if targets := m.joinTargets(); len(targets) > 0 {
		if _, err := ml.Join(targets); err != nil && m.selfConflict() == "" {
			m.log.Warn("cluster: no seed reachable; the rejoin loop keeps trying", "seeds", targets, "err", err)
		}
	}
	if other := m.selfConflict(); other != "" {
		m.stopGoroutines()
		_ = ml.Shutdown()
		return nil, fmt.Errorf("%w: %s is alive at %s", ErrNameConflict, cfg.Node, other)
	}
	m.wg.Add(1)
	go m.rejoin()
	return m, nil
}

// newMembership returns a Membership with its tables and channels made,
// and no memberlist yet.
func newMembership(name string, events func(Event), l *slog.Logger) *Membership {
	m := &Membership{
		name:     name,
		events:   events,
		log:      l,
		view:     make(map[string]NodeInfo),
		lost:     make(map[string]lostMember),
		pending:  make(map[string]*pendingNode),
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		shutDone: make(chan struct{}),
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m
}

// startDeliver starts the event goroutine; stopGoroutines waits for it.
func (m *Membership) startDeliver() {
	m.wg.Add(1)
	go m.deliver()
}

// memberlistConfig is memberlist's LAN configuration with the tuning of
// shared/reference/libraries.md: a crash is seen by six nodes in 2.6–3.1 s
// (7–8 s with the defaults), a graceful leave or a metadata update in
// ≤ 0.3 s.
func memberlistConfig() *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	c.ProbeInterval = 500 * time.Millisecond
	c.ProbeTimeout = 250 * time.Millisecond
	c.SuspicionMult = 4
	c.SuspicionMaxTimeoutMult = 4
	c.GossipInterval = 100 * time.Millisecond
	c.DeadNodeReclaimTime = 30 * time.Second
	return c
}

// bindTransport binds UDP and TCP on ip:port. For port 0 the kernel picks
// the TCP port and UDP may find it taken, so it tries again, as memberlist
// does for the transport it makes itself.
func bindTransport(ip net.IP, port int, l *log.Logger) (*memberlist.NetTransport, error) {
	nc := &memberlist.NetTransportConfig{BindAddrs: []string{ip.String()}, BindPort: port, Logger: l}
	tries := 1
	if port == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		if nt, err = memberlist.NewNetTransport(nc); err == nil {
			return nt, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, err
}

// splitIPPort parses "ip:port"; an empty IP is the unspecified one.
func splitIPPort(hostport string) (net.IP, int, error) {
	host, sport, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, 0, err
	}
	ip := net.IPv4zero
	if host != "" {
		if ip = net.ParseIP(host); ip == nil {
			return nil, 0, errors.New("not an IP address")
		}
	}
	port, err := strconv.ParseUint(sport, 10, 16)
	if err != nil {
		return nil, 0, errors.New("bad port")
	}
	if ip4 := ip.To4(); ip4 != nil {
		ip = ip4
	}
	return ip, int(port), nil
}

// LocalAddr returns the gossip address this node advertises, "ip:port",
// with the port resolved when Bind asked for port 0. It is this node's Addr
// in Alive and in events.
func (m *Membership) LocalAddr() string { return m.local }

// Alive returns the alive members (suspect ones included, as memberlist
// counts them), this node too, sorted by name. It reflects memberlist's
// state now; the Events callback may not have been given all of it yet.
// It does not block on the network.
func (m *Membership) Alive() []NodeInfo {
	m.mu.Lock()
	nodes := make([]NodeInfo, 0, len(m.view))
	for _, n := range m.view {
		nodes = append(nodes, n)
	}
	m.mu.Unlock()
	slices.SortFunc(nodes, func(a, b NodeInfo) int { return strings.Compare(a.Name, b.Name) })
	return nodes
}

// UpdateMeta calls MembershipConfig.Meta again and gossips the result. It
// blocks until the update has been sent to the other nodes, or timeout (5 s
// if timeout ≤ 0) has passed: ErrTimeout then, and the update still spreads
// with later gossip. Metadata over MaxMetaSize is refused with
// ErrMetaTooLarge and the previous metadata stays. After Leave or Shutdown
// it returns ErrClosed.
func (m *Membership) UpdateMeta(timeout time.Duration) error {
	m.stateMu.RLock()
	defer m.stateMu.RUnlock()
	if m.closed || m.left.Load() {
		return ErrClosed
	}
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	var meta []byte
	if f := m.metaSource; f != nil {
		meta = bytes.Clone(f())
	}
	if len(meta) > MaxMetaSize {
		return ErrMetaTooLarge
	}
	m.meta.Store(&meta)
	if err := m.ml.UpdateNode(orDefault(timeout)); err != nil {
		return ErrTimeout
	}
	return nil
}

// Leave tells the cluster that this node is leaving: the others see
// EventLeave for it within ~0.3 s. It blocks until the message has been sent,
// or timeout (5 s if timeout ≤ 0) has passed (ErrTimeout; the others then
// see the node dead once Shutdown stops it). The rejoin loop stops; the node
// still answers gossip until Shutdown, which must follow. Calling it again
// does nothing; after Shutdown it returns ErrClosed.
func (m *Membership) Leave(timeout time.Duration) error {
	m.stateMu.RLock()
	defer m.stateMu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	m.left.Store(true)
	if err := m.ml.Leave(orDefault(timeout)); err != nil {
		return ErrTimeout
	}
	return nil
}

// Shutdown stops the rejoin loop, the Events callback and memberlist. Without
// a Leave first, the other nodes see this one dead after their probes time
// out (2–3 s). It waits for a running Events call and for a rejoin attempt
// in progress (up to memberlist's 10 s TCP timeout for a seed that does not
// answer) and for a Leave or UpdateMeta in progress, so it must not be
// called from the Events callback. After it returns Events is not called
// again. It is idempotent: later calls wait for
// the first to finish and return its result.
func (m *Membership) Shutdown() error {
	m.stateMu.Lock()
	first := !m.closed
	m.closed = true
	m.stateMu.Unlock()
	if !first {
		<-m.shutDone
		return m.shutErr
	}
	m.stopGoroutines()
	m.shutErr = m.ml.Shutdown()
	close(m.shutDone)
	return m.shutErr
}

// stopGoroutines stops the event goroutine and the rejoin loop and waits
// for them.
func (m *Membership) stopGoroutines() {
	close(m.stop)
	m.cancel()
	m.wg.Wait()
}

func orDefault(timeout time.Duration) time.Duration {
	if timeout <= 0 {
		return defaultBroadcastTimeout
	}
	return timeout
}

// rejoin is the rejoin loop: every m.every it joins the seeds, and one lost
// member, not among the alive members. It stops at Shutdown, and does
// nothing after Leave.
func (m *Membership) rejoin() {
	defer m.wg.Done()
	t := time.NewTicker(m.every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		if m.left.Load() {
			continue
		}
		targets := m.joinTargets()
		if len(targets) == 0 {
			continue
		}
		n, err := m.ml.Join(targets)
		m.log.Debug("cluster: rejoin", "targets", targets, "reached", n, "err", err)
	}
}

// joinTargets returns the addresses to join: every seed address that is
// not this node's and not an alive member's, and one member lost within
// rejoinLostFor, at random, whose address is neither.
func (m *Membership) joinTargets() []string {
	var addrs []string
	for _, s := range m.seeds {
		addrs = append(addrs, m.resolve(s)...)
	}
	now := time.Now()
	m.mu.Lock()
	alive := make(map[string]bool, len(m.view))
	for _, n := range m.view {
		alive[n.Addr] = true
	}
	var targets, lost []string
	for _, a := range addrs {
		if a != m.local && a != m.bound && !alive[a] && !slices.Contains(targets, a) {
			targets = append(targets, a)
		}
	}
	for name, l := range m.lost {
		switch {
		case now.Sub(l.at) > rejoinLostFor:
			delete(m.lost, name)
		case !alive[l.addr] && !slices.Contains(targets, l.addr):
			lost = append(lost, l.addr)
		}
	}
	m.mu.Unlock()
	if len(lost) > 0 {
		targets = append(targets, lost[rand.IntN(len(lost))])
	}
	return targets
}

// resolve returns the "ip:port" addresses of a seed "host:port", looking a
// hostname up again each time. A failed lookup gives none.
func (m *Membership) resolve(seed string) []string {
	host, port, _ := net.SplitHostPort(seed) // checked by StartMembership
	if ip := net.ParseIP(host); ip != nil {
		if ip4 := ip.To4(); ip4 != nil {
			ip = ip4
		}
		return []string{net.JoinHostPort(ip.String(), port)}
	}
	ctx, cancel := context.WithTimeout(m.ctx, seedLookupTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		m.log.Debug("cluster: seed lookup failed", "seed", seed, "err", err)
		return nil
	}
	addrs := make([]string, 0, len(ips))
	for _, ip := range ips {
		a := ip.IP
		if a4 := a.To4(); a4 != nil {
			a = a4
		}
		addrs = append(addrs, net.JoinHostPort(a.String(), port))
	}
	return addrs
}

// deliver is the event goroutine: it gives Events the pending changes and
// logs name conflicts, until Shutdown.
func (m *Membership) deliver() {
	defer m.wg.Done()
	seen := make(map[string]NodeInfo) // what Events was last given of each alive node
	for {
		select {
		case <-m.stop:
			return
		case <-m.wake:
		}
		for {
			batch, conflicts, dropped := m.takePending()
			m.logConflicts(conflicts, dropped)
			if len(batch) == 0 {
				break
			}
			for _, p := range batch {
				select {
				case <-m.stop:
					return
				default:
				}
				m.deliverNode(seen, p)
			}
		}
	}
}

// deliverNode gives Events the fewest events that take seen to p's state.
func (m *Membership) deliverNode(seen map[string]NodeInfo, p *pendingNode) {
	name := p.name
	was, ok := seen[name]
	if p.left && ok {
		delete(seen, name)
		ok = false
		m.events(Event{Kind: EventLeave, Node: p.leftInfo})
	}
	switch {
	case !p.alive:
	case !ok:
		seen[name] = p.info
		m.events(Event{Kind: EventJoin, Node: p.info})
	case was.Addr != p.info.Addr || !bytes.Equal(was.Meta, p.info.Meta):
		seen[name] = p.info
		m.events(Event{Kind: EventUpdate, Node: p.info})
	}
}

// takePending returns and clears the pending changes, in order, and the
// conflicts not logged yet.
func (m *Membership) takePending() ([]*pendingNode, []conflict, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	batch := make([]*pendingNode, 0, len(m.order))
	for _, name := range m.order {
		batch = append(batch, m.pending[name])
	}
	clear(m.pending)
	m.order = m.order[:0]
	c, d := m.conflicts, m.dropped
	m.conflicts, m.dropped = nil, 0
	return batch, c, d
}

func (m *Membership) logConflicts(cs []conflict, dropped int) {
	for _, c := range cs {
		if c.self {
			m.log.Error("cluster: another node claims this node's name; refused", "name", c.name, "addr", m.local, "other", c.other)
		} else {
			m.log.Warn("cluster: two nodes claim one name; memberlist keeps the one it knew", "name", c.name, "known", c.known, "other", c.other)
		}
	}
	if dropped > 0 {
		m.log.Warn("cluster: more name conflicts not logged", "count", dropped)
	}
}

// selfConflict returns the address of a node seen claiming this node's
// name, or "".
func (m *Membership) selfConflict() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.selfClash
}

// signal wakes the event goroutine. It never blocks.
func (m *Membership) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// changed records a node's new state for Alive, the rejoin loop and
// Events. m.mu must not be held; memberlist's node lock may be.
func (m *Membership) changed(n *memberlist.Node, alive bool) {
	info := NodeInfo{Name: n.Name, Addr: n.Address(), Meta: bytes.Clone(n.Meta)}
	m.mu.Lock()
	if alive {
		m.view[info.Name] = info
		delete(m.lost, info.Name)
	} else {
		delete(m.view, info.Name)
		if info.Name != m.name {
			m.addLostLocked(info)
		}
	}
	if m.events != nil {
		p := m.pending[info.Name]
		if p == nil {
			p = &pendingNode{name: info.Name}
			m.pending[info.Name] = p
			m.order = append(m.order, info.Name)
		}
		if alive {
			p.alive, p.info = true, info
		} else {
			p.alive, p.info = false, NodeInfo{}
			p.left, p.leftInfo = true, info
		}
	}
	m.mu.Unlock()
	if m.events != nil {
		m.signal()
	}
}

// addLostLocked records a lost member for the rejoin loop. m.mu must be
// held.
func (m *Membership) addLostLocked(n NodeInfo) {
	if _, ok := m.lost[n.Name]; !ok && len(m.lost) >= maxLost {
		oldest := ""
		for name, l := range m.lost {
			if oldest == "" || l.at.Before(m.lost[oldest].at) {
				oldest = name
			}
		}
		delete(m.lost, oldest)
	}
	m.lost[n.Name] = lostMember{addr: n.Addr, at: time.Now()}
}

// maxConflicts bounds the conflicts waiting to be logged.
const maxConflicts = 16

// conflicted records a name conflict to log. m.mu must not be held;
// memberlist's node lock may be.
func (m *Membership) conflicted(name, known, other string) {
	c := conflict{name: name, known: known, other: other, self: name == m.name}
	m.mu.Lock()
	if c.self && m.selfClash == "" {
		m.selfClash = other
	}
	if len(m.conflicts) < maxConflicts {
		m.conflicts = append(m.conflicts, c)
	} else {
		m.dropped++
	}
	m.mu.Unlock()
	m.signal()
}

// delegate receives memberlist's callbacks. They may run under memberlist's
// node lock, so they only record and signal (lock order: doc.go).
type delegate struct{ m *Membership }

// NodeMeta returns the metadata StartMembership or UpdateMeta checked, so
// it never exceeds limit (memberlist panics if it does).
func (d delegate) NodeMeta(limit int) []byte {
	meta := *d.m.meta.Load()
	if len(meta) > limit {
		return nil
	}
	return meta
}

func (d delegate) NotifyMsg([]byte)                           {}
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d delegate) LocalState(join bool) []byte                { return nil }
func (d delegate) MergeRemoteState(buf []byte, join bool)     {}

func (d delegate) NotifyJoin(n *memberlist.Node)   { d.m.changed(n, true) }
func (d delegate) NotifyUpdate(n *memberlist.Node) { d.m.changed(n, true) }

// NotifyLeave: n.State is not reliable in memberlist v0.7.0 (it reads
// alive for dead nodes), so dead and left are one event.
func (d delegate) NotifyLeave(n *memberlist.Node) { d.m.changed(n, false) }

// NotifyConflict is memberlist's "Conflicting address": an alive message
// for a known, alive name from another address, which memberlist ignores.
func (d delegate) NotifyConflict(existing, other *memberlist.Node) {
	d.m.conflicted(existing.Name, existing.Address(), other.Address())
}

// NotifyMerge refuses a push/pull merge, on both sides of a join, when the
// other side holds this node's name alive at another address: the joiner
// fails (StartMembership returns ErrNameConflict) and the running node keeps
// its state.
func (d delegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		if p.Name != d.m.name || p.Address() == d.m.local {
			continue
		}
		if p.State == memberlist.StateAlive || p.State == memberlist.StateSuspect {
			d.m.conflicted(p.Name, d.m.local, p.Address())
			return ErrNameConflict
		}
	}
	return nil
}
