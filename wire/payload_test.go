package wire

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"
)

func TestPrimitiveVectors(t *testing.T) {
	for _, v := range primitiveVectors {
		want := unhex(t, v.hex)
		got := v.append([]byte{0xAA})
		if got[0] != 0xAA || !bytes.Equal(got[1:], want) {
			t.Errorf("%s: Append = %x, want %x", v.name, got[1:], want)
		}
		if v.size != len(want) {
			t.Errorf("%s: Size = %d, want %d", v.name, v.size, len(want))
		}
	}
}

// consumer adapts a ConsumeX function to a common shape for table tests.
type consumer struct {
	name    string
	consume func([]byte) (any, int, error)
}

func adapt[T any](name string, f func([]byte) (T, int, error)) consumer {
	return consumer{name, func(b []byte) (any, int, error) {
		v, n, err := f(b)
		return v, n, err
	}}
}

func TestPrimitiveRoundTrip(t *testing.T) {
	long := string(bytes.Repeat([]byte("x"), 1000))
	for _, tc := range []struct {
		c    consumer
		want any
		enc  []byte
		size int
	}{
		{adapt("U8", ConsumeU8), uint8(0xFE), AppendU8(nil, 0xFE), SizeU8()},
		{adapt("U16", ConsumeU16), uint16(0xFEDC), AppendU16(nil, 0xFEDC), SizeU16()},
		{adapt("U32", ConsumeU32), uint32(0xFEDCBA98), AppendU32(nil, 0xFEDCBA98), SizeU32()},
		{adapt("U64", ConsumeU64), uint64(math.MaxUint64), AppendU64(nil, math.MaxUint64), SizeU64()},
		{adapt("Bool", ConsumeBool), false, AppendBool(nil, false), SizeBool()},
		{adapt("Bool", ConsumeBool), true, AppendBool(nil, true), SizeBool()},
		{adapt("Uvarint", ConsumeUvarint), uint64(math.MaxUint64), AppendUvarint(nil, math.MaxUint64), SizeUvarint(math.MaxUint64)},
		{adapt("Uvarint", ConsumeUvarint), uint64(1 << 35), AppendUvarint(nil, 1<<35), SizeUvarint(1 << 35)},
		{adapt("String", ConsumeString), long, AppendString(nil, long), SizeString(long)},
		{adapt("Bytes", ConsumeBytes), []byte(long), AppendBytes(nil, []byte(long)), SizeBytes([]byte(long))},
		{adapt("Bytes", ConsumeBytes), []byte{}, AppendBytes(nil, nil), SizeBytes(nil)},
		{adapt("StringList", ConsumeStringList), []string{"", long, "a"}, AppendStringList(nil, []string{"", long, "a"}), SizeStringList([]string{"", long, "a"})},
		{adapt("StringList", ConsumeStringList), []string(nil), AppendStringList(nil, nil), SizeStringList(nil)},
		{adapt("Props", ConsumeProps), []KeyValue{{"a", IntValue(-1)}, {long, StringValue(long)}},
			AppendProps(nil, []KeyValue{{"a", IntValue(-1)}, {long, StringValue(long)}}),
			SizeProps([]KeyValue{{"a", IntValue(-1)}, {long, StringValue(long)}})},
		{adapt("Props", ConsumeProps), []KeyValue(nil), AppendProps(nil, nil), SizeProps(nil)},
	} {
		if tc.size != len(tc.enc) {
			t.Errorf("%s: Size = %d, len(Append) = %d", tc.c.name, tc.size, len(tc.enc))
		}
		// Trailing bytes are left alone.
		v, n, err := tc.c.consume(append(bytes.Clone(tc.enc), 0xEE))
		if err != nil || n != len(tc.enc) || !reflect.DeepEqual(v, tc.want) {
			t.Errorf("%s: Consume = %v, %d, %v; want %v, %d", tc.c.name, v, n, err, tc.want, len(tc.enc))
		}
		for i := range len(tc.enc) {
			if _, n, err := tc.c.consume(tc.enc[:i]); !errors.Is(err, ErrShort) || n != 0 {
				t.Errorf("%s: Consume(prefix %d) = %d, %v; want ErrShort", tc.c.name, i, n, err)
			}
		}
	}
}

func TestSizeUvarint(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 16383, 16384, 1<<21 - 1, 1 << 21, 1<<63 - 1, 1 << 63, math.MaxUint64} {
		if got, want := SizeUvarint(v), len(AppendUvarint(nil, v)); got != want {
			t.Errorf("SizeUvarint(%d) = %d, want %d", v, got, want)
		}
	}
}

func TestConsumeErrors(t *testing.T) {
	for _, tc := range []struct {
		c    consumer
		hex  string
		want error
	}{
		{adapt("Bool", ConsumeBool), "02", ErrBadValue},
		{adapt("Bool", ConsumeBool), "ff", ErrBadValue},
		{adapt("Uvarint", ConsumeUvarint), "ffffffffffffffffff02", ErrCorrupt},
		{adapt("Uvarint", ConsumeUvarint), "ffffffffffffffffffff01", ErrCorrupt},
		{adapt("Value", ConsumeValue), "00", ErrBadValue},
		{adapt("Value", ConsumeValue), "06 00", ErrBadValue},
		{adapt("Value", ConsumeValue), "01 02", ErrBadValue},
		{adapt("Value", ConsumeValue), "05 05 6162", ErrShort},
		{adapt("StringList", ConsumeStringList), "03 00 00", ErrShort},
		{adapt("Props", ConsumeProps), "01 00 07 00", ErrBadValue},
	} {
		if _, n, err := tc.c.consume(unhex(t, tc.hex)); !errors.Is(err, tc.want) || n != 0 {
			t.Errorf("%s(%s) = %d, %v; want %v", tc.c.name, tc.hex, n, err, tc.want)
		}
	}
}

func TestValueVectors(t *testing.T) {
	for _, v := range valueVectors {
		want := unhex(t, v.hex)
		if got := AppendValue(nil, v.v); !bytes.Equal(got, want) {
			t.Errorf("AppendValue(%v) = %x, want %x", v.v.Any(), got, want)
		}
		if SizeValue(v.v) != len(want) {
			t.Errorf("SizeValue(%v) = %d, want %d", v.v.Any(), SizeValue(v.v), len(want))
		}
		got, n, err := ConsumeValue(want)
		if err != nil || n != len(want) || got != v.v {
			t.Errorf("ConsumeValue(%x) = %+v, %d, %v", want, got, n, err)
		}
		for i := range len(want) {
			if _, _, err := ConsumeValue(want[:i]); !errors.Is(err, ErrShort) {
				t.Errorf("ConsumeValue(%x) = %v, want ErrShort", want[:i], err)
			}
		}
	}
	// The zero Value encodes as its tag alone, which does not decode.
	if b := AppendValue(nil, Value{}); !bytes.Equal(b, []byte{0}) || SizeValue(Value{}) != 1 {
		t.Errorf("AppendValue(Value{}) = %x", b)
	}
}

func TestValueAccessors(t *testing.T) {
	nan := math.Float64frombits(0x7FF8000000000001)
	for _, tc := range []struct {
		v    Value
		kind Kind
		any  any
	}{
		{BoolValue(true), KindBool, true},
		{BoolValue(false), KindBool, false},
		{IntValue(math.MinInt64), KindInt, int64(math.MinInt64)},
		{UintValue(math.MaxUint64), KindUint, uint64(math.MaxUint64)},
		{FloatValue(-2.25), KindFloat, -2.25},
		{StringValue("héllo"), KindString, "héllo"},
		{Value{}, 0, nil},
	} {
		if tc.v.Kind != tc.kind || tc.v.Any() != tc.any {
			t.Errorf("%+v: Kind %v Any %v; want %v %v", tc.v, tc.v.Kind, tc.v.Any(), tc.kind, tc.any)
		}
		// Accessors of other kinds return zero values.
		if tc.kind != KindBool && tc.v.Bool() || tc.kind != KindInt && tc.v.Int() != 0 ||
			tc.kind != KindUint && tc.v.Uint() != 0 || tc.kind != KindFloat && tc.v.Float() != 0 ||
			tc.kind != KindString && tc.v.Str() != "" {
			t.Errorf("%+v: an accessor of another kind returned non-zero", tc.v)
		}
	}
	if v := FloatValue(nan); math.Float64bits(v.Float()) != 0x7FF8000000000001 || v != FloatValue(nan) {
		t.Error("NaN bits not preserved")
	}
}

func TestValueOf(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want Value
	}{
		{true, BoolValue(true)},
		{int(-1), IntValue(-1)},
		{int8(-8), IntValue(-8)},
		{int16(-16), IntValue(-16)},
		{int32(-32), IntValue(-32)},
		{int64(-64), IntValue(-64)},
		{uint(1), UintValue(1)},
		{uint8(8), UintValue(8)},
		{uint16(16), UintValue(16)},
		{uint32(32), UintValue(32)},
		{uint64(64), UintValue(64)},
		{float32(0.5), FloatValue(0.5)},
		{float64(0.25), FloatValue(0.25)},
		{"s", StringValue("s")},
		{StringValue("v"), StringValue("v")},
	} {
		got, err := ValueOf(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ValueOf(%T %v) = %+v, %v; want %+v", tc.in, tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []any{nil, []byte("x"), struct{}{}, complex(1, 2), uintptr(1), Value{}, map[string]any{}} {
		if _, err := ValueOf(bad); !errors.Is(err, ErrBadValue) {
			t.Errorf("ValueOf(%T) = %v, want ErrBadValue", bad, err)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindBool: "bool", KindInt: "int", KindUint: "uint", KindFloat: "float", KindString: "string", 9: "kind(9)"} {
		if k.String() != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, k.String(), want)
		}
	}
}

// TestStringsAreUTF8 pins that a String field that is not UTF-8 fails to
// decode everywhere it appears: alone, in a list, as a property key or
// value, inside a message; and that the server's status for it is
// BadRequest.
func TestStringsAreUTF8(t *testing.T) {
	bad := []byte{0x02, 0x6b, 0xff} // "k\xff"
	if _, _, err := ConsumeString(bad); !errors.Is(err, ErrBadUTF8) {
		t.Errorf("ConsumeString(%x) = %v, want ErrBadUTF8", bad, err)
	}
	if _, _, err := ConsumeStringList(append([]byte{0x01}, bad...)); !errors.Is(err, ErrBadUTF8) {
		t.Errorf("ConsumeStringList: %v, want ErrBadUTF8", err)
	}
	key := append(append([]byte{0x01}, bad...), 0x01, 0x01) // {"k\xff": true}
	if _, _, err := ConsumeProps(key); !errors.Is(err, ErrBadUTF8) {
		t.Errorf("ConsumeProps, bad key: %v, want ErrBadUTF8", err)
	}
	value := append([]byte{0x01, 0x01, 'k', byte(KindString)}, bad...) // {"k": "k\xff"}
	if _, _, err := ConsumeProps(value); !errors.Is(err, ErrBadUTF8) {
		t.Errorf("ConsumeProps, bad value: %v, want ErrBadUTF8", err)
	}
	var req SetPropertyRequest
	if err := req.Consume(append([]byte{0x01}, key[1:]...)); !errors.Is(err, ErrBadUTF8) {
		t.Errorf("SetPropertyRequest.Consume: %v, want ErrBadUTF8", err)
	}
	if got := StatusOf(ErrBadUTF8); got != StatusBadRequest {
		t.Errorf("StatusOf(ErrBadUTF8) = %v", got)
	}
	// Valid multi-byte UTF-8 passes.
	if s, _, err := ConsumeString(AppendString(nil, "ready ✓")); err != nil || s != "ready ✓" {
		t.Errorf("ConsumeString(valid) = %q, %v", s, err)
	}
}
