package wire

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// Payload primitives, in the style of protowire: for each type, AppendX
// appends the encoding of a value to dst and returns the extended slice
// (allocating only to grow dst); ConsumeX decodes a value from the start of
// b and returns it with the number of bytes it used; SizeX returns the
// length of the encoding. Consume functions report truncated input with
// ErrShort and never allocate more than the decoded value itself, whatever
// a length or count claims.
//
// Integers are fixed-size big-endian. Strings, byte blobs and lists carry a
// uvarint (LEB128, as encoding/binary.AppendUvarint) length or count prefix.

// AppendU8 appends v as one byte.
func AppendU8(dst []byte, v uint8) []byte { return append(dst, v) }

// ConsumeU8 decodes one byte.
func ConsumeU8(b []byte) (uint8, int, error) {
	if len(b) < 1 {
		return 0, 0, ErrShort
	}
	return b[0], 1, nil
}

// SizeU8 returns the encoded size of a uint8: 1.
func SizeU8() int { return 1 }

// AppendU16 appends v as 2 bytes, big-endian.
func AppendU16(dst []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(dst, v) }

// ConsumeU16 decodes a 2-byte big-endian integer.
func ConsumeU16(b []byte) (uint16, int, error) {
	if len(b) < 2 {
		return 0, 0, ErrShort
	}
	return binary.BigEndian.Uint16(b), 2, nil
}

// SizeU16 returns the encoded size of a uint16: 2.
func SizeU16() int { return 2 }

// AppendU32 appends v as 4 bytes, big-endian.
func AppendU32(dst []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(dst, v) }

// ConsumeU32 decodes a 4-byte big-endian integer.
func ConsumeU32(b []byte) (uint32, int, error) {
	if len(b) < 4 {
		return 0, 0, ErrShort
	}
	return binary.BigEndian.Uint32(b), 4, nil
}

// SizeU32 returns the encoded size of a uint32: 4.
func SizeU32() int { return 4 }

// AppendU64 appends v as 8 bytes, big-endian. Signed integers are sent as
// their two's-complement bits: AppendU64(dst, uint64(i)).
func AppendU64(dst []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(dst, v) }

// ConsumeU64 decodes an 8-byte big-endian integer.
func ConsumeU64(b []byte) (uint64, int, error) {
	if len(b) < 8 {
		return 0, 0, ErrShort
	}
	return binary.BigEndian.Uint64(b), 8, nil
}

// SizeU64 returns the encoded size of a uint64: 8.
func SizeU64() int { return 8 }

// AppendBool appends v as one byte, 1 for true and 0 for false.
func AppendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// ConsumeBool decodes a boolean byte. Values other than 0 and 1 are
// ErrBadValue.
func ConsumeBool(b []byte) (bool, int, error) {
	if len(b) < 1 {
		return false, 0, ErrShort
	}
	switch b[0] {
	case 0:
		return false, 1, nil
	case 1:
		return true, 1, nil
	}
	return false, 0, ErrBadValue
}

// SizeBool returns the encoded size of a bool: 1.
func SizeBool() int { return 1 }

// AppendUvarint appends v as a uvarint (LEB128): 7 bits per byte, least
// significant group first, high bit set on every byte but the last.
func AppendUvarint(dst []byte, v uint64) []byte { return binary.AppendUvarint(dst, v) }

// ConsumeUvarint decodes a uvarint. A uvarint that does not fit 64 bits is
// ErrCorrupt. Non-minimal encodings are accepted.
func ConsumeUvarint(b []byte) (uint64, int, error) {
	v, n := binary.Uvarint(b)
	switch {
	case n == 0:
		return 0, 0, ErrShort
	case n < 0:
		return 0, 0, ErrCorrupt
	}
	return v, n, nil
}

// SizeUvarint returns the encoded size of v as a uvarint: 1 to 10.
func SizeUvarint(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

// consumeLen decodes a uvarint length or count prefix and checks that the
// rest of b holds at least v*minSize bytes, so that no caller allocates for
// elements that cannot be there. It returns the value and the prefix size.
func consumeLen(b []byte, minSize int) (int, int, error) {
	v, n, err := ConsumeUvarint(b)
	if err != nil {
		return 0, 0, err
	}
	if v > uint64(len(b)-n)/uint64(minSize) {
		return 0, 0, ErrShort
	}
	return int(v), n, nil
}

// AppendString appends s as a uvarint byte length followed by its bytes.
// Strings are UTF-8: the encoder does not check, [ConsumeString] does.
func AppendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// ConsumeString decodes a length-prefixed string. Bytes that are not valid
// UTF-8 are ErrBadUTF8. The string is a copy (it allocates unless empty),
// so it outlives b.
func ConsumeString(b []byte) (string, int, error) {
	l, n, err := consumeLen(b, 1)
	if err != nil {
		return "", 0, err
	}
	if l == 0 {
		return "", n, nil
	}
	s := b[n : n+l]
	if !utf8.Valid(s) {
		return "", 0, ErrBadUTF8
	}
	return string(s), n + l, nil
}

// SizeString returns the encoded size of s.
func SizeString(s string) int { return SizeUvarint(uint64(len(s))) + len(s) }

// AppendBytes appends v as a uvarint byte length followed by its bytes.
func AppendBytes(dst, v []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	return append(dst, v...)
}

// ConsumeBytes decodes a length-prefixed byte blob. The result is a
// sub-slice of b, not a copy (capacity clipped to its length): it is valid
// as long as b is and must be copied to be kept longer.
func ConsumeBytes(b []byte) ([]byte, int, error) {
	l, n, err := consumeLen(b, 1)
	if err != nil {
		return nil, 0, err
	}
	return b[n : n+l : n+l], n + l, nil
}

// SizeBytes returns the encoded size of v.
func SizeBytes(v []byte) int { return SizeUvarint(uint64(len(v))) + len(v) }

// AppendStringList appends a uvarint count followed by each string as by
// AppendString.
func AppendStringList(dst []byte, l []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(l)))
	for _, s := range l {
		dst = AppendString(dst, s)
	}
	return dst
}

// ConsumeStringList decodes a string list. An empty list is returned as
// nil. The count is checked against the remaining input (each string takes
// at least one byte) before the list is allocated.
func ConsumeStringList(b []byte) ([]string, int, error) {
	count, n, err := consumeLen(b, 1)
	if err != nil || count == 0 {
		return nil, n, err
	}
	l := make([]string, count)
	for i := range l {
		s, m, err := ConsumeString(b[n:])
		if err != nil {
			return nil, 0, err
		}
		l[i] = s
		n += m
	}
	return l, n, nil
}

// SizeStringList returns the encoded size of l.
func SizeStringList(l []string) int {
	n := SizeUvarint(uint64(len(l)))
	for _, s := range l {
		n += SizeString(s)
	}
	return n
}
