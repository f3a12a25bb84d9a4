package secure

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// The inputs of PROTOCOL.md's vectors (Transport security, Vectors).
var (
	vecSecret = []byte("0123456789abcdef0123456789abcdef")
	vecNow    = time.Unix(1_800_000_000, 0)
	vecTicket = Ticket{UserID: "alice", Expires: 1_800_000_300, Key: seq32(0x40)}
	vecNonce  = func() (n [24]byte) {
		for i := range n {
			n[i] = byte(0xA0 + i)
		}
		return n
	}()
	vecServerNonce = func() (n [ServerNonceSize]byte) {
		for i := range n {
			n[i] = byte(0x10 + i)
		}
		return n
	}()
	vecClientNonce = func() (n [ClientNonceSize]byte) {
		for i := range n {
			n[i] = byte(0x30 + i)
		}
		return n
	}()
	vecAddr = netip.MustParseAddrPort("192.0.2.7:40000")
)

// seq32 returns 32 bytes counting up from b.
func seq32(b byte) (k [KeySize]byte) {
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func vecTicketKey(t testing.TB) *TicketKey {
	k, err := NewTicketKey(vecSecret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The vectors, as PROTOCOL.md prints them.
const (
	wantTicket  = "000000006b49d32ca0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b760bf8f21af4f9dc1a05ed4ba8505c45d28c962a3fda23e9ce9579a0443dcca047df9951bded2fa124230ff04e0a5d763fc4829d4c8e0"
	wantKeysC2S = "6fd0f1507afa7c3a24cd4e8dd825a6e8e900f38a42e0d60f92b2de4b55f7d7ee"
	wantKeysS2C = "e5dc939ad14be8ece96d9568d1135d666a259f69d9d021ad170f46aff593becc"
	wantRecord  = "000000153319842a31e7183a86089117b81e51d88387aaf6c1"
	wantPacket  = "200000000000000000b83e0e4525f121c2a9b0cd0a1eea24037d1693b633"
	// Version 2 keys: the same K and server nonce, client nonce 30..3f
	// (computed with an HKDF of Python's hmac, independently of Go's).
	wantKeys2C2S = "e6bcfd8794d81d8b3097daea2027ac2828a7b55f9bc9094505d85bce2ee55ff6"
	wantKeys2S2C = "f7ca8dc9b985ed0fc28ecb5aeca3707b3291bdd8dc093a88e86479e2200ea29c"
	wantCookie   = "000000006b49d20a0000000000000000000000002b1c5bef7d1eab8d8a796cb5ef91e06439983beb902e943ef06a0bfc484456d54b8b5b62de3706bfaf84feefc36c153630b78c8912b471c705b9e8cef6196897c175612149ccaa"
)

func TestVectors(t *testing.T) {
	tk := vecTicketKey(t)
	ticket := tk.AppendTicket(nil, &vecTicket, &vecNonce)
	keys := DeriveKeys(&vecTicket.Key, vecServerNonce[:])
	keys2 := DeriveKeys2(&vecTicket.Key, vecServerNonce[:], vecClientNonce[:])
	rec, _ := NewSealer(&keys.ClientToServer).AppendRecords(nil, []byte("hello"))
	pkt, _ := NewSealer(&keys.ServerToClient).AppendPacket(nil, PacketData, []byte("hello"))
	ck := seq32(0x80)
	jar := NewCookieJarKey(&ck, 10*time.Second)
	cookie := jar.AppendCookie(nil, vecAddr, &CookieData{Encrypted: true, Ticket: Ticket{UserID: "alice", Expires: 1_800_000_300, Key: vecTicket.Key, ID: 0xA0A1A2A3A4A5A6A7}}, vecNow)
	for _, v := range []struct {
		name string
		got  []byte
		want string
	}{
		{"ticket", ticket, wantTicket},
		{"c2s key", keys.ClientToServer[:], wantKeysC2S},
		{"s2c key", keys.ServerToClient[:], wantKeysS2C},
		{"v2 c2s key", keys2.ClientToServer[:], wantKeys2C2S},
		{"v2 s2c key", keys2.ServerToClient[:], wantKeys2S2C},
		{"record", rec, wantRecord},
		{"packet", pkt, wantPacket},
		{"cookie", cookie, wantCookie},
	} {
		if !bytes.Equal(v.got, unhex(t, v.want)) {
			t.Errorf("%s:\n got %x\nwant %s", v.name, v.got, v.want)
		}
	}
}

func TestTicketRoundTrip(t *testing.T) {
	tk := vecTicketKey(t)
	b := tk.AppendTicket(nil, &vecTicket, &vecNonce)
	got, err := tk.OpenTicket(b, vecNow)
	if err != nil {
		t.Fatal(err)
	}
	want := vecTicket
	want.ID = 0xA0A1A2A3A4A5A6A7
	if got != want {
		t.Fatalf("opened %+v, want %+v", got, want)
	}
	if _, err := tk.OpenTicket(b, time.Unix(vecTicket.Expires, 0)); !errors.Is(err, ErrExpired) {
		t.Errorf("at expiry: %v, want ErrExpired", err)
	}
	other, _ := NewTicketKey([]byte("another secret, 16+ bytes"))
	if _, err := other.OpenTicket(b, vecNow); !errors.Is(err, ErrAuth) {
		t.Errorf("other key: %v, want ErrAuth", err)
	}
	for i := range b { // every bit of it is authenticated, the expiry too
		c := bytes.Clone(b)
		c[i] ^= 1
		if _, err := tk.OpenTicket(c, vecNow); err == nil {
			t.Fatalf("byte %d flipped: opened", i)
		}
	}
	for n := range len(b) {
		if _, err := tk.OpenTicket(b[:n], vecNow); err == nil {
			t.Fatalf("prefix of %d bytes opened", n)
		}
	}
}

func TestConnectToken(t *testing.T) {
	tk := vecTicketKey(t)
	ticket := tk.AppendTicket(nil, &vecTicket, &vecNonce)
	s := string(AppendConnectToken(nil, vecTicket.Expires, &vecTicket.Key, ticket))
	if len(s) > MaxConnectTokenLen {
		t.Fatalf("token of %d bytes, max %d", len(s), MaxConnectTokenLen)
	}
	ct, err := ParseConnectToken(s)
	if err != nil {
		t.Fatal(err)
	}
	if ct.Expires != vecTicket.Expires || ct.Key != vecTicket.Key || !bytes.Equal(ct.Ticket, ticket) {
		t.Fatalf("parsed %+v", ct)
	}
	for _, bad := range []string{"", "v3.", "v2." + s[3:], s + "A", s[:len(s)-1], s + "\n", strings.Replace(s, "-", "+", 1)} {
		if bad == s {
			continue
		}
		if _, err := ParseConnectToken(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	long := Ticket{UserID: strings.Repeat("u", MaxUserIDLen), Expires: 1 << 40, Key: vecTicket.Key}
	lt := tk.AppendTicket(nil, &long, &vecNonce)
	if len(lt) != MaxTicketSize {
		t.Fatalf("longest ticket %d bytes, MaxTicketSize %d", len(lt), MaxTicketSize)
	}
	if n := len(AppendConnectToken(nil, long.Expires, &long.Key, lt)); n > MaxConnectTokenLen {
		t.Fatalf("longest token %d bytes, MaxConnectTokenLen %d", n, MaxConnectTokenLen)
	}
}

func TestRecords(t *testing.T) {
	keys := DeriveKeys(&vecTicket.Key, vecServerNonce[:])
	s, o := NewSealer(&keys.ClientToServer), NewOpener(&keys.ClientToServer)
	big := bytes.Repeat([]byte{7}, MaxRecordPayload+10)
	stream, err := s.AppendRecords(nil, big)
	if err != nil {
		t.Fatal(err)
	}
	stream, _ = s.AppendRecords(stream, []byte("x"))
	var plain []byte
	for len(stream) > 0 {
		n, err := RecordLen(stream, 0)
		if err != nil {
			t.Fatal(err)
		}
		// A forged record in between is dropped and changes nothing.
		forged := bytes.Clone(stream[:n])
		forged[len(forged)-1] ^= 1
		if _, err := o.OpenRecord(nil, forged); !errors.Is(err, ErrAuth) {
			t.Fatalf("forged record: %v", err)
		}
		if plain, err = o.OpenRecord(plain, stream[:n]); err != nil {
			t.Fatal(err)
		}
		stream = stream[n:]
	}
	if !bytes.Equal(plain, append(big, 'x')) {
		t.Fatal("records did not open to what was sealed")
	}
	if _, err := RecordLen([]byte{0, 1, 0, 17}, 0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("65553-byte record: %v", err)
	}
	if _, err := RecordLen([]byte{0, 0, 0, 15}, 0); !errors.Is(err, ErrMalformed) {
		t.Errorf("record shorter than a tag: %v", err)
	}
	if _, err := RecordLen([]byte{0, 0, 1, 0}, 100); !errors.Is(err, ErrTooLarge) {
		t.Errorf("record over the given max: %v", err)
	}
}

func TestPacketsAndReplayWindow(t *testing.T) {
	keys := DeriveKeys(&vecTicket.Key, vecServerNonce[:])
	s, o := NewSealer(&keys.ServerToClient), NewOpener(&keys.ServerToClient)
	var pkts [][]byte
	for i := range 3000 {
		p, _ := s.AppendPacket(nil, PacketData, []byte{byte(i)})
		pkts = append(pkts, p)
	}
	open := func(i int) error {
		got, err := o.OpenPacket(nil, pkts[i])
		if err == nil && (len(got) != 1 || got[0] != byte(i)) {
			t.Fatalf("packet %d opened to %x", i, got)
		}
		return err
	}
	if err := open(5); err != nil {
		t.Fatal(err)
	}
	if err := open(5); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay: %v", err)
	}
	for _, i := range []int{0, 4, 2000, 1999, 977, 1100} { // older ones, in the window
		if err := open(i); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	if err := open(976); !errors.Is(err, ErrReplayed) { // 2000-976 = 1024
		t.Fatalf("packet a window behind: %v", err)
	}
	for _, i := range []int{0, 2000, 1100} {
		if err := open(i); !errors.Is(err, ErrReplayed) {
			t.Fatalf("replay of %d: %v", i, err)
		}
	}
	forged := bytes.Clone(pkts[2500])
	forged[len(forged)-1] ^= 1
	if _, err := o.OpenPacket(nil, forged); !errors.Is(err, ErrAuth) {
		t.Fatalf("forged: %v", err)
	}
	if err := open(1500); err != nil { // the forgery moved nothing
		t.Fatalf("packet 1500 after a forged 2500: %v", err)
	}
	if err := open(2500); err != nil {
		t.Fatal(err)
	}
	// Every counter in reverse over a long run: each exactly once within
	// the window, consistent with a simple reference.
	o2 := NewOpener(&keys.ServerToClient)
	seen := map[int]bool{}
	top := -1
	order := []int{10, 3, 64, 65, 63, 1, 1030, 7, 6, 1029, 2999, 1975, 1976, 1976, 2998, 2000}
	for _, i := range order {
		_, err := o2.OpenPacket(nil, pkts[i])
		wantOK := !seen[i] && (top < 0 || i > top || top-i < ReplayWindow)
		if (err == nil) != wantOK {
			t.Fatalf("packet %d (top %d): err %v, want ok=%v", i, top, err, wantOK)
		}
		if err == nil {
			seen[i] = true
			top = max(top, i)
		}
	}
}

func TestCookie(t *testing.T) {
	jar := NewCookieJar(0)
	d := CookieData{Encrypted: true, Ticket: Ticket{UserID: "bob", Expires: 99, Key: seq32(1), ID: 42}}
	c1 := jar.AppendCookie(nil, vecAddr, &d, vecNow)
	c2 := jar.AppendCookie(nil, vecAddr, &d, vecNow)
	if bytes.Equal(CookieNonce(c1), CookieNonce(c2)) {
		t.Fatal("two cookies share a nonce")
	}
	got, err := jar.OpenCookie(c1, vecAddr, vecNow.Add(9*time.Second))
	if err != nil || got != d {
		t.Fatalf("opened %+v, %v", got, err)
	}
	if _, err := jar.OpenCookie(c1, netip.MustParseAddrPort("192.0.2.7:40001"), vecNow); !errors.Is(err, ErrAuth) {
		t.Errorf("other port: %v", err)
	}
	if _, err := jar.OpenCookie(c1, vecAddr, vecNow.Add(11*time.Second)); !errors.Is(err, ErrExpired) {
		t.Errorf("late: %v", err)
	}
	if _, err := NewCookieJar(0).OpenCookie(c1, vecAddr, vecNow); !errors.Is(err, ErrAuth) {
		t.Errorf("other jar: %v", err)
	}
	plain := jar.AppendCookie(nil, vecAddr, &CookieData{}, vecNow)
	if got, err := jar.OpenCookie(plain, vecAddr, vecNow); err != nil || got.Encrypted {
		t.Errorf("plain cookie: %+v, %v", got, err)
	}
	// Version 2: the client's nonce travels in the cookie.
	d2 := d
	d2.HasClientNonce, d2.ClientNonce = true, vecClientNonce
	c3 := jar.AppendCookie(nil, vecAddr, &d2, vecNow)
	if got, err := jar.OpenCookie(c3, vecAddr, vecNow); err != nil || got != d2 {
		t.Fatalf("version 2 cookie opened %+v, %v", got, err)
	}
	if len(c3) != len(c1)+ClientNonceSize {
		t.Errorf("version 2 cookie %d bytes, version 1 %d", len(c3), len(c1))
	}
	long := d2
	long.Ticket.UserID = strings.Repeat("x", MaxUserIDLen)
	if n := len(jar.AppendCookie(nil, vecAddr, &long, vecNow)); n != MaxCookieSize {
		t.Errorf("longest cookie %d bytes, MaxCookieSize %d", n, MaxCookieSize)
	}
	// Every answer to a ConnectRequest is smaller than it.
	if 1+MaxCookieSize >= ConnectRequestSize || 4+MaxRejectReason >= ConnectRequestSize {
		t.Error("an answer to a ConnectRequest can be as large as it")
	}
}

func TestPacketCodecs(t *testing.T) {
	tk := vecTicketKey(t)
	ticket := tk.AppendTicket(nil, &vecTicket, &vecNonce)
	req := AppendConnectRequest(nil, ticket)
	if len(req) != ConnectRequestSize {
		t.Fatalf("ConnectRequest of %d bytes", len(req))
	}
	if v, got, err := ConsumeConnectRequest(req); err != nil || v != PacketVersion || !bytes.Equal(got, ticket) {
		t.Fatalf("ConsumeConnectRequest: %d %x %v", v, got, err)
	}
	if _, got, err := ConsumeConnectRequest(AppendConnectRequest(nil, nil)); err != nil || len(got) != 0 {
		t.Fatalf("plain ConnectRequest: %x %v", got, err)
	}
	if _, _, err := ConsumeConnectRequest(req[:ConnectRequestSize-1]); err == nil {
		t.Error("short ConnectRequest read")
	}
	cookie := NewCookieJar(0).AppendCookie(nil, vecAddr, &CookieData{}, vecNow)
	if got, err := ConsumeChallenge(AppendChallenge(nil, cookie)); err != nil || !bytes.Equal(got, cookie) {
		t.Fatalf("Challenge: %x %v", got, err)
	}
	if conv, got, err := ConsumeChallengeResponse(AppendChallengeResponse(nil, 0xDEADBEEF, cookie)); err != nil || conv != 0xDEADBEEF || !bytes.Equal(got, cookie) {
		t.Fatalf("ChallengeResponse: %x %x %v", conv, got, err)
	}
	if got, err := ConsumeAccept(AppendAccept(nil, CookieNonce(cookie))); err != nil || !bytes.Equal(got, CookieNonce(cookie)) {
		t.Fatalf("Accept: %x %v", got, err)
	}
	if st, r, err := ConsumeReject(AppendReject(nil, 7, "ticket expired")); err != nil || st != 7 || string(r) != "ticket expired" {
		t.Fatalf("Reject: %d %q %v", st, r, err)
	}
	cr2 := AppendConnectRequest2(nil, ticket, &vecClientNonce)
	if v, tk, err := ConsumeConnectRequest(cr2); err != nil || v != PacketVersion2 || !bytes.Equal(tk, ticket) || !bytes.Equal(ConnectRequestNonce(cr2, tk), vecClientNonce[:]) {
		t.Fatalf("ConnectRequest v2: %d %x %v", v, tk, err)
	}
	hello := AppendClientHello(nil, ticket)
	if n, err := ClientHelloLen(hello); err != nil || n != len(hello) {
		t.Fatalf("ClientHelloLen: %d %v", n, err)
	}
	if v, tk, cn, err := ConsumeClientHello(hello); err != nil || v != HelloVersion || !bytes.Equal(tk, ticket) || cn != nil {
		t.Fatalf("ConsumeClientHello v1: %d %x %x %v", v, tk, cn, err)
	}
	hello2 := AppendClientHello2(nil, ticket, &vecClientNonce)
	if n, err := ClientHelloLen(hello2); err != nil || n != len(hello2) || n != len(hello)+ClientNonceSize {
		t.Fatalf("ClientHelloLen v2: %d %v", n, err)
	}
	if v, tk, cn, err := ConsumeClientHello(hello2); err != nil || v != HelloVersion2 || !bytes.Equal(tk, ticket) || !bytes.Equal(cn, vecClientNonce[:]) {
		t.Fatalf("ConsumeClientHello v2: %d %x %x %v", v, tk, cn, err)
	}
	for _, bad := range [][]byte{hello2[:len(hello2)-1], append(slices.Clone(hello2), 0), append([]byte{HelloMagic, 3}, hello2[2:]...)} {
		if _, _, _, err := ConsumeClientHello(bad); err == nil {
			t.Fatalf("ConsumeClientHello(%x) accepted", bad)
		}
	}
	if got, err := ConsumeServerHelloVersion(AppendServerHelloVersion(nil, HelloVersion2, &vecServerNonce), HelloVersion2); err != nil || !bytes.Equal(got, vecServerNonce[:]) {
		t.Fatalf("ServerHello v2: %x %v", got, err)
	}
	if _, err := ConsumeServerHello(AppendServerHelloVersion(nil, HelloVersion2, &vecServerNonce)); err == nil {
		t.Fatal("a version 2 ServerHello read as version 1")
	}
	if got, err := ConsumeServerHello(AppendServerHello(nil, &vecServerNonce)); err != nil || !bytes.Equal(got, vecServerNonce[:]) {
		t.Fatalf("ServerHello: %x %v", got, err)
	}
}
