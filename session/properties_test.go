package session

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

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
