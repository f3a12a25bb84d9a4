package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/coveyhq/covey/netio"
	"github.com/coveyhq/covey/session"
	"github.com/coveyhq/covey/wire"
)

// Config configures a [Node].
type Config struct {
	// Name is the node's name: unique in the cluster, stable across
	// restarts (it is the home written into the node's session IDs).
	Name string
	// Cluster names the cluster; links between nodes of different
	// clusters are refused. Default "covey".
	Cluster string
	// Secret is the cluster secret: it authenticates mesh links and
	// encrypts gossip. Nil is for a cluster on loopback only (the server
	// enforces that).
	Secret []byte
	// Gossip is the memberlist bind address (UDP and TCP), host:port;
	// port 0 picks one. GossipAdvertise is what others reach it at (""
	// for the bound address).
	Gossip, GossipAdvertise string
	// Join lists the gossip addresses of nodes to join (host:port; names
	// are resolved again at each rejoin). Empty: the node starts a
	// cluster of its own, which others may join.
	Join []string
	// MeshAdvertise is the mesh address other nodes dial ("" for the
	// netio server's bound mesh address). TCPAdvertise and KCPAdvertise
	// are the client addresses published to the other nodes.
	MeshAdvertise, TCPAdvertise, KCPAdvertise string
	// MaxPayload is the largest mesh frame payload this node accepts: its
	// netio Config.PeerWire.MaxPayload, told to peers in PeerHello.
	// Default netio.DefaultPeerMaxPayload.
	MaxPayload uint32
	// CallTimeout bounds a request to another node (default 2 s): past
	// it the caller gets StatusUnavailable.
	CallTimeout time.Duration
	// PingInterval is how often a link that is up is pinged (default 1 s);
	// the other end closes a link silent for netio's PeerIdleTimeout
	// (3 s by default), and the node behind it is then lost.
	PingInterval time.Duration
	// Faults, for tests, blocks pairs of nodes (gossip and mesh).
	Faults *Faults
	// Logger receives the node's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Executor runs the commands that other nodes forward to the sessions
// this node owns: the server implements it. Both methods run on a mesh
// link's event loop and must not block.
//
// Each Exec is first offered to ExecInline, as it arrived: it either runs
// the command at once and returns its status (a reply with no payload),
// or reports false, and the Exec is then decoded and handed to
// ExecRemote, which calls reply exactly once, on any goroutine.
type Executor interface {
	ExecInline(peer string, e *wire.ExecView) (status wire.Status, ran bool)
	ExecRemote(peer string, e *wire.Exec, reply func(status wire.Status, payload []byte))
}

// Node is this process's member of a cluster: its membership, its mesh
// links and the routing of session traffic to other nodes. It implements
// session.Remote for the session table.
type Node struct {
	cfg        Config
	log        *slog.Logger
	table      *session.Table
	exec       Executor
	net        *netio.Server
	ml         *Membership
	boot       uint64
	meshKey    []byte
	maxPayload uint32

	// links maps each peer whose link is up to that link: a copy made
	// whenever one changes (under mu), read per Fanout and Exec without
	// a lock.
	links atomic.Pointer[map[string]*link]

	mu          sync.Mutex
	peers       map[string]*peer   // by node name
	handshaking map[*link]struct{} // links not up yet, closed past handshakeTimeout
	closing     bool

	bufs sync.Pool // *[]byte for encoding mesh frames
	pres presence

	stop chan struct{}
	wg   sync.WaitGroup
}

// peer is what a Node knows of another node.
type peer struct {
	name    string
	alive   bool // memberlist counts it alive
	meta    wire.NodeMeta
	link    *link // up, or nil
	dialing bool  // a dialer goroutine runs for it

	// lostMu orders the clean-up after a lost link before the next link
	// comes up: a late clean-up would wipe the new link's state.
	lostMu sync.Mutex

	stats linkStats // across the peer's links
}

// linkStats counts a peer's mesh traffic, for metrics.
type linkStats struct {
	framesIn, framesOut atomic.Uint64
	calls               atomic.Uint64 // requests answered (or failed)
	callNanos           atomic.Uint64 // their summed round trip
	lost                atomic.Uint64 // times the peer was lost
}

// ErrNoName is returned by New for a Config without a valid Name.
var ErrNoName = errors.New("cluster: a node needs a name of 1-64 characters of [A-Za-z0-9._-]")

// New returns a node for table; exec runs commands forwarded by other
// nodes. It does not start: call Start once the netio server listens.
func New(cfg Config, table *session.Table, exec Executor) (*Node, error) {
	if !validNodeName(cfg.Name) {
		return nil, ErrNoName
	}
	if cfg.Cluster == "" {
		cfg.Cluster = "covey"
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 2 * time.Second
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = netio.DefaultPeerMaxPayload
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	n := &Node{
		cfg: cfg, log: cfg.Logger.With("node", cfg.Name), table: table, exec: exec,
		boot: binary.LittleEndian.Uint64(b[:]) | 1, meshKey: MeshKey(cfg.Secret),
		maxPayload: cfg.MaxPayload, peers: make(map[string]*peer), stop: make(chan struct{}),
		handshaking: make(map[*link]struct{}),
	}
	n.bufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	n.pres.recs = make(map[string]presenceRec)
	n.pres.gens = make(map[string]uint64)
	return n, nil
}

func validNodeName(name string) bool { return session.ValidNodeName(name) }

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Start joins the cluster through ns, the netio server whose mesh
// listener and engine carry the links (its handler must send peer
// connections to OnOpen, OnFrame and OnClose).
func (n *Node) Start(ns *netio.Server) error {
	n.net = ns
	if n.cfg.MeshAdvertise == "" && ns.MeshAddr() != nil {
		n.cfg.MeshAdvertise = ns.MeshAddr().String()
	}
	mc := MembershipConfig{
		Node: n.cfg.Name, Bind: n.cfg.Gossip, Advertise: n.cfg.GossipAdvertise, Seeds: n.cfg.Join,
		Secret: n.cfg.Secret, Meta: n.metaBytes, Events: n.onEvent, Logger: n.log,
	}
	if f := n.cfg.Faults; f != nil {
		mc.WrapTransport = func(t memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
			return f.Transport(n.cfg.Name, t)
		}
	}
	ml, err := StartMembership(mc)
	if err != nil {
		return err
	}
	n.ml = ml
	n.wg.Add(1)
	go n.tick()
	return nil
}

// GossipAddr returns the gossip address the node is bound to.
func (n *Node) GossipAddr() string {
	if n.ml == nil {
		return ""
	}
	return n.ml.LocalAddr()
}

// metaBytes is the node's memberlist metadata.
func (n *Node) metaBytes() []byte {
	m := wire.NodeMeta{Proto: wire.MeshProtocolVersion, MeshAddr: n.cfg.MeshAdvertise, TCPAddr: n.cfg.TCPAdvertise, KCPAddr: n.cfg.KCPAdvertise, Boot: n.boot}
	return m.Append(nil)
}

// onEvent follows memberlist: a node seen alive is dialed (by the node
// whose name sorts first); a node gone is lost.
func (n *Node) onEvent(ev Event) {
	name := ev.Node.Name
	if name == n.cfg.Name {
		return
	}
	switch ev.Kind {
	case EventJoin, EventUpdate:
		var meta wire.NodeMeta
		if err := meta.Consume(ev.Node.Meta); err != nil {
			n.log.Warn("node with unreadable metadata ignored", "peer", name, "err", err)
			return
		}
		n.mu.Lock()
		p := n.peerLocked(name)
		p.alive, p.meta = true, meta
		dial := n.cfg.Name < name && !p.dialing && !n.closing
		if dial {
			p.dialing = true
			n.wg.Add(1)
		}
		n.mu.Unlock()
		if dial {
			go n.dialLoop(p)
		}
	case EventLeave:
		var meta wire.NodeMeta
		_ = meta.Consume(ev.Node.Meta) // no boot: the verdict applies to any link
		n.mu.Lock()
		p := n.peers[name]
		n.mu.Unlock()
		if p != nil {
			n.lose(p, nil, meta.Boot, "left the cluster or was declared dead")
		}
	}
}

func (n *Node) peerLocked(name string) *peer {
	p := n.peers[name]
	if p == nil {
		p = &peer{name: name}
		n.peers[name] = p
	}
	return p
}

// dialLoop keeps a link to p up while memberlist counts p alive: it
// dials, waits for the link to close, and dials again, backing off from
// 100 ms to 2 s while dials fail.
func (n *Node) dialLoop(p *peer) {
	defer n.wg.Done()
	backoff := 100 * time.Millisecond
	for {
		n.mu.Lock()
		addr, alive := p.meta.MeshAddr, p.alive
		if !alive || n.closing {
			p.dialing = false
			n.mu.Unlock()
			return
		}
		n.mu.Unlock()
		if n.cfg.Faults == nil || !n.cfg.Faults.Blocked(n.cfg.Name, p.name) {
			l := newLink(n, true)
			l.want = p.name
			ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
			_, err := n.net.DialPeer(ctx, addr, l)
			cancel()
			if err == nil {
				select {
				case <-l.up:
				case <-n.stop:
				}
				if l.isUp() {
					backoff = 100 * time.Millisecond
					select {
					case <-l.closed():
					case <-n.stop:
					}
				}
			} else {
				n.log.Debug("mesh dial failed", "peer", p.name, "addr", addr, "err", err)
			}
		}
		select {
		case <-n.stop:
			n.mu.Lock()
			p.dialing = false
			n.mu.Unlock()
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// linkUp makes l the link to its peer, replacing (and cleaning up after)
// an older one.
func (n *Node) linkUp(l *link) {
	l.mu.Lock()
	name, boot := l.peer, l.boot
	l.mu.Unlock()
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		l.nc.Close(wire.StatusShuttingDown, "node shutting down")
		return
	}
	p := n.peerLocked(name)
	n.mu.Unlock()
	l.stats = &p.stats // before the link is up: its users count on it

	p.lostMu.Lock()
	n.mu.Lock()
	old := p.link
	n.setLinkLocked(p, nil)
	n.mu.Unlock()
	if old != nil {
		// A second link to the same node: the newer wins (the other end
		// restarted, or saw the old one die first). Whatever crossed the
		// old one is dropped on both ends, as for a lost link.
		old.close()
		old.nc.Close(wire.StatusReplaced, "replaced by a newer link")
		n.forget(p) // as lose does: the old link's close will not
	}
	l.mu.Lock()
	if l.state == linkClosed {
		l.mu.Unlock()
		p.lostMu.Unlock()
		return
	}
	l.setStateLocked(linkUp)
	close(l.up)
	l.mu.Unlock()
	n.mu.Lock()
	n.setLinkLocked(p, l)
	delete(n.handshaking, l)
	n.mu.Unlock()
	p.lostMu.Unlock()
	n.log.Info("mesh link up", "peer", name, "boot", boot, "dialed", l.dialed)
	go n.reassert() // the directory now spans the new node too
}

// lose cleans up after p's link l closed (nil: whatever link p has, as
// when memberlist declares p gone): p's members leave this node's
// sessions and this node's users lose p's sessions (Table.NodeLost). A
// link that was not p's current one changes nothing. With l nil, boot is
// the run memberlist's verdict is about (0: any run): a link up to
// another run of p is its successor, and stays.
func (n *Node) lose(p *peer, l *link, boot uint64, why string) {
	p.lostMu.Lock()
	defer p.lostMu.Unlock()
	n.mu.Lock()
	cur := p.link
	switch {
	case l != nil && cur != l:
		n.mu.Unlock()
		return
	case l == nil && boot != 0 && cur != nil && cur.boot != boot:
		// A late verdict on an earlier run of the node: the link is to
		// its successor, which is alive. Checked under lostMu, which a
		// new link takes to come up.
		n.mu.Unlock()
		return
	case l == nil:
		p.alive = false
	}
	n.setLinkLocked(p, nil)
	n.mu.Unlock()
	if cur != nil {
		cur.close()
		cur.nc.Close(wire.StatusShuttingDown, "peer lost")
	}
	if cur == nil && l == nil {
		// Memberlist's verdict with no link up: there may still be state
		// from a link that closed before; NodeLost is idempotent.
	}
	n.forget(p)
	n.log.Info("node lost", "peer", p.name, "reason", why)
	go n.reassert()
}

// forget drops what crossed to p's node (Table.NodeLost) and the
// directory records naming it, and counts the loss. p.lostMu must be held.
func (n *Node) forget(p *peer) {
	n.table.NodeLost(p.name)
	n.dropRecordsOf(p.name)
	p.stats.lost.Add(1)
}

// alive reports whether memberlist counts node alive.
func (n *Node) alive(node string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peers[node]
	return p != nil && p.alive
}

// upLink returns the link to node if it is up.
func (n *Node) upLink(node string) *link {
	if m := n.links.Load(); m != nil {
		return (*m)[node]
	}
	return nil
}

// setLinkLocked makes l (nil: none) p's link and updates n.links. n.mu
// must be held.
func (n *Node) setLinkLocked(p *peer, l *link) {
	p.link = l
	m := make(map[string]*link, len(n.peers))
	for name, q := range n.peers {
		if q.link != nil {
			m[name] = q.link
		}
	}
	n.links.Store(&m)
}

// tick expires calls, pings links, closes handshakes that take too long
// and links that fault injection blocks.
func (n *Node) tick() {
	defer n.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	lastPing := time.Now()
	for {
		select {
		case <-n.stop:
			return
		case now := <-t.C:
			ping := now.Sub(lastPing) >= n.cfg.PingInterval
			if ping {
				lastPing = now
			}
			n.mu.Lock()
			links := make([]*link, 0, len(n.peers))
			for _, p := range n.peers {
				if p.link != nil {
					links = append(links, p.link)
				}
			}
			var slow []*link
			for l := range n.handshaking {
				if now.Sub(l.opened) > handshakeTimeout {
					slow = append(slow, l)
					delete(n.handshaking, l)
				}
			}
			n.mu.Unlock()
			for _, l := range slow {
				l.fail(wire.StatusUnauthenticated, "handshake not finished in time")
			}
			for _, l := range links {
				l.expire(now, n.cfg.CallTimeout)
				if n.cfg.Faults != nil && n.cfg.Faults.Blocked(n.cfg.Name, l.peer) {
					l.nc.Close(wire.StatusShuttingDown, "blocked (fault injection)")
					continue
				}
				if ping {
					l.request(wire.CmdPeerPing, nil, nil)
				}
			}
		}
	}
}

// Members returns how many nodes the membership counts alive, this one
// included.
func (n *Node) Members() int {
	if n.ml == nil {
		return 1
	}
	return len(n.ml.Alive())
}

// Ready reports whether the node has joined its cluster: memberlist runs
// (it tried its seeds once at start) and every other node it counts alive
// has a link up.
func (n *Node) Ready() bool {
	if n.ml == nil {
		return false
	}
	alive := n.ml.Alive()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range alive {
		if a.Name == n.cfg.Name {
			continue
		}
		if p := n.peers[a.Name]; p == nil || p.link == nil {
			return false
		}
	}
	return true
}

// PeerInfo describes one other node, for metrics and operators.
type PeerInfo struct {
	Name    string
	Alive   bool // memberlist counts it alive
	LinkUp  bool
	Pending int // bytes queued on the link

	// Counters since the node started, across the peer's links.
	FramesIn, FramesOut uint64
	Calls               uint64        // requests to the peer answered or failed
	CallTime            time.Duration // their summed round trip
	Lost                uint64        // times the peer was lost
}

// Peers returns what the node knows of the others, sorted by name.
func (n *Node) Peers() []PeerInfo {
	n.mu.Lock()
	out := make([]PeerInfo, 0, len(n.peers))
	for _, p := range n.peers {
		pi := PeerInfo{
			Name: p.name, Alive: p.alive, LinkUp: p.link != nil,
			FramesIn: p.stats.framesIn.Load(), FramesOut: p.stats.framesOut.Load(),
			Calls: p.stats.calls.Load(), CallTime: time.Duration(p.stats.callNanos.Load()), Lost: p.stats.lost.Load(),
		}
		if p.link != nil {
			pi.Pending = p.link.nc.Pending()
		}
		out = append(out, pi)
	}
	n.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Shutdown leaves the cluster (telling the others at once, so that they
// clean up without waiting for a timeout) and stops the node's
// goroutines. The links close with the netio server.
func (n *Node) Shutdown(timeout time.Duration) error {
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		return nil
	}
	n.closing = true
	n.mu.Unlock()
	var err error
	if n.ml != nil {
		err = n.ml.Leave(timeout)
		if serr := n.ml.Shutdown(); err == nil {
			err = serr
		}
	}
	close(n.stop)
	n.wg.Wait()
	return err
}
