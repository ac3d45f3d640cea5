// Package fastlane serves a few hot paths of a plain-HTTP listener with
// fasthttp and leaves everything else to net/http, on the same port.
//
// Why: a printed QR code's /q/ redirect is the one request a crowd sends
// (a market day, a whole province behind one gateway), and it is tiny: a
// few header reads, a counter, a 302. net/http spends most of its time on
// per-request allocations and header maps around that; fasthttp, which
// reuses its request objects, answers the same 302 at about nginx's rate on
// the same machine (docs/performance.md). The dashboard, the API, login,
// server-sent events and everything else stay on net/http, whose
// behaviour (timeouts, streaming, the access rules of hub/web) they rely on.
//
// How: each accepted connection's first bytes are looked at without
// consuming them (recv with MSG_PEEK). A connection whose first request is
// GET or HEAD of a fast prefix is served by fasthttp; every other
// connection goes, untouched, to the listener net/http serves. When a
// connection that started fast later asks for a path no fast route takes
// (a browser reusing it after a redirect to a page on the same host), that
// request is written back out as it came and the connection is handed to
// net/http, which serves it and the rest of the connection.
//
// TLS listeners are not split: use net/http alone there (hub/web does).
package fastlane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Route is one fast prefix. Serve answers a request whose path starts with
// Prefix (rest is the path after it, already percent-decoded and cleaned
// by fasthttp) and reports true, or reports false without touching ctx to
// hand the request to net/http.
type Route struct {
	Prefix string
	Serve  func(ctx *fasthttp.RequestCtx, rest string) bool
}

// Config configures a Lane.
type Config struct {
	Routes []Route
	// Header is set on every fast answer before its route runs (the
	// server-wide headers net/http's handler chain would have added).
	Header [][2]string
	// ReadTimeout bounds reading one request on a fast connection, headers
	// and body (net/http's ReadHeaderTimeout is the closest); IdleTimeout
	// the wait for the next request. MaxHeaderBytes and MaxBodyBytes as in
	// net/http. Zero values: 5 s, 2 min, 16 KiB, 1 MiB.
	ReadTimeout    time.Duration
	IdleTimeout    time.Duration
	MaxHeaderBytes int
	MaxBodyBytes   int
	Logger         *slog.Logger
	// Yield lets other connections run before a fast answer is written
	// (runtime.Gosched): a client whose next request is already waiting
	// otherwise keeps its thread request after request while the other
	// connections queue behind it. Measured on the hub's /q/: p99 15–45 %
	// lower for about 3 % of the rate and 1 µs of CPU per request
	// (docs/performance.md). The hub sets it; the gateway, a throughput
	// service whose requests cost more with it (3.5 µs), does not.
	Yield bool
}

// Lane splits one listener between fasthttp (the fast routes) and
// net/http (Slow).
type Lane struct {
	ln     net.Listener
	routes []Route
	header [][2]string
	yield  bool
	fast   *fasthttp.Server
	fastLn *chanListener
	slowLn *chanListener
	sniff  time.Duration
	log    *slog.Logger
	wg     sync.WaitGroup
}

// New splits ln. Serve the returned Lane's Slow listener with net/http and
// call Run.
func New(ln net.Listener, cfg Config) *Lane {
	l := &Lane{
		ln:     ln,
		routes: cfg.Routes,
		header: cfg.Header,
		yield:  cfg.Yield,
		fastLn: newChanListener(ln.Addr()),
		slowLn: newChanListener(ln.Addr()),
		sniff:  orDur(cfg.ReadTimeout, 5*time.Second),
		log:    cfg.Logger,
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	l.fast = &fasthttp.Server{
		Handler:     l.serve,
		ReadTimeout: l.sniff,
		IdleTimeout: orDur(cfg.IdleTimeout, 2*time.Minute),
		// fasthttp's read buffer bounds the request head, as
		// MaxHeaderBytes does in net/http.
		ReadBufferSize:               max(cfg.MaxHeaderBytes, 16<<10),
		MaxRequestBodySize:           max(cfg.MaxBodyBytes, 1<<20),
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		KeepHijackedConns:            true, // net/http owns a handed-off connection
		CloseOnShutdown:              true,
		Logger:                       logger{l.log},
	}
	return l
}

func orDur(v, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return v
}

// Slow is the listener for net/http: connections that did not start with
// a fast request, and those handed off later.
func (l *Lane) Slow() net.Listener { return l.slowLn }

// Run accepts connections until ctx ends (then it returns nil) or the
// listener fails or is closed by someone else (an error), then closes the
// listener, stops the fast server (closing its connections once their
// request is answered) and returns. Shut net/http down separately.
func (l *Lane) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- l.fast.Serve(l.fastLn) }()
	accepted := make(chan error, 1)
	go func() { accepted <- l.accept() }()
	var err error
	select {
	case <-ctx.Done():
		l.ln.Close()
		err = <-accepted // nil: closed by us
	case err = <-accepted:
		l.ln.Close()
		if err == nil {
			err = net.ErrClosed // closed by someone else
		}
	}
	l.wg.Wait() // no sniffer is still handing out connections
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.fast.ShutdownWithContext(sctx)
	l.fastLn.Close()
	l.slowLn.Close()
	if ferr := <-errc; err == nil && ferr != nil && !errors.Is(ferr, net.ErrClosed) {
		err = ferr
	}
	return err
}

func (l *Lane) accept() error {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond) // out of file descriptors: as net/http does, back off
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.route(c)
		}()
	}
}

// route waits for the connection's first bytes and hands it to one side.
// A connection that sends nothing within the read timeout is closed, as
// net/http would close it.
func (l *Lane) route(c net.Conn) {
	var buf [16]byte
	n, err := peek(c, buf[:], l.sniff, l.wantMore)
	if err != nil && n == 0 {
		if errors.Is(err, errNoPeek) {
			l.slowLn.push(c)
			return
		}
		c.Close()
		return
	}
	if l.isFast(buf[:n]) {
		l.fastLn.push(c)
		return
	}
	l.slowLn.push(c)
}

// wantMore reports whether the first bytes p could still become a fast
// request line: peeking goes on until they cannot or they are one.
func (l *Lane) wantMore(p []byte) bool {
	if l.isFast(p) {
		return false
	}
	for _, m := range [...]string{"GET ", "HEAD "} {
		for _, r := range l.routes {
			line := m + r.Prefix
			if len(p) < len(line) && bytes.HasPrefix([]byte(line), p) {
				return true
			}
		}
	}
	return false
}

func (l *Lane) isFast(p []byte) bool {
	for _, m := range [...]string{"GET ", "HEAD "} {
		if !bytes.HasPrefix(p, []byte(m)) {
			continue
		}
		for _, r := range l.routes {
			if bytes.HasPrefix(p[len(m):], []byte(r.Prefix)) {
				return true
			}
		}
	}
	return false
}

// serve is fasthttp's handler: a fast route, or the hand-off.
func (l *Lane) serve(ctx *fasthttp.RequestCtx) {
	if ctx.IsGet() || ctx.IsHead() {
		path := ctx.Path()
		for _, r := range l.routes {
			if !bytes.HasPrefix(path, []byte(r.Prefix)) {
				continue
			}
			for _, h := range l.header {
				ctx.Response.Header.Set(h[0], h[1])
			}
			if r.Serve(ctx, string(path[len(r.Prefix):])) {
				if l.yield {
					runtime.Gosched()
				}
				return
			}
			ctx.Response.Reset()
			break
		}
	}
	l.handOff(ctx)
}

// handOff gives the connection to net/http with this request written back
// in front of whatever the client sent after it.
func (l *Lane) handOff(ctx *fasthttp.RequestCtx) {
	head := replay(&ctx.Request)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		l.slowLn.push(&replayConn{Conn: c, r: io.MultiReader(bytes.NewReader(head), c)})
	})
}

// replay is the request as it came (request line and raw header lines in
// their order; fasthttp may have re-cased the names, which HTTP ignores),
// followed by its body. fasthttp has already
// read a body and undone chunking, so Transfer-Encoding and
// Content-Length are replaced by the length of the body read.
func replay(req *fasthttp.Request) []byte {
	var b bytes.Buffer
	b.Write(req.Header.Method())
	b.WriteByte(' ')
	b.Write(req.Header.RequestURI())
	b.WriteByte(' ')
	b.Write(req.Header.Protocol())
	b.WriteString("\r\n")
	raw := req.Header.RawHeaders()
	hadLength := false
	for len(raw) > 0 {
		line := raw
		if i := bytes.Index(raw, []byte("\r\n")); i >= 0 {
			line, raw = raw[:i], raw[i+2:]
		} else {
			raw = nil
		}
		if len(line) == 0 {
			continue
		}
		name, _, _ := bytes.Cut(line, []byte(":"))
		name = bytes.TrimSpace(name)
		if bytes.EqualFold(name, []byte("Transfer-Encoding")) || bytes.EqualFold(name, []byte("Content-Length")) {
			hadLength = true
			continue
		}
		b.Write(line)
		b.WriteString("\r\n")
	}
	body := req.Body()
	if hadLength || len(body) > 0 {
		b.WriteString("Content-Length: ")
		b.WriteString(strconv.Itoa(len(body)))
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// replayConn reads the replayed request first, then the connection.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// chanListener is a net.Listener fed by the Lane.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c to the listener's Accept, or closes it once the listener
// is closed.
func (l *chanListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// logger sends fasthttp's messages (client errors: bad requests, timeouts)
// to slog at debug level, as hub/web does with net/http's.
type logger struct{ l *slog.Logger }

func (g logger) Printf(format string, args ...any) {
	if g.l.Enabled(context.Background(), slog.LevelDebug) {
		g.l.Debug("fastlane: " + fmt.Sprintf(format, args...))
	}
}
