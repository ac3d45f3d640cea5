package probe

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"villagehub/devices/rtspcam"
)

// TestMain doubles as the probe worker: the supervisor under test starts
// this same test binary with the argument "probe-worker", as villagehub
// starts itself.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "probe-worker" {
		if err := ServeWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "probe worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if len(os.Args) > 1 && os.Args[1] == "rtspcam-sim" {
		os.Exit(runSimChild())
	}
	os.Exit(m.Run())
}

func workerCommand() []string { return []string{os.Args[0], "probe-worker"} }

// testSettings keep probes short; each test overrides what it checks.
var testSettings = Settings{
	Mode:            ModeAuto,
	Interval:        300 * time.Millisecond,
	SampleInterval:  4 * time.Second,
	Timeout:         2 * time.Second,
	SampleWindow:    2 * time.Second,
	MaxSampleWindow: 4 * time.Second,
	NoVideoTimeout:  1500 * time.Millisecond,
}

func newSim(t testing.TB) *rtspcam.Server {
	t.Helper()
	s, err := rtspcam.New(rtspcam.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("starting the RTSP simulator: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func addCam(t testing.TB, s *rtspcam.Server, name string, opts rtspcam.CameraOptions) *rtspcam.Camera {
	t.Helper()
	c, err := s.AddCamera(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func clipStats(t testing.TB) rtspcam.ClipStats {
	t.Helper()
	st, err := rtspcam.Clip()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// probeOnce runs one probe in this process (no worker) and waits for any
// Dial it abandoned.
func probeOnce(t testing.TB, url string, mode Mode, set Settings) measurement {
	t.Helper()
	return probeAligned(t, url, mode, set, nil)
}

// probeAligned is probeOnce keeping the camera's keyframe phase in ph
// between samples, as the supervisor does (nil: no alignment).
func probeAligned(t testing.TB, url string, mode Mode, set Settings, ph *keyPhase) measurement {
	t.Helper()
	set = set.merged(testSettings)
	var cleanup sync.WaitGroup
	j := job{
		ID:              1,
		URL:             url,
		Mode:            mode,
		Timeout:         set.Timeout,
		SampleWindow:    set.SampleWindow,
		MaxSampleWindow: set.MaxSampleWindow,
		NoVideoTimeout:  set.NoVideoTimeout,
	}
	if ph != nil && mode == ModeSample {
		ph.apply(&j)
	}
	m := runProbe(context.Background(), j, &cleanup)
	if ph != nil && mode == ModeSample {
		ph.observe(m)
	}
	done := make(chan struct{})
	go func() { cleanup.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(set.Timeout + 3*time.Second):
		t.Errorf("probe cleanup of %s did not finish", Redact(url))
	}
	return m
}

// logBuffer is a concurrency-safe sink for slog in tests.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger(buf *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// results collects a supervisor's results for assertions.
type results struct {
	mu  sync.Mutex
	all []Result
	ch  chan struct{}
}

func newResults() *results { return &results{ch: make(chan struct{}, 1)} }

func (r *results) add(res Result) {
	r.mu.Lock()
	r.all = append(r.all, res)
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

func (r *results) snapshot() []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Result(nil), r.all...)
}

// waitFor polls the results until cond holds or the timeout passes.
func (r *results) waitFor(t testing.TB, timeout time.Duration, what string, cond func([]Result) bool) []Result {
	t.Helper()
	deadline := time.After(timeout)
	for {
		all := r.snapshot()
		if cond(all) {
			return all
		}
		select {
		case <-r.ch:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s; got %d results: %s", timeout, what, len(all), summarize(all))
		}
	}
}

func summarize(rs []Result) string {
	var b bytes.Buffer
	for i, r := range rs {
		if i >= 40 {
			fmt.Fprintf(&b, " ...")
			break
		}
		fmt.Fprintf(&b, "\n  %s %s up=%v reason=%s iso=%v fps=%.1f %s", r.Camera, r.Mode, r.Up, r.Reason, r.Isolated, r.FPS, r.Detail)
	}
	return b.String()
}

// runSupervisor starts s.Run and stops it at cleanup, failing the test if
// Run errs.
func runSupervisor(t testing.TB, s *Supervisor) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Supervisor.Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("Supervisor.Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
