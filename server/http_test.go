package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// What one attacker holds against the public HTTP
// listener in issue 10 (item 8): idle keep-alive connections and POSTs
// that drip their body.
const (
	idleClients     = 130
	slowBodyClients = 200
)

// TestHTTPSlowClientsLeaveHealthAnswering: with 130 idle keep-alive
// connections and 200 POSTs dripping their body (wrong API key) on the
// public listener, /healthz on the admin listener answers at once and a
// fresh POST /v1/token on the public one within a bound (its ReadTimeout,
// 1 s here, plus slack). Before, every endpoint timed out for 60 s.
func TestHTTPSlowClientsLeaveHealthAnswering(t *testing.T) {
	lim := publicHTTPLimits
	lim.readHeaderTimeout, lim.readTimeout = 500*time.Millisecond, time.Second
	lim.idleTimeout = time.Minute // room is made by closing idle connections, not by their timeout
	srv := startServer(t, func(c *Config) {
		c.Secret, c.APIKey = testSecret, testAPIKey
		c.publicHTTP = lim
	})
	public := srv.HTTPAddr().String()

	// Idle keep-alive connections, each having had one reply: every one
	// gets it (the oldest idle ones are closed to make room).
	for i := range idleClients {
		c := dialHTTP(t, public)
		fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: covey\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("idle client %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	// POSTs dripping one byte of body every 100 ms.
	slow := make([]net.Conn, slowBodyClients)
	for i := range slow {
		slow[i] = dialHTTP(t, public)
		fmt.Fprint(slow[i], "POST /v1/token HTTP/1.1\r\nHost: covey\r\nAuthorization: Bearer wrong-key\r\n"+
			"Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n{")
	}
	stop := make(chan struct{})
	var drip sync.WaitGroup
	drip.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				for _, c := range slow {
					c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
					c.Write([]byte(" "))
				}
			}
		}
	})
	defer drip.Wait()
	defer close(stop)
	waitUntil(t, "the slow POSTs hold every place of the public listener", func() bool {
		open, idle := srv.public.conns.counts()
		return open == lim.maxConns && idle == 0
	})

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: testTimeout}
	start := time.Now()
	resp, err := client.Get("http://" + srv.AdminAddr().String() + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("admin /healthz under the flood: %v %v", resp, err)
	}
	resp.Body.Close()
	took := time.Since(start)
	t.Logf("admin /healthz answered in %v", took)
	if took > 500*time.Millisecond {
		t.Errorf("admin /healthz took %v", took)
	}

	start = time.Now()
	req, _ := http.NewRequest(http.MethodPost, "http://"+public+"/v1/token", strings.NewReader(`{"user_id":"alice"}`))
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	resp, err = client.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("fresh POST /v1/token under the flood: %v %v", resp, err)
	}
	resp.Body.Close()
	took = time.Since(start)
	t.Logf("fresh POST /v1/token answered in %v", took)
	if bound := lim.readTimeout + 2*time.Second; took > bound {
		t.Errorf("fresh POST /v1/token took %v, want at most %v", took, bound)
	}
}

// TestHTTPIdleConnsMakeRoom: when every place is taken by idle keep-alive
// connections, a new client is served at once and the connection idle the
// longest is closed for it.
func TestHTTPIdleConnsMakeRoom(t *testing.T) {
	lim := publicHTTPLimits
	lim.maxConns, lim.idleTimeout = 4, time.Minute
	srv := startServer(t, func(c *Config) { c.publicHTTP = lim })
	addr := srv.HTTPAddr().String()
	idle := make([]*bufio.Reader, lim.maxConns)
	conns := make([]net.Conn, lim.maxConns)
	for i := range conns {
		conns[i] = dialHTTP(t, addr)
		idle[i] = bufio.NewReader(conns[i])
		fmt.Fprint(conns[i], "GET /healthz HTTP/1.1\r\nHost: covey\r\n\r\n")
		resp, err := http.ReadResponse(idle[i], nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		// The server notes a connection idle after the response is out,
		// so the client can read it first: wait, so that the connections
		// go idle in their order (the next one's hook could come first).
		waitUntil(t, fmt.Sprintf("connection %d idle", i), func() bool {
			open, idle := srv.public.conns.counts()
			return open == i+1 && idle == i+1
		})
	}

	start := time.Now()
	if got := httpStatus(t, srv.HTTPAddr(), "/healthz"); got != http.StatusOK {
		t.Fatalf("new client: %d", got)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("new client waited %v for a place", took)
	}
	conns[0].SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := idle[0].ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("the oldest idle connection: read %v, want EOF (closed)", err)
	}
	for i := 1; i < len(conns); i++ {
		conns[i].SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := idle[i].ReadByte(); !isTimeout(err) {
			t.Errorf("idle connection %d: read %v, want it still open", i, err)
		}
	}
}

// TestHTTPSlowHeaderClosed: a client that sends part of its headers and
// stops is closed at ReadHeaderTimeout.
func TestHTTPSlowHeaderClosed(t *testing.T) {
	lim := publicHTTPLimits
	lim.readHeaderTimeout = 200 * time.Millisecond
	srv := startServer(t, func(c *Config) { c.publicHTTP = lim })
	c := dialHTTP(t, srv.HTTPAddr().String())
	start := time.Now()
	fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: covey\r\nX-Slow: ")
	waitClosed(t, c)
	if took := time.Since(start); took < lim.readHeaderTimeout-50*time.Millisecond || took > lim.readHeaderTimeout+2*time.Second {
		t.Errorf("closed after %v, want about %v", took, lim.readHeaderTimeout)
	}
}

// TestHTTPSlowBodyClosed: a POST that drips its body is cut at
// ReadTimeout.
func TestHTTPSlowBodyClosed(t *testing.T) {
	lim := publicHTTPLimits
	lim.readTimeout = 300 * time.Millisecond
	srv := startServer(t, func(c *Config) { c.Secret, c.APIKey, c.publicHTTP = testSecret, testAPIKey, lim })
	c := dialHTTP(t, srv.HTTPAddr().String())
	start := time.Now()
	fmt.Fprint(c, "POST /v1/token HTTP/1.1\r\nHost: covey\r\nAuthorization: Bearer "+testAPIKey+"\r\nContent-Length: 100\r\n\r\n{")
	waitClosed(t, c)
	if took := time.Since(start); took > lim.readTimeout+2*time.Second {
		t.Errorf("closed after %v, want about %v", took, lim.readTimeout)
	}
}

// TestHTTPRequestSizeCaps: headers over MaxHeaderBytes get 431, and a
// /v1/token body declared over tokenMaxBody gets 413 unread.
func TestHTTPRequestSizeCaps(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.Secret, c.APIKey = testSecret, testAPIKey })
	addr := srv.HTTPAddr().String()
	c := dialHTTP(t, addr)
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: covey\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 2*publicHTTPLimits.maxHeaderBytes))
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("%d bytes of headers: %v %v, want 431", 2*publicHTTPLimits.maxHeaderBytes, resp, err)
	}

	c = dialHTTP(t, addr)
	fmt.Fprintf(c, "POST /v1/token HTTP/1.1\r\nHost: covey\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", testAPIKey, tokenMaxBody+1)
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a %d-byte body: %v %v, want 413", tokenMaxBody+1, resp, err)
	}
}

// TestPprofCmdlineRedactsSecrets: with pprof on, /debug/pprof/cmdline on
// the admin listener shows the command line without the secret, the API
// key or the cluster secret, in any of the flag forms.
func TestPprofCmdlineRedactsSecrets(t *testing.T) {
	const clusterSecret = "cluster-secret-0123456789"
	saved := os.Args
	t.Cleanup(func() { os.Args = saved })
	os.Args = append(slices.Clone(saved), "-secret", testSecret, "--api-key="+testAPIKey,
		"-cluster-secret="+clusterSecret, "-node", "n1")
	srv := startServer(t, func(c *Config) {
		c.Secret, c.APIKey, c.Pprof = testSecret, testAPIKey, true
		c.Cluster = ClusterConfig{MeshAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", Secret: clusterSecret}
	})
	resp, err := http.Get("http://" + srv.AdminAddr().String() + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got := string(body)
	for _, secret := range []string{testSecret, testAPIKey, clusterSecret} {
		if strings.Contains(got, secret) {
			t.Errorf("cmdline shows %q: %q", secret, got)
		}
	}
	if want := "\x00-secret\x00REDACTED\x00--api-key=REDACTED\x00-cluster-secret=REDACTED\x00-node\x00n1"; resp.StatusCode != http.StatusOK || !strings.HasSuffix(got, want) {
		t.Errorf("cmdline: %d %q, want it to end with %q", resp.StatusCode, got, want)
	}
}

// TestRedactArgs: the configured secrets are redacted wherever they are,
// and the values of flags named like secrets whatever they are.
func TestRedactArgs(t *testing.T) {
	for _, c := range []struct {
		args, secrets, want []string
	}{
		{[]string{"server", "-secret", "s3cret-s3cret-s3cret"}, nil, []string{"server", "-secret", redacted}},
		{[]string{"server", "--api-key=k", "-node=n"}, nil, []string{"server", "--api-key=" + redacted, "-node=n"}},
		{[]string{"server", "-cluster-secret", "x", "-pprof"}, nil, []string{"server", "-cluster-secret", redacted, "-pprof"}},
		{[]string{"server", "-DB_PASSWORD=p", "-x"}, nil, []string{"server", "-DB_PASSWORD=" + redacted, "-x"}},
		// A secret given under another flag's name, or inside another value.
		{[]string{"server", "-s", "topsecret", "-dsn=u:topsecret@h"}, []string{"topsecret"}, []string{"server", "-s", redacted, "-dsn=u:" + redacted + "@h"}},
		// The longer secret first, when one contains the other.
		{[]string{"server", "-x=abcdef"}, []string{"abc", "abcdef", ""}, []string{"server", "-x=" + redacted}},
		{[]string{"server", "-tcp", "127.0.0.1:7700"}, []string{"k"}, []string{"server", "-tcp", "127.0.0.1:7700"}},
	} {
		if got := redactArgs(c.args, c.secrets...); !slices.Equal(got, c.want) {
			t.Errorf("redactArgs(%q, %q) = %q, want %q", c.args, c.secrets, got, c.want)
		}
	}
}

// dialHTTP opens a TCP connection to addr, closed at the end of the test.
func dialHTTP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitClosed reads c until the server closes it, failing at testTimeout.
func waitClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testTimeout))
	_, err := io.Copy(io.Discard, c)
	if isTimeout(err) {
		t.Fatal("the server did not close the connection")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
