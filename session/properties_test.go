package session

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coveyhq/covey/wire"
)

func TestPropertyTypes(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, _ := player(tb, "alice")
	s := mustCreate(t, tb, alice, 1, 4)

	accepted := map[string]struct{ in, out any }{
		"bool": {true, true}, "int": {int(-5), int64(-5)}, "int8": {int8(-8), int64(-8)},
		"int16": {int16(-16), int64(-16)}, "int32": {int32(-32), int64(-32)}, "int64": {int64(math.MinInt64), int64(math.MinInt64)},
		"uint": {uint(5), uint64(5)}, "uint8": {uint8(8), uint64(8)}, "uint16": {uint16(16), uint64(16)},
		"uint32": {uint32(32), uint64(32)}, "uint64": {uint64(math.MaxUint64), uint64(math.MaxUint64)},
		"float32": {float32(1.5), float64(1.5)}, "float64": {2.25, 2.25}, "string": {"ctf", "ctf"},
	}
	for k, c := range accepted {
		if err := tb.SetProperty(bg, 1, alice, k, c.in); err != nil {
			t.Fatalf("SetProperty(%s): %v", k, err)
		}
		v, ok, err := tb.GetProperty(bg, 1, alice, k)
		if err != nil || !ok || v != c.out {
			t.Fatalf("GetProperty(%s) = %#v, %v, %v; want %#v", k, v, ok, err, c.out)
		}
	}
	x := 1
	refused := map[string]any{
		"slice": []int{1}, "map": map[string]int{}, "pointer": &x, "struct": struct{}{}, "nil": nil,
		"bytes": []byte("x"), "func": func() {},
	}
	for k, v := range refused {
		err := tb.SetProperty(bg, 1, alice, k, v)
		wantErr(t, err, ErrBadProperty, IsPropertySetError)
		if _, ok := s.Property(k); ok {
			t.Fatalf("refused %s was stored", k)
		}
	}
	wantErr(t, tb.SetProperty(bg, 1, alice, "", 1), ErrBadProperty, IsPropertySetError)
	wantErr(t, tb.SetProperty(bg, 1, alice, strings.Repeat("k", 129), 1), ErrBadProperty, IsPropertySetError)
	wantErr(t, tb.SetProperty(bg, 1, alice, "long", strings.Repeat("v", 4097)), ErrBadProperty, IsPropertySetError)
}

func TestPropertyOperations(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, _ := player(tb, "alice")
	outsider, _ := player(tb, "outsider")
	s := mustCreate(t, tb, alice, 1, 4)

	if err := tb.SetProperties(bg, 1, alice, map[string]any{"a": 1, "b": "two", "c": true}); err != nil {
		t.Fatal(err)
	}
	got, err := tb.GetProperties(bg, 1, alice, []string{"a", "c", "missing"})
	if err != nil || len(got) != 2 || got["a"] != int64(1) || got["c"] != true {
		t.Fatalf("GetProperties = %v, %v", got, err)
	}
	if _, ok, err := tb.GetProperty(bg, 1, alice, "missing"); ok || err != nil {
		t.Fatal("missing key reported as existing")
	}
	all, err := tb.GetAllProperties(bg, 1, alice)
	if err != nil || len(all) != 3 || all["b"] != "two" {
		t.Fatalf("GetAllProperties = %v, %v", all, err)
	}
	if m := s.Properties([]string{"a", "zz"}); len(m) != 2 || m["zz"] != nil || m["a"] != int64(1) {
		t.Fatalf("Session.Properties = %v", m)
	}

	// SetProperties is all or nothing.
	err = tb.SetProperties(bg, 1, alice, map[string]any{"a": 100, "d": 4, "bad": []int{}})
	wantErr(t, err, ErrBadProperty, IsPropertySetError)
	if v, _ := s.Property("a"); v != int64(1) {
		t.Fatal("a failed SetProperties changed a value")
	}
	if _, ok := s.Property("d"); ok {
		t.Fatal("a failed SetProperties added a key")
	}

	// SetPropertyIfNotExists.
	wantErr(t, tb.SetPropertyIfNotExists(bg, 1, alice, "a", 5), ErrPropertyExists, IsPropertySetError)
	if err := tb.SetPropertyIfNotExists(bg, 1, alice, "e", 5); err != nil {
		t.Fatal(err)
	}

	// UpdateProperty runs the callback with what is stored.
	err = tb.UpdateProperty(bg, 1, alice, "a", int64(10), func(exists bool, stored, update any) any {
		if !exists || stored != int64(1) || update != int64(10) {
			t.Errorf("callback got %v, %v, %v", exists, stored, update)
		}
		return stored.(int64) + update.(int64)
	})
	if v, _ := s.Property("a"); err != nil || v != int64(11) {
		t.Fatalf("after update a = %v (%v)", v, err)
	}
	err = s.UpdateProperty("new", 1, func(exists bool, stored, update any) any {
		if exists || stored != nil {
			t.Errorf("missing key: exists=%v stored=%v", exists, stored)
		}
		return update
	})
	if v, _ := s.Property("new"); err != nil || v != int64(1) {
		t.Fatal("UpdateProperty on a missing key")
	}
	err = s.UpdateProperties(map[string]any{"a": 1, "b": 1}, func(exists bool, stored, update any) any {
		if stored == "two" {
			return []string{"refused"}
		}
		return update
	})
	if !errors.Is(err, ErrBadProperty) {
		t.Fatalf("UpdateProperties with a refused result: %v", err)
	}
	if v, _ := s.Property("a"); v != int64(11) {
		t.Fatal("a refused UpdateProperties changed a value")
	}

	// Increment.
	if n, err := tb.IncrProperty(bg, 1, alice, "count", 5); err != nil || n != 5 {
		t.Fatalf("Incr = %d, %v", n, err)
	}
	if n, err := tb.IncrProperty(bg, 1, alice, "count", -2); err != nil || n != 3 {
		t.Fatalf("Incr = %d, %v", n, err)
	}
	_, err = tb.IncrProperty(bg, 1, alice, "b", 1)
	wantErr(t, err, ErrNotNumeric, IsPropertySetError)

	// Compare and set.
	wantErr(t, tb.CompareAndSetProperty(bg, 1, alice, "count", int8(4), 9), ErrCompareFailed, IsPropertySetError)
	if err := tb.CompareAndSetProperty(bg, 1, alice, "count", int8(3), 9); err != nil {
		t.Fatal(err)
	}
	wantErr(t, tb.CompareAndSetProperty(bg, 1, alice, "count", nil, 1), ErrCompareFailed, IsPropertySetError)
	if err := tb.CompareAndSetProperty(bg, 1, alice, "fresh", nil, "x"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, tb.CompareAndSetProperty(bg, 1, alice, "nothere", 1, 2), ErrCompareFailed, IsPropertySetError)

	// Encoded form round-trips.
	kvs, _, err := wire.ConsumeProps(s.EncodeProperties())
	if err != nil || len(kvs) != len(s.AllProperties()) {
		t.Fatalf("EncodeProperties decoded to %d entries, %v", len(kvs), err)
	}
	for i := 1; i < len(kvs); i++ {
		if kvs[i-1].Key >= kvs[i].Key {
			t.Fatal("EncodeProperties is not sorted by key")
		}
	}
	if list, err := tb.PropertyList(bg, 1, alice, []string{"b", "a", "b", "zz"}); err != nil || len(list) != 2 || list[0].Key != "a" {
		t.Fatalf("PropertyList = %v, %v", list, err)
	}

	// Members only.
	_, _, err = tb.GetProperty(bg, 1, outsider, "a")
	wantErr(t, err, ErrNotMember, IsPropertyGetError)
	_, err = tb.GetProperties(bg, 1, outsider, nil)
	wantErr(t, err, ErrNotMember, IsPropertyGetError)
	_, err = tb.GetAllProperties(bg, 1, outsider)
	wantErr(t, err, ErrNotMember, IsPropertyGetError)
	_, err = tb.PropertyList(bg, 1, outsider, nil)
	wantErr(t, err, ErrNotMember, IsPropertyGetError)
	wantErr(t, tb.SetProperty(bg, 1, outsider, "a", 1), ErrNotMember, IsPropertySetError)
	wantErr(t, tb.SetPropertyIfNotExists(bg, 1, outsider, "a", 1), ErrNotMember, IsPropertySetError)
	_, err = tb.IncrProperty(bg, 1, outsider, "a", 1)
	wantErr(t, err, ErrNotMember, IsPropertySetError)
	wantErr(t, tb.UpdateProperty(bg, 1, outsider, "a", 1, func(bool, any, any) any { return 1 }), ErrNotMember, IsPropertySetError)
	wantErr(t, tb.CompareAndSetProperty(bg, 1, outsider, "a", nil, 1), ErrNotMember, IsPropertySetError)
}

func TestPropertyLimit(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, _ := player(tb, "alice")
	s := mustCreate(t, tb, alice, 1, 4)
	for i := range tb.cfg.MaxProperties {
		if err := s.SetProperty(strings.Repeat("k", 1+i%100)+string(rune('a'+i/100)), i); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetProperty("one-more", 1); !errors.Is(err, ErrTooManyProperties) {
		t.Fatalf("past the limit: %v", err)
	}
	if err := s.SetProperty("k"+"a", 2); err != nil {
		t.Fatalf("overwriting at the limit: %v", err)
	}
	if _, err := s.IncrProperty("one-more", 1); !errors.Is(err, ErrTooManyProperties) {
		t.Fatalf("incr past the limit: %v", err)
	}
}

// TestConcurrentIncrement checks that increments and compare-and-set
// updates racing on one counter lose nothing.
func TestConcurrentIncrement(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, _ := player(tb, "alice")
	s := mustCreate(t, tb, alice, 1, 4)
	const workers, each = 8, 200
	var wg sync.WaitGroup
	var casWins sync.Map
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wins := 0
			for range each {
				if _, err := s.IncrProperty("n", 1); err != nil {
					t.Error(err)
					return
				}
				cur, _ := s.Property("n")
				if s.CompareAndSetProperty("n", cur, cur.(int64)+1) == nil {
					wins++
				}
			}
			casWins.Store(w, wins)
		}()
	}
	wg.Wait()
	total := int64(workers * each)
	casWins.Range(func(_, v any) bool { total += int64(v.(int)); return true })
	if v, _ := s.Property("n"); v != total {
		t.Fatalf("counter = %v, want %d", v, total)
	}
}

// TestIncrPropertyOverflow checks that an increment past either end of the
// int64 range fails with ErrOverflow and leaves the value as it was.
func TestIncrPropertyOverflow(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, _ := player(tb, "alice")
	s := mustCreate(t, tb, alice, 1, 4)
	cases := []struct {
		start, delta int64
	}{
		{math.MaxInt64, 1},
		{math.MaxInt64 - 1, 2},
		{1, math.MaxInt64},
		{math.MinInt64, -1},
		{math.MinInt64 + 1, -2},
		{-2, math.MinInt64},
	}
	for _, c := range cases {
		must(t, s.SetProperty("n", c.start))
		_, err := tb.IncrProperty(bg, 1, alice, "n", c.delta)
		wantErr(t, err, ErrOverflow, IsPropertySetError)
		if !errors.Is(err, wire.StatusOverflow) {
			t.Fatalf("%d%+d: %v is not StatusOverflow", c.start, c.delta, err)
		}
		if v, _ := s.Property("n"); v != c.start {
			t.Fatalf("%d%+d: value after the refused increment = %v", c.start, c.delta, v)
		}
	}
	// The edges themselves are reachable.
	must(t, s.SetProperty("n", math.MaxInt64-1))
	if n, err := s.IncrProperty("n", 1); err != nil || n != math.MaxInt64 {
		t.Fatalf("up to MaxInt64: %d, %v", n, err)
	}
	if n, err := s.IncrProperty("n", math.MinInt64); err != nil || n != -1 {
		t.Fatalf("MaxInt64 + MinInt64: %d, %v", n, err)
	}
	if n, err := s.IncrProperty("m", math.MinInt64); err != nil || n != math.MinInt64 {
		t.Fatalf("missing key + MinInt64: %d, %v", n, err)
	}
}

// bigValue is a property value of the longest string the default table
// accepts (4 KB).
var bigValue = strings.Repeat("v", DefaultConfig().MaxPropertyStringLen)

// checkPropsSize fails the test unless s's kept size is the encoded size
// of its properties.
func checkPropsSize(t *testing.T, s *Session) {
	t.Helper()
	want := wire.SizeProps(s.propList(nil))
	s.mu.Lock()
	got := s.propsSize
	s.mu.Unlock()
	if got != want {
		t.Fatalf("kept properties size %d, encoded size %d", got, want)
	}
}

// fillToBudget adds 4 KB properties to s until the next one would not fit,
// then one property that takes exactly the bytes left, so that s's
// properties are exactly at the size budget. It returns the key and value
// of that last property, a string shorter than 4 KB.
func fillToBudget(t *testing.T, s *Session) (string, string) {
	t.Helper()
	budget := s.t.propsBudget()
	for i := 0; ; i++ {
		key := fmt.Sprintf("k%03d", i)
		err := s.SetProperty(key, bigValue)
		if errors.Is(err, ErrPropertiesFull) {
			break
		}
		must(t, err)
	}
	n := len(s.AllProperties())
	left := budget - wire.SizeProps(s.propList(nil)) - (wire.SizeUvarint(uint64(n+1)) - wire.SizeUvarint(uint64(n)))
	// A key of 1 to 128 bytes and a string value whose entry is exactly
	// left bytes long (some lengths are skipped by the uvarint prefixes:
	// try key lengths until one fits).
	for kl := 1; kl <= 128; kl++ {
		key := strings.Repeat("p", kl)
		for vl := range left {
			if entrySize(key, wire.StringValue(strings.Repeat("x", vl))) == left {
				value := strings.Repeat("x", vl)
				must(t, s.SetProperty(key, value))
				if got := wire.SizeProps(s.propList(nil)); got != budget {
					t.Fatalf("filled to %d bytes, budget %d", got, budget)
				}
				return key, value
			}
		}
	}
	t.Fatalf("no property of exactly %d bytes", left)
	return "", ""
}

// TestPropertiesSizeBudget fills a session with 4 KB properties, as a
// client asking for 256 of them would: the write that would take the
// encoded properties over MaxPayload - PushReserve fails with
// ErrPropertiesFull and writes nothing, whatever kind of write it is.
func TestPropertiesSizeBudget(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, _ := player(tb, "alice")
	s := mustCreate(t, tb, alice, 1, 4)
	budget := tb.propsBudget()
	if budget != int(tb.cfg.Wire.MaxPayload)-wire.PushReserve {
		t.Fatalf("budget %d", budget)
	}

	stored := 0
	for i := range 256 {
		key := fmt.Sprintf("k%03d", i)
		before := wire.SizeProps(s.propList(nil))
		after := before + entrySize(key, wire.StringValue(bigValue)) +
			wire.SizeUvarint(uint64(i+1)) - wire.SizeUvarint(uint64(i))
		err := tb.SetProperty(bg, 1, alice, key, bigValue)
		if after <= budget {
			must(t, err)
			stored++
			continue
		}
		wantErr(t, err, ErrPropertiesFull, IsPropertySetError)
		if !errors.Is(err, wire.StatusPropertiesFull) {
			t.Fatalf("%v is not StatusPropertiesFull", err)
		}
		if _, ok := s.Property(key); ok || wire.SizeProps(s.propList(nil)) != before {
			t.Fatal("the refused write was stored")
		}
		break
	}
	if stored == 0 || stored == 256 {
		t.Fatalf("%d properties stored before the budget", stored)
	}
	checkPropsSize(t, s)

	// At exactly the budget, every write that would grow the properties
	// is refused, by the member API and the server-side API alike.
	padKey, padValue := fillToBudget(t, s)
	checkPropsSize(t, s)
	before := s.AllProperties()
	wantErr(t, tb.SetProperty(bg, 1, alice, "x", 1), ErrPropertiesFull, IsPropertySetError)
	wantErr(t, s.SetProperty("x", 1), ErrPropertiesFull, nil)
	// All or nothing: k000 alone would fit (same size), x does not.
	wantErr(t, tb.SetProperties(bg, 1, alice, map[string]any{"k000": strings.Repeat("w", len(bigValue)), "x": true}), ErrPropertiesFull, IsPropertySetError)
	wantErr(t, tb.SetPropertyIfNotExists(bg, 1, alice, "x", 1), ErrPropertiesFull, IsPropertySetError)
	_, err := tb.IncrProperty(bg, 1, alice, "x", 1)
	wantErr(t, err, ErrPropertiesFull, IsPropertySetError)
	wantErr(t, tb.CompareAndSetProperty(bg, 1, alice, "x", nil, 1), ErrPropertiesFull, IsPropertySetError)
	wantErr(t, tb.CompareAndSetProperty(bg, 1, alice, padKey, padValue, padValue+"!"), ErrPropertiesFull, IsPropertySetError)
	wantErr(t, tb.UpdateProperty(bg, 1, alice, padKey, "!", func(_ bool, stored, u any) any { return stored.(string) + u.(string) }), ErrPropertiesFull, IsPropertySetError)
	wantErr(t, s.UpdateProperties(map[string]any{"k000": "", padKey: "!"}, func(_ bool, stored, u any) any { return stored.(string) + u.(string) }), ErrPropertiesFull, nil)
	if after := s.AllProperties(); !maps.Equal(before, after) {
		t.Fatal("a refused write changed the properties")
	}
	checkPropsSize(t, s)

	// Writes that keep or shrink the size still work, and make room.
	must(t, tb.SetProperty(bg, 1, alice, "k000", strings.Repeat("w", len(bigValue))))
	must(t, tb.SetProperties(bg, 1, alice, map[string]any{"k001": "short", "x": true}))
	checkPropsSize(t, s)
}

// TestCreatePropertiesSizeBudget checks that Create refuses initial
// properties over the size budget.
func TestCreatePropertiesSizeBudget(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, _ := player(tb, "alice")
	props := make(map[string]any)
	for i := range 16 { // 16 x 4 KB: over 65,280 bytes
		props[fmt.Sprintf("k%02d", i)] = bigValue
	}
	_, err := tb.Create(bg, alice, Spec{Type: 1, MaxMembers: 4, Properties: props})
	wantErr(t, err, ErrPropertiesFull, IsSessionError)
	delete(props, "k00")
	s, err := tb.Create(bg, alice, Spec{Type: 1, MaxMembers: 4, Properties: props})
	must(t, err)
	checkPropsSize(t, s)
}

// TestPropertiesSizeKept checks the incrementally kept size against the
// encoded properties after a random mix of writes and deletes.
func TestPropertiesSizeKept(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, _ := player(tb, "alice")
	s, err := tb.Create(bg, alice, Spec{Type: 1, MaxMembers: 4, Properties: map[string]any{"a": 1, "b": "x"}})
	must(t, err)
	checkPropsSize(t, s)
	rng := rand.New(rand.NewPCG(1, 2))
	values := []any{true, int64(-3), uint64(7), 2.5, "", "short", strings.Repeat("m", 300), bigValue}
	for range 2000 {
		key := fmt.Sprintf("k%d", rng.IntN(160)) // past 127 keys: a 2-byte count
		v := values[rng.IntN(len(values))]
		switch rng.IntN(7) {
		case 0:
			_ = s.SetProperty(key, v)
		case 1:
			_ = s.SetProperties(map[string]any{key: v, fmt.Sprintf("k%d", rng.IntN(160)): v})
		case 2:
			_ = s.SetPropertyIfNotExists(key, v)
		case 3:
			_, _ = s.IncrProperty(key, 1)
		case 4:
			cur, _ := s.Property(key)
			_ = s.CompareAndSetProperty(key, cur, v)
		case 5:
			_ = s.UpdateProperty(key, v, func(_ bool, _, u any) any { return u })
		case 6:
			_, _ = s.DeleteProperty(key)
		}
		checkPropsSize(t, s)
	}
}

// TestDeleteProperty checks that DeleteProperty removes a key, reports
// whether it existed, frees its room, and is for members only.
func TestDeleteProperty(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, _ := player(tb, "alice")
	outsider, _ := player(tb, "outsider")
	s, err := tb.Create(bg, alice, Spec{Type: 1, MaxMembers: 4, Properties: map[string]any{"a": 1, "b": "two"}})
	must(t, err)

	if existed, err := tb.DeleteProperty(bg, 1, alice, "a"); err != nil || !existed {
		t.Fatalf("DeleteProperty(a) = %v, %v", existed, err)
	}
	if _, ok := s.Property("a"); ok {
		t.Fatal("a deleted key is still there")
	}
	if existed, err := tb.DeleteProperty(bg, 1, alice, "a"); err != nil || existed {
		t.Fatalf("DeleteProperty(a) again = %v, %v", existed, err)
	}
	for _, key := range []string{"", strings.Repeat("k", 129)} {
		if existed, err := s.DeleteProperty(key); err != nil || existed {
			t.Fatalf("DeleteProperty(%q) = %v, %v", key, existed, err)
		}
	}
	checkPropsSize(t, s)
	if existed, err := s.DeleteProperty("b"); err != nil || !existed {
		t.Fatalf("Session.DeleteProperty(b) = %v, %v", existed, err)
	}
	checkPropsSize(t, s)

	// A deleted key's room is free again: at the budget, deleting one
	// property lets another in.
	padKey, _ := fillToBudget(t, s)
	wantErr(t, s.SetProperty("x", 1), ErrPropertiesFull, nil)
	if existed, err := s.DeleteProperty(padKey); err != nil || !existed {
		t.Fatalf("DeleteProperty(%s) = %v, %v", padKey, existed, err)
	}
	must(t, s.SetProperty("x", 1))
	checkPropsSize(t, s)

	_, err = tb.DeleteProperty(bg, 1, outsider, "x")
	wantErr(t, err, ErrNotMember, IsPropertySetError)
	must(t, tb.Delete(bg, s.ID()))
	if _, err := s.DeleteProperty("x"); !errors.Is(err, ErrSessionNotFound) {
		t.Fatalf("DeleteProperty on a deleted session: %v", err)
	}
}

// TestPropertyStringsAreUTF8: the game's server code cannot store a key or
// a string value that is not UTF-8 either (the network path is checked by
// the wire decoder), through any write; nothing is stored.
func TestPropertyStringsAreUTF8(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, _ := player(tb, "alice")
	s := mustCreate(t, tb, alice, 1, 4)
	const bad = "k\xff"
	wantErr(t, s.SetProperty(bad, 1), ErrBadProperty, nil)
	wantErr(t, s.SetProperty("k", bad), ErrBadProperty, nil)
	wantErr(t, s.SetProperties(map[string]any{"ok": 1, "k": bad}), ErrBadProperty, nil)
	wantErr(t, s.SetPropertyIfNotExists(bad, true), ErrBadProperty, nil)
	wantErr(t, tb.SetProperty(bg, 1, alice, "k", bad), ErrBadProperty, IsPropertySetError)
	_, err := tb.Create(bg, alice, Spec{Type: 2, MaxMembers: 2, Properties: map[string]any{bad: 1}})
	wantErr(t, err, ErrBadProperty, IsSessionError)
	if n := len(s.AllProperties()); n != 0 {
		t.Fatalf("%d properties stored", n)
	}
	must(t, s.SetProperty("k", "ready ✓"))
}

// TestUpdatePropertyPanicReleasesLock: a panic in the UpdateFunc goes on
// to the caller with the session lock released, so a game that recovers
// it can still use the session.
func TestUpdatePropertyPanicReleasesLock(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, _ := player(tb, "alice")
	s := mustCreate(t, tb, alice, 1, 4)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the UpdateFunc's panic did not reach the caller")
			}
		}()
		_ = s.UpdateProperty("k", 1, func(bool, any, any) any { panic("game bug") })
	}()
	done := make(chan error, 1)
	go func() { done <- s.SetProperty("k", 2) }()
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("SetProperty after the panic did not return: the session lock is still held")
	}
}
