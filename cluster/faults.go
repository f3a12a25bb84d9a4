package cluster

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrBlocked is the error of a dial between two nodes that Faults has
// blocked.
var ErrBlocked = errors.New("cluster: link blocked by Faults")

// Faults is a set of blocked node pairs, for tests that run several nodes
// in one process and cut some apart without root (design §8.1). The gossip
// transports it makes ([Faults.Transport]) drop packets and refuse
// connections between blocked nodes; the mesh consults the same Faults
// through [Faults.Blocked]. Blocks are symmetric.
//
// Nodes are named by their node names. A transport learns the gossip
// address of its own node when memberlist asks it for the address to
// advertise, so packets and dials are matched to names by address. Every
// node of a test must use a transport of the same Faults: a node's incoming
// connections cannot be told apart by address (they come from ephemeral
// ports), so a cut stream relies on the dialer's transport.
//
// The zero value blocks nothing and is ready to use. Its methods are safe
// for concurrent use; its lock is a leaf.
type Faults struct {
	mu      sync.Mutex
	blocked map[[2]string]bool      // blocked pairs, the smaller name first
	names   map[string]string       // gossip address -> node name
	conns   map[*faultConn]struct{} // open streams dialed through f's transports
}

func pairOf(a, b string) [2]string {
	if b < a {
		a, b = b, a
	}
	return [2]string{a, b}
}

// Block cuts a and b apart, both ways: packets between them are dropped,
// dials refused with ErrBlocked, and the streams open between them through
// f's transports are closed.
func (f *Faults) Block(a, b string) {
	if a == b {
		return
	}
	var cut []*faultConn
	f.mu.Lock()
	if f.blocked == nil {
		f.blocked = make(map[[2]string]bool)
	}
	f.blocked[pairOf(a, b)] = true
	for c := range f.conns {
		if pairOf(c.self, c.peer) == pairOf(a, b) {
			cut = append(cut, c)
		}
	}
	f.mu.Unlock()
	for _, c := range cut {
		_ = c.Close()
	}
}

// Unblock lets a and b talk again.
func (f *Faults) Unblock(a, b string) {
	f.mu.Lock()
	delete(f.blocked, pairOf(a, b))
	f.mu.Unlock()
}

// Heal removes every block.
func (f *Faults) Heal() {
	f.mu.Lock()
	clear(f.blocked)
	f.mu.Unlock()
}

// Blocked reports whether a and b are cut apart. It does not block.
func (f *Faults) Blocked(a, b string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blocked[pairOf(a, b)]
}

// blockedAddr reports whether self is cut from the node at addr (or named
// name, when given). An address no transport of f has named is never
// blocked.
func (f *Faults) blockedAddr(self, name, addr string) (peer string, blocked bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if name == "" {
		name = f.names[addr]
	}
	return name, name != "" && f.blocked[pairOf(self, name)]
}

// Transport returns a memberlist transport for the node named self that
// sends and receives through inner (a *memberlist.NetTransport, for one)
// and applies f's blocks to it: packets to or from a node blocked from self
// are dropped without an error, as a lossy network would; dials to it fail
// at once with ErrBlocked, as a refused connection would. Use it as
// MembershipConfig.WrapTransport:
//
//	cfg.WrapTransport = func(t memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
//		return faults.Transport(cfg.Node, t)
//	}
//
// It starts one goroutine, which its Shutdown stops; memberlist calls
// Shutdown when it shuts down.
func (f *Faults) Transport(self string, inner memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
	t := &faultTransport{
		f:       f,
		self:    self,
		inner:   inner,
		packets: make(chan *memberlist.Packet),
		done:    make(chan struct{}),
	}
	t.wg.Add(1)
	go t.forward()
	return t
}

// faultTransport is the memberlist transport of one node under Faults.
type faultTransport struct {
	f       *Faults
	self    string
	inner   memberlist.NodeAwareTransport
	packets chan *memberlist.Packet // packets not blocked, to memberlist
	done    chan struct{}           // closed by Shutdown
	wg      sync.WaitGroup
	once    sync.Once
	err     error // inner's Shutdown error
}

// FinalAdvertiseAddr registers the advertised address as self's.
func (t *faultTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	addr, p, err := t.inner.FinalAdvertiseAddr(ip, port)
	if err == nil {
		t.f.mu.Lock()
		if t.f.names == nil {
			t.f.names = make(map[string]string)
		}
		t.f.names[net.JoinHostPort(addr.String(), strconv.Itoa(p))] = t.self
		t.f.mu.Unlock()
	}
	return addr, p, err
}

func (t *faultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *faultTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if _, blocked := t.f.blockedAddr(t.self, a.Name, a.Addr); blocked {
		return time.Now(), nil
	}
	return t.inner.WriteToAddress(b, a)
}

func (t *faultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *faultTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	peer, blocked := t.f.blockedAddr(t.self, a.Name, a.Addr)
	if blocked {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ErrBlocked}
	}
	conn, err := t.inner.DialAddressTimeout(a, timeout)
	if err != nil || peer == "" {
		return conn, err
	}
	c := &faultConn{Conn: conn, f: t.f, self: t.self, peer: peer}
	t.f.mu.Lock()
	if t.f.conns == nil {
		t.f.conns = make(map[*faultConn]struct{})
	}
	t.f.conns[c] = struct{}{}
	blocked = t.f.blocked[pairOf(t.self, peer)] // blocked while dialing
	t.f.mu.Unlock()
	if blocked {
		_ = c.Close()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ErrBlocked}
	}
	return c, nil
}

func (t *faultTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// StreamCh passes incoming streams through: their source port is not the
// peer's gossip port, so the dialer's transport applies the blocks.
func (t *faultTransport) StreamCh() <-chan net.Conn { return t.inner.StreamCh() }

// Shutdown shuts inner down, then stops the forwarding goroutine (which
// keeps reading inner's packets until then, as inner's shutdown may wait for
// a packet to be taken). It is idempotent.
func (t *faultTransport) Shutdown() error {
	t.once.Do(func() {
		t.err = t.inner.Shutdown()
		close(t.done)
		t.wg.Wait()
	})
	return t.err
}

// forward passes inner's packets that are not from a node blocked from
// self on to memberlist.
func (t *faultTransport) forward() {
	defer t.wg.Done()
	in := t.inner.PacketCh()
	for {
		select {
		case <-t.done:
			return
		case p := <-in:
			if _, blocked := t.f.blockedAddr(t.self, "", p.From.String()); blocked {
				continue
			}
			select {
			case t.packets <- p:
			case <-t.done:
				return
			}
		}
	}
}

// faultConn is a stream dialed through a faultTransport, closed when its
// pair is blocked.
type faultConn struct {
	net.Conn
	f          *Faults
	self, peer string
	once       sync.Once
}

func (c *faultConn) Close() error {
	c.once.Do(func() {
		c.f.mu.Lock()
		delete(c.f.conns, c)
		c.f.mu.Unlock()
	})
	return c.Conn.Close()
}
