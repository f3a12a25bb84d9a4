package secure

import (
	"crypto/cipher"
	"encoding/binary"

	"golang.org/x/crypto/chacha20poly1305"
)

// Records and packets.
const (
	// RecordHeaderSize is a TCP record's length prefix.
	RecordHeaderSize = 4
	// MaxRecordPayload is the most plaintext one TCP record carries.
	MaxRecordPayload = 64 << 10
	// MaxRecordSize is the largest TCP record: header, payload, tag.
	MaxRecordSize = RecordHeaderSize + MaxRecordPayload + TagSize
	// PacketHeaderSize is a UDP data packet's type and counter.
	PacketHeaderSize = 1 + 8
	// PacketOverhead is what sealing adds to a UDP datagram.
	PacketOverhead = PacketHeaderSize + TagSize
	// MaxCounter is the last counter a Sealer uses; the connection must
	// close before it would need another.
	MaxCounter = 1<<62 - 1
)

// ReplayWindow is how many UDP packets before the newest one an Opener
// still accepts (each once).
const ReplayWindow = 1024

// nonce writes the AEAD nonce of counter n: 4 zero bytes, then n
// big-endian.
func nonce(buf *[chacha20poly1305.NonceSize]byte, n uint64) []byte {
	binary.BigEndian.PutUint64(buf[4:], n)
	return buf[:]
}

// Sealer encrypts one direction of a connection: TCP records or UDP data
// packets, each under the next counter. One goroutine at a time.
type Sealer struct {
	aead cipher.AEAD
	next uint64
	// nb is the nonce's buffer: a local one escapes through the AEAD
	// interface, one allocation per call (BenchmarkSealBatch in netio).
	nb [chacha20poly1305.NonceSize]byte
}

// NewSealer returns a Sealer for a direction key, starting at counter 0.
func NewSealer(key *[KeySize]byte) *Sealer {
	aead, err := chacha20poly1305.New(key[:])
	if err != nil {
		panic("secure: " + err.Error()) // only for a key of another size
	}
	return &Sealer{aead: aead}
}

// Next returns the counter the next record or packet gets.
func (s *Sealer) Next() uint64 { return s.next }

// AppendRecords appends p as TCP records: pieces of at most
// MaxRecordPayload bytes (one record for an empty p), each a 4-byte
// big-endian length of what follows, then p's piece sealed under the next
// counter with that length prefix as additional data. It fails only with
// ErrExhausted; dst may then hold the records sealed before it.
func (s *Sealer) AppendRecords(dst, p []byte) ([]byte, error) {
	for first := true; first || len(p) > 0; first = false {
		if s.next > MaxCounter {
			return dst, ErrExhausted
		}
		m := min(len(p), MaxRecordPayload)
		h := len(dst)
		dst = binary.BigEndian.AppendUint32(dst, uint32(m+TagSize))
		dst = s.aead.Seal(dst, nonce(&s.nb, s.next), p[:m], dst[h:h+RecordHeaderSize])
		s.next++
		p = p[m:]
	}
	return dst, nil
}

// AppendPacket appends a UDP data packet of p: the type byte typ, the
// next counter (8 bytes, big-endian), then p sealed under it with those 9
// bytes as additional data. It fails only with ErrExhausted.
func (s *Sealer) AppendPacket(dst []byte, typ byte, p []byte) ([]byte, error) {
	if s.next > MaxCounter {
		return dst, ErrExhausted
	}
	h := len(dst)
	dst = append(dst, typ)
	dst = binary.BigEndian.AppendUint64(dst, s.next)
	dst = s.aead.Seal(dst, nonce(&s.nb, s.next), p, dst[h:h+PacketHeaderSize])
	s.next++
	return dst, nil
}

// Opener decrypts one direction of a connection. On TCP, records come in
// order and each must open under the next counter; on UDP, packets carry
// their counter and pass the replay window. One goroutine at a time.
type Opener struct {
	aead cipher.AEAD
	next uint64                           // TCP: the counter of the next record
	nb   [chacha20poly1305.NonceSize]byte // the nonce's buffer: see Sealer

	// UDP: the highest counter opened, and which of the ReplayWindow
	// counters up to it were (bit i of word i/64: counter top-i).
	top    uint64
	seen   [ReplayWindow / 64]uint64
	opened bool // a packet was opened: top is meaningful
}

// NewOpener returns an Opener for a direction key.
func NewOpener(key *[KeySize]byte) *Opener {
	aead, err := chacha20poly1305.New(key[:])
	if err != nil {
		panic("secure: " + err.Error())
	}
	return &Opener{aead: aead}
}

// RecordLen returns the size of the record that starts b (header
// included), which needs at least RecordHeaderSize bytes: ErrTooLarge for
// one over MaxRecordSize (or max, if smaller and not 0), ErrMalformed for
// one too short to hold a tag.
func RecordLen(b []byte, max int) (int, error) {
	n := RecordHeaderSize + int(binary.BigEndian.Uint32(b))
	switch {
	case n < RecordHeaderSize+TagSize:
		return 0, ErrMalformed
	case n > MaxRecordSize || (max > 0 && n > max):
		return 0, ErrTooLarge
	}
	return n, nil
}

// OpenRecord opens one whole TCP record (header included; see RecordLen)
// under the next counter and appends its plaintext to dst. A record that
// fails (ErrAuth, ErrMalformed) does not move the counter, so the next
// genuine record still opens: a forged record is dropped, nothing else.
func (o *Opener) OpenRecord(dst, rec []byte) ([]byte, error) {
	if len(rec) < RecordHeaderSize+TagSize || RecordHeaderSize+int(binary.BigEndian.Uint32(rec)) != len(rec) {
		return dst, ErrMalformed
	}
	out, err := o.aead.Open(dst, nonce(&o.nb, o.next), rec[RecordHeaderSize:], rec[:RecordHeaderSize])
	if err != nil {
		return dst, ErrAuth
	}
	o.next++
	return out, nil
}

// OpenPacket opens a UDP data packet (as AppendPacket writes it, any type
// byte) and appends its plaintext to dst. ErrMalformed: too short;
// ErrReplayed: its counter was opened before or is ReplayWindow or more
// behind the newest; ErrAuth: it does not verify. Only a packet that
// verifies moves the window, so forged packets change nothing.
func (o *Opener) OpenPacket(dst, pkt []byte) ([]byte, error) {
	if len(pkt) < PacketOverhead {
		return dst, ErrMalformed
	}
	n := binary.BigEndian.Uint64(pkt[1:])
	if o.replayed(n) {
		return dst, ErrReplayed
	}
	out, err := o.aead.Open(dst, nonce(&o.nb, n), pkt[PacketHeaderSize:], pkt[:PacketHeaderSize])
	if err != nil {
		return dst, ErrAuth
	}
	o.mark(n)
	return out, nil
}

// replayed reports whether counter n is outside the window or seen.
func (o *Opener) replayed(n uint64) bool {
	if n > MaxCounter {
		return true
	}
	if !o.opened || n > o.top {
		return false
	}
	d := o.top - n
	return d >= ReplayWindow || o.seen[d/64]&(1<<(d%64)) != 0
}

// mark records counter n as opened, sliding the window if it is newer.
func (o *Opener) mark(n uint64) {
	if !o.opened {
		o.opened, o.top = true, n
		o.seen[0] = 1
		return
	}
	if n > o.top {
		o.shift(n - o.top)
		o.top = n
	}
	d := o.top - n
	o.seen[d/64] |= 1 << (d % 64)
}

// shift moves the window by s counters: bit d becomes bit d+s.
func (o *Opener) shift(s uint64) {
	if s >= ReplayWindow {
		o.seen = [ReplayWindow / 64]uint64{}
		return
	}
	words, bits := int(s/64), s%64
	for i := len(o.seen) - 1; i >= 0; i-- {
		var v uint64
		if j := i - words; j >= 0 {
			v = o.seen[j] << bits
			if bits > 0 && j > 0 {
				v |= o.seen[j-1] >> (64 - bits)
			}
		}
		o.seen[i] = v
	}
}
