package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// The covey adapter has its own codec (it imports nothing from Covey), so
// these tests pin the bytes it sends and the replies it accepts against the
// examples of PROTOCOL.md: a fake server on loopback expects exact frames and
// answers with golden ones.

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "|", "").Replace(s))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// A script step: the frame the fake server expects from the client, then the
// frames it answers with.
type coveyStep struct {
	expect string
	answer []string
}

// fakeCovey plays steps on the first connection it accepts and reports the
// first mismatch on the returned channel (nil once every step is played).
// The connection stays open until the test ends.
func fakeCovey(t *testing.T, steps []coveyStep) (addr string, done <-chan error) {
	t.Helper()
	type step struct {
		expect []byte
		answer [][]byte
	}
	var script []step
	for _, st := range steps {
		s := step{expect: unhex(t, st.expect)}
		for _, a := range st.answer {
			s.answer = append(s.answer, unhex(t, a))
		}
		script = append(script, s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 1)
	t.Cleanup(func() {
		ln.Close()
		select {
		case nc := <-conns:
			nc.Close()
		default:
		}
	})
	ch := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			ch <- err
			return
		}
		conns <- nc
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		for _, st := range script {
			got := make([]byte, len(st.expect))
			if _, err := io.ReadFull(nc, got); err != nil {
				ch <- err
				return
			}
			if !bytes.Equal(got, st.expect) {
				ch <- &frameMismatch{got: got, want: st.expect}
				return
			}
			for _, a := range st.answer {
				if _, err := nc.Write(a); err != nil {
					ch <- err
					return
				}
			}
		}
		ch <- nil
	}()
	return ln.Addr().String(), ch
}

type frameMismatch struct{ got, want []byte }

func (e *frameMismatch) Error() string {
	return "client sent " + hex.EncodeToString(e.got) + ", want " + hex.EncodeToString(e.want)
}

const (
	// SignIn, seq 1, versions 1 to 1, dev mode, UserID "lg-0-0".
	signInLG00 = "0000000c 00 0001 00 00000001 0000 | 0001 0001 00 06 6c672d302d30"
	// SignInReply golden vector: version 1, alice, c1, 1000 ms, 65536, 65280.
	signInReplyV1 = "00000017 00 0001 01 00000001 0000 | 0001 05 616c696365 02 6331 000003e8 00010000 0000ff00"
)

func TestCoveyConnectSendsV1FramesAndDelivers(t *testing.T) {
	addr, done := fakeCovey(t, []coveyStep{
		{expect: signInLG00, answer: []string{signInReplyV1}},
		// Create, seq 2: Type 1, MaxMembers 8, TTLSeconds 60, Flags 0, no properties.
		{expect: "00000007 00 0101 00 00000002 0000 | 01 0008 003c 00 00",
			answer: []string{"00000003 00 0101 01 00000002 0000 | 02 7331"}},
		// Broadcast, seq 0: Type 1, Msg "hi"; then a seq-0 Ping reply (ignored)
		// and the golden BroadcastReceived push.
		{expect: "00000004 00 0105 00 00000000 0000 | 01 02 6869",
			answer: []string{
				"00000000 00 0002 01 00000000 0000",
				"0000000d 00 0206 02 00000000 0000 | 01 02 7331 05 616c696365 02 6869",
			}},
	})
	p := &coveyPeer{cfg: PeerConfig{Addr: addr, Rooms: 1, Members: 8, Size: 2},
		sessions: make(map[int]string), stop: make(chan struct{})}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := p.Connect(ctx, 0, 0)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer c.Close()
	if got := p.sessions[0]; got != "s1" {
		t.Fatalf("session of room 0 = %q, want s1", got)
	}
	if err := c.Send([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go c.Receive(func(b []byte) {
		select {
		case got <- string(b):
		default:
		}
	})
	select {
	case msg := <-got:
		if msg != "hi" {
			t.Fatalf("delivered %q, want hi", msg)
		}
	case err := <-done:
		t.Fatalf("fake server: %v", err)
	case <-ctx.Done():
		t.Fatal("no delivery")
	}
	if err := <-done; err != nil {
		t.Fatalf("fake server: %v", err)
	}
}

func TestCoveyConnectRefusesOtherSignInOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name, reply, errWant string
	}{
		{"version not offered", "00000017 00 0001 01 00000001 0000 | 0002 05 616c696365 02 6331 000003e8 00010000 0000ff00",
			"protocol version 2"},
		{"BadVersion", "00000000 00 0001 01 00000001 000b", "status 11"},
		{"pre-v1 reply", "00000011 00 0001 01 00000001 0000 | 05 616c696365 02 6331 000003e8 00010000",
			"protocol version 1377"}, // 0x0561: the UserID's length and first byte
		{"MaxMessage under the size", "00000017 00 0001 01 00000001 0000 | 0001 05 616c696365 02 6331 000003e8 00010000 00000001",
			"MaxMessage 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, _ := fakeCovey(t, []coveyStep{{expect: signInLG00, answer: []string{tc.reply}}})
			p := &coveyPeer{cfg: PeerConfig{Addr: addr, Rooms: 1, Members: 8, Size: 2},
				sessions: make(map[int]string), stop: make(chan struct{})}
			defer p.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := p.Connect(ctx, 0, 0)
			if err == nil {
				c.Close()
				t.Fatal("Connect succeeded")
			}
			if !strings.Contains(err.Error(), tc.errWant) {
				t.Fatalf("Connect: %v, want an error mentioning %q", err, tc.errWant)
			}
		})
	}
}
