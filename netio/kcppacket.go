package netio

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coveyhq/covey/secure"
	"github.com/coveyhq/covey/wire"
)

// The UDP packet layer (PROTOCOL.md, UDP packets): unless
// Config.KCPRawSegments is set, every datagram on the KCP port starts
// with a type byte. A sender first proves it receives what is sent to its
// address by echoing a cookie (ConnectRequest, Challenge,
// ChallengeResponse); only then does the engine create a session, whose
// KCP datagrams travel in Data packets (sealed with the session's
// direction keys) or PlainData packets (a plaintext connection).
//
// Until the cookie comes back the engine keeps nothing for the sender and
// runs nothing it sent, and it answers only a ConnectRequest (1,200
// bytes) with one Challenge or Reject (at most 231 bytes): a forged
// source address gets less than the forger sent, and nothing at all for
// anything else.

// packetStats are the packet layer's counters (see Stats).
type packetStats struct {
	challenges atomic.Uint64
	rejects    atomic.Uint64
	dropped    atomic.Uint64
}

// kcpCrypto is what the packet layer keeps for an encrypted session: the
// sealer of what the server sends (used with kcpConn.mu held, by output)
// and the opener of what the client sends (reader only). Both are nil for
// a plaintext session.
type kcpCrypto struct {
	seal *secure.Sealer
	open *secure.Opener
}

// packet handles one datagram in packet mode: a handshake packet is
// answered here, a data packet is opened and its KCP datagram fed to its
// session (see input). It returns the session the datagram was fed to, or
// nil. Reader only.
func (f *kcpFront) packet(p []byte, from netip.AddrPort, rbuf []byte) *kcpConn {
	if len(p) == 0 {
		f.pstats.dropped.Add(1)
		return nil
	}
	switch p[0] {
	case secure.PacketData, secure.PacketPlainData:
		return f.data(p, from, rbuf)
	case secure.PacketConnectRequest:
		f.connectRequest(p, from)
	case secure.PacketChallengeResponse:
		f.challengeResponse(p, from)
	default:
		f.pstats.dropped.Add(1)
	}
	return nil
}

// data opens a Data or PlainData packet from the address of a session
// and feeds the KCP datagram it carries to the session. A packet of the
// other kind than the session's, that fails authentication or the replay
// window, or whose datagram is not for the session's conversation, is
// dropped and counted, and leaves the session as it was. Reader only.
func (f *kcpFront) data(p []byte, from netip.AddrPort, rbuf []byte) *kcpConn {
	f.mu.RLock()
	k := f.sessions[from]
	f.mu.RUnlock()
	if k == nil {
		f.pstats.dropped.Add(1)
		return nil
	}
	var seg []byte
	switch {
	case k.crypto.open != nil && p[0] == secure.PacketData:
		var err error
		if seg, err = k.crypto.open.OpenPacket(f.pbuf[:0], p); err != nil {
			seg = nil
		}
	case k.crypto.open == nil && p[0] == secure.PacketPlainData:
		seg = p[1:]
	}
	// conv never changes: no lock needed.
	if len(seg) < kcpOverhead || binary.LittleEndian.Uint32(seg) != k.kcp.Conv() {
		f.pstats.dropped.Add(1)
		return nil
	}
	k.heard = f.s.now()
	return f.feed(k, seg, rbuf)
}

// connectRequest answers a ConnectRequest with a Challenge, or a Reject
// for a request the server refuses whoever sent it (a ticket that does
// not open or has expired, encryption refused or required); a request
// that is malformed or of another version gets nothing. Nothing is kept:
// the cookie carries what the ticket said. Reader only.
func (f *kcpFront) connectRequest(p []byte, from netip.AddrPort) {
	ver, ticket, err := secure.ConsumeConnectRequest(p)
	if err != nil || (ver != secure.PacketVersion && ver != secure.PacketVersion2) {
		f.pstats.dropped.Add(1)
		return
	}
	now := time.Now()
	var d secure.CookieData
	switch {
	case len(ticket) == 0:
		if f.s.cfg.RequireEncryption {
			f.reject(from, wire.StatusNotEncrypted, reasonNotEncrypted)
			return
		}
	default:
		// Every refusal gets its Reject, as the ClientHello on TCP gets
		// its Bye, so that a ticket of another cluster's secret is
		// diagnosed: the Reject is smaller than the request, so a forged
		// source gains nothing by it.
		t, reason := f.s.openTicket(ticket, now)
		if reason != "" {
			f.reject(from, wire.StatusAuthFailed, reason)
			return
		}
		d = secure.CookieData{Encrypted: true, Ticket: t}
		if ver == secure.PacketVersion2 { // the client's nonce goes into its keys
			d.HasClientNonce = true
			copy(d.ClientNonce[:], secure.ConnectRequestNonce(p, ticket))
		}
	}
	tx := &f.rtx
	b := f.jar.AppendCookie(append(tx.buf(), secure.PacketChallenge), from, &d, now)
	tx.commit(b, tx.addrOf(from))
	f.pstats.challenges.Add(1)
}

// challengeResponse creates the session of a ChallengeResponse whose
// cookie opens for its source address, and answers Accept; the repeat of
// the ChallengeResponse of an existing session gets the Accept again. A
// cookie opens one session: once used, it opens nothing else until it
// expires, so that a recorded ChallengeResponse replayed after its
// session has gone cannot make a session with the same keys (whose
// counters would start again at 0: the same nonces under the same key,
// and the recorded Data packets accepted again). A session at the address
// with another cookie is replaced (the client restarted on the same
// port), but only once it has been silent for kcpReplaceSilence: a
// sender that reads the address's datagrams cannot close a live session
// with a cookie of its own. The ticket's expiry is checked again. A full
// server answers Reject ServerOffline: the sender has proved its address.
// A cookie that does not open, or was used, gets nothing. Reader only.
func (f *kcpFront) challengeResponse(p []byte, from netip.AddrPort) {
	conv, cookie, err := secure.ConsumeChallengeResponse(p)
	if err != nil {
		f.pstats.dropped.Add(1)
		return
	}
	now := time.Now()
	d, err := f.jar.OpenCookie(cookie, from, now)
	if err != nil {
		f.pstats.dropped.Add(1)
		return
	}
	nonce := [secure.CookieNonceSize]byte(secure.CookieNonce(cookie))
	f.mu.RLock()
	k := f.sessions[from]
	f.mu.RUnlock()
	if k != nil && k.nonce == nonce { // set before the session was registered
		f.accept(k)
		return
	}
	if f.used.has(nonce) {
		f.pstats.dropped.Add(1)
		return
	}
	if d.Encrypted && !now.Before(time.Unix(d.Ticket.Expires, 0)) {
		f.reject(from, wire.StatusAuthFailed, reasonExpired)
		return
	}
	if k != nil {
		if f.s.now()-max(k.heard, k.c.born) < int64(kcpReplaceSilence) {
			f.pstats.dropped.Add(1) // the client's retries replace it once it is silent
			return
		}
		f.replace(k)
	}
	// Claimed before the session exists: another front's reader may hold
	// the same cookie (see usedCookies), and one of them wins. A claim
	// that is then refused a session is spent; the client got a Reject.
	switch f.used.claim(nonce, secure.CookieExpiry(cookie), now) {
	case cookieUsed:
		f.pstats.dropped.Add(1)
		return
	case cookiesFull:
		f.reject(from, wire.StatusServerOffline, reasonFull)
		return
	}
	if k = f.newSession(conv, from, &d, &nonce); k == nil {
		f.reject(from, wire.StatusServerOffline, reasonFull)
		return
	}
	f.accept(k)
}

// kcpReplaceSilence is how long the session at an address must have
// received no authenticated datagram before another handshake from the
// address replaces it. A client that restarted on the same port retries
// its ChallengeResponse for 5 s, so it gets through; a live client sends
// at least a ping every heartbeat, and acknowledges what it receives.
const kcpReplaceSilence = 2 * time.Second

// maxUsedCookies bounds usedCookies: the sessions opened within one
// cookie lifetime, which the handshake budget (Config.MaxConns/10 sessions
// on probation at once) and address validation already keep far below it.
const maxUsedCookies = 1 << 20

// usedCookies holds the nonces of the cookies that opened a session,
// until each cookie expires (unix seconds): a cookie opens one session
// (see challengeResponse). One set for all the KCP fronts
// (Config.KCPReaders): the kernel gives an address's datagrams to one
// socket, but a cookie replayed after the sockets' group changed (a
// reader's socket closed) must not open a second session elsewhere.
// Taken on handshakes only.
type usedCookies struct {
	mu sync.Mutex
	m  map[[secure.CookieNonceSize]byte]int64
}

func newUsedCookies() *usedCookies {
	return &usedCookies{m: make(map[[secure.CookieNonceSize]byte]int64)}
}

// has reports whether nonce opened a session.
func (u *usedCookies) has(nonce [secure.CookieNonceSize]byte) bool {
	u.mu.Lock()
	_, ok := u.m[nonce]
	u.mu.Unlock()
	return ok
}

// What claim found.
const (
	cookieClaimed = iota
	cookieUsed
	cookiesFull
)

// claim records nonce until expiry unless it is there already
// (cookieUsed) or the set is full of cookies that have not expired
// (cookiesFull: forgetting a live one would let it open a second
// session). It forgets the expired ones when full, and every 4,096 claims.
func (u *usedCookies) claim(nonce [secure.CookieNonceSize]byte, expiry int64, now time.Time) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.m[nonce]; ok {
		return cookieUsed
	}
	if len(u.m) >= maxUsedCookies || len(u.m)%4096 == 4095 {
		u.sweepLocked(now)
	}
	if len(u.m) >= maxUsedCookies {
		return cookiesFull
	}
	u.m[nonce] = expiry
	return cookieClaimed
}

// sweepLocked forgets the cookies that have expired. u.mu must be held.
func (u *usedCookies) sweepLocked(now time.Time) {
	t := now.Unix()
	for n, exp := range u.m {
		if exp <= t {
			delete(u.m, n)
		}
	}
}

// initPackets gives a new session, before it is registered, its cookie's
// nonce and, for an encrypted connection, its direction keys and its
// ticket (so the Handler sees Conn.Ticket from the first frame).
func (k *kcpConn) initPackets(d *secure.CookieData, nonce *[secure.CookieNonceSize]byte) {
	k.nonce = *nonce
	if !d.Encrypted {
		return
	}
	var keys secure.Keys
	if d.HasClientNonce {
		keys = secure.DeriveKeys2(&d.Ticket.Key, nonce[:], d.ClientNonce[:])
	} else {
		keys = secure.DeriveKeys(&d.Ticket.Key, nonce[:]) // a client of version 1
	}
	k.crypto = kcpCrypto{seal: secure.NewSealer(&keys.ServerToClient), open: secure.NewOpener(&keys.ClientToServer)}
	keys = secure.Keys{}
	k.c.setTicket(d.Ticket)
}

// accept sends a session's Accept. Reader only.
func (f *kcpFront) accept(k *kcpConn) {
	tx := &f.rtx
	tx.commit(secure.AppendAccept(tx.buf(), k.nonce[:]), k.addr)
}

// reject sends a Reject to addr. Reader only.
func (f *kcpFront) reject(addr netip.AddrPort, status wire.Status, reason string) {
	tx := &f.rtx
	b := secure.AppendReject(tx.buf(), uint16(status), reason)
	tx.commit(b, tx.addrOf(addr))
	f.pstats.rejects.Add(1)
}

// wrap appends the packet of one of k's KCP datagrams to dst: a Data
// packet sealed with the session's key, or a PlainData packet. It fails
// only when the sealer is exhausted. k.mu must be held.
func (k *kcpConn) wrap(dst, seg []byte) ([]byte, error) {
	if k.crypto.seal != nil {
		return k.crypto.seal.AppendPacket(dst, secure.PacketData, seg)
	}
	return append(append(dst, secure.PacketPlainData), seg...), nil
}

// buf returns the buffer of the batch's next datagram, empty (the batch
// is sent first if it is full); the caller appends the datagram to it and
// hands it to commit before anything else uses the batch.
func (t *txBatch) buf() []byte {
	if t.n == len(t.msgs) {
		t.send()
	}
	return t.msgs[t.n].Buffers[0][:0]
}

// commit adds the datagram written into buf's buffer, to addr.
func (t *txBatch) commit(b []byte, addr net.Addr) {
	m := &t.msgs[t.n]
	m.Buffers[0] = b
	m.Addr = addr
	t.n++
}

// addrOf returns addr as the *net.UDPAddr of the batch's next datagram,
// without allocating: the batch has one per message. Valid until the
// batch is sent; call it after buf.
func (t *txBatch) addrOf(addr netip.AddrPort) *net.UDPAddr {
	ua := &t.addrs[t.n]
	a := addr.Addr()
	if a.Is4() {
		b := a.As4()
		ua.IP = append(ua.IP[:0], b[:]...)
	} else {
		b := a.As16()
		ua.IP = append(ua.IP[:0], b[:]...)
	}
	ua.Port = int(addr.Port())
	ua.Zone = a.Zone()
	return ua
}
