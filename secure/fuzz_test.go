package secure

import (
	"bytes"
	"testing"
)

// FuzzOpen feeds every decoder of the package one input: the ticket and
// cookie openers (with the vectors' keys), the record and packet openers,
// the packet and hello codecs and the connect token parser. None may
// panic, and whatever opens must seal back to the same bytes.
func FuzzOpen(f *testing.F) {
	tk := vecTicketKey(f)
	ticket := tk.AppendTicket(nil, &vecTicket, &vecNonce)
	keys := DeriveKeys(&vecTicket.Key, vecServerNonce[:])
	rec, _ := NewSealer(&keys.ClientToServer).AppendRecords(nil, []byte("hello"))
	pkt, _ := NewSealer(&keys.ServerToClient).AppendPacket(nil, PacketData, []byte("hello"))
	ck := seq32(0x80)
	jar := NewCookieJarKey(&ck, 0)
	cookie := jar.AppendCookie(nil, vecAddr, &CookieData{Encrypted: true, Ticket: vecTicket}, vecNow)
	for _, s := range [][]byte{
		ticket, rec, pkt, cookie,
		AppendConnectRequest(nil, ticket), AppendConnectRequest2(nil, ticket, &vecClientNonce), AppendChallenge(nil, cookie),
		AppendChallengeResponse(nil, 1, cookie), AppendAccept(nil, CookieNonce(cookie)),
		AppendReject(nil, 5, "no"), AppendClientHello(nil, ticket), AppendClientHello2(nil, ticket, &vecClientNonce), AppendServerHello(nil, &vecServerNonce),
		AppendConnectToken(nil, vecTicket.Expires, &vecTicket.Key, ticket),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, err := tk.OpenTicket(b, vecNow); err == nil {
			var n [24]byte
			copy(n[:], b[8:])
			if again := tk.AppendTicket(nil, &got, &n); !bytes.Equal(again, b) {
				t.Fatalf("ticket %x opened to %+v, which seals to %x", b, got, again)
			}
		}
		_, _ = jar.OpenCookie(b, vecAddr, vecNow)
		if len(b) >= RecordHeaderSize {
			if n, err := RecordLen(b, 0); err == nil && n <= len(b) {
				_, _ = NewOpener(&keys.ClientToServer).OpenRecord(nil, b[:n])
			}
		}
		_, _ = NewOpener(&keys.ServerToClient).OpenPacket(nil, b)
		if v, tk, err := ConsumeConnectRequest(b); err == nil && v == PacketVersion2 && len(tk) > 0 {
			_ = ConnectRequestNonce(b, tk)
		}
		_, _ = ConsumeChallenge(b)
		_, _, _ = ConsumeChallengeResponse(b)
		_, _ = ConsumeAccept(b)
		_, _, _ = ConsumeReject(b)
		_, _ = ConsumeServerHello(b)
		if len(b) >= ClientHelloHeader {
			_, _ = ClientHelloLen(b)
		}
		if v, tk, cn, err := ConsumeClientHello(b); err == nil {
			var again []byte
			if v == HelloVersion2 {
				var n [ClientNonceSize]byte
				copy(n[:], cn)
				again = AppendClientHello2(nil, tk, &n)
			} else {
				again = AppendClientHello(nil, tk)
			}
			if !bytes.Equal(again, b) {
				t.Fatalf("ClientHello %x read as version %d, writes back as %x", b, v, again)
			}
		}
		_, _ = ConsumeServerHelloVersion(b, HelloVersion2)
		if ct, err := ParseConnectToken(string(b)); err == nil {
			if again := AppendConnectToken(nil, ct.Expires, &ct.Key, ct.Ticket); !bytes.Equal(again, b) {
				t.Fatalf("connect token %q parsed, writes back as %q", b, again)
			}
		}
	})
}
