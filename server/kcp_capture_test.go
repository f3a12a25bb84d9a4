package server

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	ikcp "github.com/coveyhq/covey/internal/kcp"
	"github.com/coveyhq/covey/internal/kcptune"
	"github.com/coveyhq/covey/wire"
)

// The KCP segment commands, as PROTOCOL.md numbers them.
const (
	kcpPush = 81
	kcpAck  = 82
)

// kcpOverhead is the size of a KCP segment header.
const kcpOverhead = 24

// kcpSegment is one KCP segment, its header fields decoded as
// PROTOCOL.md's "KCP transport" lays them out (little-endian).
type kcpSegment struct {
	Conv        uint32
	Cmd, Frg    byte
	Wnd         uint16
	TS, Sn, Una uint32
	Len         uint32
	Data        []byte // Len bytes, a sub-slice of the datagram
	off         int    // where the segment starts in its datagram
}

// parseKCPSegments splits a datagram into its segments. Unlike KCP's own
// reader it fails on anything that is not whole segments: a capture or an
// answer must not have stray bytes.
func parseKCPSegments(p []byte) ([]kcpSegment, error) {
	var segs []kcpSegment
	for off := 0; off < len(p); {
		if len(p)-off < kcpOverhead {
			return nil, fmt.Errorf("%d bytes after the last segment", len(p)-off)
		}
		h := p[off:]
		s := kcpSegment{
			Conv: binary.LittleEndian.Uint32(h[0:]),
			Cmd:  h[4],
			Frg:  h[5],
			Wnd:  binary.LittleEndian.Uint16(h[6:]),
			TS:   binary.LittleEndian.Uint32(h[8:]),
			Sn:   binary.LittleEndian.Uint32(h[12:]),
			Una:  binary.LittleEndian.Uint32(h[16:]),
			Len:  binary.LittleEndian.Uint32(h[20:]),
			off:  off,
		}
		if uint64(s.Len) > uint64(len(h)-kcpOverhead) {
			return nil, fmt.Errorf("segment %d: len %d, %d bytes left", len(segs), s.Len, len(h)-kcpOverhead)
		}
		s.Data = h[kcpOverhead : kcpOverhead+int(s.Len)]
		segs = append(segs, s)
		off += kcpOverhead + int(s.Len)
	}
	return segs, nil
}

// kcpSegmentsDiff names the first field in which datagram got differs from
// want, "" if none. With pushTSVaries the ts of PUSH segments is not
// compared: it is the sender's clock.
func kcpSegmentsDiff(got, want []byte, pushTSVaries bool) string {
	gs, err := parseKCPSegments(got)
	if err != nil {
		return "not KCP segments: " + err.Error()
	}
	ws, err := parseKCPSegments(want)
	if err != nil {
		return "the expected datagram is not KCP segments: " + err.Error()
	}
	if len(gs) != len(ws) {
		return fmt.Sprintf("%d segments, want %d", len(gs), len(ws))
	}
	for i, g := range gs {
		w := ws[i]
		field := func(name string, got, want uint64) string {
			return fmt.Sprintf("segment %d: %s %d, want %d", i, name, got, want)
		}
		switch {
		case g.Conv != w.Conv:
			return field("conv", uint64(g.Conv), uint64(w.Conv))
		case g.Cmd != w.Cmd:
			return field("cmd", uint64(g.Cmd), uint64(w.Cmd))
		case g.Frg != w.Frg:
			return field("frg", uint64(g.Frg), uint64(w.Frg))
		case g.Wnd != w.Wnd:
			return field("wnd", uint64(g.Wnd), uint64(w.Wnd))
		case g.TS != w.TS && !(pushTSVaries && g.Cmd == kcpPush):
			return field("ts", uint64(g.TS), uint64(w.TS))
		case g.Sn != w.Sn:
			return field("sn", uint64(g.Sn), uint64(w.Sn))
		case g.Una != w.Una:
			return field("una", uint64(g.Una), uint64(w.Una))
		case !bytes.Equal(g.Data, w.Data):
			return fmt.Sprintf("segment %d: data\n got %x\nwant %x", i, g.Data, w.Data)
		}
	}
	return ""
}

// kcpDatagram is one datagram of PROTOCOL.md's KCP capture.
type kcpDatagram struct {
	fromClient bool
	raw        []byte
	segs       []kcpSegment
	line       int // of its C→S or S→C line in PROTOCOL.md
}

// Lines of the capture: a datagram's direction and size, and a segment:
// the eight header fields, each of its own width, then "|" and the data.
var (
	kcpDatagramLine = regexp.MustCompile(`^(C→S|S→C)  (\d+) bytes\.`)
	kcpSegmentLine  = regexp.MustCompile(`^ {5}([0-9a-f]{8}) ([0-9a-f]{2}) ([0-9a-f]{2}) ([0-9a-f]{4}) ([0-9a-f]{8}) ([0-9a-f]{8}) ([0-9a-f]{8}) ([0-9a-f]{8}) \|((?: [0-9a-f]+)*)$`)
)

// readKCPCapture parses the capture of PROTOCOL.md's "Example: signing in
// over KCP", checking that each datagram's size is the one written on its
// line.
func readKCPCapture(t testing.TB) []kcpDatagram {
	t.Helper()
	doc, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	const title = "### Example: signing in over KCP"
	start := bytes.Index(doc, []byte(title))
	if start < 0 {
		t.Fatalf("PROTOCOL.md has no %q", title)
	}
	section := doc[start:]
	section = section[:bytes.Index(section, []byte("\n#"))]
	firstLine := bytes.Count(doc[:start], []byte("\n")) + 1
	var dgs []kcpDatagram
	var sizes []int
	for i, line := range strings.Split(string(section), "\n") {
		if m := kcpDatagramLine.FindStringSubmatch(line); m != nil {
			size, _ := strconv.Atoi(m[2])
			dgs = append(dgs, kcpDatagram{fromClient: m[1] == "C→S", line: firstLine + i})
			sizes = append(sizes, size)
			continue
		}
		m := kcpSegmentLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if len(dgs) == 0 {
			t.Fatalf("PROTOCOL.md:%d: a segment before any C→S or S→C line", firstLine+i)
		}
		b, err := hex.DecodeString(strings.Join(m[1:9], "") + strings.ReplaceAll(m[9], " ", ""))
		if err != nil {
			t.Fatalf("PROTOCOL.md:%d: %v", firstLine+i, err)
		}
		d := &dgs[len(dgs)-1]
		d.raw = append(d.raw, b...)
	}
	for i := range dgs {
		d := &dgs[i]
		if len(d.raw) != sizes[i] {
			t.Fatalf("PROTOCOL.md:%d: the datagram's segments make %d bytes, its line says %d", d.line, len(d.raw), sizes[i])
		}
		if d.segs, err = parseKCPSegments(d.raw); err != nil {
			t.Fatalf("PROTOCOL.md:%d: %v", d.line, err)
		}
	}
	return dgs
}

// The capture's conv, and the SID that stands for the server's.
const (
	kcpCaptureConv = 0x11223344
	kcpCaptureSID  = "5f0c1e9a-8b7d-4e2f-a1c3-d4e5f6a7b8c9"
)

// kcpCaptureSegment is what PROTOCOL.md says of one segment of its
// capture. Every segment has conv kcpCaptureConv and frg 0.
type kcpCaptureSegment struct {
	cmd     byte
	wnd     uint16
	sn, una uint32
	// ts, for a client's PUSH (its clock); the others' follow rules: an
	// ACK echoes the ts of the PUSH it acknowledges, a server's PUSH
	// carries the server's clock.
	ts    uint32
	frame []byte // a PUSH's data
}

// kcpCaptureWant returns what PROTOCOL.md says the capture holds, datagram
// by datagram, with the frames built by package wire.
func kcpCaptureWant() []struct {
	fromClient bool
	segs       []kcpCaptureSegment
} {
	frame := func(h wire.Header, payload []byte) []byte { return wire.AppendFrame(nil, h, payload) }
	signIn := frame(wire.Header{Cmd: wire.CmdSignIn, Seq: 1},
		(&wire.SignInRequest{MinVersion: 1, MaxVersion: 1, UserID: "alice"}).Append(nil))
	reply := frame(wire.Header{Cmd: wire.CmdSignIn, Flags: wire.FlagReply, Seq: 1}, (&wire.SignInReply{
		Version: 1, UserID: "alice", SID: kcpCaptureSID, HeartbeatMillis: 5000,
		MaxPayload: wire.DefaultMaxPayload, MaxMessage: wire.MaxMessageFor(wire.DefaultMaxPayload),
	}).Append(nil))
	ping := frame(wire.Header{Cmd: wire.CmdPing, Seq: 2}, nil)
	pong := frame(wire.Header{Cmd: wire.CmdPing, Flags: wire.FlagReply, Seq: 2}, nil)
	leave := frame(wire.Header{Cmd: wire.CmdBye}, (&wire.Bye{}).Append(nil))
	bye := frame(wire.Header{Cmd: wire.CmdBye, Flags: wire.FlagPush}, (&wire.Bye{Reason: "goodbye"}).Append(nil))
	const c, s = true, false
	return []struct {
		fromClient bool
		segs       []kcpCaptureSegment
	}{
		{c, []kcpCaptureSegment{{cmd: kcpPush, wnd: 128, sn: 0, una: 0, ts: 1000, frame: signIn}}},
		{s, []kcpCaptureSegment{{cmd: kcpAck, wnd: 128, sn: 0, una: 1}, {cmd: kcpPush, wnd: 128, sn: 0, una: 1, frame: reply}}},
		{c, []kcpCaptureSegment{{cmd: kcpAck, wnd: 127, sn: 0, una: 1}}},
		{c, []kcpCaptureSegment{{cmd: kcpPush, wnd: 128, sn: 1, una: 1, ts: 1005, frame: ping}}},
		{s, []kcpCaptureSegment{{cmd: kcpAck, wnd: 128, sn: 1, una: 2}, {cmd: kcpPush, wnd: 128, sn: 1, una: 2, frame: pong}}},
		{c, []kcpCaptureSegment{{cmd: kcpAck, wnd: 127, sn: 1, una: 2}}},
		{c, []kcpCaptureSegment{{cmd: kcpPush, wnd: 128, sn: 2, una: 2, ts: 1015, frame: leave}}},
		{s, []kcpCaptureSegment{{cmd: kcpAck, wnd: 128, sn: 2, una: 3}, {cmd: kcpPush, wnd: 128, sn: 2, una: 3, frame: bye}}},
		{c, []kcpCaptureSegment{{cmd: kcpAck, wnd: 127, sn: 2, una: 3}}},
	}
}

// TestKCPCaptureFields checks every field of every segment of PROTOCOL.md's
// KCP capture against what its text says: the header fields, the frames
// inside (exactly what package wire encodes), and the ts rules (an ACK
// echoes the ts of the PUSH it acknowledges; the server's clock runs
// forward).
func TestKCPCaptureFields(t *testing.T) {
	dgs := readKCPCapture(t)
	want := kcpCaptureWant()
	if len(dgs) != len(want) {
		t.Fatalf("the capture has %d datagrams, this test knows %d", len(dgs), len(want))
	}
	var pushTS [2]map[uint32]uint32 // by side (0 client, 1 server): PUSH sn -> ts
	pushTS[0], pushTS[1] = map[uint32]uint32{}, map[uint32]uint32{}
	var serverClock uint32
	for i, d := range dgs {
		w := want[i]
		if d.fromClient != w.fromClient {
			t.Fatalf("PROTOCOL.md:%d: datagram %d is from the wrong side", d.line, i)
		}
		if len(d.segs) != len(w.segs) {
			t.Fatalf("PROTOCOL.md:%d: %d segments, want %d", d.line, len(d.segs), len(w.segs))
		}
		from, peer := 1, 0
		if d.fromClient {
			from, peer = 0, 1
		}
		for j, s := range d.segs {
			ws := w.segs[j]
			errorf := func(format string, args ...any) {
				t.Helper()
				t.Errorf("PROTOCOL.md:%d: segment %d: %s", d.line, j, fmt.Sprintf(format, args...))
			}
			if s.Conv != kcpCaptureConv || s.Frg != 0 {
				errorf("conv %#x frg %d, want %#x 0", s.Conv, s.Frg, kcpCaptureConv)
			}
			if s.Cmd != ws.cmd || s.Wnd != ws.wnd || s.Sn != ws.sn || s.Una != ws.una {
				errorf("cmd %d wnd %d sn %d una %d, want %d %d %d %d", s.Cmd, s.Wnd, s.Sn, s.Una, ws.cmd, ws.wnd, ws.sn, ws.una)
			}
			if int(s.Len) != len(ws.frame) || !bytes.Equal(s.Data, ws.frame) {
				errorf("len %d, data %x\nwant len %d, data %x (wire's encoding)", s.Len, s.Data, len(ws.frame), ws.frame)
			}
			switch {
			case s.Cmd == kcpAck:
				if ts, ok := pushTS[peer][s.Sn]; !ok || s.TS != ts {
					errorf("ACK of sn %d with ts %d: not the ts of that PUSH (%d)", s.Sn, s.TS, ts)
				}
			case d.fromClient:
				if s.TS != ws.ts {
					errorf("ts %d, want %d", s.TS, ws.ts)
				}
			default: // the server's clock
				if int32(s.TS-serverClock) < 0 {
					errorf("ts %d: the server's clock ran back from %d", s.TS, serverClock)
				}
				serverClock = s.TS
			}
			if s.Cmd == kcpPush {
				pushTS[from][s.Sn] = s.TS
			}
		}
	}
}

// TestKCPCaptureStateMachine plays PROTOCOL.md's KCP capture through two
// KCP state machines (package internal/kcp, tuned as the server and the SDK
// tune theirs): each datagram of the capture must be exactly what its
// sender's KCP writes after taking the datagrams before it and being given
// the frames it carries (but for the ts of its PUSH segments: its clock),
// and the receiver's KCP must take it and deliver those frames.
func TestKCPCaptureStateMachine(t *testing.T) {
	dgs := readKCPCapture(t)
	var out [2][][]byte // datagrams written by the client (0) and the server (1)
	var ends [2]*ikcp.KCP
	for i := range ends {
		ends[i] = ikcp.NewKCP(kcpCaptureConv, func(b []byte, n int) { out[i] = append(out[i], bytes.Clone(b[:n])) })
		kcptune.TuneCore(ends[i], kcptune.DefaultInterval)
	}
	buf := make([]byte, 4096)
	for i, d := range dgs {
		from, to := 1, 0
		if d.fromClient {
			from, to = 0, 1
		}
		var data []byte
		for _, s := range d.segs {
			if s.Cmd == kcpPush {
				data = append(data, s.Data...)
			}
		}
		if len(data) > 0 {
			ends[from].Send(data)
		}
		ends[from].Flush(len(data) == 0) // just the ACKs due if there is no data
		if len(out[from]) != 1 {
			t.Fatalf("PROTOCOL.md:%d: KCP wrote %d datagrams, the capture shows 1: %x", d.line, len(out[from]), out[from])
		}
		if diff := kcpSegmentsDiff(out[from][0], d.raw, true); diff != "" {
			t.Fatalf("PROTOCOL.md:%d: KCP wrote another datagram: %s\n  KCP %x\n  doc %x", d.line, diff, out[from][0], d.raw)
		}
		out[from] = nil

		if rc := ends[to].Input(d.raw, true, false); rc != 0 {
			t.Fatalf("PROTOCOL.md:%d: KCP refuses the datagram: Input returned %d", d.line, rc)
		}
		var got []byte
		for {
			n := ends[to].Recv(buf)
			if n < 0 {
				break
			}
			got = append(got, buf[:n]...)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("PROTOCOL.md:%d: the receiver's KCP delivered %x, want %x", d.line, got, data)
		}
		// Taking a datagram may make KCP write at once (the ACKs it owes,
		// when the datagram acknowledged some of its data): the next
		// datagram of the capture from that side must be that one.
		if len(out[to]) > 0 && (i+1 == len(dgs) || dgs[i+1].fromClient != (to == 0)) {
			t.Fatalf("PROTOCOL.md:%d: KCP answered with %x, which the capture does not show next", d.line, out[to])
		}
	}
	for i, e := range ends {
		if n := e.WaitSnd(); n != 0 {
			t.Errorf("side %d has %d segments unacknowledged at the end of the capture", i, n)
		}
	}
}

// TestKCPSignInCapture replays PROTOCOL.md's KCP capture against a live
// server, from a raw UDP socket that knows KCP only from the document:
// the client's datagrams are sent as written (with the ts echoes of the
// server's real answers), and each datagram the server sends must be the
// document's, field by field, but for the fields it says vary (the ts of
// the server's PUSH segments, the SID). Before its first ACK the client
// lets the server's retransmission timer run once: the segment must come
// again, unchanged but for its ts, after the 200 ms RTO; after the ACK it
// must not come again. After the last ACK the server must send nothing
// more.
func TestKCPSignInCapture(t *testing.T) {
	dgs := readKCPCapture(t)
	srv := startServer(t, func(c *Config) { c.KCPRawSegments = true }) // the capture is bare segments
	uc, err := net.DialUDP("udp", nil, srv.KCPAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	buf := make([]byte, 2048)
	read := func(what string, timeout time.Duration) []byte {
		t.Helper()
		uc.SetReadDeadline(time.Now().Add(timeout))
		n, err := uc.Read(buf)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return bytes.Clone(buf[:n])
	}
	var sid string
	received := map[uint32]kcpSegment{} // the server's PUSH segments by sn: the copy received last
	ackSent := map[uint32][]byte{}      // the data of those the client has sent an ACK for
	retried := false
	for _, d := range dgs {
		if d.fromClient {
			p := bytes.Clone(d.raw)
			for _, s := range d.segs {
				if s.Cmd == kcpAck {
					binary.LittleEndian.PutUint32(p[s.off+8:], received[s.Sn].TS)
					ackSent[s.Sn] = received[s.Sn].Data
				}
			}
			if _, err := uc.Write(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var got []byte
		var segs []kcpSegment
		for {
			got = read(fmt.Sprintf("PROTOCOL.md:%d: waiting for the server", d.line), testTimeout)
			if segs, err = parseKCPSegments(got); err != nil {
				t.Fatalf("PROTOCOL.md:%d: the server sent %x: %v", d.line, got, err)
			}
			// A copy resent before the client's ACK arrived (on a slow
			// machine) is no error; one sent after it would come again in
			// the silence checked at the end.
			if s := segs[0]; len(segs) == 1 && s.Cmd == kcpPush && ackSent[s.Sn] != nil && bytes.Equal(s.Data, ackSent[s.Sn]) {
				t.Logf("PUSH sn %d came again, sent before the server had the ACK", s.Sn)
				continue
			}
			break
		}
		if sid == "" {
			sid = signInSID(t, segs)
		}
		want := bytes.ReplaceAll(d.raw, []byte(kcpCaptureSID), []byte(sid))
		if diff := kcpSegmentsDiff(got, want, true); diff != "" {
			t.Fatalf("PROTOCOL.md:%d: the server's datagram differs: %s\n got %x\nwant %x", d.line, diff, got, want)
		}
		for _, s := range segs {
			if s.Cmd == kcpPush {
				received[s.Sn] = s
			}
		}
		if retried {
			continue
		}
		// Let the RTO run out once, as if this datagram had been lost.
		retried = true
		again := read("waiting for the retransmission of the sign-in reply", testTimeout)
		push := segs[len(segs)-1]
		resent := bytes.Clone(got[push.off:])
		binary.LittleEndian.PutUint32(resent[8:], binary.LittleEndian.Uint32(again[8:]))
		if diff := kcpSegmentsDiff(again, resent, false); diff != "" {
			t.Fatalf("the retransmission is not the PUSH again with a new ts: %s\n got %x\nwant %x", diff, again, resent)
		}
		rs, _ := parseKCPSegments(again)
		if dt := int32(rs[0].TS - push.TS); dt < 150 {
			t.Fatalf("the PUSH came again %d ms after it was sent, before the 200 ms RTO", dt)
		}
		received[push.Sn] = rs[0] // the client acknowledges the copy it got last
	}
	silence := func(after string, wait time.Duration) {
		t.Helper()
		uc.SetReadDeadline(time.Now().Add(wait))
		if n, err := uc.Read(buf); err == nil {
			t.Fatalf("the server sent %x after %s", buf[:n], after)
		} else if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal(err)
		}
	}
	silence("the last ACK", 500*time.Millisecond) // past the next RTO of anything unacknowledged
	// The session is gone: a Ping in the next segment gets no answer.
	ping := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 3}, nil)
	seg := binary.LittleEndian.AppendUint32(nil, kcpCaptureConv)
	seg = append(seg, kcpPush, 0)
	seg = binary.LittleEndian.AppendUint16(seg, kcptune.Window)
	for _, v := range []uint32{1020, 3, 3, uint32(len(ping))} { // ts, sn, una, len
		seg = binary.LittleEndian.AppendUint32(seg, v)
	}
	if _, err := uc.Write(append(seg, ping...)); err != nil {
		t.Fatal(err)
	}
	silence("the session's end, to a Ping", 300*time.Millisecond)
}

// signInSID returns the SID of the sign-in reply in the server's first
// answer, after checking that the reply is an OK SignInReply for alice in
// protocol version 1.
func signInSID(t testing.TB, segs []kcpSegment) string {
	t.Helper()
	var data []byte
	for _, s := range segs {
		if s.Cmd == kcpPush {
			data = append(data, s.Data...)
		}
	}
	dec := wire.NewDecoder(wire.DefaultConfig())
	dec.Write(data)
	f, err := dec.Next()
	if err != nil {
		t.Fatalf("no whole frame in the server's first answer (%x): %v", data, err)
	}
	var rep wire.SignInReply
	if f.Cmd != wire.CmdSignIn || f.Flags != wire.FlagReply || f.Status != wire.StatusOK || rep.Consume(f.Payload) != nil {
		t.Fatalf("the server's first frame is %+v %x, not an OK SignInReply", f.Header, f.Payload)
	}
	if rep.Version != 1 || rep.UserID != "alice" || len(rep.SID) != len(kcpCaptureSID) {
		t.Fatalf("sign-in reply %+v: want version 1, user alice, a %d-byte SID", rep, len(kcpCaptureSID))
	}
	return rep.SID
}
