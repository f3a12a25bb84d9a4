package wire

import (
	"math"
	"strconv"
)

// Kind is the type tag of a property [Value]. Values are part of the
// protocol: only append.
type Kind uint8

// Value kinds. Values are part of the protocol: only append. 0 is not a
// kind: it is the Kind of the zero Value, which cannot be decoded.
const (
	KindBool   Kind = 1 // 1 data byte, 0 or 1
	KindInt    Kind = 2 // int64, 8 bytes big-endian two's complement
	KindUint   Kind = 3 // uint64, 8 bytes big-endian
	KindFloat  Kind = 4 // float64, IEEE-754 bits, 8 bytes big-endian
	KindString Kind = 5 // uvarint byte length, then UTF-8 bytes
)

// String returns the name of k in lower case, such as "int", or
// "kind(N)".
func (k Kind) String() string {
	switch k {
	case KindBool:
		return "bool"
	case KindInt:
		return "int"
	case KindUint:
		return "uint"
	case KindFloat:
		return "float"
	case KindString:
		return "string"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is a session property value: a bool, int64, uint64, float64 or
// string, held without boxing in an interface. Build one with a
// constructor or [ValueOf]. Values are comparable with ==; two floats are
// equal when their bits are (so NaN equals the same NaN). The zero Value
// has Kind 0 and is not a valid property: AppendValue writes it as the tag
// 0 alone, which ConsumeValue rejects.
type Value struct {
	Kind Kind
	num  uint64 // bool (0 or 1), int64 bits, uint64, float64 bits
	str  string
}

// BoolValue returns a KindBool Value.
func BoolValue(b bool) Value {
	if b {
		return Value{Kind: KindBool, num: 1}
	}
	return Value{Kind: KindBool}
}

// IntValue returns a KindInt Value.
func IntValue(i int64) Value { return Value{Kind: KindInt, num: uint64(i)} }

// UintValue returns a KindUint Value.
func UintValue(u uint64) Value { return Value{Kind: KindUint, num: u} }

// FloatValue returns a KindFloat Value.
func FloatValue(f float64) Value { return Value{Kind: KindFloat, num: math.Float64bits(f)} }

// StringValue returns a KindString Value.
func StringValue(s string) Value { return Value{Kind: KindString, str: s} }

// Bool returns the value of a KindBool Value, or false for other kinds.
func (v Value) Bool() bool { return v.Kind == KindBool && v.num != 0 }

// Int returns the value of a KindInt Value, or 0 for other kinds.
func (v Value) Int() int64 {
	if v.Kind != KindInt {
		return 0
	}
	return int64(v.num)
}

// Uint returns the value of a KindUint Value, or 0 for other kinds.
func (v Value) Uint() uint64 {
	if v.Kind != KindUint {
		return 0
	}
	return v.num
}

// Float returns the value of a KindFloat Value, or 0 for other kinds.
func (v Value) Float() float64 {
	if v.Kind != KindFloat {
		return 0
	}
	return math.Float64frombits(v.num)
}

// Str returns the value of a KindString Value, or "" for other kinds.
func (v Value) Str() string {
	if v.Kind != KindString {
		return ""
	}
	return v.str
}

// Any returns v as a bool, int64, uint64, float64 or string, or nil for
// the zero Value. It boxes: keep it off per-frame paths.
func (v Value) Any() any {
	switch v.Kind {
	case KindBool:
		return v.Bool()
	case KindInt:
		return v.Int()
	case KindUint:
		return v.Uint()
	case KindFloat:
		return v.Float()
	case KindString:
		return v.str
	}
	return nil
}

// ValueOf converts x to a Value: bool; int, int8, int16, int32, int64
// (KindInt); uint, uint8, uint16, uint32, uint64 (KindUint); float32,
// float64 (KindFloat); string; or a Value, returned as is if its Kind is
// valid. Anything else is ErrBadValue.
func ValueOf(x any) (Value, error) {
	switch x := x.(type) {
	case bool:
		return BoolValue(x), nil
	case int:
		return IntValue(int64(x)), nil
	case int8:
		return IntValue(int64(x)), nil
	case int16:
		return IntValue(int64(x)), nil
	case int32:
		return IntValue(int64(x)), nil
	case int64:
		return IntValue(x), nil
	case uint:
		return UintValue(uint64(x)), nil
	case uint8:
		return UintValue(uint64(x)), nil
	case uint16:
		return UintValue(uint64(x)), nil
	case uint32:
		return UintValue(uint64(x)), nil
	case uint64:
		return UintValue(x), nil
	case float32:
		return FloatValue(float64(x)), nil
	case float64:
		return FloatValue(x), nil
	case string:
		return StringValue(x), nil
	case Value:
		if x.Kind >= KindBool && x.Kind <= KindString {
			return x, nil
		}
	}
	return Value{}, ErrBadValue
}

// AppendValue appends v as its Kind byte followed by its data: 1 byte for
// a bool, 8 bytes big-endian for an int, uint or float, and a
// length-prefixed string for a string.
func AppendValue(dst []byte, v Value) []byte {
	dst = append(dst, byte(v.Kind))
	switch v.Kind {
	case KindBool:
		return append(dst, byte(v.num))
	case KindInt, KindUint, KindFloat:
		return AppendU64(dst, v.num)
	case KindString:
		return AppendString(dst, v.str)
	}
	return dst
}

// ConsumeValue decodes a Value. An unknown tag or a bool byte other than 0
// or 1 is ErrBadValue. A string value is copied out of b.
func ConsumeValue(b []byte) (Value, int, error) {
	if len(b) < 1 {
		return Value{}, 0, ErrShort
	}
	k, rest := Kind(b[0]), b[1:]
	switch k {
	case KindBool:
		x, n, err := ConsumeBool(rest)
		if err != nil {
			return Value{}, 0, err
		}
		return BoolValue(x), 1 + n, nil
	case KindInt, KindUint, KindFloat:
		x, n, err := ConsumeU64(rest)
		if err != nil {
			return Value{}, 0, err
		}
		return Value{Kind: k, num: x}, 1 + n, nil
	case KindString:
		s, n, err := ConsumeString(rest)
		if err != nil {
			return Value{}, 0, err
		}
		return StringValue(s), 1 + n, nil
	}
	return Value{}, 0, ErrBadValue
}

// SizeValue returns the encoded size of v.
func SizeValue(v Value) int {
	switch v.Kind {
	case KindBool:
		return 2
	case KindInt, KindUint, KindFloat:
		return 9
	case KindString:
		return 1 + SizeString(v.str)
	}
	return 1
}

// KeyValue is one property: a key and its value.
type KeyValue struct {
	Key   string
	Value Value
}

// minKeyValueSize is the smallest encoded KeyValue: an empty key (1 byte)
// and a bool or empty string (2 bytes).
const minKeyValueSize = 3

// AppendProps appends a property list: a uvarint count, then each key as a
// string followed by its value as by AppendValue.
func AppendProps(dst []byte, props []KeyValue) []byte {
	dst = AppendUvarint(dst, uint64(len(props)))
	for _, kv := range props {
		dst = AppendString(dst, kv.Key)
		dst = AppendValue(dst, kv.Value)
	}
	return dst
}

// ConsumeProps decodes a property list. An empty list is returned as nil.
// The count is checked against the remaining input before the list is
// allocated. Keys are not checked for duplicates.
func ConsumeProps(b []byte) ([]KeyValue, int, error) {
	count, n, err := consumeLen(b, minKeyValueSize)
	if err != nil || count == 0 {
		return nil, n, err
	}
	props := make([]KeyValue, count)
	for i := range props {
		k, m, err := ConsumeString(b[n:])
		if err != nil {
			return nil, 0, err
		}
		n += m
		v, m, err := ConsumeValue(b[n:])
		if err != nil {
			return nil, 0, err
		}
		n += m
		props[i] = KeyValue{Key: k, Value: v}
	}
	return props, n, nil
}

// SizeProps returns the encoded size of props.
func SizeProps(props []KeyValue) int {
	n := SizeUvarint(uint64(len(props)))
	for _, kv := range props {
		n += SizeString(kv.Key) + SizeValue(kv.Value)
	}
	return n
}
