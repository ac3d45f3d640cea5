package auth_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"villagehub/hub/auth"
	"villagehub/hub/broker"
	"villagehub/hub/testenv"
)

// rig is an embedded broker built the way the hub builds one: mochi with
// the inline client, the auth hook installed, a TCP listener and
// optionally a TLS one, on free loopback ports.
type rig struct {
	srv     *mqtt.Server
	hook    *auth.Hook
	url     string // tcp://
	tlsAddr string
	wssAddr string
	creds   string
	reg     *prometheus.Registry
	cancel  context.CancelFunc
	runDone chan struct{}
}

type rigOptions struct {
	cfg auth.Config
	tls *tls.Config // adds a TLS listener when set
	wss bool        // and a secure WebSocket one
}

func startRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	dir := t.TempDir()
	cfg := o.cfg
	cfg.DataDir = dir
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		cfg.Logger = slog.Default()
	}
	r := &rig{creds: cfg.CredentialsPath(dir)}
	return r.start(t, cfg, o.tls, o.wss)
}

func (r *rig) start(t *testing.T, cfg auth.Config, tlsCfg *tls.Config, wss bool) *rig {
	t.Helper()
	h, err := auth.New(cfg)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := h.Install(srv); err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreeAddr(t)
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		t.Fatal(err)
	}
	if tlsCfg != nil {
		r.tlsAddr = testenv.FreeAddr(t)
		if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "tls", Address: r.tlsAddr, TLSConfig: tlsCfg})); err != nil {
			t.Fatal(err)
		}
		if wss {
			r.wssAddr = testenv.FreeAddr(t)
			if err := srv.AddListener(listeners.NewWebsocket(listeners.Config{ID: "wss", Address: r.wssAddr, TLSConfig: tlsCfg})); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	r.srv, r.hook, r.url = srv, h, "tcp://"+addr
	r.reg = prometheus.NewRegistry()
	r.reg.MustRegister(h)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.runDone = cancel, make(chan struct{})
	go func() { defer close(r.runDone); _ = h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		closed := make(chan struct{})
		go func() {
			<-r.runDone
			_ = broker.Shutdown(srv, "tcp", "tls", "wss") // not srv.Close: see broker.Shutdown
			close(closed)
		}()
		// A hang here would otherwise only show as the whole package
		// timing out; fail with every goroutine's stack instead.
		select {
		case <-closed:
		case <-time.After(30 * time.Second):
			buf := make([]byte, 1<<20)
			t.Errorf("the broker did not close within 30s:\n%s", buf[:runtime.Stack(buf, true)])
		}
	})
	return r
}

// metric is the value of a counter or gauge with the given labels ("k=v").
func (r *rig) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	return gathered(t, r.reg, name, labels...)
}

func gathered(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				if !hasLabel(m, k, v) {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == k && lp.GetValue() == v {
			return true
		}
	}
	return false
}

var (
	passwordLine = regexp.MustCompile(`(?m)^  password: (\S+)$`)
	usernameLine = regexp.MustCompile(`(?m)^  username: (\S+)$`)
)

// addUser runs `villagehub device add ...` and returns the username and
// the password it printed.
func addUser(t *testing.T, path string, args ...string) (user, password string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := auth.DeviceCommand(append([]string{"add"}, args...), &out, &errb, path); code != 0 {
		t.Fatalf("device add %v: exit %d: %s", args, code, errb.String())
	}
	return parseSecret(t, out.String())
}

func parseSecret(t *testing.T, out string) (user, password string) {
	t.Helper()
	m := passwordLine.FindStringSubmatch(out)
	u := usernameLine.FindStringSubmatch(out)
	if m == nil || u == nil {
		t.Fatalf("no username/password in output:\n%s", out)
	}
	return u[1], m[1]
}

// connect tries to connect a paho client (MQTT 3.1.1) and returns it with
// the connect error, leaving the verdict to the caller.
func connect(t *testing.T, url, clientID, user, password string, opts ...func(*paho.ClientOptions)) (paho.Client, error) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).
		SetUsername(user).SetPassword(password).
		// One attempt: without a fixed version paho retries a refused
		// connect as MQTT 3.1, and each refusal would count twice.
		SetProtocolVersion(4)
	for _, f := range opts {
		f(o)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		t.Fatalf("connecting %s: no answer in 15s", clientID)
	}
	if tok.Error() == nil {
		t.Cleanup(func() { c.Disconnect(50) })
	}
	return c, tok.Error()
}

func mustConnect(t *testing.T, url, clientID, user, password string, opts ...func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	c, err := connect(t, url, clientID, user, password, opts...)
	if err != nil {
		t.Fatalf("connecting %s as %q: %v", clientID, user, err)
	}
	return c
}

// watcher records every message a subscriber receives.
type watcher struct {
	mu   sync.Mutex
	msgs map[string][]string // topic -> payloads
	at   map[string]time.Time
}

func watch(t *testing.T, c paho.Client, filter string) *watcher {
	t.Helper()
	w := &watcher{msgs: map[string][]string{}, at: map[string]time.Time{}}
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.msgs[m.Topic()] = append(w.msgs[m.Topic()], string(m.Payload()))
		w.at[m.Topic()+" "+string(m.Payload())] = time.Now()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribing to %s: %v", filter, tok.Error())
	}
	if code := tok.(*paho.SubscribeToken).Result()[filter]; code > 2 {
		t.Fatalf("subscription to %s refused (code %#x)", filter, code)
	}
	return w
}

func (w *watcher) got(topic string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs[topic]...)
}

func (w *watcher) count(topic string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.msgs[topic])
}

func (w *watcher) arrived(topic, payload string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.at[topic+" "+payload]
	return at, ok
}

// waitFor waits until topic has payload.
func (w *watcher) waitFor(t *testing.T, topic, payload string) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, topic+" "+payload, func() bool {
		_, ok := w.arrived(topic, payload)
		return ok
	})
}

func publish(t *testing.T, c paho.Client, topic string, qos byte, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publishing %s: %v", topic, tok.Error())
	}
}

func credsFile(dir string) string { return filepath.Join(dir, auth.DefaultCredentialsFile) }

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
