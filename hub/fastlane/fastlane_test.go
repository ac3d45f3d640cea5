package fastlane

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// lane serves /q/ fast ("fast <rest>") and everything else through a
// net/http server that echoes what it got, as the hub and gateway do.
type lane struct {
	addr       string
	fast, slow atomic.Int64
}

func newLane(t *testing.T, cfg Config) *lane {
	t.Helper()
	x := &lane{}
	cfg.Routes = []Route{{Prefix: "/q/", Serve: func(ctx *fasthttp.RequestCtx, rest string) bool {
		if strings.Contains(rest, "/") {
			return false // not ours: net/http
		}
		x.fast.Add(1)
		ctx.Response.Header.Set("Location", "https://example.vn/"+rest)
		ctx.SetStatusCode(http.StatusFound)
		return true
	}}}
	cfg.Header = [][2]string{{"X-Content-Type-Options", "nosniff"}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, cfg)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x.slow.Add(1)
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "slow %s %s ua=%q cookie=%q len=%d body=%q", r.Method, r.URL.RequestURI(), r.UserAgent(), r.Header.Get("Cookie"), r.ContentLength, body)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l.Slow())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
		srv.Close()
	})
	x.addr = ln.Addr().String()
	return x
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func read(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b)
}

// A connection that starts with /q/ is served fast; when it later asks for
// other paths (a POST with a body, a chunked body, a /q/ path the route
// declines) each is handed to net/http exactly as sent, and net/http
// serves the rest of the connection.
func TestHandOffKeepsTheRequest(t *testing.T) {
	x := newLane(t, Config{})
	c, br := dial(t, x.addr)
	fmt.Fprint(c, "GET /q/market-07 HTTP/1.1\r\nHost: hub\r\nUser-Agent: phone\r\n\r\n")
	res, _ := read(t, br)
	if res.StatusCode != 302 || res.Header.Get("Location") != "https://example.vn/market-07" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("fast answer: %d %v", res.StatusCode, res.Header)
	}
	fmt.Fprint(c, "POST /login?next=%2F HTTP/1.1\r\nHost: hub\r\nuser-agent: phone\r\nCookie: a=1; b=2\r\nContent-Length: 9\r\n\r\nuser=lan&")
	if _, body := read(t, br); body != `slow POST /login?next=%2F ua="phone" cookie="a=1; b=2" len=9 body="user=lan&"` {
		t.Fatalf("handed-off POST: %s", body)
	}
	// net/http owns the connection now, /q/ included.
	fmt.Fprint(c, "GET /q/gate HTTP/1.1\r\nHost: hub\r\n\r\n")
	if _, body := read(t, br); !strings.HasPrefix(body, "slow GET /q/gate") {
		t.Fatalf("after the hand-off: %s", body)
	}
	if x.fast.Load() != 1 || x.slow.Load() != 2 {
		t.Fatalf("fast %d, slow %d", x.fast.Load(), x.slow.Load())
	}

	// A chunked body arrives at net/http with its length.
	c2, br2 := dial(t, x.addr)
	fmt.Fprint(c2, "GET /q/a HTTP/1.1\r\nHost: hub\r\n\r\n"+
		"POST /api HTTP/1.1\r\nHost: hub\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n")
	read(t, br2)
	if _, body := read(t, br2); body != `slow POST /api ua="" cookie="" len=7 body="abcdefg"` {
		t.Fatalf("chunked: %s", body)
	}
	// A fast prefix the route declines is net/http's.
	c3, br3 := dial(t, x.addr)
	fmt.Fprint(c3, "GET /q/a/b HTTP/1.1\r\nHost: hub\r\n\r\n")
	if _, body := read(t, br3); !strings.HasPrefix(body, "slow GET /q/a/b") {
		t.Fatalf("declined: %s", body)
	}
}

// Pipelined requests, fast then slow then fast, are answered in order.
func TestPipelined(t *testing.T) {
	x := newLane(t, Config{})
	c, br := dial(t, x.addr)
	fmt.Fprint(c, "GET /q/one HTTP/1.1\r\nHost: hub\r\n\r\nGET /healthz HTTP/1.1\r\nHost: hub\r\n\r\nGET /q/two HTTP/1.1\r\nHost: hub\r\n\r\n")
	if res, _ := read(t, br); res.Header.Get("Location") != "https://example.vn/one" {
		t.Fatalf("first: %v", res.Header)
	}
	if _, body := read(t, br); !strings.HasPrefix(body, "slow GET /healthz") {
		t.Fatalf("second: %s", body)
	}
	if _, body := read(t, br); !strings.HasPrefix(body, "slow GET /q/two") {
		t.Fatalf("third: %s", body)
	}
}

// Connections are routed by their first request: other methods and paths,
// and HEAD of /q/.
func TestRouting(t *testing.T) {
	x := newLane(t, Config{})
	for _, c := range []struct {
		req  string
		fast bool
	}{
		{"GET /q/x HTTP/1.1\r\nHost: h\r\n\r\n", true},
		{"HEAD /q/x HTTP/1.1\r\nHost: h\r\n\r\n", true},
		{"GET /qr/x.png HTTP/1.1\r\nHost: h\r\n\r\n", false},
		{"POST /q/x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", false},
		{"GET / HTTP/1.1\r\nHost: h\r\n\r\n", false},
		{"GET /q HTTP/1.1\r\nHost: h\r\n\r\n", false},
	} {
		f0, s0 := x.fast.Load(), x.slow.Load()
		conn, br := dial(t, x.addr)
		fmt.Fprint(conn, c.req)
		res, err := http.ReadResponse(br, &http.Request{Method: strings.Fields(c.req)[0]})
		if err != nil {
			t.Fatalf("%q: %v", c.req, err)
		}
		res.Body.Close()
		if got := x.fast.Load() > f0; got != c.fast || (x.slow.Load() > s0) == c.fast {
			t.Errorf("%q: fast %v, want %v", c.req, got, c.fast)
		}
		conn.Close()
	}
}

// A request line that arrives in pieces: peek waits for enough bytes to
// tell, and decides on the whole prefix. The rest is sent only once peek
// has seen the first piece (no timing involved).
func TestPeekWaitsForSplitLine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l := New(ln, Config{Routes: []Route{{Prefix: "/q/"}}})
	client, _ := dial(t, ln.Addr().String())
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	sawPiece := make(chan struct{})
	var once sync.Once
	type result struct {
		n   int
		err error
	}
	got := make(chan result, 1)
	var buf [16]byte
	go func() {
		n, err := peek(server, buf[:], 10*time.Second, func(p []byte) bool {
			more := l.wantMore(p)
			if more {
				once.Do(func() { close(sawPiece) })
			}
			return more
		})
		got <- result{n, err}
	}()
	fmt.Fprint(client, "GET /")
	select {
	case <-sawPiece:
	case <-time.After(10 * time.Second):
		t.Fatal("peek never saw the first piece")
	}
	fmt.Fprint(client, "q/split HTTP/1.1\r\nHost: h\r\n\r\n")
	r := <-got
	if r.err != nil || !l.isFast(buf[:r.n]) {
		t.Fatalf("peek: %q, %v: want a fast request line", buf[:r.n], r.err)
	}
	// Nothing was consumed: the connection still reads from the start.
	b := make([]byte, 5)
	if _, err := io.ReadFull(server, b); err != nil || string(b) != "GET /" {
		t.Fatalf("after peek the connection reads %q, %v", b, err)
	}
}

// A client that connects and sends nothing is closed after the read
// timeout, and meanwhile others are served.
func TestSilentClientClosed(t *testing.T) {
	x := newLane(t, Config{ReadTimeout: 300 * time.Millisecond})
	silent, _ := dial(t, x.addr)
	c, br := dial(t, x.addr)
	fmt.Fprint(c, "GET /q/x HTTP/1.1\r\nHost: h\r\n\r\n")
	if res, _ := read(t, br); res.StatusCode != 302 {
		t.Fatalf("status %d", res.StatusCode)
	}
	start := time.Now()
	if n, err := silent.Read(make([]byte, 1)); err == nil {
		t.Fatalf("silent client got %d bytes", n)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("silent client held %v", el)
	}
}

// The lane against Go's own client and many connections at once: every
// request answered by the right side. Each client keeps its own
// connections (a connection that began with /page stays net/http's).
func TestManyClients(t *testing.T) {
	x := newLane(t, Config{Yield: true}) // as the hub runs it
	errs := make(chan error, 40)
	for i := range 40 {
		go func() {
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			noFollow := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			path := fmt.Sprintf("/q/b%d", i)
			if i%4 == 0 {
				path = "/page"
			}
			var err error
			for range 25 {
				var res *http.Response
				if res, err = noFollow.Get("http://" + x.addr + path); err != nil {
					break
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if i%4 != 0 && res.StatusCode != 302 || i%4 == 0 && res.StatusCode != 200 {
					err = fmt.Errorf("%s: %d", path, res.StatusCode)
					break
				}
			}
			errs <- err
		}()
	}
	for range 40 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if x.fast.Load() != 30*25 || x.slow.Load() != 10*25 {
		t.Fatalf("fast %d, slow %d", x.fast.Load(), x.slow.Load())
	}
}
