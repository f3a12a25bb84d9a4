package clientconn

import (
	"crypto/rand"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/coveyhq/covey/secure"
	"github.com/coveyhq/covey/wire"
)

// Buffer sizes of an encrypted connection.
const (
	// recordReadBuffer is the first size of the buffer records are read
	// into; it grows to the largest record read (secure.MaxRecordSize
	// at most).
	recordReadBuffer = 16 << 10
	// maxRefusalPayload bounds the plaintext frame that answers a
	// refused ClientHello: a Bye, whose reason is short.
	maxRefusalPayload = 4 << 10
)

// errNotBye is the plaintext answer to a ClientHello that is not a Bye.
var errNotBye = errors.New("clientconn: plaintext answer to the ClientHello is not a Bye")

// SecureTCP runs the encrypted handshake of PROTOCOL.md ("TCP records")
// on nc, a TCP connection on which nothing was sent yet, with the ticket
// of a connect token (see secure.ParseConnectToken), within deadline: it
// writes the ClientHello and reads the answer. A ServerHello gives the
// connection's keys: SecureTCP returns a net.Conn whose Write seals what
// it is given as records (one write on nc per Write) and whose Read
// returns the plaintext of the server's records; a record that fails
// authentication is dropped, one with an impossible length fails the
// Read with an [*Error] of kind ErrProtocol (the stream is lost). A
// server that refuses the hello answers a plaintext Bye: SecureTCP
// returns a [*ByeError] (wire.StatusAuthFailed for a ticket that does not
// open or has expired, or a server in development mode; StatusBadRequest;
// StatusUnauthenticated if the hello took too long). Other failures are
// [*Error]s (ErrProtocol, ErrDisconnected) or nc's errors.
//
// SecureTCP clears nc's deadline when it succeeds. It does not close nc
// when it fails; the returned connection's Close closes nc. The
// connection's Read and Write may be called concurrently with each other
// (each by one goroutine at a time), as on any net.Conn; the sign-in that
// follows carries an empty token and user ID (see [SignIn]).
func SecureTCP(nc net.Conn, ct *secure.ClientTicket, deadline time.Time) (net.Conn, error) {
	if err := nc.SetDeadline(deadline); err != nil {
		return nil, err
	}
	// Version 2: a nonce of the client's own goes into the keys, so that a
	// ServerHello recorded on the path and replayed here opens nothing.
	var clientNonce [secure.ClientNonceSize]byte
	_, _ = rand.Read(clientNonce[:]) // crypto/rand.Read never fails
	hello := secure.AppendClientHello2(make([]byte, 0, secure.ClientHelloHeader+len(ct.Ticket)+secure.ClientNonceSize), ct.Ticket, &clientNonce)
	if _, err := nc.Write(hello); err != nil {
		return nil, err
	}
	// Read the answer into what becomes the record buffer: records may
	// follow the ServerHello in the same read.
	rbuf := make([]byte, 0, recordReadBuffer)
	for len(rbuf) < 1 || (rbuf[0] == secure.HelloMagic && len(rbuf) < secure.ServerHelloSize) {
		n, err := nc.Read(rbuf[len(rbuf):cap(rbuf)])
		rbuf = rbuf[:len(rbuf)+n]
		if err != nil && n == 0 {
			return nil, &Error{Kind: ErrDisconnected, What: "ServerHello", Err: err}
		}
	}
	if rbuf[0] != secure.HelloMagic {
		return nil, readRefusal(nc, rbuf)
	}
	nonce, err := secure.ConsumeServerHelloVersion(rbuf[:secure.ServerHelloSize], secure.HelloVersion2)
	if err != nil {
		return nil, &Error{Kind: ErrProtocol, What: "ServerHello", Err: err}
	}
	keys := secure.DeriveKeys2(&ct.Key, nonce, clientNonce[:])
	sc := &secureConn{
		Conn: nc,
		seal: secure.NewSealer(&keys.ClientToServer),
		open: secure.NewOpener(&keys.ServerToClient),
		rbuf: rbuf,
		rr:   secure.ServerHelloSize,
	}
	keys = secure.Keys{}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return sc, nil
}

// readRefusal reads the plaintext frame that answered the ClientHello,
// whose first bytes are in b, and returns the [*ByeError] it carries.
func readRefusal(nc net.Conn, b []byte) error {
	dec := wire.NewDecoder(wire.Config{MaxPayload: maxRefusalPayload})
	dec.Write(b)
	buf := b[:cap(b)]
	for {
		f, err := dec.Next()
		switch {
		case err == nil:
			var bye wire.Bye
			if f.Ver != 0 || f.Cmd != wire.CmdBye || bye.Consume(f.Payload) != nil {
				return &Error{Kind: ErrProtocol, What: "ClientHello", Err: errNotBye}
			}
			return &ByeError{Status: bye.Status, Reason: bye.Reason}
		case !errors.Is(err, wire.ErrNeedMore):
			return &Error{Kind: ErrProtocol, What: "ClientHello", Err: err}
		}
		n, rerr := nc.Read(buf)
		dec.Write(buf[:n])
		if rerr != nil && n == 0 {
			return &Error{Kind: ErrDisconnected, What: "ClientHello", Err: rerr}
		}
	}
}

// secureConn is the record layer of an encrypted TCP connection, client
// side: nc's methods, but Read and Write carry plaintext.
type secureConn struct {
	net.Conn // nc

	rmu   sync.Mutex // the read side
	open  *secure.Opener
	rbuf  []byte // rbuf[rr:] is received and not yet opened
	rr    int
	plain []byte // plain[pr:] is opened and not yet returned
	pr    int
	rerr  error // sticky: a record of impossible length

	wmu  sync.Mutex // the write side
	seal *secure.Sealer
	wbuf []byte
	werr error // sticky: a write failed, the stream is cut mid-record
}

// Read returns plaintext of the server's records: what is left of the
// last record opened, else the next record that opens, reading nc until
// one is whole. A record whose plaintext fits p is opened straight into
// it.
func (s *secureConn) Read(p []byte) (int, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if s.pr < len(s.plain) {
			n := copy(p, s.plain[s.pr:])
			s.pr += n
			return n, nil
		}
		if s.rerr != nil {
			return 0, s.rerr
		}
		need := secure.RecordHeaderSize
		if buf := s.rbuf[s.rr:]; len(buf) >= secure.RecordHeaderSize {
			n, err := secure.RecordLen(buf, 0)
			if err != nil {
				s.rerr = &Error{Kind: ErrProtocol, What: "record", Err: err}
				s.rbuf, s.rr = nil, 0
				return 0, s.rerr
			}
			if len(buf) >= n {
				s.rr += n
				if n-secure.RecordHeaderSize-secure.TagSize <= len(p) {
					out, err := s.open.OpenRecord(p[:0], buf[:n])
					if err == nil && len(out) > 0 {
						return len(out), nil
					}
					continue // dropped (forged), or empty
				}
				out, err := s.open.OpenRecord(s.plain[:0], buf[:n])
				if err == nil {
					s.plain, s.pr = out, 0
				}
				continue
			}
			need = n
		}
		s.fill(need)
		n, err := s.Conn.Read(s.rbuf[len(s.rbuf):cap(s.rbuf)])
		s.rbuf = s.rbuf[:len(s.rbuf)+n]
		if err != nil && n == 0 {
			return 0, err
		}
	}
}

// fill makes room in rbuf for the record of need bytes (at most
// secure.MaxRecordSize) that starts at rr, and for a read: it moves the
// unread bytes to the front, and grows the buffer only if it is too
// small. Only the bytes of a record not yet whole are unread here.
func (s *secureConn) fill(need int) {
	if cap(s.rbuf)-s.rr >= need {
		return // the record fits from rr; unread < need, so a read has room
	}
	unread := len(s.rbuf) - s.rr
	if cap(s.rbuf) >= need {
		copy(s.rbuf, s.rbuf[s.rr:])
		s.rbuf = s.rbuf[:unread]
	} else {
		nb := make([]byte, unread, max(need, recordReadBuffer))
		copy(nb, s.rbuf[s.rr:])
		s.rbuf = nb
	}
	s.rr = 0
}

// Write seals p as records (pieces of at most 64 KiB) and writes them
// with one write on nc. After a failed write the stream is cut mid-record
// and every later Write fails.
func (s *secureConn) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.werr != nil {
		return 0, s.werr
	}
	if len(p) == 0 {
		return 0, nil
	}
	b, err := s.seal.AppendRecords(s.wbuf[:0], p)
	if err != nil {
		s.werr = err
		return 0, err
	}
	_, err = s.Conn.Write(b)
	s.wbuf = b[:0]
	if cap(b) > maxRetained {
		s.wbuf = nil
	}
	if err != nil {
		s.werr = err
		return 0, err
	}
	return len(p), nil
}
