package netio

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/coveyhq/covey/secure"
	"github.com/coveyhq/covey/wire"
)

// tcpMode is how a TCP connection's inbound bytes are read. A client
// connection's first byte decides it (PROTOCOL.md, TCP records): a
// ClientHello starts with secure.HelloMagic, which no frame can start
// with. Peers are always plaintext. Event loop only.
type tcpMode uint8

const (
	tcpUndecided tcpMode = iota // a client that has sent nothing yet
	tcpHello                    // its first byte was HelloMagic: reading its ClientHello
	tcpPlain                    // frames, read in place (tcpConn.decode)
	tcpRecords                  // records (tcpConn.decodeRecords)
)

// decided reports whether outbound bytes may be written: before the mode
// is known, a frame could reach a client that waits for its ServerHello.
func (m tcpMode) decided() bool { return m >= tcpPlain }

// tcpModeOf returns the mode a new connection of kind k starts in.
func tcpModeOf(k Kind) tcpMode {
	if k == KindPeer {
		return tcpPlain
	}
	return tcpUndecided
}

// Reasons of the Byes of the TCP record layer only (the rest are the
// handshake's, handshake.go).
const (
	reasonBadHello  = "malformed ClientHello"
	reasonBadRecord = "malformed record"
)

// tcpRecordLayer is the record layer of an encrypted TCP connection
// (PROTOCOL.md, TCP records). It belongs to the connection's event loop.
//
// Its buffers are bounded: plain holds one record's plaintext (at most
// secure.MaxRecordPayload), dec one partial frame plus one record, out
// one sealed batch (pending's size, so at most about Config.MaxOutbound,
// plus 20 bytes per 64 KiB). Each is released after a run of small
// records or batches, as keep releases the batch buffers.
type tcpRecordLayer struct {
	seal *secure.Sealer // server to client
	open *secure.Opener // client to server

	hello    [secure.ServerHelloSize]byte
	helloDue bool // hello is not written yet: the next flush starts with it

	dec      *wire.Decoder // the plaintext stream
	decAuth  bool          // dec has the Kind's limits, not the pre-auth ones
	decBig   bool          // dec may hold a buffer over keepCap
	decSmall int           // records in a row that left dec empty and small

	plain      []byte // OpenRecord's output, reused
	plainSmall int    // see keep

	out      []byte // the sealed batch, reused
	outSmall int    // see keep
}

// read hands what arrived to the connection's decoder: it decides the
// mode on the first byte, then reads frames, or the ClientHello and
// records. Event loop.
func (t *tcpConn) read() {
	if t.mode == tcpUndecided {
		b, err := t.gc.Peek(1)
		if err != nil || len(b) < 1 {
			return
		}
		switch {
		case b[0] == secure.HelloMagic:
			t.mode = tcpHello
		case t.f.s.cfg.RequireEncryption:
			t.refuse(wire.StatusNotEncrypted, reasonNotEncrypted)
			return
		default:
			t.mode = tcpPlain
		}
	}
	switch t.mode {
	case tcpPlain:
		t.decode()
	case tcpHello:
		if t.handshake() {
			t.decodeRecords()
		}
	case tcpRecords:
		t.decodeRecords()
	}
}

// refuse closes a connection whose handshake failed with a plaintext Bye
// (the mode is not decided: flush writes it as it is). OnClose gets an
// error matching ErrHandshake and status.
func (t *tcpConn) refuse(status wire.Status, reason string) {
	t.held = nil // the Bye goes alone: the client reads one frame
	t.c.closeWith(fmt.Errorf("%w: %w", ErrHandshake, status), true, status, reason, true)
}

// handshake reads the ClientHello, once it is whole, and answers it: on
// success the connection is in tcpRecords with its keys and ticket, the
// ServerHello is due, and it reports true; otherwise it reports false
// (the hello is not complete yet, or the connection is refused).
func (t *tcpConn) handshake() bool {
	gc, s := t.gc, t.f.s
	avail := gc.InboundBuffered()
	if avail < secure.ClientHelloHeader {
		return false
	}
	b, err := gc.Peek(secure.ClientHelloHeader)
	if err != nil {
		return false
	}
	n, err := secure.ClientHelloLen(b)
	if err != nil {
		t.refuse(wire.StatusBadRequest, reasonBadHello)
		return false
	}
	if avail < n {
		return false // at most 4+209+16 bytes: gnet holds them
	}
	if b, err = gc.Peek(n); err != nil {
		return false
	}
	version, ticket, clientNonce, err := secure.ConsumeClientHello(b)
	if err != nil {
		t.refuse(wire.StatusBadRequest, reasonBadHello)
		return false
	}
	tk, reason := s.openTicket(ticket, time.Now())
	if reason != "" {
		t.refuse(wire.StatusAuthFailed, reason)
		return false
	}
	_, _ = gc.Discard(n)
	s.bytesIn.Add(uint64(n))

	sec := &tcpRecordLayer{helloDue: true, dec: wire.NewDecoder(s.preAuthWire)}
	var nonce [secure.ServerNonceSize]byte
	_, _ = rand.Read(nonce[:]) // crypto/rand.Read never fails
	var keys secure.Keys
	if version == secure.HelloVersion2 {
		keys = secure.DeriveKeys2(&tk.Key, nonce[:], clientNonce)
	} else {
		keys = secure.DeriveKeys(&tk.Key, nonce[:]) // a client without a nonce of its own
	}
	sec.seal = secure.NewSealer(&keys.ServerToClient)
	sec.open = secure.NewOpener(&keys.ClientToServer)
	keys = secure.Keys{}
	secure.AppendServerHelloVersion(sec.hello[:0], version, &nonce)
	t.c.setTicket(tk) // wipes its key
	t.sec, t.mode = sec, tcpRecords
	return true
}

// preAuthRecordSize is the largest record, header included, read from a
// client before it is authenticated: one frame of the pre-auth payload
// limit, its header and the tag.
func (s *Server) preAuthRecordSize() int {
	return int(s.preAuthWire.MaxPayload) + wire.HeaderSize + secure.TagSize + secure.RecordHeaderSize
}

// decodeRecords opens the complete records in the inbound buffer and
// hands the frames of their plaintext to the Handler, in a loop until the
// data is short. A record that fails authentication is dropped and
// counted (Stats.TCPForgedRecords), and is not activity: if no record
// opens again (an injection took a genuine one's place in the stream),
// the idle timeout closes the connection. A length out of range closes
// it at once. Event loop.
func (t *tcpConn) decodeRecords() {
	c, gc, sec, s := t.c, t.gc, t.sec, t.f.s
	for t.frames() {
		avail := gc.InboundBuffered()
		if avail < secure.RecordHeaderSize {
			return
		}
		b, err := gc.Peek(secure.RecordHeaderSize)
		if err != nil {
			return
		}
		limit := secure.MaxRecordSize
		if !c.authed.Load() {
			limit = s.preAuthRecordSize()
		}
		n, err := secure.RecordLen(b, limit)
		if err != nil {
			t.badRecord(err, limit)
			return
		}
		if avail < n {
			return
		}
		if b, err = gc.Peek(n); err != nil {
			return
		}
		p, err := sec.open.OpenRecord(sec.plain[:0], b)
		_, _ = gc.Discard(n)
		if err != nil {
			t.f.forged.Add(1)
			continue
		}
		s.bytesIn.Add(uint64(n))
		c.lastRead.Store(s.now())
		if sec.dec.Buffered()+len(p) > keepCap {
			sec.decBig = true
		}
		sec.dec.Write(p)
		sec.plain = keep(p, &sec.plainSmall)
	}
}

// frames hands the complete frames dec holds to the Handler and reports
// whether the connection may read on (it is neither closing nor held).
// Event loop.
func (t *tcpConn) frames() bool {
	c, sec := t.c, t.sec
	for !c.closing.Load() && !c.onHold.Load() {
		if !sec.decAuth && c.authed.Load() { // per frame: OnFrame may have authenticated c
			sec.dec.SetConfig(c.lim.wire)
			sec.decAuth = true
		}
		fr, err := sec.dec.Next()
		if err != nil {
			if !errors.Is(err, wire.ErrNeedMore) {
				c.badFrame(err)
				return false
			}
			sec.releaseDecoder(c)
			return true
		}
		if fr.Length > keepCap {
			sec.decBig = true // its decompression scratch, if it was compressed
		}
		c.srv.h.OnFrame(c, fr)
	}
	return false
}

// releaseDecoder replaces a drained decoder that may hold a large buffer
// once keepSmallRuns records in a row found it empty, so that a burst of
// large frames does not pin its buffers (wire.Decoder keeps them).
func (sec *tcpRecordLayer) releaseDecoder(c *Conn) {
	if !sec.decBig || sec.dec.Buffered() > 0 {
		sec.decSmall = 0
		return
	}
	if sec.decSmall++; sec.decSmall < keepSmallRuns {
		return
	}
	cfg := c.srv.preAuthWire
	if sec.decAuth {
		cfg = c.lim.wire
	}
	sec.dec = wire.NewDecoder(cfg)
	sec.decBig, sec.decSmall = false, 0
}

// badRecord closes the connection after a record header out of range:
// its Bye goes sealed, the client reads records now.
func (t *tcpConn) badRecord(err error, limit int) {
	c := t.c
	if errors.Is(err, secure.ErrTooLarge) {
		reason := "record over " + strconv.Itoa(limit) + " bytes"
		if !c.authed.Load() {
			reason += " before sign-in"
		}
		c.closeWith(ErrTooLarge, true, wire.StatusTooLarge, reason, false)
		return
	}
	c.closeWith(ErrBadFrame, true, wire.StatusBadRequest, reasonBadRecord, false)
}

// sealBatch returns what flush writes for batch, whole frames: the
// ServerHello if it is due, then batch as records. It fails only with
// secure.ErrExhausted. The result is valid until the next call.
func (sec *tcpRecordLayer) sealBatch(batch []byte) ([]byte, error) {
	out := sec.out[:0]
	if sec.helloDue {
		out = append(out, sec.hello[:]...)
		sec.helloDue = false
	}
	if len(batch) > 0 {
		var err error
		if out, err = sec.seal.AppendRecords(out, batch); err != nil {
			return nil, err
		}
	}
	sec.out = out
	return out, nil
}

// written releases or keeps the sealed batch buffer after a write.
func (sec *tcpRecordLayer) written() { sec.out = keep(sec.out, &sec.outSmall) }
