package session

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/coveyhq/covey/internal/rate"
	"github.com/coveyhq/covey/wire"
)

// fakeClock is a manual clock for the table's scheduler.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// advance moves the clock on and wakes the scheduler.
func (c *fakeClock) advance(tb *Table, d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
	tb.sched.poke()
}

// newTestTable returns a table on a fake clock, closed at the end of the test.
func newTestTable(t testing.TB, mutate ...func(*Config)) (*Table, *fakeClock) {
	t.Helper()
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	cfg := DefaultConfig()
	for _, m := range mutate {
		m(&cfg)
	}
	tb, err := newTable(cfg, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.Close)
	return tb, clk
}

// push is one decoded push frame.
type push struct {
	ver     uint8
	cmd     wire.Cmd
	payload []byte
}

// recorder is an in-memory Conn that keeps every frame it is handed and
// signals each arrival.
type recorder struct {
	mu     sync.Mutex
	frames []push
	raw    [][]byte
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1024)} }

func (r *recorder) Deliver(frame []byte) {
	h, err := wire.ConsumeHeader(frame)
	if err != nil || h.Flags&wire.FlagPush == 0 || int(h.Length) != len(frame)-wire.HeaderSize {
		panic("recorder: bad push frame")
	}
	p := push{ver: h.Ver, cmd: h.Cmd, payload: append([]byte(nil), frame[wire.HeaderSize:]...)}
	r.mu.Lock()
	r.frames = append(r.frames, p)
	r.raw = append(r.raw, append([]byte(nil), frame...))
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// pushes returns the pushes received so far with the given command.
func (r *recorder) pushes(cmd wire.Cmd) []push {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []push
	for _, p := range r.frames {
		if p.cmd == cmd {
			out = append(out, p)
		}
	}
	return out
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.frames)
}

// memberEvents decodes the MemberEvent pushes with the given command.
func (r *recorder) memberEvents(t *testing.T, cmd wire.Cmd) []wire.MemberEvent {
	t.Helper()
	var out []wire.MemberEvent
	for _, p := range r.pushes(cmd) {
		var ev wire.MemberEvent
		if err := ev.Consume(p.payload); err != nil {
			t.Fatalf("decode %v: %v", cmd, err)
		}
		out = append(out, ev)
	}
	return out
}

// player returns an online user with a recorder.
func player(tb *Table, id string) (*User, *recorder) {
	rec := newRecorder()
	u := &User{ID: id, SID: "sid-" + id, Data: map[string]any{"name": "N" + id}, Conn: rec}
	tb.Connect(u)
	return u, rec
}

var bg = context.Background()

// mustCreate creates a session of type typ owned by u.
func mustCreate(t *testing.T, tb *Table, u *User, typ uint8, maxMembers uint16) *Session {
	t.Helper()
	s, err := tb.Create(bg, u, Spec{Type: typ, MaxMembers: maxMembers})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return s
}

func mustJoin(t *testing.T, tb *Table, s *Session, u *User) {
	t.Helper()
	if err := tb.Join(bg, s.Type(), s.ID(), u); err != nil {
		t.Fatalf("join %s: %v", u.ID, err)
	}
}

// waitFor waits until ch yields or fails the test after a generous bound.
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func wantErr(t *testing.T, err, want error, family func(error) bool) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	if family != nil && !family(err) {
		t.Fatalf("err %v not in the expected family", err)
	}
}

// unlimited lifts the per-user budgets, for tests that create sessions
// at a rate no player may.
func unlimited(c *Config) {
	c.MaxEmptyPerUser = -1
	c.CreateRate = rate.Limit{PerSecond: -1}
	c.InviteRate = rate.Limit{PerSecond: -1}
	c.InviteReceiveRate = rate.Limit{PerSecond: -1}
}

func contextWithCancel() (context.Context, context.CancelFunc) { return context.WithCancel(bg) }
