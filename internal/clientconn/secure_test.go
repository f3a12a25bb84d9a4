package clientconn

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/coveyhq/covey/secure"
	"github.com/coveyhq/covey/wire"
)

// fakeServer is the server's end of an encrypted TCP connection, written
// with package secure's primitives: it reads the ClientHello, answers a
// ServerHello and seals and opens records.
type fakeServer struct {
	t    *testing.T
	nc   net.Conn
	seal *secure.Sealer
	open *secure.Opener
}

// pair returns a client conn from SecureTCP and the server end.
func pair(t *testing.T) (net.Conn, *fakeServer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ct := secure.ClientTicket{Ticket: make([]byte, secure.MinTicketSize)}
	rand.Read(ct.Key[:])
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, _ := ln.Accept()
		accepted <- nc
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	srv := &fakeServer{t: t, nc: <-accepted}
	if srv.nc == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { srv.nc.Close() })
	_ = srv.nc.SetDeadline(time.Now().Add(10 * time.Second))
	done := make(chan struct{})
	go func() { // the server's side of the handshake
		defer close(done)
		hello := make([]byte, secure.ClientHelloHeader+len(ct.Ticket)+secure.ClientNonceSize)
		if _, err := io.ReadFull(srv.nc, hello); err != nil {
			return
		}
		v, _, clientNonce, err := secure.ConsumeClientHello(hello)
		if err != nil || v != secure.HelloVersion2 {
			return
		}
		var nonce [secure.ServerNonceSize]byte
		rand.Read(nonce[:])
		keys := secure.DeriveKeys2(&ct.Key, nonce[:], clientNonce)
		srv.seal = secure.NewSealer(&keys.ServerToClient)
		srv.open = secure.NewOpener(&keys.ClientToServer)
		_, _ = srv.nc.Write(secure.AppendServerHelloVersion(nil, secure.HelloVersion2, &nonce))
	}()
	sc, err := SecureTCP(nc, &ct, time.Now().Add(10*time.Second))
	<-done
	if err != nil {
		t.Fatalf("SecureTCP: %v", err)
	}
	return sc, srv
}

func (s *fakeServer) write(b []byte) {
	s.t.Helper()
	if _, err := s.nc.Write(b); err != nil {
		s.t.Fatal(err)
	}
}

func (s *fakeServer) records(p []byte) []byte {
	b, err := s.seal.AppendRecords(nil, p)
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

// TestSecureConnRoundTrip: what the client writes, the server opens;
// what the server seals (a record over 64 KiB cut in two, read through a
// small buffer), the client reads back whole.
func TestSecureConnRoundTrip(t *testing.T) {
	sc, srv := pair(t)
	if _, err := sc.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, secure.RecordHeaderSize+5+secure.TagSize)
	if _, err := io.ReadFull(srv.nc, rec); err != nil {
		t.Fatal(err)
	}
	if p, err := srv.open.OpenRecord(nil, rec); err != nil || string(p) != "hello" {
		t.Fatalf("server opened %q, %v", p, err)
	}

	want := make([]byte, 100<<10)
	rand.Read(want)
	go srv.write(srv.records(want))
	got := make([]byte, 0, len(want))
	buf := make([]byte, 1000) // smaller than a record: the rest is kept
	for len(got) < len(want) {
		n, err := sc.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("read back other bytes than sealed")
	}
}

// TestSecureConnDropsForgedRecord: a record that fails authentication is
// skipped; the next genuine one is read.
func TestSecureConnDropsForgedRecord(t *testing.T) {
	sc, srv := pair(t)
	forged := append(binary.BigEndian.AppendUint32(nil, 20), make([]byte, 20)...)
	srv.write(append(forged, srv.records([]byte("genuine"))...))
	buf := make([]byte, 64)
	n, err := sc.Read(buf)
	if err != nil || string(buf[:n]) != "genuine" {
		t.Fatalf("Read = %q, %v; want the genuine record", buf[:n], err)
	}
}

// TestSecureConnBadRecordLength: a record length out of range fails the
// Read with ErrProtocol, and every Read after it.
func TestSecureConnBadRecordLength(t *testing.T) {
	for _, l := range []uint32{secure.TagSize - 1, secure.MaxRecordSize} {
		sc, srv := pair(t)
		srv.write(binary.BigEndian.AppendUint32(nil, l))
		buf := make([]byte, 64)
		for range 2 {
			if _, err := sc.Read(buf); !errors.Is(err, ErrProtocol) {
				t.Fatalf("length %d: Read error %v, want ErrProtocol", l, err)
			}
		}
	}
}

// TestSecureTCPRefused: a plaintext Bye in answer to the ClientHello is a
// *ByeError.
func TestSecureTCPRefused(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		hello := make([]byte, secure.ClientHelloHeader+secure.MinTicketSize+secure.ClientNonceSize)
		_, _ = io.ReadFull(b, hello)
		bye := wire.Bye{Status: wire.StatusAuthFailed, Reason: "bad ticket"}
		_, _ = b.Write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdBye, Flags: wire.FlagPush}, bye.Append(nil)))
	}()
	ct := secure.ClientTicket{Ticket: make([]byte, secure.MinTicketSize)}
	_, err := SecureTCP(a, &ct, time.Now().Add(10*time.Second))
	var bye *ByeError
	if !errors.As(err, &bye) || bye.Status != wire.StatusAuthFailed || bye.Reason != "bad ticket" {
		t.Fatalf("SecureTCP: %v, want a ByeError AuthFailed", err)
	}
}

// TestSecureTCPReplayedServerHello: a man in the middle that recorded one
// connection answers a later one, made with the same connect token, with
// the recorded ServerHello and server record, then hangs up when the
// client has written. The client's own nonce makes its keys new: the
// recorded record does not open (the client reads the hang-up, not the
// record), and its first record is not sealed with the key and nonce of
// the recorded connection's first record. Found by a review, against a
// ClientHello without a nonce of the client's.
func TestSecureTCPReplayedServerHello(t *testing.T) {
	ct := secure.ClientTicket{Ticket: make([]byte, secure.MinTicketSize)}
	rand.Read(ct.Key[:])
	var nonce [secure.ServerNonceSize]byte
	rand.Read(nonce[:])
	// session runs one connection against a server end that answers the
	// hello with answer(hello) and returns the client's first record and
	// what the client then read.
	session := func(plain []byte, answer func(hello []byte) []byte) (clientRecord, read []byte, readErr error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		recorded := make(chan []byte, 1)
		go func() {
			nc, err := ln.Accept()
			if err != nil {
				recorded <- nil
				return
			}
			defer nc.Close() // the hang-up, once the client's record is in
			_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
			hello := make([]byte, secure.ClientHelloHeader+len(ct.Ticket)+secure.ClientNonceSize)
			if _, err := io.ReadFull(nc, hello); err != nil {
				recorded <- nil
				return
			}
			_, _ = nc.Write(answer(hello))
			cr := make([]byte, secure.RecordHeaderSize+len(plain)+secure.TagSize)
			if _, err := io.ReadFull(nc, cr); err != nil {
				recorded <- nil
				return
			}
			recorded <- cr
		}()
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		sc, err := SecureTCP(nc, &ct, time.Now().Add(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sc.Write(plain); err != nil {
			t.Fatal(err)
		}
		cr := <-recorded
		buf := make([]byte, 64)
		_ = sc.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := sc.Read(buf)
		return cr, buf[:n], err
	}
	// The recorded connection, with a genuine server.
	var recording []byte
	p1, p2 := []byte("secret-one-AAAA"), []byte("secret-two-BBBB")
	r1, got, err := session(p1, func(hello []byte) []byte {
		_, _, clientNonce, _ := secure.ConsumeClientHello(hello)
		keys := secure.DeriveKeys2(&ct.Key, nonce[:], clientNonce)
		rec, _ := secure.NewSealer(&keys.ServerToClient).AppendRecords(nil, []byte("recorded reply"))
		recording = append(secure.AppendServerHelloVersion(nil, secure.HelloVersion2, &nonce), rec...)
		return recording
	})
	if err != nil || string(got) != "recorded reply" {
		t.Fatalf("the genuine connection read %q, %v; want its server's record", got, err)
	}
	// The replay.
	r2, got, err := session(p2, func([]byte) []byte { return recording })
	if err == nil {
		t.Fatalf("the client read %q from a replayed recording", got)
	}
	x := make([]byte, len(p1))
	for i := range x {
		x[i] = r1[secure.RecordHeaderSize+i] ^ r2[secure.RecordHeaderSize+i] ^ p1[i] ^ p2[i]
	}
	if bytes.Equal(x, make([]byte, len(x))) {
		t.Fatal("the replayed connection sealed its first record with the recorded one's key and nonce")
	}
}
