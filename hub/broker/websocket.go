package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"

	"villagehub/hub/auth"
)

// guardedWS is the MQTT over (secure) WebSocket listener: mochi's
// listeners.Websocket, but on a listener whose connections pass the same
// gate as the TCP ones (auth.Hook.Admit: bounded connections waiting for
// CONNECT, per source and in all, each with connect_timeout for its TLS
// handshake, HTTP upgrade and CONNECT), and whose accept errors count
// against readiness. net/http retries failed accepts itself.
type guardedWS struct {
	id, address string
	tls         *tls.Config
	gate        *auth.Hook
	guard       *attachGuard
	ln          net.Listener
	srv         *http.Server
	log         *slog.Logger
	establish   listeners.EstablishFn
	upgrader    websocket.Upgrader
	end         atomic.Bool
	mu          sync.Mutex
}

func newGuardedWS(id, address string, tc *tls.Config, gate *auth.Hook) *guardedWS {
	return &guardedWS{id: id, address: address, tls: tc, gate: gate,
		upgrader: websocket.Upgrader{Subprotocols: []string{"mqtt"},
			// Devices are not browsers visiting a site: there is no
			// origin to check (as mochi's listener).
			CheckOrigin: func(*http.Request) bool { return true }}}
}

func (l *guardedWS) ID() string { return l.id }

func (l *guardedWS) Protocol() string {
	if l.tls != nil {
		return "wss"
	}
	return "ws"
}

func (l *guardedWS) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.address
}

func (l *guardedWS) Init(log *slog.Logger) error {
	l.log = log
	ln, err := net.Listen("tcp", l.address)
	if err != nil {
		return err
	}
	l.ln = ln
	l.srv = &http.Server{
		Handler: http.HandlerFunc(l.handle),
		// net/http replaces the gate's deadline with this one while it
		// reads the TLS handshake and the upgrade request: the same span.
		ReadHeaderTimeout: l.gate.ConnectTimeout(),
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return nil
}

func (l *guardedWS) Serve(establish listeners.EstablishFn) {
	l.establish = establish
	var ln net.Listener = &gatedListener{Listener: l.ln, id: l.id, gate: l.gate}
	if l.tls != nil {
		ln = tls.NewListener(ln, l.tls)
	}
	_ = l.srv.Serve(ln)
}

func (l *guardedWS) handle(w http.ResponseWriter, r *http.Request) {
	c, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	under := c.UnderlyingConn()
	// net/http clears the connection's deadlines when it hands it over:
	// give back the gate's, until CONNECT.
	l.gate.Rearm(under)
	ws := &wsConn{Conn: under, c: c}
	if !l.guard.enter() {
		return // the broker is stopping
	}
	defer l.guard.leave()
	err = l.establish(l.id, ws)
	l.gate.Finished(ws, err)
}

func (l *guardedWS) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.end.CompareAndSwap(false, true) {
		return // closed once, clients with it (as guardedTCP)
	}
	if l.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.srv.Shutdown(ctx)
	}
	closeClients(l.id)
}

// gatedListener passes each accepted connection through the gate and
// reports accept errors (net/http retries them after a pause).
type gatedListener struct {
	net.Listener
	id   string
	gate *auth.Hook
}

func (g *gatedListener) Accept() (net.Conn, error) {
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				g.gate.AcceptFailed(g.id, err)
			}
			return nil, err
		}
		if tc, ok := g.gate.Admit(c); ok {
			return tc, nil
		}
	}
}

// wsConn is a WebSocket connection as a net.Conn of binary messages,
// after mochi's listeners.wsConn (MIT), plus NetConn so that the gate
// finds the connection under it.
type wsConn struct {
	net.Conn
	c *websocket.Conn
	r io.Reader // the current message, if any
}

func (ws *wsConn) NetConn() net.Conn { return ws.Conn }

func (ws *wsConn) Read(p []byte) (int, error) {
	if ws.r == nil {
		op, r, err := ws.c.NextReader()
		if err != nil {
			return 0, err
		}
		if op != websocket.BinaryMessage {
			return 0, listeners.ErrInvalidMessage
		}
		ws.r = r
	}
	var n int
	for n < len(p) {
		br, err := ws.r.Read(p[n:])
		n += br
		if err != nil {
			// Any error ends the current message: io.EOF because it is
			// over, anything else because the rest is not to be trusted.
			ws.r = nil
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return n, err
		}
	}
	return n, nil
}

func (ws *wsConn) Write(p []byte) (int, error) {
	if err := ws.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
