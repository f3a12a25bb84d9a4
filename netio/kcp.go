package netio

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"

	ikcp "github.com/coveyhq/covey/internal/kcp"
	"github.com/coveyhq/covey/internal/kcptune"
	"github.com/coveyhq/covey/secure"
	"github.com/coveyhq/covey/wire"
)

// KCP engine settings.
const (
	kcpSocketBuffer = 4 << 20 // SO_RCVBUF/SO_SNDBUF (the kernel caps it at 2*rmem_max)

	// kcpBatch is how many datagrams one recvmmsg or sendmmsg moves.
	kcpBatch = 64
	// kcpPacketMax is the largest datagram read: the MTU is 1200, a
	// larger datagram is not ours and is truncated (then fails to parse).
	kcpPacketMax = 1500

	// kcpChunk is the most bytes handed to one KCP Send (more if one
	// frame is larger); chunks end on frame boundaries.
	kcpChunk = 64 << 10

	// kcpMaxWaitSnd is how many segments may wait in a session's KCP
	// (unsent or unacknowledged) before the engine stops handing it more:
	// what is beyond stays queued in netio, counted against MaxOutbound.
	kcpMaxWaitSnd = 2 * kcptune.Window

	// kcpCloseFlush bounds how long a closing session waits for its last
	// frames (the Bye) to be acknowledged, if IdleTimeout is longer; a
	// slow consumer, or a client closed at PreAuthTimeout, waits
	// kcpSlowFlush.
	kcpCloseFlush = 2 * time.Second
	kcpSlowFlush  = 250 * time.Millisecond

	// kcpMaxReaders bounds Config.KCPReaders (see fdReserve).
	kcpMaxReaders = 64
)

// KCP segment header fields read before a packet reaches a session (the
// format is KCP's: conv u32, cmd u8, frg u8, wnd u16, ts u32, sn u32, ...,
// little-endian).
const (
	kcpCmdPush  = 81
	kcpCmdOff   = 4
	kcpSnOff    = 12
	kcpOverhead = 24
)

// batchConn is the part of ipv4.PacketConn and ipv6.PacketConn the engine
// uses: sendmmsg (the reader is a udpReader).
type batchConn interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// kcpFront is the KCP engine of one socket (see kcpShards for several):
// every KCP session whose datagrams the kernel gives that socket runs on
// it and two goroutines, whatever their number.
//
//   - The reader takes datagrams from the socket in batches (recvmmsg),
//     feeds each to its session's KCP state machine, hands the frames that
//     completed to the Handler, then flushes every session it touched (ACKs,
//     replies, and data the acknowledgements let through) and sends all the
//     resulting datagrams with one sendmmsg per batch.
//   - The writer flushes the sessions that frames were queued to from
//     other goroutines, again in batches, and every KCP interval updates
//     the sessions that have data in flight (retransmissions), closes
//     lingering sessions and sweeps idle ones and those whose handshake
//     timed out.
//
// kcp-go's own sessions cost three goroutines, a timer entry and a
// sendmmsg per session and flush; see bench/README.md for what that did at
// 800 sessions. The segments on the wire are the same, so kcp-go clients
// connect unchanged with Config.KCPRawSegments.
//
// By default every datagram goes through the UDP packet layer
// (kcppacket.go): a session is created only by a ChallengeResponse whose
// cookie opens for its source address, and its KCP datagrams come and go
// in Data or PlainData packets. With KCPRawSegments the datagrams are bare
// KCP segments, and a session is created by a data segment with sequence
// number 0 (the first thing a client sends) from an address without a
// session; a packet with another conversation ID and sn 0 from the
// address of a session replaces it (the client restarted on the same
// port), as in kcp-go. Either way only while the server holds fewer than
// Config.MaxConns connections, and packets from unknown addresses (late
// ACKs after a close, strays) are dropped without a reply.
//
// A new session is on probation (with KCPRawSegments its source address
// may be forged): the Handler sees it (OnOpen) only with its first
// complete frame, and the sweep drops it if that has not come
// Config.KCPHandshakeTimeout (or PreAuthTimeout, if shorter) after its
// creation. Once seen, it has PreAuthTimeout from its creation to be
// authenticated.
type kcpFront struct {
	s      *Server
	uc     *net.UDPConn
	closed atomic.Bool // stop was called
	quit   chan struct{}

	mu       sync.RWMutex
	sessions map[netip.AddrPort]*kcpConn

	// dmu guards the sessions waiting for a flush, and whether the reader
	// is inside a batch (then it flushes them at its end and the writer
	// need not be woken).
	dmu        sync.Mutex
	dirty      []*kcpConn
	readerBusy bool
	signal     chan struct{} // 1 slot: the writer has dirty sessions

	// amu guards the sessions with segments in flight, which the writer
	// updates every interval.
	amu    sync.Mutex
	active []*kcpConn

	rtx, wtx txBatch // the reader's and the writer's outgoing datagrams

	// overloaded is set while the reader lags behind the socket (see
	// Config.KCPOverloadWait and watch); overloads counts the times it was
	// set, and drops is the socket's count of datagrams the kernel dropped
	// (SO_RXQ_OVFL, as of the last batch).
	overloaded atomic.Bool
	overloads  atomic.Uint64
	drops      atomic.Uint32
	lagSince   int64 // since when (unix nanoseconds) batches waited KCPOverloadWait or more; 0: they did not. Reader only.

	// datagramsIn and datagramsOut count the datagrams read and sent;
	// batchesIn the reads that returned some.
	datagramsIn, datagramsOut, batchesIn atomic.Uint64
	resent                               atomic.Uint64 // segments retransmitted, every session

	// The packet layer (kcppacket.go), unless Config.KCPRawSegments.
	packets bool
	jar     *secure.CookieJar
	used    *usedCookies // shared by the fronts
	pbuf    []byte       // the reader's opened datagram
	pstats  packetStats
}

// kcpConn is one KCP session. mu guards everything below it and
// serializes the Handler's calls for the connection: OnOpen and OnFrame
// run with it held (on the reader), and OnClose too (on whichever
// goroutine flushes the closing connection).
type kcpConn struct {
	c    *Conn
	f    *kcpFront
	key  netip.AddrPort
	addr *net.UDPAddr

	aborted atomic.Bool // see connIO.abort: drop the backlog, linger kcpSlowFlush

	// opened is set, with mu held, when OnOpen is called: with the
	// session's first complete frame. The sweep reads it without mu.
	opened atomic.Bool

	mu       sync.Mutex
	kcp      *ikcp.KCP
	tx       *txBatch      // where output goes while mu is held
	dec      *wire.Decoder // inbound stream
	decAuth  bool          // dec has Config.Wire, not the pre-auth limits
	backlog  []byte        // frames taken from pending that KCP has no room for yet
	spare    []byte        // swapped with pending
	small    int           // see keep
	finished bool          // Conn.finish was called
	gone     bool          // removed from the engine
	active   bool          // in kcpFront.active
	touched  bool          // in the reader's current batch (reader only)
	closeBy  time.Time     // closing: removed when all is acknowledged, or then

	// Packet mode: set before the session is registered, then constant
	// (the Opener is the reader's, the Sealer used with mu held).
	nonce [secure.CookieNonceSize]byte // of the cookie that opened it
	// heard is when the last datagram that opened (or a PlainData one
	// of its conversation) came, in nanoseconds since srv.epoch: ACKs
	// too, unlike c.lastRead. Reader only.
	heard  int64
	crypto kcpCrypto
}

// kcpShards is the KCP front end: Config.KCPReaders kcpFronts, each on
// its own socket, all bound to the same address (SO_REUSEPORT when there
// are several). The kernel picks a client's socket from its address, so a
// session lives in one front from its first datagram to its last and the
// fronts share nothing but the server, the cookie jar and the used
// cookies.
type kcpShards []*kcpFront

func (s *Server) startKCP() error {
	ua, err := net.ResolveUDPAddr("udp", s.cfg.KCPAddr)
	if err != nil {
		return &ListenError{Transport: KCP, Addr: s.cfg.KCPAddr, Err: err}
	}
	// The first socket binds alone: a port in use fails as without
	// KCPReaders, and port 0 gets a free port (bound with SO_REUSEPORT,
	// Linux may hand out a port another such socket of the same user
	// holds). The others join it.
	first, err := net.ListenUDP("udp", ua)
	if err != nil {
		return &ListenError{Transport: KCP, Addr: s.cfg.KCPAddr, Err: err}
	}
	n := min(max(s.cfg.KCPReaders, 1), kcpMaxReaders)
	if n > 1 {
		if err := shareSocket(first); err != nil {
			s.log.Warn("netio: kcp: one reader", "configured", n, "err", err)
			n = 1
		}
	}
	var jar *secure.CookieJar // one for all the fronts, as the used cookies
	var used *usedCookies
	if !s.cfg.KCPRawSegments {
		jar = secure.NewCookieJar(s.cfg.CookieLifetime)
		used = newUsedCookies()
	}
	f, err := s.newKCPFront(first, jar, used)
	if err != nil {
		first.Close()
		return &ListenError{Transport: KCP, Addr: s.cfg.KCPAddr, Err: err}
	}
	fronts := kcpShards{f}
	bound := first.LocalAddr().String() // with the port chosen for a port 0
	lc := net.ListenConfig{Control: reusePort}
	for len(fronts) < n {
		pc, err := lc.ListenPacket(context.Background(), "udp", bound)
		if err != nil {
			s.log.Warn("netio: kcp: fewer readers than configured", "readers", len(fronts), "configured", n, "err", err)
			break
		}
		f, err := s.newKCPFront(pc.(*net.UDPConn), jar, used)
		if err != nil {
			pc.Close()
			s.log.Warn("netio: kcp: fewer readers than configured", "readers", len(fronts), "configured", n, "err", err)
			break
		}
		fronts = append(fronts, f)
	}
	s.kcp = fronts
	for _, f := range fronts {
		s.wg.Add(2)
		go f.readLoop()
		go f.writeLoop()
	}
	return nil
}

// shareSocket sets SO_REUSEPORT on a bound socket, so that more sockets
// can join its address.
func shareSocket(uc *net.UDPConn) error {
	rc, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	return reusePort("udp", uc.LocalAddr().String(), rc)
}

// newKCPFront returns the front end for socket uc, its goroutines not
// started yet. jar and used are nil with Config.KCPRawSegments.
func (s *Server) newKCPFront(uc *net.UDPConn, jar *secure.CookieJar, used *usedCookies) (*kcpFront, error) {
	if err := uc.SetReadBuffer(kcpSocketBuffer); err != nil {
		s.log.Warn("netio: kcp read buffer", "err", err)
	}
	if err := uc.SetWriteBuffer(kcpSocketBuffer); err != nil {
		s.log.Warn("netio: kcp write buffer", "err", err)
	}
	f := &kcpFront{
		s:        s,
		uc:       uc,
		quit:     make(chan struct{}),
		sessions: make(map[netip.AddrPort]*kcpConn),
		signal:   make(chan struct{}, 1),
		packets:  jar != nil,
		jar:      jar,
		used:     used,
	}
	if f.packets {
		f.pbuf = make([]byte, kcpPacketMax)
	}
	for _, tx := range []*txBatch{&f.rtx, &f.wtx} {
		bc, err := newBatchConn(uc, kcpBatch)
		if err != nil {
			return nil, err
		}
		tx.init(f, bc)
	}
	return f, nil
}

// addr returns the bound UDP address (every front's).
func (fs kcpShards) addr() net.Addr { return fs[0].addr() }

// stop stops every front.
func (fs kcpShards) stop() {
	for _, f := range fs {
		f.stop()
	}
}

// stats adds the fronts' counters to st.
func (fs kcpShards) stats(st *Stats) {
	for _, f := range fs {
		st.KCPChallenges += f.pstats.challenges.Load()
		st.KCPRejects += f.pstats.rejects.Load()
		st.KCPDropped += f.pstats.dropped.Load()
		st.KCPSocketDrops += uint64(f.drops.Load())
		st.KCPOverloads += f.overloads.Load()
		st.KCPDatagramsIn += f.datagramsIn.Load()
		st.KCPDatagramsOut += f.datagramsOut.Load()
		st.KCPReads += f.batchesIn.Load()
		st.KCPResent += f.resent.Load()
	}
}

// addr returns the bound UDP address.
func (f *kcpFront) addr() net.Addr { return f.uc.LocalAddr() }

// stop closes the socket and stops both goroutines. Shutdown calls it once
// the sessions are closed.
func (f *kcpFront) stop() {
	if f.closed.Swap(true) {
		return
	}
	close(f.quit)
	_ = f.uc.Close()
}

// readLoop reads datagrams in batches until the socket is closed.
func (f *kcpFront) readLoop() {
	s := f.s
	defer s.wg.Done()
	rd, err := newUDPReader(f.uc, kcpBatch, kcpPacketMax)
	if err != nil {
		_ = f.uc.Close() // as below
		s.log.Error("netio: kcp reader; no KCP traffic on this socket", "err", err)
		return
	}
	rbuf := make([]byte, 2*kcptune.MTU)
	var touched []*kcpConn
	for {
		n, err := rd.read()
		if err != nil {
			if f.closed.Load() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// Closed, so that the kernel gives this socket's clients to
			// the other fronts' sockets, if any.
			_ = f.uc.Close()
			s.log.Error("netio: kcp read failed; no more KCP traffic on this socket", "err", err, "readers", len(s.kcp))
			return
		}
		if n > 0 {
			f.datagramsIn.Add(uint64(n))
			f.batchesIn.Add(1)
			f.watch(rd, n)
		}
		f.dmu.Lock()
		f.readerBusy = true
		f.dmu.Unlock()
		for i := range n {
			p, from, ok := rd.datagram(i)
			var k *kcpConn
			switch {
			case f.packets && ok:
				k = f.packet(p, from, rbuf)
			case f.packets:
				f.pstats.dropped.Add(1)
			case ok && len(p) >= kcpOverhead:
				k = f.input(p, from, rbuf)
			}
			if k != nil && !k.touched {
				k.touched = true
				touched = append(touched, k)
			}
		}
		for i, k := range touched {
			k.touched = false
			touched[i] = nil
			k.pump(&f.rtx, false)
		}
		touched = touched[:0]
		f.dmu.Lock()
		f.readerBusy = false
		f.dmu.Unlock()
		f.flushDirty(&f.rtx)
		f.rtx.send()
	}
}

// watch updates the overload state from how long the batch of n
// datagrams just read waited in the socket (see lagged). The frames of
// the batch are handled in the state it sets. Reader only.
func (f *kcpFront) watch(rd *udpReader, n int) {
	now := time.Now().UnixNano()
	wait, drops, ok := rd.backlog(n, now)
	f.drops.Store(drops)
	if ok {
		f.lagged(wait, now)
	}
}

// lagged takes the wait of a batch read at now (unix nanoseconds): the front end
// is overloaded once every batch for Config.KCPOverloadWait waited that
// long or more (a lag that lasts, not the backlog of one pause, which the
// reader drains in a few batches), until a batch waited less than half of
// it; never with a negative KCPOverloadWait. Reader only.
func (f *kcpFront) lagged(wait time.Duration, now int64) {
	limit := f.s.cfg.KCPOverloadWait
	switch {
	case limit < 0:
	case wait >= limit:
		if f.lagSince == 0 {
			f.lagSince = now
		}
		if now-f.lagSince >= int64(limit) && !f.overloaded.Load() {
			f.overloaded.Store(true)
			f.overloads.Add(1)
		}
	default:
		f.lagSince = 0 // a lag must last: one under the limit restarts it
		if wait < limit/2 && f.overloaded.Load() {
			f.overloaded.Store(false)
		}
	}
}

// input feeds one bare KCP datagram (KCPRawSegments) to its session,
// creating it for a first segment if the server has room (see feed). It
// returns the session, or nil if the packet was dropped. Reader only.
func (f *kcpFront) input(p []byte, key netip.AddrPort, rbuf []byte) *kcpConn {
	conv := binary.LittleEndian.Uint32(p)
	first := p[kcpCmdOff] == kcpCmdPush && binary.LittleEndian.Uint32(p[kcpSnOff:]) == 0
	f.mu.RLock()
	k := f.sessions[key]
	f.mu.RUnlock()
	if k != nil && k.kcp.Conv() != conv { // conv never changes: no lock needed
		if !first {
			return nil
		}
		f.replace(k)
		k = nil
	}
	if k == nil {
		if !first {
			return nil
		}
		if k = f.newSession(conv, key, nil, nil); k == nil {
			return nil
		}
	}
	return f.feed(k, p, rbuf)
}

// replace closes the session at an address a new session is opening
// from (the client restarted on the same port) and takes it out of the
// map at once. Reader only.
func (f *kcpFront) replace(k *kcpConn) {
	k.c.closeWith(ErrPeerClosed, false, 0, "", false)
	f.mu.Lock()
	if f.sessions[k.key] == k {
		delete(f.sessions, k.key)
	}
	f.mu.Unlock()
}

// feed feeds one KCP datagram to session k and hands the frames it
// completed to the Handler, calling OnOpen before the session's first
// one. It returns k, or nil if k is gone. Reader only.
func (f *kcpFront) feed(k *kcpConn, p []byte, rbuf []byte) *kcpConn {
	c := k.c
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.gone {
		return nil
	}
	k.tx = &f.rtx
	defer func() { k.tx = nil }()
	switch k.kcp.Input(p, true, false) {
	case ikcp.InputFragment:
		// A message of several segments (frg > 0): kcp-go clients in
		// stream mode never send one, and it could block the stream.
		c.closeWith(ErrBadFrame, true, wire.StatusBadRequest, "kcp: message mode is not supported", false)
		return k
	case -1, -2, -3:
		// The datagram goes bad past some point: the segments before it
		// were taken (and will be acknowledged), so they are read below;
		// returning here left them unread until another datagram came,
		// and a client never resends what was acknowledged.
	}
	k.readLocked(rbuf, false)
	return k
}

// readLocked takes what KCP has reassembled for the session, unless it is
// held ([Conn.Hold]: it then stays in KCP, whose receive window closes),
// and hands the complete frames to the Handler, calling OnOpen before the
// session's first one. resumed says the session was just released: the
// frames its decoder holds are handed over even if nothing new came.
// rbuf is the caller's scratch, 2*kcptune.MTU bytes. k.mu must be held.
func (k *kcpConn) readLocked(rbuf []byte, resumed bool) {
	c, s := k.c, k.f.s
	got := 0
	done := k.finished || c.closing.Load()
	for !c.onHold.Load() {
		n := k.kcp.Recv(rbuf)
		if n == -2 {
			// Larger than rbuf: only a message of several segments, which
			// Input refuses.
			c.closeWith(ErrBadFrame, true, wire.StatusBadRequest, "kcp: message mode is not supported", false)
			break
		}
		if n < 0 {
			break
		}
		if !done { // a closing connection's input is read and dropped
			got += n
			k.dec.Write(rbuf[:n])
		}
	}
	if k.finished || (got == 0 && !resumed) {
		return
	}
	if got > 0 {
		s.bytesIn.Add(uint64(got))
		c.lastRead.Store(s.now())
	}
	c.holdFlush() // replies wait for the flush at the end of the batch
	for !c.closing.Load() && !c.onHold.Load() {
		if !k.decAuth && c.authed.Load() { // per frame: OnFrame may have authenticated c
			k.dec.SetConfig(s.cfg.Wire)
			k.decAuth = true
		}
		fr, err := k.dec.Next()
		if err != nil {
			if !errors.Is(err, wire.ErrNeedMore) {
				c.badFrame(err)
			}
			break
		}
		if !k.opened.Load() {
			// The first complete frame ends the probation (see kcpFront).
			k.opened.Store(true)
			s.kcpPending.Add(-1)
			s.open(c)
			if c.closing.Load() {
				break // closed by OnOpen
			}
		}
		s.h.OnFrame(c, fr)
	}
}

// newSession creates and registers the session of a client's first
// segment (raw mode: d and nonce are nil) or of a validated
// ChallengeResponse (packet mode: the cookie's data and nonce), or
// returns nil if the server holds Config.MaxConns connections or
// Config.MaxConns/10 sessions in their handshake (then nothing is
// allocated) or is shutting down. Reader only.
func (f *kcpFront) newSession(conv uint32, key netip.AddrPort, d *secure.CookieData, nonce *[secure.CookieNonceSize]byte) *kcpConn {
	s := f.s
	// The handshake place is taken first (the readers of several fronts
	// take them at once), until its first frame (input) or its removal
	// (removeLocked).
	if s.kcpPending.Add(1) > s.kcpPendingLimit() {
		s.kcpPending.Add(-1)
		s.refuse(KCP, "kcp handshakes")
		return nil
	}
	if !s.admit(KCP) {
		s.kcpPending.Add(-1)
		return nil
	}
	ua := net.UDPAddrFromAddrPort(key) // one per session; the reader's keys are not allocated
	c := newConn(s, KCP, KindClient, namedZone(ua))
	k := &kcpConn{c: c, f: f, key: key, addr: ua, dec: wire.NewDecoder(s.preAuthWire)}
	k.kcp = ikcp.NewKCP(conv, k.output)
	kcptune.TuneCore(k.kcp, s.cfg.KCPInterval)
	k.kcp.SetInputFlush(false) // the reader pumps every session it fed, after the batch
	c.io = k
	if nonce != nil {
		k.initPackets(d, nonce)
	}
	if !s.register(c) {
		s.kcpPending.Add(-1)
		return nil
	}
	c.lastRead.Store(s.now())
	f.mu.Lock()
	f.sessions[key] = k
	f.mu.Unlock()
	return k
}

// namedZone returns ua as a Conn's RemoteAddr: a numeric zone (the Linux
// reader gives a link-local source's interface index) becomes the
// interface's name, as in TCP's addresses and package net's; ua itself
// keeps the index, which udpWriter takes as the scope ID without a
// lookup per datagram.
func namedZone(ua *net.UDPAddr) *net.UDPAddr {
	if ua.Zone == "" {
		return ua
	}
	idx, err := strconv.Atoi(ua.Zone)
	if err != nil {
		return ua
	}
	ifi, err := net.InterfaceByIndex(idx)
	if err != nil {
		return ua
	}
	named := *ua
	named.Zone = ifi.Name
	return &named
}

// output is the KCP state machine's output: one datagram, added to the
// batch of the goroutine holding k.mu, in a Data or PlainData packet in
// packet mode (sealed straight into the batch's buffer). A session whose
// sealer is exhausted is closed.
func (k *kcpConn) output(b []byte, n int) {
	tx := k.tx
	switch {
	case tx == nil:
	case !k.f.packets:
		tx.add(b[:n], k.addr)
	default:
		p, err := k.wrap(tx.buf(), b[:n])
		if err != nil {
			k.c.closeWith(err, false, 0, "", true)
			return
		}
		tx.commit(p, k.addr)
	}
}

// pump runs pumpLocked with k.mu held, sending into tx. offList says
// the session was just taken off the writer's active list (update), so
// that pumpLocked puts it back if it still has data in flight.
func (k *kcpConn) pump(tx *txBatch, offList bool) {
	k.mu.Lock()
	if offList {
		k.active = false
	}
	k.tx = tx
	k.pumpLocked()
	k.tx = nil
	k.mu.Unlock()
}

// pumpLocked moves what is queued to the connection into KCP as far as
// its window allows and flushes: new data, ACKs and due retransmissions
// go to k.tx. A closing connection gets OnClose first, then its last
// frames (the Bye) regardless of the window, and is removed once they are
// acknowledged or its time is up. k.mu must be held and k.tx set.
func (k *kcpConn) pumpLocked() {
	if k.gone {
		return
	}
	c := k.c
	if c.takeResume() && !k.finished {
		// Released from a Hold: what waited is read first, and its
		// replies leave with this flush.
		var rbuf [2 * kcptune.MTU]byte
		k.readLocked(rbuf[:], true)
	}
	batch, closing := c.takePending(k.spare, len(k.backlog))
	k.spare = nil
	if closing && k.aborted.Load() {
		k.backlog = k.backlog[:0] // a slow consumer gets only its Bye
	}
	if len(k.backlog) == 0 {
		k.spare, k.backlog = k.backlog[:0], batch
	} else {
		k.backlog = append(k.backlog, batch...)
		k.spare = batch[:0]
	}
	if closing && !k.finished {
		k.finished = true
		c.finish(nil, k.opened.Load()) // OnClose before the Bye leaves
		wait := min(c.srv.cfg.IdleTimeout, kcpCloseFlush)
		if k.aborted.Load() {
			wait = kcpSlowFlush
		}
		k.closeBy = time.Now().Add(wait)
	}
	sent := 0
	for sent < len(k.backlog) && (closing || k.kcp.WaitSnd() < kcpMaxWaitSnd) {
		// A chunk is whole frames, so the backlog always starts at a frame
		// (a slow consumer's is dropped before its Bye); a frame larger
		// than kcpChunk goes in kcpChunk pieces (KCP refuses more than 255
		// segments per Send; in stream mode the pieces join up again).
		n := chunkLen(k.backlog[sent:])
		for p := k.backlog[sent : sent+n]; len(p) > 0; {
			m := min(len(p), kcpChunk)
			k.kcp.Send(p[:m]) // cannot fail: m bytes are at most 56 segments
			p = p[m:]
		}
		sent += n
	}
	if sent > 0 {
		c.writes.Add(1)
		c.srv.bytesOut.Add(uint64(sent))
		left := copy(k.backlog, k.backlog[sent:])
		if left == 0 {
			k.backlog = keep(k.backlog[:sent], &k.small) // by the size of what was sent
		} else {
			k.backlog = k.backlog[:left]
		}
		if !closing {
			c.sent(sent)
		}
	}
	resent := k.kcp.Resent()
	k.kcp.Flush(false)
	if d := k.kcp.Resent() - resent; d > 0 {
		k.f.resent.Add(d)
	}
	if closing && (k.kcp.WaitSnd() == 0 || !time.Now().Before(k.closeBy)) {
		k.removeLocked()
		return
	}
	if k.kcp.WaitSnd() > 0 || len(k.backlog) > 0 || closing {
		k.activateLocked()
	}
}

// activateLocked puts the session in the writer's interval updates.
func (k *kcpConn) activateLocked() {
	if k.active {
		return
	}
	k.active = true
	f := k.f
	f.amu.Lock()
	f.active = append(f.active, k)
	f.amu.Unlock()
}

// removeLocked drops a session whose connection has finished: packets from
// its address are then dropped (unless they start a new session).
func (k *kcpConn) removeLocked() {
	k.gone = true
	if !k.opened.Load() {
		k.f.s.kcpPending.Add(-1)
	}
	k.backlog, k.spare = nil, nil
	f := k.f
	f.mu.Lock()
	if f.sessions[k.key] == k {
		delete(f.sessions, k.key)
	}
	f.mu.Unlock()
	f.s.remove(k.c)
}

// flushDirty pumps the sessions frames were queued to, into tx.
func (f *kcpFront) flushDirty(tx *txBatch) {
	f.dmu.Lock()
	dirty := f.dirty
	f.dirty = nil
	f.dmu.Unlock()
	for i, k := range dirty {
		dirty[i] = nil
		k.pump(tx, false)
	}
	f.dmu.Lock()
	if f.dirty == nil {
		f.dirty = dirty[:0] // reuse the slice
	}
	f.dmu.Unlock()
}

// writeLoop flushes dirty sessions when signalled and updates the active
// ones every KCP interval, until stop.
func (f *kcpFront) writeLoop() {
	s := f.s
	defer s.wg.Done()
	interval := time.NewTicker(s.cfg.KCPInterval)
	defer interval.Stop()
	sweepEvery := min(s.tick, max(s.cfg.KCPHandshakeTimeout/4, 10*time.Millisecond))
	lastSweep := time.Now()
	var active []*kcpConn
	for {
		select {
		case <-f.quit:
			return
		case <-f.signal:
			f.flushDirty(&f.wtx)
		case now := <-interval.C:
			active = f.update(active[:0])
			if now.Sub(lastSweep) >= sweepEvery {
				lastSweep = now
				f.sweep()
			}
		}
		f.wtx.send()
	}
}

// update flushes every active session (retransmissions, window probes,
// the backlog, lingering closes); those with nothing in flight any more
// leave the active list. scratch is reused. Writer only.
func (f *kcpFront) update(scratch []*kcpConn) []*kcpConn {
	f.amu.Lock()
	scratch, f.active = f.active, scratch
	f.amu.Unlock()
	for i, k := range scratch {
		scratch[i] = nil
		// A session whose peer stopped acknowledging is not closed here
		// (KCP's dead-link count is reached after 3.5-4 s, shorter than a
		// mobile hand-over): as with kcp-go, the sweep closes it after
		// IdleTimeout of silence.
		k.pump(&f.wtx, true)
	}
	return scratch
}

// sweep closes, with ErrIdle and no Bye, the sessions from which no data
// arrived for IdleTimeout (clients ping every 5s), and those still on
// probation (no complete frame, so the Handler never saw them)
// KCPHandshakeTimeout or PreAuthTimeout, the shorter, after their first
// segment, however much arrived since; and with a Bye
// (StatusUnauthenticated) and ErrPreAuthTimeout those the Handler has
// seen but not authenticated within PreAuthTimeout. Writer only.
func (f *kcpFront) sweep() {
	s := f.s
	now := s.now()
	idle := now - int64(s.cfg.IdleTimeout)
	preAuth := now - int64(s.cfg.PreAuthTimeout)
	handshake := max(now-int64(s.cfg.KCPHandshakeTimeout), preAuth)
	var idleConns, unauthed []*Conn
	var unopened []*kcpConn
	f.mu.RLock()
	for _, k := range f.sessions {
		c := k.c
		switch {
		case c.closing.Load():
		case c.lastRead.Load() < idle && !c.onHold.Load():
			idleConns = append(idleConns, c)
		case c.born < handshake && !k.opened.Load():
			unopened = append(unopened, k)
		case c.born < preAuth && !c.authed.Load() && k.opened.Load():
			unauthed = append(unauthed, c)
		}
	}
	f.mu.RUnlock()
	for _, c := range idleConns {
		c.closeWith(ErrIdle, false, 0, "", false)
	}
	for _, c := range unauthed {
		c.closeUnauthenticated()
	}
	for _, k := range unopened {
		// Checked again under k.mu: the reader may have opened it since,
		// and a session the Handler has seen is not closed for this.
		k.mu.Lock()
		if !k.gone && !k.opened.Load() {
			k.c.closeWith(ErrIdle, false, 0, "", false)
		}
		k.mu.Unlock()
	}
}

// wake has the session flushed: by the reader at the end of its batch if
// it is in one, else by the writer. Any goroutine; never blocks.
func (k *kcpConn) wake() {
	f := k.f
	f.dmu.Lock()
	f.dirty = append(f.dirty, k)
	signal := !f.readerBusy
	f.dmu.Unlock()
	if signal {
		select {
		case f.signal <- struct{}{}:
		default:
		}
	}
}

// abort makes the next flush drop the backlog: a slow consumer, or a
// client closed at PreAuthTimeout, gets its Bye without waiting for what
// it did not take, and the session lingers kcpSlowFlush at most.
func (k *kcpConn) abort() { k.aborted.Store(true) }

// kill drops the session at once, without flushing (Shutdown out of time).
func (k *kcpConn) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.gone {
		return
	}
	if !k.finished {
		k.finished = true
		k.c.finish(ErrServerClosed, k.opened.Load())
	}
	k.removeLocked()
}

// chunkLen returns the length of the first chunk of b: whole frames up to
// kcpChunk bytes, at least one frame. Frames are trusted to be well
// formed; if one claims more bytes than b holds, the rest of b is one
// chunk.
func chunkLen(b []byte) int {
	n := 0
	for n < len(b) {
		if len(b)-n < wire.HeaderSize {
			return len(b)
		}
		size := wire.HeaderSize + int(binary.BigEndian.Uint32(b[n:]))
		if size > len(b)-n {
			return len(b)
		}
		if n > 0 && n+size > kcpChunk {
			return n
		}
		n += size
	}
	return n
}

// txBatch collects outgoing datagrams for one sendmmsg. Each goroutine
// that flushes sessions has its own.
type txBatch struct {
	f     *kcpFront
	bc    batchConn // this batch's own: a udpWriter is not shared
	msgs  []ipv4.Message
	addrs []net.UDPAddr // msgs[i]'s address, for a sender without a session (addrOf)
	n     int
}

func (t *txBatch) init(f *kcpFront, bc batchConn) {
	t.f, t.bc = f, bc
	t.msgs = make([]ipv4.Message, kcpBatch)
	t.addrs = make([]net.UDPAddr, kcpBatch)
	for i := range t.msgs {
		t.msgs[i].Buffers = [][]byte{make([]byte, 0, kcpPacketMax)}
		t.addrs[i].IP = make(net.IP, 0, net.IPv6len)
	}
}

// add copies one datagram to addr into the batch, sending the batch first
// if it is full.
func (t *txBatch) add(p []byte, addr *net.UDPAddr) { t.commit(append(t.buf(), p...), addr) }

// send writes the batch with sendmmsg. UDP is unreliable anyway: a
// datagram the socket refuses is left to KCP's retransmission.
func (t *txBatch) send() {
	if t.n > 0 {
		t.f.datagramsOut.Add(uint64(t.n))
	}
	for off := 0; off < t.n; {
		n, err := t.bc.WriteBatch(t.msgs[off:t.n], 0)
		if err != nil {
			if !t.f.closed.Load() {
				t.f.s.log.Debug("netio: kcp send failed", "err", err)
			}
			n = 1 // skip the datagram that failed
		}
		off += n
	}
	for i := range t.n {
		t.msgs[i].Addr = nil
	}
	t.n = 0
}
