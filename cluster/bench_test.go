package cluster

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/coveyhq/covey/session"
	"github.com/coveyhq/covey/wire"
)

// The two halves of a broadcast's hop to another node (design §2.1): the
// owner encodes one Fanout frame per node (Node.Fanout), the member node
// decodes it and hands the client frame inside to each target connected
// there (OnFrame's CmdFanout case). The shape is bench/run.sh's cluster
// row: a 64-byte message broadcast in a session of 8 members on 3 nodes,
// 3 of them on the node the Fanout goes to. Neither half may allocate
// (design §8.4): TestFanoutDoesNotAllocate holds them to it.

const (
	fanoutTargets = 3
	fanoutMsgSize = 64
)

// fanoutFixture is the data of one Fanout: a BroadcastReceived client
// frame and the users it goes to.
type fanoutFixture struct {
	sessionID string
	uids      []string
	frame     []byte // the client frame
}

func newFanoutFixture(tb testing.TB) fanoutFixture {
	tb.Helper()
	id, err := session.NewID("n1")
	if err != nil {
		tb.Fatal(err)
	}
	f := fanoutFixture{sessionID: id}
	for i := range fanoutTargets {
		f.uids = append(f.uids, "lt-3f9a1c-"+strconv.Itoa(100+i))
	}
	msg := bytes.Repeat([]byte{0xA5}, fanoutMsgSize)
	f.frame = wire.AppendMessagePushFrame(nil, wire.CmdBroadcastReceived, 1, id, "lt-3f9a1c-7", msg)
	return f
}

// fanoutSender is the owner's half, Node.Fanout without the link: the
// size check, a buffer from the node's pool, the frame encoded into it, the bytes
// copied into the link's outbound buffer (out stands for netio's), the
// buffer returned.
type fanoutSender struct {
	n   *Node
	fx  fanoutFixture
	out []byte
}

func newFanoutSender(tb testing.TB) *fanoutSender {
	tb.Helper()
	n, err := New(Config{Name: "n1", Logger: testLogger()}, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return &fanoutSender{n: n, fx: newFanoutFixture(tb), out: make([]byte, 0, 64<<10)}
}

func (s *fanoutSender) send() {
	if fanoutFit(s.fx.sessionID, s.fx.uids, s.fx.frame, s.n.maxPayload) != len(s.fx.uids) {
		panic("the fixture's Fanout does not fit in one frame")
	}
	b := s.n.bufs.Get().(*[]byte)
	*b = wire.AppendFanoutFrame((*b)[:0], s.fx.sessionID, 0, s.fx.uids, s.fx.frame)
	if len(s.out)+len(*b) > cap(s.out) {
		s.out = s.out[:0] // flushed
	}
	s.out = append(s.out, *b...)
	s.n.putBuf(b)
}

// countConn is a connection that counts what it is given and keeps the
// last frame's length.
type countConn struct{ frames, last int }

func (c *countConn) Deliver(frame []byte) { c.frames++; c.last = len(frame) }

// fanoutReceiver is the member node's half: a session table with the
// targets connected, and the link's reused target list.
type fanoutReceiver struct {
	table   *session.Table
	conns   []*countConn
	targets [][]byte
	payload []byte // the Fanout frame's payload, as Config.Split gives it
}

func newFanoutReceiver(tb testing.TB) *fanoutReceiver {
	tb.Helper()
	t, err := session.New(session.DefaultConfig())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(t.Close)
	fx := newFanoutFixture(tb)
	r := &fanoutReceiver{table: t}
	for _, uid := range fx.uids {
		c := &countConn{}
		r.conns = append(r.conns, c)
		t.Connect(&session.User{ID: uid, SID: "sid-" + uid, Conn: c})
	}
	frame := wire.AppendFanoutFrame(nil, fx.sessionID, 0, fx.uids, fx.frame)
	r.payload = frame[wire.HeaderSize:]
	return r
}

// deliver is OnFrame's CmdFanout case: it returns the deliveries made.
func (r *fanoutReceiver) deliver() int {
	v, err := wire.ConsumeFanout(r.payload)
	if err != nil {
		panic(err)
	}
	r.targets = r.targets[:0]
	for uid, ok := v.Targets.Next(); ok; uid, ok = v.Targets.Next() {
		r.targets = append(r.targets, uid)
	}
	n := r.table.DeliverLocal(r.targets, v.Frame)
	clear(r.targets)
	return n
}

// BenchmarkFanoutEncode is the owner's cost per remote node of one
// broadcast: one Fanout frame for 3 targets.
func BenchmarkFanoutEncode(b *testing.B) {
	s := newFanoutSender(b)
	s.send()
	b.SetBytes(int64(len(s.out)))
	b.ReportAllocs()
	for b.Loop() {
		s.send()
	}
}

// BenchmarkFanoutDeliver is the member node's cost of one Fanout: decode
// it and deliver its client frame to the 3 targets connected there.
func BenchmarkFanoutDeliver(b *testing.B) {
	r := newFanoutReceiver(b)
	b.SetBytes(int64(len(r.payload)))
	b.ReportAllocs()
	for b.Loop() {
		r.deliver()
	}
}

// TestFanoutDoesNotAllocate holds both halves of a Fanout to zero
// allocations, and checks what they do.
func TestFanoutDoesNotAllocate(t *testing.T) {
	s := newFanoutSender(t)
	s.send()
	m, err := wire.ConsumeFanout(s.out[wire.HeaderSize:])
	if err != nil || string(m.SessionID) != s.fx.sessionID || m.Targets.Len() != fanoutTargets || !bytes.Equal(m.Frame, s.fx.frame) {
		t.Fatalf("the encoded Fanout decodes as %+v, %v", m, err)
	}
	r := newFanoutReceiver(t)
	if n := r.deliver(); n != fanoutTargets {
		t.Fatalf("DeliverLocal made %d deliveries, want %d", n, fanoutTargets)
	}
	for i, c := range r.conns {
		if c.frames != 1 || c.last != len(s.fx.frame) {
			t.Errorf("target %d got %d frames (last %d bytes), want 1 of %d bytes", i, c.frames, c.last, len(s.fx.frame))
		}
	}
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers: allocation counts are not meaningful")
	}
	if a := testing.AllocsPerRun(1000, s.send); a != 0 {
		t.Errorf("encoding a Fanout: %v allocations, want 0", a)
	}
	if a := testing.AllocsPerRun(1000, func() { r.deliver() }); a != 0 {
		t.Errorf("delivering a Fanout: %v allocations, want 0", a)
	}
}
