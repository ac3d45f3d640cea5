package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"villagehub/hub/auth"
	"villagehub/hub/ingest"
	"villagehub/hub/testenv"
)

func newTestBroker(t *testing.T, cfg auth.Config) (*Broker, *auth.Hook) {
	t.Helper()
	b, h, stop, done := runTestBroker(t, cfg)
	t.Cleanup(func() { stop(); <-done })
	return b, h
}

// runTestBroker starts a broker on a free port with anonymous access;
// stop ends it and done is closed when it has shut down.
func runTestBroker(t *testing.T, cfg auth.Config) (b *Broker, h *auth.Hook, stop func(), done chan struct{}) {
	t.Helper()
	cfg.DataDir = t.TempDir()
	cfg.AllowAnonymous = true
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := auth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err = New(Config{Addr: "127.0.0.1:0", Prefix: "village", HubID: "h", Queue: ingest.NewQueue(16), Auth: h, Logger: cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	waitFor(t, func() bool { return b.Addr() != "127.0.0.1:0" })
	return b, h, cancel, done
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, "the condition", cond)
}

func metric(t *testing.T, c prometheus.Collector, name string, label ...string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.Metric {
			if len(label) == 2 && !hasLabel(m, label[0], label[1]) {
				continue
			}
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return v
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.Label {
		if l.GetName() == k && l.GetValue() == v {
			return true
		}
	}
	return false
}

// TestIdleConnectionClosedAndCounted: a connection that never sends
// CONNECT is closed after connect_timeout and counted.
func TestIdleConnectionClosedAndCounted(t *testing.T) {
	b, h := newTestBroker(t, auth.Config{ConnectTimeout: time.Second})
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, func() bool { return h.PendingConnections() == 1 })
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("closed after %v", d)
	}
	waitFor(t, func() bool { return metric(t, h, "villagehub_broker_connect_timeouts_total") == 1 })
	if h.PendingConnections() != 0 {
		t.Errorf("pending %d", h.PendingConnections())
	}
}

// TestKeepAliveDeadline: the connection's deadline is moved about once a
// second, not after every packet (auth's trackedConn.SetDeadline). A
// client that keeps its keep-alive of 1 s stays connected; one that falls
// silent is closed no earlier than 1.5 x keep-alive after its last packet
// [MQTT-3.1.2-24], and at most the slack of a second later.
func TestKeepAliveDeadline(t *testing.T) {
	b, _ := newTestBroker(t, auth.Config{ConnectTimeout: time.Second})
	dial := func(id string, ka uint16) net.Conn {
		c, err := net.Dial("tcp", b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write(connectPacketKA(id, ka)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil || buf[0] != 0x20 || buf[3] != 0 {
			t.Fatalf("CONNACK: % x, %v", buf, err)
		}
		return c
	}
	// A client with no keep-alive (0) has no deadline: not even the
	// gate's connect_timeout (1 s here) that it passed. It is checked
	// after the other client's 4 s.
	c0 := dial("ka-0", 0)
	c := dial("ka-1", 1)
	buf := make([]byte, 4)
	// Ten PINGREQs 0.4 s apart: 4 s, well past 1.5 s plus the slack.
	tick := time.NewTicker(400 * time.Millisecond)
	defer tick.Stop()
	for i := range 10 {
		<-tick.C
		if _, err := c.Write([]byte{0xc0, 0}); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
		if _, err := io.ReadFull(c, buf[:2]); err != nil || buf[0] != 0xd0 {
			t.Fatalf("PINGRESP %d: % x, %v (closed while keeping its keep-alive?)", i, buf[:2], err)
		}
	}
	last := time.Now()
	tick.Stop()
	if _, err := c.Read(buf); err != io.EOF {
		t.Fatalf("silent client: read %v, want EOF", err)
	}
	// The upper bound leaves room for a busy machine; the lower one is
	// exact: a deadline never fires early.
	d := time.Since(last)
	t.Logf("closed %v after the last ping", d)
	if d < 1500*time.Millisecond || d > 5*time.Second {
		t.Errorf("a silent client with keep-alive 1 s was closed after %v, want 1.5 s to 2.5 s", d)
	}
	if _, err := c0.Write([]byte{0xc0, 0}); err != nil {
		t.Fatalf("keep-alive 0: ping: %v", err)
	}
	if _, err := io.ReadFull(c0, buf[:2]); err != nil || buf[0] != 0xd0 {
		t.Fatalf("keep-alive 0: PINGRESP % x, %v (closed by a deadline?)", buf[:2], err)
	}
}

// failingListener fails Accept n times with EMFILE, then accepts.
type failingListener struct {
	net.Listener
	fails atomic.Int32
}

func (f *failingListener) Accept() (net.Conn, error) {
	if f.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return f.Listener.Accept()
}

// TestAcceptErrorsRetried: the listener keeps accepting after errors and
// reports them meanwhile.
func TestAcceptErrorsRetried(t *testing.T) {
	cfg := auth.Config{DataDir: t.TempDir(), AllowAnonymous: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h, err := auth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &failingListener{Listener: ln}
	fl.fails.Store(5)
	g := newGuardedTCP("tcp", ln.Addr().String(), nil, h)
	g.ln = fl
	got := make(chan net.Conn, 1)
	go g.Serve(func(_ string, c net.Conn) error { got <- c; return errors.New("done") })
	defer g.Close(func(string) {})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted after accept errors")
	}
	if h.AcceptHealthy() == nil {
		t.Error("accept errors within 5 s but the broker says healthy")
	}
	if v := metric(t, h, "villagehub_broker_accept_errors_total"); v != 5 {
		t.Errorf("accept errors counted %v, want 5", v)
	}
}

// TestWebSocketListenerGated: MQTT over WebSocket works, and a socket
// that never upgrades, or upgrades and never sends CONNECT, is closed
// after connect_timeout like a plain one.
func TestWebSocketListenerGated(t *testing.T) {
	t.Run("ws", func(t *testing.T) { testWebSocketGated(t, false) })
	t.Run("wss", func(t *testing.T) { testWebSocketGated(t, true) })
}

func testWebSocketGated(t *testing.T, secure bool) {
	var srvTLS, cliTLS *tls.Config
	scheme := "ws"
	if secure {
		dir := t.TempDir()
		ca := testenv.NewTestCA(t, dir)
		ca.Issue(t, dir+"/s.crt", dir+"/s.key", "127.0.0.1")
		pair, err := tls.LoadX509KeyPair(dir+"/s.crt", dir+"/s.key")
		if err != nil {
			t.Fatal(err)
		}
		srvTLS = &tls.Config{Certificates: []tls.Certificate{pair}}
		cliTLS = ca.ClientConfig("127.0.0.1")
		scheme = "wss"
	}
	cfg := auth.Config{ConnectTimeout: time.Second, DataDir: t.TempDir(), AllowAnonymous: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h, err := auth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	wsAddr := l.Addr().String()
	l.Close()
	b, err := New(Config{Addr: "127.0.0.1:0", Prefix: "village", HubID: "h", WSSAddr: wsAddr, TLS: srvTLS, Queue: ingest.NewQueue(16), Auth: h, Logger: cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, func() bool {
		c, err := net.Dial("tcp", wsAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	// A real client over WebSocket.
	cl := paho.NewClient(paho.NewClientOptions().AddBroker(scheme + "://" + wsAddr + "/mqtt").SetClientID("ws-dev").SetTLSConfig(cliTLS).SetAutoReconnect(false))
	if tok := cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT over WebSocket: %v", tok.Error())
	}
	cl.Disconnect(50)
	before := metric(t, h, "villagehub_broker_connect_timeouts_total")
	// Idle TCP, and an upgraded WebSocket that never sends CONNECT.
	idle, err := net.Dial("tcp", wsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	d := websocket.Dialer{TLSClientConfig: cliTLS}
	ws, _, err := d.Dial(scheme+"://"+wsAddr+"/mqtt", http.Header{"Sec-WebSocket-Protocol": {"mqtt"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	start := time.Now()
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF || time.Since(start) > 3*time.Second {
		t.Errorf("idle socket to the WebSocket port: %v after %v", err, time.Since(start))
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err == nil || time.Since(start) > 3*time.Second {
		t.Errorf("upgraded WebSocket without CONNECT: %v after %v", err, time.Since(start))
	}
	waitFor(t, func() bool { return metric(t, h, "villagehub_broker_connect_timeouts_total")-before >= 1 })
	// Both leave the gate as their connections close.
	waitFor(t, func() bool { return h.PendingConnections() == 0 })
}
