package netio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/coveyhq/covey/internal/clientconn"
	"github.com/coveyhq/covey/secure"
	"github.com/coveyhq/covey/wire"
)

// startSecureServer starts a TCP-only server with the ticket key of
// testSecret (mutate may change it).
func startSecureServer(t testing.TB, h *testHandler, mutate func(*Config)) *Server {
	t.Helper()
	return startServer(t, h, func(c *Config) {
		c.KCPAddr = ""
		c.TicketKey = testTicketKey(t)
		if mutate != nil {
			mutate(c)
		}
	})
}

// dialTCP opens a TCP connection to s and returns it with the server's
// Conn for it (TCP opens on accept).
func dialTCP(t testing.TB, s *Server, h *testHandler) (net.Conn, *Conn) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", s.TCPAddr().String(), waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	select {
	case c := <-h.opens:
		if portOf(c.RemoteAddr()) != portOf(nc.LocalAddr()) {
			t.Fatal("OnOpen for another connection (tests must dial one at a time)")
		}
		return nc, c
	case <-time.After(waitFor):
		t.Fatal("tcp: no OnOpen")
		return nil, nil
	}
}

// newClient wraps conn (plaintext or secure) in a test client.
func newClient(t testing.TB, conn net.Conn) *client {
	return &client{t: t, tr: TCP, conn: conn, dec: wire.NewDecoder(wire.Config{MaxPayload: wire.MaxMaxPayload}), buf: make([]byte, 64<<10)}
}

// dialSecure connects with ct and runs the handshake: it returns the
// test client on the encrypted connection, the raw socket under it, and
// the server's Conn.
func dialSecure(t testing.TB, s *Server, h *testHandler, ct *secure.ClientTicket) (*client, net.Conn, *Conn) {
	t.Helper()
	nc, c := dialTCP(t, s, h)
	sc, err := clientconn.SecureTCP(nc, ct, time.Now().Add(waitFor))
	if err != nil {
		t.Fatalf("SecureTCP: %v", err)
	}
	return newClient(t, sc), nc, c
}

// refusal runs SecureTCP with ct and returns the Bye it got.
func refusal(t *testing.T, s *Server, h *testHandler, ct *secure.ClientTicket) (*clientconn.ByeError, *Conn) {
	t.Helper()
	nc, c := dialTCP(t, s, h)
	_, err := clientconn.SecureTCP(nc, ct, time.Now().Add(waitFor))
	var bye *clientconn.ByeError
	if !errors.As(err, &bye) {
		t.Fatalf("SecureTCP: %v, want a *ByeError", err)
	}
	return bye, c
}

func ping(seq uint32, n int) []byte {
	return wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: seq}, bytes.Repeat([]byte{byte(seq)}, n))
}

// expectEcho reads the echo of ping(seq, n).
func (cl *client) expectEcho(seq uint32, n int) {
	cl.t.Helper()
	f := cl.next()
	if f.Cmd != wire.CmdPing || f.Flags != wire.FlagReply || f.Seq != seq || !bytes.Equal(f.Payload, bytes.Repeat([]byte{byte(seq)}, n)) {
		cl.t.Fatalf("got %+v (%d bytes), want the echo of ping %d (%d bytes)", f.Header, len(f.Payload), seq, n)
	}
}

// TestSecureTCPHandshake: a client with a ticket gets a ServerHello, its
// frames reach the Handler and the replies come back through the
// records, and Conn.Ticket names the ticket's user.
func TestSecureTCPHandshake(t *testing.T) {
	h := newTestHandler()
	s := startSecureServer(t, h, nil)
	k := testTicketKey(t)
	cl, _, c := dialSecure(t, s, h, testTicket(k, "alice", time.Now().Add(time.Hour)))
	cl.write(ping(1, 10))
	cl.expectEcho(1, 10)
	tk, ok := c.Ticket()
	if !ok || tk.UserID != "alice" || tk.Key != ([secure.KeySize]byte{}) {
		t.Fatalf("Ticket() = %+v, %v; want alice's, with its key wiped", tk, ok)
	}
}

// TestSecureTCPHelloVersion1: a client of version 1 (no nonce of its own,
// as before version 2) still connects: the server answers a version 1
// ServerHello, and both sides derive the keys from the server's nonce
// only.
func TestSecureTCPHelloVersion1(t *testing.T) {
	h := newTestHandler()
	s := startSecureServer(t, h, nil)
	ct := testTicket(testTicketKey(t), "old", time.Now().Add(time.Hour))
	nc, _ := dialTCP(t, s, h)
	if _, err := nc.Write(secure.AppendClientHello(nil, ct.Ticket)); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(waitFor))
	sh := make([]byte, secure.ServerHelloSize)
	if _, err := io.ReadFull(nc, sh); err != nil {
		t.Fatal(err)
	}
	nonce, err := secure.ConsumeServerHello(sh)
	if err != nil {
		t.Fatalf("ServerHello %x to a version 1 client: %v", sh, err)
	}
	keys := secure.DeriveKeys(&ct.Key, nonce)
	rec, err := secure.NewSealer(&keys.ClientToServer).AppendRecords(nil, ping(1, 10))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(rec); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, secure.RecordHeaderSize)
	if _, err := io.ReadFull(nc, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr))
	if _, err := io.ReadFull(nc, body); err != nil {
		t.Fatal(err)
	}
	plain, err := secure.NewOpener(&keys.ServerToClient).OpenRecord(nil, append(hdr, body...))
	if err != nil {
		t.Fatalf("the server's record does not open under version 1 keys: %v", err)
	}
	if f, _, err := (wire.Config{MaxPayload: wire.MaxMaxPayload}).Split(plain); err != nil || f.Seq != 1 || len(f.Payload) != 10 {
		t.Fatalf("reply %+v, %v; want the echo of ping 1", f.Header, err)
	}
}

// TestSecureTCPFrameAcrossRecords: a frame split over two records, and
// 50 frames in one record, decode as sent; replies of 3x60 KiB (one
// batch, so records of 64 KiB cut through frames) arrive whole.
func TestSecureTCPFrameAcrossRecords(t *testing.T) {
	h := newTestHandler()
	s := startSecureServer(t, h, nil)
	cl, _, _ := dialSecure(t, s, h, testTicket(testTicketKey(t), "bob", time.Now().Add(time.Hour)))

	f := ping(1, 300)
	cl.write(f[:7]) // one record each
	cl.write(f[7:])
	cl.expectEcho(1, 300)

	var many []byte
	for seq := uint32(2); seq < 52; seq++ {
		many = append(many, ping(seq, int(seq))...)
	}
	cl.write(many)
	for seq := uint32(2); seq < 52; seq++ {
		cl.expectEcho(seq, int(seq))
	}

	var big []byte
	for seq := uint32(60); seq < 63; seq++ {
		big = append(big, ping(seq, 60<<10)...)
	}
	cl.write(big)
	for seq := uint32(60); seq < 63; seq++ {
		cl.expectEcho(seq, 60<<10)
	}
}

// TestSecureTCPForgedRecordDropped: a record with a bad tag between two
// genuine ones is dropped and counted; the connection stays open and the
// next genuine frame arrives.
func TestSecureTCPForgedRecordDropped(t *testing.T) {
	h := newTestHandler()
	s := startSecureServer(t, h, nil)
	cl, nc, c := dialSecure(t, s, h, testTicket(testTicketKey(t), "carol", time.Now().Add(time.Hour)))
	cl.write(ping(1, 5))
	cl.expectEcho(1, 5)

	forged := binary.BigEndian.AppendUint32(nil, 40)
	forged = append(forged, make([]byte, 40)...)
	if _, err := nc.Write(forged); err != nil { // straight on the socket: the client's counter does not move either
		t.Fatal(err)
	}
	cl.write(ping(2, 5))
	cl.expectEcho(2, 5) // after the forged record: it was read and dropped
	if n := s.Stats().TCPForgedRecords; n != 1 {
		t.Fatalf("Stats().TCPForgedRecords = %d, want 1", n)
	}
	if c.Closed() {
		t.Fatal("the forged record closed the connection")
	}
}

// TestSecureTCPExpiredTicket: an authentic ticket past its expiry gets a
// plaintext Bye AuthFailed "ticket expired"; OnClose gets ErrHandshake.
func TestSecureTCPExpiredTicket(t *testing.T) {
	h := newTestHandler()
	s := startSecureServer(t, h, nil)
	bye, c := refusal(t, s, h, testTicket(testTicketKey(t), "dave", time.Now().Add(-time.Second)))
	if bye.Status != wire.StatusAuthFailed || bye.Reason != reasonExpired {
		t.Fatalf("Bye %v %q, want AuthFailed %q", bye.Status, bye.Reason, reasonExpired)
	}
	if err := h.waitClose(t, c); !errors.Is(err, ErrHandshake) || !errors.Is(err, wire.StatusAuthFailed) {
		t.Fatalf("OnClose(%v), want ErrHandshake and AuthFailed", err)
	}
}

// TestSecureTCPBadTicket: a ticket sealed under another secret's key gets
// a plaintext Bye AuthFailed "bad ticket".
func TestSecureTCPBadTicket(t *testing.T) {
	h := newTestHandler()
	s := startSecureServer(t, h, nil)
	other, err := secure.NewTicketKey([]byte("another secret, 32 bytes long..."))
	if err != nil {
		t.Fatal(err)
	}
	bye, _ := refusal(t, s, h, testTicket(other, "eve", time.Now().Add(time.Hour)))
	if bye.Status != wire.StatusAuthFailed || bye.Reason != reasonBadTicket {
		t.Fatalf("Bye %v %q, want AuthFailed %q", bye.Status, bye.Reason, reasonBadTicket)
	}
}

// TestSecureTCPDevMode: a server without a TicketKey answers a
// ClientHello with a plaintext Bye AuthFailed.
func TestSecureTCPDevMode(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, h, func(c *Config) { c.KCPAddr = "" })
	bye, _ := refusal(t, s, h, testTicket(testTicketKey(t), "frank", time.Now().Add(time.Hour)))
	if bye.Status != wire.StatusAuthFailed || bye.Reason != reasonDevMode {
		t.Fatalf("Bye %v %q, want AuthFailed %q", bye.Status, bye.Reason, reasonDevMode)
	}
}

// TestSecureTCPMalformedHello: a ClientHello of another version gets a
// plaintext Bye BadRequest and a close.
func TestSecureTCPMalformedHello(t *testing.T) {
	h := newTestHandler()
	s := startSecureServer(t, h, nil)
	nc, c := dialTCP(t, s, h)
	cl := newClient(t, nc)
	cl.write([]byte{secure.HelloMagic, secure.HelloVersion2 + 1, 0, 100})
	cl.expectBye(wire.StatusBadRequest, reasonBadHello)
	cl.expectClosed()
	if err := h.waitClose(t, c); !errors.Is(err, ErrHandshake) {
		t.Fatalf("OnClose(%v), want ErrHandshake", err)
	}
}

// TestSecureTCPRequireEncryption: with RequireEncryption, a connection
// whose first bytes are a frame gets a plaintext Bye NotEncrypted and a
// close, and its frame never reaches the Handler.
func TestSecureTCPRequireEncryption(t *testing.T) {
	h := newTestHandler()
	s := startSecureServer(t, h, func(c *Config) { c.RequireEncryption = true })
	nc, c := dialTCP(t, s, h)
	cl := newClient(t, nc)
	cl.write(ping(1, 0))
	cl.expectBye(wire.StatusNotEncrypted, reasonNotEncrypted)
	cl.expectClosed()
	if err := h.waitClose(t, c); !errors.Is(err, wire.StatusNotEncrypted) {
		t.Fatalf("OnClose(%v), want NotEncrypted", err)
	}
	if n := h.framesTotal.Load(); n != 0 {
		t.Fatalf("%d frames reached the Handler", n)
	}
}

// TestSecureTCPPlaintextAllowed: without RequireEncryption, a server
// with a TicketKey still serves plaintext connections.
func TestSecureTCPPlaintextAllowed(t *testing.T) {
	h := newTestHandler()
	s := startSecureServer(t, h, nil)
	nc, c := dialTCP(t, s, h)
	cl := newClient(t, nc)
	cl.write(ping(1, 3))
	cl.expectEcho(1, 3)
	if _, ok := c.Ticket(); ok {
		t.Fatal("a plaintext connection has a ticket")
	}
}

// TestSecureTCPPreAuthRecordTooLarge: before sign-in, a record header
// announcing more than the pre-auth frame limit plus its header and tag
// closes the connection with a sealed Bye TooLarge.
func TestSecureTCPPreAuthRecordTooLarge(t *testing.T) {
	h := newTestHandler()
	h.preAuth = true
	s := startSecureServer(t, h, nil)
	cl, nc, c := dialSecure(t, s, h, testTicket(testTicketKey(t), "gina", time.Now().Add(time.Hour)))
	limit := s.preAuthRecordSize()
	if want := DefaultPreAuthMaxPayload + 14 + 16 + 4; limit != want {
		t.Fatalf("pre-auth record limit %d, want %d", limit, want)
	}
	if _, err := nc.Write(binary.BigEndian.AppendUint32(nil, uint32(limit-secure.RecordHeaderSize+1))); err != nil {
		t.Fatal(err)
	}
	cl.expectBye(wire.StatusTooLarge, "record over "+strconv.Itoa(limit)+" bytes before sign-in")
	cl.expectClosed()
	if err := h.waitClose(t, c); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("OnClose(%v), want ErrTooLarge", err)
	}
}

// TestSecureTCPLargeFrameAfterSignIn: once the Handler has authenticated
// the connection, a 60 KiB frame (one record over the pre-auth cap)
// passes, sent right behind the sign-in.
func TestSecureTCPLargeFrameAfterSignIn(t *testing.T) {
	h := newTestHandler()
	h.preAuth = true
	h.onFrame = signInEcho
	s := startSecureServer(t, h, nil)
	cl, _, _ := dialSecure(t, s, h, testTicket(testTicketKey(t), "hank", time.Now().Add(time.Hour)))
	cl.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdSignIn, Seq: 1}, nil)) // one record
	cl.write(ping(2, 60<<10))                                                      // the next: 61,474 bytes
	if f := cl.next(); f.Cmd != wire.CmdSignIn || f.Seq != 1 {
		t.Fatalf("got %+v, want the sign-in's reply", f.Header)
	}
	cl.expectEcho(2, 60<<10)
}

// TestSecureTCPPreAuthTimeoutTricklingHello: a client that trickles its
// ClientHello a byte at a time is closed at PreAuthTimeout with a
// plaintext Bye Unauthenticated, which SecureTCP reports.
func TestSecureTCPPreAuthTimeoutTricklingHello(t *testing.T) {
	const preAuth = 500 * time.Millisecond
	h := newTestHandler()
	h.preAuth = true
	s := startSecureServer(t, h, func(c *Config) {
		c.PreAuthTimeout = preAuth
		c.IdleTimeout = 10 * preAuth
	})
	ct := testTicket(testTicketKey(t), "ivy", time.Now().Add(time.Hour))
	nc, c := dialTCP(t, s, h)
	sent := trickle(t, nc, secure.AppendClientHello(nil, ct.Ticket), 50*time.Millisecond)
	cl := newClient(t, nc)
	cl.expectBye(wire.StatusUnauthenticated, "sign in within "+preAuth.String())
	cl.expectClosed()
	if err := h.waitClose(t, c); !errors.Is(err, ErrPreAuthTimeout) {
		t.Fatalf("OnClose(%v), want ErrPreAuthTimeout", err)
	}
	if n := sent(); n < 2 || n >= secure.ClientHelloHeader+len(ct.Ticket) {
		t.Fatalf("%d bytes of the hello trickled before the close", n)
	}
}

// TestSecureTCPHeldUntilHello: frames queued to a client before its first
// byte are held, then sealed behind the ServerHello.
func TestSecureTCPHeldUntilHello(t *testing.T) {
	h := newTestHandler()
	s := startSecureServer(t, h, nil)
	nc, c := dialTCP(t, s, h)
	c.Send(wire.Header{Cmd: wire.CmdPing, Flags: wire.FlagPush, Seq: 7}, bytes.Repeat([]byte{7}, 7))
	flushed := func() bool { // the loop took the batch and wrote nothing
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.scheduled
	}
	if err := waitUntil(flushed); err != nil || c.writes.Load() != 0 {
		t.Fatalf("the frame was not held: flushed %v, %d writes", err == nil, c.writes.Load())
	}
	sc, err := clientconn.SecureTCP(nc, testTicket(testTicketKey(t), "jo", time.Now().Add(time.Hour)), time.Now().Add(waitFor))
	if err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, sc)
	if f := cl.next(); f.Seq != 7 || f.Flags != wire.FlagPush || !bytes.Equal(f.Payload, bytes.Repeat([]byte{7}, 7)) {
		t.Fatalf("got %+v, want the held push", f.Header)
	}
}

// waitUntil polls cond until it holds, for at most waitFor.
func waitUntil(cond func() bool) error {
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("condition not met")
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// FuzzTCPRecords feeds an encrypted connection, after a real handshake,
// plain sealed as records (cut at split) and then raw bytes on the
// socket: the server must never panic, and must close or keep the
// connection, never hang. The Handler authenticates on a SignIn and
// echoes every frame.
func FuzzTCPRecords(f *testing.F) {
	signIn := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdSignIn, Seq: 1}, nil)
	f.Add(ping(1, 10), uint16(3), []byte{})
	f.Add(append(signIn, ping(2, 5000)...), uint16(len(signIn)), []byte{})
	f.Add(ping(1, 0), uint16(0), []byte{0, 0, 0, 16, 1, 2, 3})
	f.Add([]byte{}, uint16(0), binary.BigEndian.AppendUint32(nil, 1<<20))
	f.Add([]byte{}, uint16(0), []byte{0, 0, 0, 3, 1, 2, 3})
	f.Add(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Flags: wire.FlagCompressed, Seq: 3}, []byte{9, 9, 9}), uint16(1), []byte{})

	h := newTestHandler()
	h.preAuth = true
	h.onFrame = signInEcho
	s := startSecureServer(f, h, nil)
	key := testTicketKey(f)
	f.Fuzz(func(t *testing.T, plain []byte, split uint16, raw []byte) {
		nc, err := net.DialTimeout("tcp", s.TCPAddr().String(), waitFor)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		var c *Conn
		select {
		case c = <-h.opens:
		case <-time.After(waitFor):
			t.Fatal("no OnOpen")
		}
		sc, err := clientconn.SecureTCP(nc, testTicket(key, "fuzz", time.Now().Add(time.Hour)), time.Now().Add(waitFor))
		if err != nil {
			t.Fatal(err)
		}
		cut := min(int(split), len(plain))
		for _, p := range [][]byte{plain[:cut], plain[cut:]} {
			if _, err := sc.Write(p); err != nil {
				break // the server closed it
			}
		}
		_, _ = nc.Write(raw)
		_ = nc.(*net.TCPConn).CloseWrite()
		h.waitClose(t, c)
	})
}

// BenchmarkSealBatch measures what encryption adds to a TCP flush:
// sealing one batch of whole frames into records (the ServerHello aside).
func BenchmarkSealBatch(b *testing.B) {
	for _, size := range []int{64, 1 << 10, 16 << 10, 64 << 10, 256 << 10} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			var key [secure.KeySize]byte
			sec := &tcpRecordLayer{seal: secure.NewSealer(&key)}
			batch := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := sec.sealBatch(batch); err != nil {
					b.Fatal(err)
				}
				sec.written()
			}
		})
	}
}

// TestSealBatchAllocs: once warm, sealing a flush allocates nothing.
func TestSealBatchAllocs(t *testing.T) {
	var key [secure.KeySize]byte
	sec := &tcpRecordLayer{seal: secure.NewSealer(&key)}
	batch := make([]byte, 100<<10)
	if n := testing.AllocsPerRun(100, func() {
		_, _ = sec.sealBatch(batch)
		sec.written()
	}); n != 0 {
		t.Fatalf("%v allocations per sealed flush, want 0", n)
	}
}
