package server

import (
	"bytes"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/coveyhq/covey/wire"
)

// TestProtocolExample plays PROTOCOL.md's "Example exchange" against a live
// server, byte for byte: the client frames are sent as the document writes
// them, and every frame the server sends must equal the document's, with
// the real session ID and SID in place of the document's.
func TestProtocolExample(t *testing.T) {
	doc, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(doc, []byte("## Example exchange"))
	if start < 0 {
		t.Fatal("PROTOCOL.md has no example exchange")
	}
	section := doc[start:]
	section = section[:bytes.Index(section, []byte("\n## "))]
	hexLine := regexp.MustCompile(`(?m)^ {5}([0-9a-f]{8} [0-9a-f ]+\|[0-9a-f ]*)$`)
	var frames [][]byte
	for _, m := range hexLine.FindAllSubmatch(section, -1) {
		b, err := hex.DecodeString(strings.NewReplacer(" ", "", "|", "").Replace(string(m[1])))
		if err != nil {
			t.Fatalf("bad hex in the example: %v", err)
		}
		frames = append(frames, b)
	}
	if len(frames) != 13 {
		t.Fatalf("the example has %d frames, this test knows 13", len(frames))
	}
	const docID, docSID = "0b5a7c4e-3f0e-4c1a-9d52-0f6c2b7a1e90@local", "5f0c1e9a-8b7d-4e2f-a1c3-d4e5f6a7b8c9"

	srv := startServer(t)
	alice := dialRaw(t, "tcp", srv.addrOf("tcp"))
	bob := dialRaw(t, "tcp", srv.addrOf("tcp"))
	var realID, realSID string
	expect := func(c *rawClient, i int) wire.Frame {
		t.Helper()
		got, err := c.next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		raw := wire.AppendFrame(nil, got.Header, got.Payload)
		want := frames[i]
		if realID != "" {
			want = bytes.ReplaceAll(want, []byte(docID), []byte(realID))
		}
		if realSID != "" {
			want = bytes.ReplaceAll(want, []byte(docSID), []byte(realSID))
		}
		if !bytes.Equal(raw, want) {
			t.Fatalf("frame %d from the server:\n got %x\nwant %x", i, raw, want)
		}
		return got
	}
	readID := func(f wire.Frame, into *string, size int, at int) {
		*into = string(f.Payload[at : at+size])
	}

	alice.write(frames[0]) // SignIn
	f, _ := alice.next()
	readID(f, &realSID, len(docSID), 2+1+len("alice")+1)
	if want := bytes.ReplaceAll(frames[1], []byte(docSID), []byte(realSID)); !bytes.Equal(wire.AppendFrame(nil, f.Header, f.Payload), want) {
		t.Fatalf("sign-in reply:\n got %x\nwant %x", wire.AppendFrame(nil, f.Header, f.Payload), want)
	}
	alice.write(frames[2]) // Create
	f, _ = alice.next()
	readID(f, &realID, len(docID), 1)
	if want := bytes.ReplaceAll(frames[3], []byte(docID), []byte(realID)); !bytes.Equal(wire.AppendFrame(nil, f.Header, f.Payload), want) {
		t.Fatalf("create reply:\n got %x\nwant %x", wire.AppendFrame(nil, f.Header, f.Payload), want)
	}

	bob.signIn("bob")
	if f := bob.call(wire.CmdJoin, (&wire.SessionRef{Type: 1, SessionID: realID}).Append(nil)); f.Status != wire.StatusOK {
		t.Fatalf("bob's join: %v", f.Status)
	}
	expect(alice, 4)       // MemberJoined
	alice.write(frames[5]) // Broadcast, seq 0
	expect(bob, 6)         // BroadcastReceived
	alice.write(frames[7]) // Kick herself
	expect(alice, 8)
	alice.write(frames[9]) // Ping
	expect(alice, 10)
	alice.write(frames[11]) // Bye
	expect(alice, 12)
	alice.expectClosed()
}
