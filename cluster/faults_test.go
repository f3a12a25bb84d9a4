package cluster

import (
	"errors"
	"io"
	"log"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestFaultsBlockIsSymmetricUntilHealed(t *testing.T) {
	var f Faults
	if f.Blocked("a", "b") {
		t.Fatal("the zero Faults blocks a pair")
	}
	f.Block("a", "b")
	f.Block("a", "c")
	if !f.Blocked("a", "b") || !f.Blocked("b", "a") {
		t.Fatal("Block(a, b) is not seen both ways")
	}
	if f.Blocked("b", "c") {
		t.Fatal("b and c are blocked, only a is cut off")
	}
	f.Unblock("b", "a")
	if f.Blocked("a", "b") || !f.Blocked("c", "a") {
		t.Fatal("Unblock(b, a) did not unblock a-b alone")
	}
	f.Heal()
	if f.Blocked("a", "c") {
		t.Fatal("Heal left a block")
	}
	f.Block("a", "a")
	if f.Blocked("a", "a") {
		t.Fatal("a node is blocked from itself")
	}
}

// faultNode is one node's transport under a test's Faults, bound to
// 127.0.0.1:0, with its address registered.
type faultNode struct {
	tr   memberlist.NodeAwareTransport
	raw  *memberlist.NetTransport // the same sockets without the faults
	addr string
}

func newFaultNodes(t *testing.T, f *Faults, names ...string) []faultNode {
	t.Helper()
	var nodes []faultNode
	for _, name := range names {
		nt, err := bindTransport(net.IPv4(127, 0, 0, 1), 0, log.New(io.Discard, "", 0))
		if err != nil {
			t.Fatal(err)
		}
		ft := f.Transport(name, nt)
		ip, port, err := ft.FinalAdvertiseAddr("", 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ft.Shutdown() })
		nodes = append(nodes, faultNode{tr: ft, raw: nt, addr: net.JoinHostPort(ip.String(), strconv.Itoa(port))})
	}
	return nodes
}

// nextPacket returns the next packet tr receives.
func nextPacket(t *testing.T, tr memberlist.Transport) string {
	t.Helper()
	select {
	case p := <-tr.PacketCh():
		return string(p.Buf)
	case <-time.After(waitLong):
		t.Fatal("no packet")
		return ""
	}
}

func TestFaultsTransportDropsPacketsBothWays(t *testing.T) {
	var f Faults
	n := newFaultNodes(t, &f, "a", "b", "c")
	a, b, c := n[0], n[1], n[2]
	send := func(from memberlist.Transport, to faultNode, msg string) {
		t.Helper()
		if _, err := from.WriteTo([]byte(msg), to.addr); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(at faultNode, want string) {
		t.Helper()
		if got := nextPacket(t, at.tr); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	send(a.tr, b, "before")
	expect(b, "before")

	// Blocked: dropped by the sender's transport, and by the receiver's
	// when the sender has none. c, not blocked, sends a marker after them
	// into the same socket: the marker is the first packet through.
	f.Block("a", "b")
	send(a.tr, b, "dropped by a")
	send(a.raw, b, "dropped by b")
	send(c.tr, b, "marker for b")
	expect(b, "marker for b")
	send(b.tr, a, "dropped by b")
	send(b.raw, a, "dropped by a")
	send(c.tr, a, "marker for a")
	expect(a, "marker for a")

	f.Heal()
	send(a.tr, b, "after")
	expect(b, "after")
	send(b.tr, a, "back")
	expect(a, "back")
}

func TestFaultsTransportRefusesDialsAndCutsStreams(t *testing.T) {
	var f Faults
	n := newFaultNodes(t, &f, "a", "b")
	a, b := n[0], n[1]
	conn, err := a.tr.DialTimeout(b.addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var accepted net.Conn
	select {
	case accepted = <-b.tr.StreamCh():
	case <-time.After(waitLong):
		t.Fatal("b accepted no stream")
	}
	defer accepted.Close()

	f.Block("b", "a")
	_ = accepted.SetReadDeadline(time.Now().Add(waitLong))
	if _, err := accepted.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read on a cut stream: %v, want EOF", err)
	}
	for _, dial := range []func() (net.Conn, error){
		func() (net.Conn, error) { return a.tr.DialTimeout(b.addr, time.Second) },
		func() (net.Conn, error) {
			return b.tr.DialAddressTimeout(memberlist.Address{Addr: a.addr, Name: "a"}, time.Second)
		},
	} {
		if c, err := dial(); !errors.Is(err, ErrBlocked) {
			if c != nil {
				c.Close()
			}
			t.Fatalf("dial across the block: err = %v, want ErrBlocked", err)
		}
	}
	f.Heal()
	c, err := b.tr.DialTimeout(a.addr, time.Second)
	if err != nil {
		t.Fatalf("dial after Heal: %v", err)
	}
	c.Close()
	select { // as memberlist would: the listener waits for it to be taken
	case c := <-a.tr.StreamCh():
		c.Close()
	case <-time.After(waitLong):
		t.Fatal("a accepted no stream after Heal")
	}
}
