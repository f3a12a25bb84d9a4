package netio

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	ikcp "github.com/coveyhq/covey/internal/kcp"
	"github.com/coveyhq/covey/internal/kcpconn"
	"github.com/coveyhq/covey/internal/kcptune"
	"github.com/coveyhq/covey/internal/procstat"
	"github.com/coveyhq/covey/secure"
	"github.com/coveyhq/covey/wire"
	"golang.org/x/net/ipv4"
)

// startPacketServer starts a server whose KCP port runs the packet layer
// (the default) with the test ticket key, and mutate's changes.
func startPacketServer(t testing.TB, h *testHandler, mutate func(*Config)) *Server {
	t.Helper()
	return startServer(t, h, func(c *Config) {
		c.KCPRawSegments = false
		// Short: the Bye of the cleanup's Shutdown waits as long for an
		// ACK from a client closed before it.
		c.IdleTimeout = time.Second
		c.TicketKey = testTicketKey(t)
		if mutate != nil {
			mutate(c)
		}
	})
}

// dialPacket connects a kcpconn client (plaintext for a nil ticket),
// sends a ping and reads its echo, and returns the client and the
// server's Conn for it.
func dialPacket(t testing.TB, s *Server, h *testHandler, ticket *secure.ClientTicket) (*client, *Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	kc, err := kcpconn.DialTicket(ctx, s.KCPAddr().String(), ticket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kc.Close() })
	cl := &client{t: t, tr: KCP, conn: kc, dec: wire.NewDecoder(wire.Config{MaxPayload: wire.MaxMaxPayload}), buf: make([]byte, 64<<10)}
	cl.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 1}, nil))
	var c *Conn
	select {
	case c = <-h.opens:
	case <-time.After(waitFor):
		t.Fatal("no OnOpen")
	}
	if f := cl.next(); f.Cmd != wire.CmdPing || f.Flags != wire.FlagReply || f.Seq != 1 {
		t.Fatalf("ping reply %+v", f.Header)
	}
	return cl, c
}

// TestKCPPacketPlaintext: a plaintext client handshakes, its frames
// reach the Handler and the replies come back, and its Conn has no
// ticket.
func TestKCPPacketPlaintext(t *testing.T) {
	h := newTestHandler()
	s := startPacketServer(t, h, nil)
	cl, c := dialPacket(t, s, h, nil)
	payload := bytes.Repeat([]byte("plain"), 1000) // several segments
	cl.write(wire.AppendFrame(nil, wire.Header{Ver: 1, Cmd: 7, Seq: 2}, payload))
	if f := cl.next(); f.Seq != 2 || !bytes.Equal(f.Payload, payload) {
		t.Fatalf("echo %+v, %d bytes", f.Header, len(f.Payload))
	}
	if _, ok := c.Ticket(); ok {
		t.Fatal("Ticket() reports a ticket on a plaintext connection")
	}
	if st := s.Stats(); st.KCPChallenges == 0 {
		t.Fatalf("Stats %+v: no Challenge counted", st)
	}
}

// TestKCPPacketEncrypted: a client with a ticket handshakes, frames go
// both ways sealed, and the server's Conn carries the ticket's user.
func TestKCPPacketEncrypted(t *testing.T) {
	h := newTestHandler()
	s := startPacketServer(t, h, nil)
	ticket := testTicket(s.cfg.TicketKey, "alice", time.Now().Add(time.Minute))
	cl, c := dialPacket(t, s, h, ticket)
	payload := bytes.Repeat([]byte("sealed"), 1000)
	cl.write(wire.AppendFrame(nil, wire.Header{Ver: 1, Cmd: 7, Seq: 2}, payload))
	if f := cl.next(); f.Seq != 2 || !bytes.Equal(f.Payload, payload) {
		t.Fatalf("echo %+v, %d bytes", f.Header, len(f.Payload))
	}
	tk, ok := c.Ticket()
	if !ok || tk.UserID != "alice" || tk.Expires != ticket.Expires {
		t.Fatalf("Ticket() = %+v, %v; want alice's", tk, ok)
	}
	if tk.Key != [secure.KeySize]byte{} {
		t.Fatal("Ticket() exposes the connection key")
	}
}

// victimBytes sends each of pkts to s from a fresh socket (the victim,
// whose address a forger would put on its datagrams, and which never
// answers), waits until the server has handled all of them (wait
// reports it, from Stats), and returns how many bytes the victim
// received by then and within 100 ms more.
func victimBytes(t *testing.T, s *Server, pkts [][]byte, wait func(Stats) bool) (in, out int) {
	t.Helper()
	v := rawUDP(t, s)
	for _, p := range pkts {
		if _, err := v.Write(p); err != nil {
			t.Fatal(err)
		}
		in += len(p)
	}
	deadline := time.Now().Add(waitFor)
	for !wait(s.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not handle the datagrams: %+v", s.Stats())
		}
		time.Sleep(time.Millisecond) // counters have no event to wait on
	}
	buf := make([]byte, 2048)
	_ = v.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	for {
		n, err := v.Read(buf)
		if err != nil {
			break
		}
		out += n
	}
	return in, out
}

// TestKCPPacketAmplification sends what a forger sends with a victim's
// source address: the victim gets at most as many bytes as were sent
// in its name (a Challenge per ConnectRequest with a valid ticket, a
// Reject per one with a ticket that does not open), nothing for anything
// else, and the server creates no session.
func TestKCPPacketAmplification(t *testing.T) {
	const n = 20
	key := testTicketKey(t)
	signIn := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdSignIn, Seq: 1}, []byte("\x00\x01\x00\x01\x00\x05alice"))
	cases := []struct {
		name     string
		pkt      func(i int, s *Server) []byte
		maxRatio float64
		wait     func(Stats) bool
	}{
		{"valid ticket", func(int, *Server) []byte {
			return secure.AppendConnectRequest(nil, testTicket(key, "alice", time.Now().Add(time.Minute)).Ticket)
		}, 1, func(st Stats) bool { return st.KCPChallenges == n }},
		{"garbage ticket", func(i int, _ *Server) []byte {
			g := make([]byte, 100)
			rand.Read(g)
			return secure.AppendConnectRequest(nil, g)
		}, 1, func(st Stats) bool { return st.KCPRejects == n }},
		{"bare first segment", func(int, *Server) []byte {
			var conv [4]byte
			rand.Read(conv[:])
			return kcpSegment(binary.LittleEndian.Uint32(conv[:]), kcpCmdPush, 0, signIn)
		}, 0, func(st Stats) bool { return st.KCPDropped == n }},
		{"forged cookie", func(i int, s *Server) []byte {
			if i%2 == 0 { // a random cookie
				ck := make([]byte, secure.MinCookieSize+20)
				rand.Read(ck)
				return secure.AppendChallengeResponse(nil, 1, ck)
			}
			// A genuine cookie, for the forger's own address.
			return secure.AppendChallengeResponse(nil, 1, forgerCookie(t, s))
		}, 0, func(st Stats) bool { return st.KCPDropped == n }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHandler()
			s := startPacketServer(t, h, func(c *Config) { c.TicketKey = key })
			pkts := make([][]byte, n)
			for i := range pkts {
				pkts[i] = tc.pkt(i, s)
			}
			in, out := victimBytes(t, s, pkts, tc.wait)
			if ratio := float64(out) / float64(in); ratio > tc.maxRatio {
				t.Errorf("the victim got %d bytes for %d sent in its name: ratio %.3f, want at most %g", out, in, ratio, tc.maxRatio)
			}
			t.Logf("%d bytes in, %d out; %+v", in, out, s.Stats())
			if c, k := s.Conns(), s.kcp.sessionCount(); c != 0 || k != 0 {
				t.Errorf("%d connections, %d KCP sessions; want none", c, k)
			}
			if st := s.Stats(); st.RefusedKCP != 0 {
				t.Errorf("RefusedKCP = %d: the forgeries reached the admission checks", st.RefusedKCP)
			}
		})
	}
}

// forgerCookie returns the cookie of a genuine Challenge that a socket
// of the forger's own received.
func forgerCookie(t *testing.T, s *Server) []byte {
	t.Helper()
	f := rawUDP(t, s)
	if _, err := f.Write(secure.AppendConnectRequest(nil, nil)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	_ = f.SetReadDeadline(time.Now().Add(waitFor))
	n, err := f.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := secure.ConsumeChallenge(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(ck)
}

// packetClient is an encrypted client built in the test from a UDP
// socket, package kcp and package secure, so that the test can send
// anything from the client's own address.
type packetClient struct {
	t    *testing.T
	uc   *net.UDPConn
	kcp  *ikcp.KCP
	seal *secure.Sealer
	open *secure.Opener
	sent [][]byte // the genuine Data packets sent
	resp []byte   // its ChallengeResponse
	dec  *wire.Decoder
	buf  []byte
}

func newPacketClient(t *testing.T, s *Server, ticket *secure.ClientTicket) *packetClient {
	t.Helper()
	pc := &packetClient{t: t, uc: rawUDP(t, s), dec: wire.NewDecoder(wire.DefaultConfig()), buf: make([]byte, 2048)}
	cookie := bytes.Clone(pc.ask(secure.AppendConnectRequest(nil, ticket.Ticket), secure.PacketChallenge)[1:])
	pc.resp = secure.AppendChallengeResponse(nil, 77, cookie)
	pc.ask(pc.resp, secure.PacketAccept)
	keys := secure.DeriveKeys(&ticket.Key, secure.CookieNonce(cookie))
	pc.seal, pc.open = secure.NewSealer(&keys.ClientToServer), secure.NewOpener(&keys.ServerToClient)
	pc.kcp = ikcp.NewKCP(77, func(b []byte, n int) {
		p, err := pc.seal.AppendPacket(nil, secure.PacketData, b[:n])
		if err != nil {
			t.Error(err)
			return
		}
		pc.sent = append(pc.sent, p)
		pc.send(p)
	})
	kcptune.TuneCore(pc.kcp, 0)
	return pc
}

// ask sends pkt every 250 ms until a datagram of type want comes, and
// returns it.
func (pc *packetClient) ask(pkt []byte, want byte) []byte {
	pc.t.Helper()
	for deadline := time.Now().Add(waitFor); time.Now().Before(deadline); {
		pc.send(pkt)
		_ = pc.uc.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		n, err := pc.uc.Read(pc.buf)
		if err == nil && n > 0 && pc.buf[0] == want {
			return pc.buf[:n]
		}
	}
	pc.t.Fatalf("no answer of type %#x", want)
	return nil
}

func (pc *packetClient) send(p []byte) {
	pc.t.Helper()
	if _, err := pc.uc.Write(p); err != nil {
		pc.t.Fatal(err)
	}
}

// write sends a frame through KCP.
func (pc *packetClient) write(frame []byte) {
	pc.kcp.Send(frame)
	pc.kcp.Flush(false)
}

// next returns the next frame from the server, taking the Data packets
// that open and ignoring anything else (the Challenge of a ConnectRequest
// the test sent); it runs KCP's timers between datagrams.
func (pc *packetClient) next() wire.Frame {
	pc.t.Helper()
	seg := make([]byte, 64<<10)
	for deadline := time.Now().Add(waitFor); time.Now().Before(deadline); {
		if f, err := pc.dec.Next(); err == nil {
			f.Payload = bytes.Clone(f.Payload)
			return f
		}
		_ = pc.uc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		n, err := pc.uc.Read(pc.buf)
		if err != nil {
			pc.kcp.Flush(false) // due retransmissions
			continue
		}
		if n == 0 || pc.buf[0] != secure.PacketData {
			continue
		}
		p, err := pc.open.OpenPacket(nil, pc.buf[:n])
		if err != nil {
			pc.t.Fatalf("a packet from the server does not open: %v", err)
		}
		pc.kcp.Input(p, true, false)
		pc.kcp.Flush(false)
		for {
			m := pc.kcp.Recv(seg)
			if m < 0 {
				break
			}
			pc.dec.Write(seg[:m])
		}
	}
	pc.t.Fatal("no frame from the server")
	return wire.Frame{}
}

// TestKCPPacketSpoofing sends, from an encrypted client's own address,
// what someone without its keys can send: random Data packets, a replay
// of a genuine one, a PlainData packet with a valid KCP segment, a
// ConnectRequest and a ChallengeResponse with a bad cookie. The session
// stays open, the Handler gets no extra frame, and the client's next
// frame still arrives.
func TestKCPPacketSpoofing(t *testing.T) {
	h := newTestHandler()
	seqs := make(chan uint32, 16) // what OnFrame got
	h.onFrame = func(c *Conn, f wire.Frame) {
		seqs <- f.Seq
		c.Send(wire.Header{Ver: f.Ver, Cmd: f.Cmd, Flags: wire.FlagReply, Seq: f.Seq}, f.Payload)
	}
	s := startPacketServer(t, h, nil)
	pc := newPacketClient(t, s, testTicket(s.cfg.TicketKey, "alice", time.Now().Add(time.Minute)))
	pc.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 1}, nil))
	var c *Conn
	select {
	case c = <-h.opens:
	case <-time.After(waitFor):
		t.Fatal("no OnOpen")
	}
	if f := pc.next(); f.Seq != 1 {
		t.Fatalf("reply %+v", f.Header)
	}

	before := s.Stats().KCPDropped
	random := make([]byte, 200)
	rand.Read(random)
	random[0] = secure.PacketData
	random2 := bytes.Clone(random)
	random2[1] = 0 // a small counter, inside the window
	inject := wire.AppendFrame(nil, wire.Header{Ver: 1, Cmd: wire.CmdBroadcast, Seq: 99}, []byte("forged"))
	plain := append([]byte{secure.PacketPlainData}, kcpSegment(77, kcpCmdPush, 1, inject)...)
	badCookie := make([]byte, secure.MinCookieSize+40)
	rand.Read(badCookie)
	forged := [][]byte{
		random, random2,
		pc.sent[0], // the genuine ping, replayed
		plain,
		secure.AppendChallengeResponse(nil, 78, badCookie),
	}
	for _, p := range forged {
		pc.send(p)
	}
	pc.send(secure.AppendConnectRequest(nil, nil)) // answered with a Challenge, which the client ignores
	for deadline := time.Now().Add(waitFor); s.Stats().KCPDropped < before+uint64(len(forged)); {
		if time.Now().After(deadline) {
			t.Fatalf("dropped %d of the %d forgeries", s.Stats().KCPDropped-before, len(forged))
		}
		time.Sleep(time.Millisecond) // counters have no event to wait on
	}

	pc.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 2}, nil))
	if f := pc.next(); f.Seq != 2 {
		t.Fatalf("reply %+v, want the echo of seq 2", f.Header)
	}
	if h.closedNow(c) {
		t.Fatal("the forgeries closed the session")
	}
	var got []uint32 // the server sent both replies: OnFrame has run for every frame before
	for len(seqs) > 0 {
		got = append(got, <-seqs)
	}
	if len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("the Handler got frames %v, want [1 2]", got)
	}
}

// TestKCPPacketRejects: a handshake the server refuses whoever sends it
// gets a Reject, which kcpconn returns as a *RejectError.
func TestKCPPacketRejects(t *testing.T) {
	key := testTicketKey(t)
	cases := []struct {
		name   string
		mutate func(*Config)
		ticket *secure.ClientTicket
		status wire.Status
	}{
		{"plaintext to RequireEncryption", func(c *Config) { c.RequireEncryption = true }, nil, wire.StatusNotEncrypted},
		{"expired ticket", nil, testTicket(key, "alice", time.Now().Add(-time.Second)), wire.StatusAuthFailed},
		{"ticket in development mode", func(c *Config) { c.TicketKey = nil }, testTicket(key, "alice", time.Now().Add(time.Minute)), wire.StatusAuthFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHandler()
			s := startPacketServer(t, h, tc.mutate)
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			kc, err := kcpconn.DialTicket(ctx, s.KCPAddr().String(), tc.ticket)
			var rej *kcpconn.RejectError
			if !errors.As(err, &rej) {
				if kc != nil {
					kc.Close()
				}
				t.Fatalf("DialTicket: %v, want a RejectError", err)
			}
			if rej.Status != uint16(tc.status) || rej.Reason == "" {
				t.Fatalf("Reject %d %q, want status %d", rej.Status, rej.Reason, tc.status)
			}
			if st := s.Stats(); st.KCPRejects == 0 || st.KCPChallenges != 0 {
				t.Fatalf("Stats %+v", st)
			}
		})
	}
}

// TestKCPPacketServerFull: a full server answers a validated
// ChallengeResponse with Reject ServerOffline.
func TestKCPPacketServerFull(t *testing.T) {
	h := newTestHandler()
	s := startPacketServer(t, h, func(c *Config) { c.MaxConns = 1 })
	dialPacket(t, s, h, nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, err := kcpconn.Dial(ctx, s.KCPAddr().String())
	var rej *kcpconn.RejectError
	if !errors.As(err, &rej) || rej.Status != uint16(wire.StatusServerOffline) {
		t.Fatalf("Dial: %v, want Reject ServerOffline", err)
	}
	if st := s.Stats(); st.RefusedKCP == 0 {
		t.Fatalf("Stats %+v: no refusal counted", st)
	}
}

// FuzzKCPPacket sends each input as a datagram to a live KCP port in
// packet mode from a raw socket, then checks that an encrypted client is
// still served: no input may crash the engine or disturb a session.
// Seeds: testdata/fuzz/FuzzKCPPacket and those added here.
func FuzzKCPPacket(f *testing.F) {
	key := testTicketKey(f)
	ping := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 1}, nil)
	f.Add(secure.AppendConnectRequest(nil, nil))
	f.Add(secure.AppendConnectRequest(nil, testTicket(key, "alice", time.Now().Add(time.Hour)).Ticket))
	f.Add(secure.AppendChallengeResponse(nil, 1, make([]byte, secure.MinCookieSize)))
	f.Add(append([]byte{secure.PacketPlainData}, kcpSegment(1, kcpCmdPush, 0, ping)...))
	f.Add(append([]byte{secure.PacketData}, make([]byte, 60)...))
	f.Add(kcpSegment(1, kcpCmdPush, 0, ping))

	h := newTestHandler()
	s := startPacketServer(f, h, func(c *Config) { c.TicketKey = key })
	raw := rawUDP(f, s)
	cl, _ := dialPacket(f, s, h, testTicket(key, "bob", time.Now().Add(time.Hour)))
	seq := uint32(100)
	f.Fuzz(func(t *testing.T, p []byte) {
		p = p[:min(len(p), kcpPacketMax)] // see FuzzKCPDatagram
		sendThenProbe(t, raw, p, cl, &seq)
		if n := len(h.opens); n > 0 {
			t.Fatalf("an input from an unvalidated address opened %d sessions", n)
		}
	})
}

// discardBatch is a batchConn that sends nothing.
type discardBatch struct{}

func (discardBatch) WriteBatch(ms []ipv4.Message, _ int) (int, error) { return len(ms), nil }

// benchFront returns an engine that is not started, whose datagrams go
// nowhere, for benchmarks of its reader's handling of one datagram.
func benchFront(b *testing.B) *kcpFront {
	cfg := DefaultConfig().withDefaults()
	cfg.TicketKey = testTicketKey(b)
	cfg.Logger = testLogger()
	f := &kcpFront{s: &Server{cfg: cfg}, sessions: map[netip.AddrPort]*kcpConn{}, packets: true,
		jar: secure.NewCookieJar(0), pbuf: make([]byte, kcpPacketMax)}
	f.rtx.init(f, discardBatch{})
	return f
}

// BenchmarkForgedConnectRequest is the reader's CPU per forged 1,200-byte
// ConnectRequest: one whose ticket does not open (dropped), and one with
// a valid ticket (answered with a Challenge).
func BenchmarkForgedConnectRequest(b *testing.B) {
	from := netip.MustParseAddrPort("192.0.2.1:4000")
	for _, tc := range []struct {
		name   string
		ticket func(*secure.TicketKey) []byte
	}{
		{"bad_ticket", func(*secure.TicketKey) []byte {
			g := make([]byte, 100)
			rand.Read(g)
			return g
		}},
		{"valid_ticket", func(k *secure.TicketKey) []byte {
			return testTicket(k, "alice", time.Now().Add(time.Hour)).Ticket
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			f := benchFront(b)
			p := secure.AppendConnectRequest(nil, tc.ticket(f.s.cfg.TicketKey))
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				f.packet(p, from, nil)
			}
			f.rtx.send()
		})
	}
}

// BenchmarkKCPDataPacket is the reader's CPU per genuine Data packet of a
// session (opening, KCP input of a 1,000-byte segment, the frame to the
// Handler, the ACK sealed into the batch); it allocates nothing.
func BenchmarkKCPDataPacket(b *testing.B) {
	h := newTestHandler()
	h.onFrame = func(*Conn, wire.Frame) {}
	cfg := DefaultConfig()
	cfg.TCPAddr, cfg.Logger = "127.0.0.1:0", testLogger() // no KCP port: the engine is f
	cfg.TicketKey = testTicketKey(b)
	s, err := Listen(cfg, h)
	if err != nil {
		b.Fatal(err)
	}
	f := benchFront(b)
	f.s = s
	from := netip.MustParseAddrPort("192.0.2.1:4000")
	tk := testTicket(cfg.TicketKey, "alice", time.Now().Add(time.Hour))
	var nonce [secure.CookieNonceSize]byte
	d := secure.CookieData{Encrypted: true, Ticket: secure.Ticket{UserID: "alice", Key: tk.Key}}
	k := f.newSession(1, from, &d, &nonce)
	if k == nil {
		b.Fatal("no session")
	}
	defer func() {
		k.kill()
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = s.Shutdown(ctx, "")
	}()
	keys := secure.DeriveKeys(&tk.Key, nonce[:])
	seal := secure.NewSealer(&keys.ClientToServer)
	frame := wire.AppendFrame(nil, wire.Header{Ver: 1, Cmd: 7, Seq: 1}, make([]byte, 1000-wire.HeaderSize))
	seg := kcpSegment(1, kcpCmdPush, 0, frame)
	rbuf := make([]byte, 2*kcptune.MTU)
	pkt := make([]byte, 0, kcpPacketMax)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	sn := uint32(0)
	for b.Loop() {
		binary.LittleEndian.PutUint32(seg[kcpSnOff:], sn)
		binary.LittleEndian.PutUint32(seg[16:], sn) // una
		sn++
		pkt, _ = seal.AppendPacket(pkt[:0], secure.PacketData, seg)
		if f.packet(pkt, from, rbuf) != k {
			b.Fatal("the packet was dropped")
		}
		k.pump(&f.rtx, false)
		f.rtx.send()
	}
}

// BenchmarkKCPSignInUnderFlood runs a server in packet mode while a
// flooder on loopback sends it floodRate forged datagrams per second
// (half 1,200-byte ConnectRequests with garbage tickets, half bare KCP
// first segments carrying a SignIn, from floodSockets ports), and one
// legit encrypted client per iteration, one every signInEvery, dials,
// sends a ping and reads its echo. It reports the fraction of sign-ins
// done within 2 s (ok/signin; the acceptance criterion is 0.95), the
// slowest sign-in, the forged datagrams sent per second, the fraction
// the server read (the rest the kernel dropped on a full socket buffer),
// and the process's CPU per forged datagram (flooder and clients
// included: an upper bound of the server's). Run it with -benchtime=Nx.
func BenchmarkKCPSignInUnderFlood(b *testing.B) {
	const (
		floodRate    = 80_000
		floodSockets = 8
		signInEvery  = 50 * time.Millisecond
		signInWithin = 2 * time.Second
		floodMax     = 2 * time.Minute // bounds the flood whatever b.N
	)
	h := newTestHandler()
	s := startPacketServer(b, h, nil)
	key := s.cfg.TicketKey
	forged := make([][]byte, 32)
	signIn := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdSignIn, Seq: 1}, []byte("\x00\x01\x00\x01\x00\x05alice"))
	for i := range forged {
		if i%2 == 0 {
			g := make([]byte, 120)
			rand.Read(g)
			forged[i] = secure.AppendConnectRequest(nil, g)
		} else {
			forged[i] = kcpSegment(uint32(i)*0x01010101, kcpCmdPush, 0, signIn)
		}
	}
	socks := make([]*net.UDPConn, floodSockets)
	for i := range socks {
		socks[i] = rawUDP(b, s)
	}
	stop := make(chan struct{})
	flooded := make(chan int64, 1)
	cpu0 := procstat.SelfCPU()
	start := time.Now()
	go func() {
		var sent int64
		defer func() { flooded <- sent }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			el := time.Since(start)
			if el > floodMax {
				return
			}
			for target := int64(el.Seconds() * floodRate); sent < target; sent++ {
				_, _ = socks[sent%floodSockets].Write(forged[sent%int64(len(forged))])
			}
			time.Sleep(time.Millisecond)
		}
	}()
	ok, n := 0, 0
	var slowest time.Duration
	for ; b.Loop(); n++ {
		time.Sleep(signInEvery) // paced: the flood, not the sign-ins, is the load
		ticket := testTicket(key, "player"+strconv.Itoa(n), time.Now().Add(time.Hour))
		t0 := time.Now()
		if signInUnderFlood(s, ticket, 2*signInWithin) {
			if d := time.Since(t0); d <= signInWithin {
				ok++
				slowest = max(slowest, d)
			}
		}
		for len(h.opens) > 0 {
			<-h.opens
		}
	}
	close(stop)
	sent := <-flooded
	el := time.Since(start)
	cpu := procstat.SelfCPU() - cpu0
	b.ReportMetric(float64(ok)/float64(n), "ok/signin")
	b.ReportMetric(slowest.Seconds()*1000, "slowest-ms")
	b.ReportMetric(float64(sent)/el.Seconds(), "forged/s")
	st := s.Stats()
	b.ReportMetric(float64(st.KCPDropped+st.KCPRejects)/float64(sent), "read/forged") // a bare segment is dropped, a bad ticket rejected
	b.ReportMetric(float64(cpu.Microseconds())/float64(sent), "cpu-µs/forged")
}

// signInUnderFlood dials an encrypted client, sends a ping and waits for
// its echo, within limit.
func signInUnderFlood(s *Server, ticket *secure.ClientTicket, limit time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	kc, err := kcpconn.DialTicket(ctx, s.KCPAddr().String(), ticket)
	if err != nil {
		return false
	}
	defer kc.Close()
	dl, _ := ctx.Deadline()
	_ = kc.SetDeadline(dl)
	if _, err := kc.Write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 1}, nil)); err != nil {
		return false
	}
	dec := wire.NewDecoder(wire.DefaultConfig())
	buf := make([]byte, 4096)
	for {
		if f, err := dec.Next(); err == nil {
			return f.Cmd == wire.CmdPing && f.Seq == 1
		}
		n, err := kc.Read(buf)
		if err != nil {
			return false
		}
		dec.Write(buf[:n])
	}
}

// TestKCPPacketCookieOpensOneSession: a recorded ChallengeResponse,
// replayed from the player's address once its session has gone (within
// the cookie's lifetime), opens nothing: a second session would have the
// same keys, its counters from 0 again (reused nonces), and would accept
// the recorded Data packets again.
func TestKCPPacketCookieOpensOneSession(t *testing.T) {
	h := newTestHandler()
	s := startPacketServer(t, h, nil)
	pc := newPacketClient(t, s, testTicket(s.cfg.TicketKey, "alice", time.Now().Add(time.Minute)))
	pc.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 1}, nil))
	c := <-h.opens
	pc.next()
	c.Close(wire.StatusOK, "done")
	h.waitClose(t, c)
	for deadline := time.Now().Add(waitFor); s.kcp.sessionCount() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the session was never removed")
		}
	}
	dropped := s.Stats().KCPDropped
	pc.send(pc.resp)
	for deadline := time.Now().Add(waitFor); s.Stats().KCPDropped == dropped; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the replayed ChallengeResponse was not dropped")
		}
	}
	if n := s.kcp.sessionCount(); n != 0 {
		t.Fatalf("%d sessions after the replay, want none", n)
	}
	for _, p := range pc.sent { // and what was recorded reaches no one
		pc.send(p)
	}
	select {
	case c := <-h.opens:
		t.Fatalf("the replay opened connection %d", c.ID())
	default:
	}
}

// TestKCPPacketLiveSessionNotReplaced: a handshake of its own from the
// address of a live session (what a sender that reads the address's
// datagrams can do) does not replace it; once the session has been
// silent for kcpReplaceSilence, the same handshake does (a client that
// restarted on its port).
func TestKCPPacketLiveSessionNotReplaced(t *testing.T) {
	h := newTestHandler()
	// Not closed as idle before it can be replaced.
	s := startPacketServer(t, h, func(c *Config) { c.IdleTimeout = 10 * time.Second })
	key := s.cfg.TicketKey
	pc := newPacketClient(t, s, testTicket(key, "alice", time.Now().Add(time.Minute)))
	pc.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 1}, nil))
	c := <-h.opens
	pc.next()

	other := testTicket(key, "mallory", time.Now().Add(time.Minute))
	cookie := bytes.Clone(pc.ask(secure.AppendConnectRequest(nil, other.Ticket), secure.PacketChallenge)[1:])
	resp := secure.AppendChallengeResponse(nil, 78, cookie)
	dropped := s.Stats().KCPDropped
	start := time.Now()
	pc.write(wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 2}, nil)) // the session is live
	pc.next()
	pc.send(resp)
	for deadline := time.Now().Add(waitFor); s.Stats().KCPDropped == dropped; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the ChallengeResponse was not dropped")
		}
	}
	if c.Closed() {
		t.Fatal("a live session was replaced")
	}
	// Silent from now on: the retries get through after kcpReplaceSilence.
	pc.ask(resp, secure.PacketAccept)
	if took := time.Since(start); took < kcpReplaceSilence {
		t.Fatalf("replaced after %v of silence, want at least %v", took, kcpReplaceSilence)
	}
	if err := h.waitClose(t, c); err == nil {
		t.Fatal("the old session closed without a cause")
	}
}
