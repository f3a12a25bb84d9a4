package session

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/coveyhq/covey/wire"
)

// changes decodes the PropertiesChanged pushes r received, in order.
func (r *recorder) changes(t *testing.T) []wire.PropertiesChangedPush {
	t.Helper()
	r.mu.Lock()
	raw := slices.Clone(r.raw)
	r.mu.Unlock()
	var out []wire.PropertiesChangedPush
	for _, frame := range raw {
		f, _, err := wire.DefaultConfig().Split(frame)
		if err != nil {
			t.Fatalf("split: %v", err)
		}
		if f.Cmd != wire.CmdPropertiesChanged {
			continue
		}
		payload, err := wire.DefaultConfig().Decompress(nil, f)
		if err != nil {
			t.Fatalf("decompress: %v", err)
		}
		var p wire.PropertiesChangedPush
		if err := p.Consume(payload); err != nil {
			t.Fatalf("decode PropertiesChanged: %v", err)
		}
		out = append(out, p)
	}
	return out
}

// lastChange returns the only PropertiesChanged push r received since
// the previous call (skip says how many were seen before), failing the
// test unless there is exactly one new one.
func lastChange(t *testing.T, r *recorder, skip *int) wire.PropertiesChangedPush {
	t.Helper()
	all := r.changes(t)
	if len(all) != *skip+1 {
		t.Fatalf("%d new PropertiesChanged pushes, want 1: %+v", len(all)-*skip, all[*skip:])
	}
	*skip = len(all)
	return all[len(all)-1]
}

// lobby is a session of type 1 with alice (owner), bob and carol.
type lobby struct {
	tb                *Table
	s                 *Session
	alice, bob, carol *User
	recs              map[string]*recorder
	seen              map[string]*int
}

func newLobby(t *testing.T, spec Spec) *lobby {
	t.Helper()
	tb, _ := newTestTable(t)
	l := &lobby{tb: tb, recs: map[string]*recorder{}, seen: map[string]*int{}}
	var rec *recorder
	l.alice, rec = player(tb, "alice")
	l.recs["alice"] = rec
	spec.Type, spec.MaxMembers = 1, 4
	s, err := tb.Create(bg, l.alice, spec)
	must(t, err)
	l.s = s
	l.bob, l.recs["bob"] = player(tb, "bob")
	l.carol, l.recs["carol"] = player(tb, "carol")
	mustJoin(t, tb, s, l.bob)
	mustJoin(t, tb, s, l.carol)
	for id := range l.recs {
		l.seen[id] = new(int)
	}
	return l
}

// expect checks that every member in to received exactly one new
// PropertiesChanged push equal to want, and every other member none.
func (l *lobby) expect(t *testing.T, want wire.PropertiesChangedPush, to ...string) {
	t.Helper()
	want.Type, want.SessionID = 1, l.s.ID()
	for id, rec := range l.recs {
		if !contains(to, id) {
			if n := len(rec.changes(t)); n != *l.seen[id] {
				t.Fatalf("%s received %d PropertiesChanged pushes it should not have", id, n-*l.seen[id])
			}
			continue
		}
		got := lastChange(t, rec, l.seen[id])
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s received %+v, want %+v", id, got, want)
		}
	}
}

func kv(key string, v wire.Value) wire.KeyValue { return wire.KeyValue{Key: key, Value: v} }

// TestPropertiesChangedPushes checks that every kind of successful
// property write sends one PropertiesChanged push to the other members
// (to all of them when the game's server code wrote), carrying the keys
// written with their new values or the key deleted, and that failed
// writes send none.
func TestPropertiesChangedPushes(t *testing.T) {
	l := newLobby(t, Spec{})
	tb, alice, bob := l.tb, l.alice, l.bob
	others := []string{"bob", "carol"}

	must(t, tb.SetProperty(bg, 1, alice, "ready_alice", true))
	l.expect(t, wire.PropertiesChangedPush{WriterID: "alice", Props: []wire.KeyValue{kv("ready_alice", wire.BoolValue(true))}}, others...)

	must(t, tb.SetProperties(bg, 1, bob, map[string]any{"z": "last", "a": 1, "m": 2.5}))
	l.expect(t, wire.PropertiesChangedPush{WriterID: "bob", Props: []wire.KeyValue{
		kv("a", wire.IntValue(1)), kv("m", wire.FloatValue(2.5)), kv("z", wire.StringValue("last")),
	}}, "alice", "carol")

	must(t, tb.SetPropertyIfNotExists(bg, 1, alice, "map", "dust"))
	l.expect(t, wire.PropertiesChangedPush{WriterID: "alice", Props: []wire.KeyValue{kv("map", wire.StringValue("dust"))}}, others...)

	n, err := tb.IncrProperty(bg, 1, alice, "a", 41)
	must(t, err)
	l.expect(t, wire.PropertiesChangedPush{WriterID: "alice", Props: []wire.KeyValue{kv("a", wire.IntValue(n))}}, others...)

	must(t, tb.CompareAndSetProperty(bg, 1, alice, "a", 42, uint8(7)))
	l.expect(t, wire.PropertiesChangedPush{WriterID: "alice", Props: []wire.KeyValue{kv("a", wire.UintValue(7))}}, others...)

	must(t, tb.UpdateProperty(bg, 1, alice, "m", 1.5, func(_ bool, stored, u any) any { return stored.(float64) + u.(float64) }))
	l.expect(t, wire.PropertiesChangedPush{WriterID: "alice", Props: []wire.KeyValue{kv("m", wire.FloatValue(4))}}, others...)

	existed, err := tb.DeleteProperty(bg, 1, alice, "map")
	if err != nil || !existed {
		t.Fatalf("DeleteProperty = %v, %v", existed, err)
	}
	l.expect(t, wire.PropertiesChangedPush{WriterID: "alice", Deleted: []string{"map"}}, others...)

	// The game's server code writes: every member is told, with no writer.
	all := []string{"alice", "bob", "carol"}
	must(t, l.s.SetProperty("round", 2))
	l.expect(t, wire.PropertiesChangedPush{Props: []wire.KeyValue{kv("round", wire.IntValue(2))}}, all...)
	must(t, l.s.SetProperties(map[string]any{"b": false, "c": "x"}))
	l.expect(t, wire.PropertiesChangedPush{Props: []wire.KeyValue{kv("b", wire.BoolValue(false)), kv("c", wire.StringValue("x"))}}, all...)
	must(t, l.s.SetPropertyIfNotExists("d", 1))
	l.expect(t, wire.PropertiesChangedPush{Props: []wire.KeyValue{kv("d", wire.IntValue(1))}}, all...)
	_, err = l.s.IncrProperty("round", 1)
	must(t, err)
	l.expect(t, wire.PropertiesChangedPush{Props: []wire.KeyValue{kv("round", wire.IntValue(3))}}, all...)
	must(t, l.s.CompareAndSetProperty("round", 3, 4))
	l.expect(t, wire.PropertiesChangedPush{Props: []wire.KeyValue{kv("round", wire.IntValue(4))}}, all...)
	must(t, l.s.UpdateProperties(map[string]any{"round": 1, "e": 1}, func(_ bool, stored, u any) any {
		if stored == nil {
			return u
		}
		return stored.(int64) + int64(u.(int))
	}))
	l.expect(t, wire.PropertiesChangedPush{Props: []wire.KeyValue{kv("e", wire.IntValue(1)), kv("round", wire.IntValue(5))}}, all...)
	if _, err := l.s.DeleteProperty("e"); err != nil {
		t.Fatal(err)
	}
	l.expect(t, wire.PropertiesChangedPush{Deleted: []string{"e"}}, all...)

	// Failed writes, and deleting a missing key, tell no one.
	_ = tb.SetProperty(bg, 1, alice, "", 1)
	_ = tb.SetPropertyIfNotExists(bg, 1, alice, "round", 1)
	_, _ = tb.IncrProperty(bg, 1, alice, "c", 1)
	_ = tb.CompareAndSetProperty(bg, 1, alice, "round", 0, 1)
	_ = tb.UpdateProperty(bg, 1, alice, "round", 1, func(bool, any, any) any { return []int{} })
	_ = tb.SetProperties(bg, 1, alice, map[string]any{"ok": 1, "bad": nil})
	if existed, _ := tb.DeleteProperty(bg, 1, alice, "never"); existed {
		t.Fatal("a missing key existed")
	}
	_ = tb.SetProperties(bg, 1, alice, map[string]any{})
	l.expect(t, wire.PropertiesChangedPush{})
}

// TestQuietSessionSendsNoPropertyPushes checks that a session created
// with Spec.Quiet stores writes but tells no one.
func TestQuietSessionSendsNoPropertyPushes(t *testing.T) {
	l := newLobby(t, Spec{Quiet: true})
	must(t, l.tb.SetProperty(bg, 1, l.alice, "ready_alice", true))
	must(t, l.tb.SetProperties(bg, 1, l.bob, map[string]any{"a": 1}))
	_, err := l.tb.IncrProperty(bg, 1, l.carol, "a", 1)
	must(t, err)
	must(t, l.s.SetProperty("round", 1))
	_, err = l.tb.DeleteProperty(bg, 1, l.alice, "a")
	must(t, err)
	l.expect(t, wire.PropertiesChangedPush{})
	if v, _ := l.s.Property("ready_alice"); v != true {
		t.Fatal("a quiet session did not store the write")
	}
}

// yieldingConn is a recorder that lets other goroutines run before it
// takes each frame, as a busy connection's owner would: it widens the
// window in which pushes delivered out of order would show.
type yieldingConn struct{ *recorder }

func (c yieldingConn) Deliver(frame []byte) {
	runtime.Gosched()
	c.recorder.Deliver(frame)
}

// TestPropertyPushOrder runs writes of every kind to one session from
// several goroutines at once (the game's server code from four, and two
// writing members) and checks that pushes reach every member in the order
// the writes were applied: the values of a counter that every writer
// increments only ever grow in the pushes a member receives, and
// replaying a member's pushes in order gives the stored value of every key
// it does not write itself. Run it with -race.
func TestPropertyPushOrder(t *testing.T) {
	tb, _ := newTestTable(t)
	users := map[string]*User{}
	recs := map[string]*recorder{}
	for _, id := range []string{"alice", "bob", "carol", "dave"} {
		recs[id] = newRecorder()
		users[id] = &User{ID: id, SID: "sid-" + id, Conn: yieldingConn{recs[id]}}
		tb.Connect(users[id])
	}
	s := mustCreate(t, tb, users["alice"], 1, 8)
	for _, id := range []string{"bob", "carol", "dave"} {
		mustJoin(t, tb, s, users[id])
	}
	// Who writes which keys; carol and dave only watch. "" is the game's
	// server code, which every member hears from.
	writes := map[string][]string{"alice": {"k2", "k3"}, "bob": {"k2", "k4"}, "": {"k0", "k1"}}
	writers := []string{"alice", "bob", "", "", "", ""}
	const ops = 300
	var wg sync.WaitGroup
	for w, writer := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			keys := writes[writer]
			u := users[writer]
			for i := range ops {
				key := keys[rng.IntN(len(keys))]
				v := int64(rng.IntN(1000))
				var err error
				switch op := rng.IntN(6); {
				case writer == "":
					switch op {
					case 0:
						err = s.SetProperties(map[string]any{keys[0]: v, keys[1]: v + 1})
					case 1:
						_, err = s.DeleteProperty(key)
					case 2:
						err = s.SetProperty(key, v)
					default:
						_, err = s.IncrProperty(key, 1)
					}
				case op == 0:
					err = tb.SetProperty(bg, 1, u, key, v)
				case op == 1:
					err = tb.SetProperties(bg, 1, u, map[string]any{keys[0]: v, keys[1]: int64(i)})
				case op == 2:
					_, err = tb.IncrProperty(bg, 1, u, key, 1)
				case op == 3:
					cur, _ := s.Property(key)
					if err = tb.CompareAndSetProperty(bg, 1, u, key, cur, v); errors.Is(err, ErrCompareFailed) {
						err = nil
					}
				case op == 4:
					_, err = tb.DeleteProperty(bg, 1, u, key)
				default:
					err = tb.UpdateProperty(bg, 1, u, key, v, func(_ bool, _, upd any) any { return upd })
				}
				if err == nil && rng.IntN(2) == 0 {
					if writer == "" {
						_, err = s.IncrProperty("n", 1)
					} else {
						_, err = tb.IncrProperty(bg, 1, u, "n", 1)
					}
				}
				if err != nil {
					t.Errorf("%q: %v", writer, err)
					return
				}
			}
		}()
	}
	wg.Wait()

	stored := s.AllProperties()
	for id, rec := range recs {
		view := map[string]any{}
		var lastN int64
		for _, p := range rec.changes(t) {
			for _, kv := range p.Props {
				view[kv.Key] = kv.Value.Any()
				if kv.Key == "n" {
					if kv.Value.Int() <= lastN {
						t.Fatalf("%s: counter pushed as %d after %d: pushes out of write order", id, kv.Value.Int(), lastN)
					}
					lastN = kv.Value.Int()
				}
			}
			for _, k := range p.Deleted {
				delete(view, k)
			}
		}
		for _, key := range []string{"k0", "k1", "k2", "k3", "k4", "n"} {
			if contains(writes[id], key) || key == "n" && id == "alice" || key == "n" && id == "bob" {
				continue // its own writes are not pushed back to it
			}
			got, gotOK := view[key]
			want, wantOK := stored[key]
			if got != want || gotOK != wantOK {
				t.Errorf("%s: last pushed %s = %v (%v), stored %v (%v)", id, key, got, gotOK, want, wantOK)
			}
		}
	}
}

// TestPropertiesChangedFitsMaxPayload writes a session's whole size
// budget in one SetProperties from a writer with the longest user ID, on
// a node with the longest name: the push still fits the payload limit.
func TestPropertiesChangedFitsMaxPayload(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Node = strings.Repeat("n", 64) // the longest session IDs
	tb, err := New(cfg)
	must(t, err)
	t.Cleanup(tb.Close)
	writer := &User{ID: strings.Repeat("w", 128), Conn: newRecorder()}
	tb.Connect(writer)
	bob, rec := player(tb, "bob")
	s, err := tb.Create(bg, writer, Spec{Type: 1, MaxMembers: 2})
	must(t, err)
	mustJoin(t, tb, s, bob)

	// As many large properties as fit, then smaller ones down to a byte.
	data := map[string]any{}
	size := wire.SizeProps(nil)
	budget := tb.propsBudget()
	for i, l := 0, 4096; l > 0; i++ {
		key := fmt.Sprintf("%0128d", i) // the longest keys
		grow := entrySize(key, wire.StringValue(strings.Repeat("v", l))) +
			wire.SizeUvarint(uint64(len(data)+1)) - wire.SizeUvarint(uint64(len(data)))
		if size+grow > budget {
			l /= 2
			continue
		}
		data[key] = strings.Repeat("v", l)
		size += grow
	}
	must(t, tb.SetProperties(bg, 1, writer, data))
	rec.mu.Lock()
	frame := rec.raw[len(rec.raw)-1]
	rec.mu.Unlock()
	f, _, err := tb.cfg.Wire.Split(frame)
	must(t, err)
	payload, err := tb.cfg.Wire.Decompress(nil, f)
	must(t, err)
	if f.Cmd != wire.CmdPropertiesChanged || len(payload) > int(cfg.Wire.MaxPayload) {
		t.Fatalf("%v push of %d bytes, limit %d", f.Cmd, len(payload), cfg.Wire.MaxPayload)
	}
	if len(payload) < budget {
		t.Fatalf("the push holds %d bytes, the budget %d: the test did not fill it", len(payload), budget)
	}
	var p wire.PropertiesChangedPush
	must(t, p.Consume(payload))
	if len(p.Props) != len(data) || !maps.Equal(s.AllProperties(), data) {
		t.Fatalf("push carries %d properties, wrote %d", len(p.Props), len(data))
	}
}

// TestPropertyWriteAloneAllocates checks that a property write with no
// other member to tell allocates nothing and encodes no push.
func TestPropertyWriteAloneAllocates(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, aliceRec := player(tb, "alice")
	mustCreate(t, tb, alice, 1, 4)
	write := func() {
		if _, err := tb.IncrProperty(bg, 1, alice, "n", 1); err != nil {
			t.Fatal(err)
		}
		if err := tb.SetProperty(bg, 1, alice, "ready", true); err != nil {
			t.Fatal(err)
		}
	}
	if n := testing.AllocsPerRun(100, write); n != 0 {
		t.Fatalf("%v allocations per write with no one to tell", n)
	}
	if n := aliceRec.count(); n != 0 {
		t.Fatalf("the writer received %d pushes", n)
	}
}
