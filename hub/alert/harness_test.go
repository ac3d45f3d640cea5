package alert_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"villagehub/hub/alert"
	"villagehub/hub/ingest"
	"villagehub/hub/probe"
	"villagehub/hub/state"
	"villagehub/hub/store"
	"villagehub/hub/testenv"
)

// rig is the part of a hub that alerting needs, built from the real
// packages: the ingest queue, the bbolt store, the state pipeline, the
// RTSP prober with its worker processes, the alert engine and an HTTP
// server with the alert API. (hub/app wires the same pieces; these tests
// stay independent of it so that hub/app can import hub/alert.)
type rig struct {
	Queue  *ingest.Queue
	Store  *store.Store
	State  *state.State
	Prober *probe.Supervisor
	Engine *alert.Engine
	URL    string

	srv    *http.Server
	ln     net.Listener
	cancel context.CancelFunc
	done   chan error
}

type camera struct {
	ID, Site, Name, URL string
}

type rigConfig struct {
	DataDir string
	// StoreDir, if set, holds the hub's store apart from alerts.db (a
	// restart that forgets the devices' last state).
	StoreDir string
	HTTPAddr string // default: a free port
	Sites    []state.Site
	Cameras  []camera
	Boards   []state.BoardInfo
	Alerts   alert.Config
	// Worker is the probe-worker command (the villagehub binary).
	Worker        []string
	ProbeInterval time.Duration
	// Probe, if set, replaces the probe defaults (Interval and Timeout).
	Probe  *probe.Settings
	Edit   func(*alert.Deps)
	Logger *slog.Logger
}

func newRig(cfg rigConfig) (*rig, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &rig{Queue: ingest.NewQueue(10000)}
	var err error
	storeDir := cfg.DataDir
	if cfg.StoreDir != "" {
		storeDir = cfg.StoreDir
	}
	if r.Store, err = store.Open(store.Config{Dir: storeDir}); err != nil {
		return nil, err
	}
	scfg := state.Config{Sites: cfg.Sites, Boards: cfg.Boards, Queue: r.Queue, Store: r.Store, Logger: log,
		Decoder: ingest.DecoderConfig{Prefix: "village"}}
	var targets []probe.Target
	for _, c := range cfg.Cameras {
		scfg.Cameras = append(scfg.Cameras, state.CameraInfo{ID: c.ID, Site: c.Site, Name: c.Name, RTSPURL: c.URL})
		if c.URL != "" {
			targets = append(targets, probe.Target{ID: c.ID, Site: c.Site, URL: c.URL, ExpectedFPS: 10})
		}
	}
	if r.State, err = state.New(scfg); err != nil {
		r.Store.Close()
		return nil, err
	}
	life, endLife := context.WithCancel(context.Background())
	if len(targets) > 0 {
		set := probe.Settings{Interval: cfg.ProbeInterval, Timeout: 2 * time.Second}
		if cfg.Probe != nil {
			set = *cfg.Probe
		}
		r.Prober, err = probe.NewSupervisor(probe.Config{
			WorkerCommand: cfg.Worker, Workers: 1,
			Defaults: set,
			Logger:   log,
		}, func(res probe.Result) { _ = r.State.Submit(life, res) })
		if err != nil {
			endLife()
			r.Store.Close()
			return nil, err
		}
		r.Prober.SetTargets(targets)
	}
	deps := alert.Deps{State: r.State, DataDir: cfg.DataDir, HubID: "test-hub", PublicURL: "http://hub.example.vn", Logger: log}
	if cfg.Edit != nil {
		cfg.Edit(&deps)
	}
	if r.Engine, err = alert.New(cfg.Alerts, deps); err != nil {
		endLife()
		r.Store.Close()
		return nil, err
	}
	addr := cfg.HTTPAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if r.ln, err = net.Listen("tcp", addr); err != nil {
		endLife()
		r.Engine.Close()
		r.Store.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	r.Engine.Register(mux)
	// For tests waiting until the engine has looked N more times (so a
	// notice that should not exist would exist by then).
	mux.HandleFunc("GET /test/evaluations", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(r.Engine.Evaluations())
	})
	mux.HandleFunc("GET /api/v1/cameras", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"cameras": r.State.Cameras()})
	})
	r.srv = &http.Server{Handler: mux}
	r.URL = "http://" + r.ln.Addr().String()

	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() {
		defer endLife()
		pipeCtx, stopPipe := context.WithCancel(context.Background())
		pipeDone := make(chan error, 1)
		go func() { pipeDone <- r.State.Run(pipeCtx) }()
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return r.Engine.Run(gctx) })
		g.Go(func() error {
			go func() { <-gctx.Done(); _ = r.srv.Close() }()
			if err := r.srv.Serve(r.ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		if r.Prober != nil {
			g.Go(func() error { return r.Prober.Run(gctx) })
		}
		err := g.Wait()
		endLife()
		stopPipe()
		<-pipeDone
		r.Engine.Close()
		r.Store.Close()
		r.done <- err
	}()
	return r, nil
}

// settle waits until the engine at base (a rig's URL) has evaluated n more
// times and every notifier's queue is empty: a notice that was going to
// be made and sent has been by then. It replaces fixed sleeps.
func settle(t *testing.T, base string, n uint64) {
	t.Helper()
	var start uint64
	getJSON(t, base+"/test/evaluations", &start)
	testenv.WaitFor(t, time.Duration(n)*time.Second+10*time.Second, fmt.Sprintf("%d more evaluations and empty queues", n), func() bool {
		var now uint64
		getJSON(t, base+"/test/evaluations", &now)
		var st struct{ Notifiers []alert.NotifierStatus }
		getJSON(t, base+"/api/v1/notifiers", &st)
		for _, s := range st.Notifiers {
			if s.Queued > 0 {
				return false
			}
		}
		return now >= start+n
	})
}

// startRig builds and runs a rig for a test, stopping it at cleanup.
func startRig(t *testing.T, cfg rigConfig) *rig {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	r, err := newRig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

// Stop stops the rig and waits for it.
func (r *rig) Stop() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
		r.cancel = nil
	}
}

// status publishes a device's MQTT status through the ingest queue, as the
// broker would.
func (r *rig) status(t *testing.T, kind, site, id, value string) {
	t.Helper()
	r.push(t, "village/"+site+"/"+kind+"/"+id+"/status", value)
}

func (r *rig) push(t *testing.T, topic, payload string) {
	t.Helper()
	done := make(chan struct{}, 1)
	if err := r.Queue.Push(context.Background(), ingest.Message{Topic: topic, Payload: []byte(payload), QoS: 1, Received: time.Now(), Done: done}, true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("message on %s not applied within 5s", topic)
	}
}

func (r *rig) alerts(t *testing.T) alert.AlertsResponse {
	t.Helper()
	var resp alert.AlertsResponse
	getJSON(t, r.URL+"/api/v1/alerts", &resp)
	return resp
}

func getJSON(t testing.TB, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, b)
	}
}

// receiver is a webhook endpoint that records what it gets. It fails the
// first FailFirst requests with 503 and, like a careful receiver, counts
// each idempotency key once.
type receiver struct {
	*httptest.Server
	mu        sync.Mutex
	fail      bool // answer 503 to everything
	failFirst int
	requests  int
	got       []received
	keys      map[string]bool
}

type received struct {
	At     time.Time
	Header http.Header
	Body   []byte
	N      alert.Notification // the generic body, decoded
	Dup    bool               // a key seen before
}

func newReceiver(t *testing.T, failFirst int) *receiver {
	rc := &receiver{failFirst: failFirst, keys: map[string]bool{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.requests++
		if rc.fail || rc.requests <= rc.failFirst {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		g := received{At: time.Now(), Header: req.Header.Clone(), Body: body}
		_ = json.Unmarshal(body, &g.N)
		key := req.Header.Get("Idempotency-Key")
		g.Dup = rc.keys[key]
		rc.keys[key] = true
		rc.got = append(rc.got, g)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) setFail(f bool) {
	rc.mu.Lock()
	rc.fail = f
	rc.mu.Unlock()
}

func (rc *receiver) attempts() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.requests
}

// notices returns what arrived, without duplicates unless all is set.
func (rc *receiver) notices(all bool) []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []received
	for _, g := range rc.got {
		if all || !g.Dup {
			out = append(out, g)
		}
	}
	return out
}

func (rc *receiver) count(device, kind string) int {
	n := 0
	for _, g := range rc.notices(true) {
		if g.N.Device == device && g.N.Kind == kind {
			n++
		}
	}
	return n
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// probeWorker is the villagehub binary's probe-worker command.
func probeWorker(t *testing.T) []string {
	return []string{testenv.Build(t, "./cmd/villagehub"), "probe-worker"}
}

func boolp(b bool) *bool { return &b }

func dur(d time.Duration) alert.Duration { return alert.Duration(d) }

func webhookCfg(url string) alert.Notifier {
	return alert.Notifier{Type: "webhook", URL: url, Retry: alert.Retry{Initial: dur(50 * time.Millisecond), Max: dur(200 * time.Millisecond), MaxElapsed: dur(30 * time.Second)}}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func newRequest(method, url, body string) (*http.Request, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err == nil && body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, err
}
