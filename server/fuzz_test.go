package server

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/coveyhq/covey/wire"
)

// fuzzMaxInput is the most bytes of an input FuzzConnection sends, room
// for a few frames. The fuzzer minimizes every input that adds coverage
// before it reports progress again, running it with every range of bytes
// removed (~n*n/2 runs, ~1 ms each here): unbounded, it stalled for its
// limit of a minute on an input of about 1000 bytes. At 128 bytes that is
// at most ~8k runs.
const fuzzMaxInput = 128

// FuzzConnection feeds arbitrary bytes into a live, signed-in connection of
// a real server over loopback TCP. Whatever the bytes, the server must not
// crash, must answer a following ping or close that connection, and must
// leave another players' session untouched.
func FuzzConnection(f *testing.F) {
	srv := startServer(f, func(c *Config) { c.KCPAddr, c.HTTPAddr = "", "" })
	by := newBystanders(f, srv, "tcp")
	f.Fuzz(func(t *testing.T, data []byte) {
		// Cut with min, not an if: the if's branch would be coverage that
		// only longer inputs have, and minimizing one must keep it longer.
		data = data[:min(len(data), fuzzMaxInput)]
		c, err := net.DialTimeout("tcp", srv.TCPAddr().String(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		signIn := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdSignIn, Seq: 1}, (&wire.SignInRequest{MinVersion: 1, MaxVersion: 1, UserID: "fuzzer"}).Append(nil))
		ping := wire.AppendFrame(nil, wire.Header{Cmd: wire.CmdPing, Seq: 0xFFFFFFFF}, nil)
		// The data may leave a partial frame that swallows the ping. The
		// client then closes its write side at once: the server, which
		// would wait for the rest of the frame, sees the stream end inside
		// it, as when a client goes away, and closes. (With the deadline as
		// the only way out, 43% of the inputs took 100 ms each.) Replies
		// to the frames before are written before that.
		c.SetDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Write(append(append(signIn, data...), ping...)); err != nil {
			return // the server may close while we write
		}
		_ = c.(*net.TCPConn).CloseWrite() // fails only if the server closed already
		// Read until the ping's reply, a close, or the deadline.
		dec := wire.NewDecoder(wire.DefaultConfig())
		buf := make([]byte, 64<<10)
	read:
		for {
			for {
				fr, err := dec.Next()
				if errors.Is(err, wire.ErrNeedMore) {
					break
				}
				if err != nil {
					t.Fatalf("server sent an undecodable frame: %v", err)
				}
				if fr.Flags&wire.FlagReply != 0 && fr.Seq == 0xFFFFFFFF {
					break read
				}
			}
			n, err := c.Read(buf)
			if n > 0 {
				dec.Write(buf[:n])
			}
			if err != nil {
				break
			}
		}
		by.checkQuiet(t)
	})
}

// checkQuiet is check for the fuzzer: the same assertions, with the
// bystanders' own failures reported on t.
func (by *bystanders) checkQuiet(t *testing.T) {
	by.a.t, by.b.t = t, t
	by.check(t)
}
