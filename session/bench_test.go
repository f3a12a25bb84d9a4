package session

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
)

// bufConn is a member that appends each frame to its own buffer, as a
// connection's outbound buffer would. The buffer starts over when full, as
// an outbound buffer does once flushed, so it stays small and warm in
// cache like a real one (an ever-growing 256 KiB buffer per member measured
// the memory system instead: 52 ns/member at 64 members).
type bufConn struct{ buf []byte }

func (c *bufConn) Deliver(frame []byte) {
	if len(c.buf)+len(frame) > cap(c.buf) {
		c.buf = c.buf[:0]
	}
	c.buf = append(c.buf, frame...)
}

// BenchmarkJoinLeave measures one join plus one leave, in parallel, each
// goroutine on its own session.
func BenchmarkJoinLeave(b *testing.B) {
	tb, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer tb.Close()
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		n := next.Add(1)
		owner := &User{ID: "owner" + strconv.FormatInt(n, 10), Conn: &bufConn{buf: make([]byte, 0, 64<<10)}}
		tb.Connect(owner)
		s, err := tb.Create(bg, owner, Spec{Type: 1, MaxMembers: 8})
		if err != nil {
			b.Error(err)
			return
		}
		joiner := &User{ID: "joiner" + strconv.FormatInt(n, 10), Conn: &bufConn{buf: make([]byte, 0, 64<<10)}}
		tb.Connect(joiner)
		id := s.ID()
		for pb.Next() {
			if err := tb.Join(bg, 1, id, joiner); err != nil {
				b.Error(err)
				return
			}
			if err := tb.Leave(bg, 1, id, joiner); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchmarkBroadcast(b *testing.B, members int) { benchmarkFanout(b, members, false) }

// BenchmarkBroadcastFrom8 is the client's built-in broadcast: a member's
// message to the 7 others as a BroadcastReceived push naming the sender.
func BenchmarkBroadcastFrom8(b *testing.B) { benchmarkFanout(b, 8, true) }

func benchmarkFanout(b *testing.B, members int, fromMember bool) {
	tb, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer tb.Close()
	conns := make([]*bufConn, members)
	var s *Session
	var first *User
	for i := range conns {
		conns[i] = &bufConn{buf: make([]byte, 0, 8<<10)}
		u := &User{ID: fmt.Sprintf("m%d", i), Conn: conns[i]}
		tb.Connect(u)
		if i == 0 {
			first = u
			s, err = tb.Create(bg, u, Spec{Type: 1, MaxMembers: uint16(members)})
		} else {
			err = tb.Join(bg, 1, s.ID(), u)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	msg := make([]byte, 64)
	id := s.ID()
	b.ReportAllocs()
	b.SetBytes(int64(len(msg) * members))
	b.ResetTimer()
	for b.Loop() {
		if fromMember {
			err = tb.BroadcastFrom(bg, 1, first, msg)
		} else {
			err = tb.Broadcast(bg, 1, id, 1, 100, msg)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*members), "ns/member")
}

// BenchmarkBroadcast8 fans a 64-byte broadcast out to 8 in-memory members.
func BenchmarkBroadcast8(b *testing.B) { benchmarkBroadcast(b, 8) }

// BenchmarkBroadcast64 fans a 64-byte broadcast out to 64 in-memory members.
func BenchmarkBroadcast64(b *testing.B) { benchmarkBroadcast(b, 64) }

// BenchmarkSetProperty sets one integer property on a member's session, in
// parallel, each goroutine on its own session.
func BenchmarkSetProperty(b *testing.B) {
	tb, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer tb.Close()
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		u := &User{ID: "p" + strconv.FormatInt(next.Add(1), 10)}
		if _, err := tb.Create(bg, u, Spec{Type: 1, MaxMembers: 8}); err != nil {
			b.Error(err)
			return
		}
		i := 0
		for pb.Next() {
			i++
			if err := tb.SetProperty(bg, 1, u, "score", i); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSetPropertyPushed8 is one member's write of an integer property
// in a session of 8, each write pushed to the 7 others as a
// PropertiesChanged (encoded once, delivered under the session's delivery
// lock).
func BenchmarkSetPropertyPushed8(b *testing.B) {
	tb, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer tb.Close()
	var s *Session
	var writer *User
	for i := range 8 {
		u := &User{ID: fmt.Sprintf("m%d", i), Conn: &bufConn{buf: make([]byte, 0, 8<<10)}}
		tb.Connect(u)
		if i == 0 {
			writer = u
			s, err = tb.Create(bg, u, Spec{Type: 1, MaxMembers: 8})
		} else {
			err = tb.Join(bg, 1, s.ID(), u)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tb.IncrProperty(bg, 1, writer, "score", 1); err != nil {
			b.Fatal(err)
		}
	}
}
