// Package apptest runs a whole hub inside a test: on free loopback ports,
// with its own data directory, probe workers from the built villagehub
// binary, and a broker that lets the tests' anonymous publishers connect
// and flood. Tests of hub/app, the dashboards and the web UI share it.
//
// It lives beside hub/app rather than in hub/testenv because it imports
// the hub: testenv is imported by the hub's own packages' tests.
package apptest

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"villagehub/hub/app"
	"villagehub/hub/config"
	"villagehub/hub/testenv"
)

// Hub is a hub running in the test's process.
type Hub struct {
	*app.Hub
	// URL is http(s)://<http addr>.
	URL    string
	cancel func()
	done   chan error
}

// Prepare applies the test settings to cfg: a temporary data directory,
// free ports, probing off (tests that probe turn it on with their own
// cameras) and anonymous, unthrottled publishers.
func Prepare(t testing.TB, cfg *config.Config) {
	t.Helper()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Addr = testenv.FreeAddr(t)
	cfg.Broker.Addr = testenv.FreeAddr(t)
	cfg.Broker.AllowAnonymous = true
	cfg.Broker.PublishRate, cfg.Broker.PublishBurst = 1e6, 1000000
	off := false
	cfg.Probe.Enabled = &off
}

// EnableProbe turns RTSP probing on with quick test intervals.
func EnableProbe(cfg *config.Config) {
	on := true
	cfg.Probe.Enabled = &on
	cfg.Probe.Interval = config.Duration(time.Second)
	cfg.Probe.Timeout = config.Duration(2 * time.Second)
}

// Start validates cfg, starts the hub and waits until it is ready; the
// hub stops at the end of the test. log may be nil (discard).
func Start(t testing.TB, cfg *config.Config, log *slog.Logger) *Hub {
	t.Helper()
	return StartWorker(t, cfg, log, []string{testenv.Build(t, "./cmd/villagehub"), "probe-worker"})
}

// StartWorker is Start with the command that starts probe workers.
func StartWorker(t testing.TB, cfg *config.Config, log *slog.Logger, worker []string) *Hub {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h, err := app.New(cfg, app.Options{Logger: log, ProbeWorker: worker})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	th := &Hub{Hub: h, URL: "http://" + h.HTTPAddr(), cancel: cancel, done: make(chan error, 1)}
	go func() { th.done <- h.Run(ctx) }()
	t.Cleanup(th.Stop)
	if cfg.HTTP.TLS.CertFile != "" {
		th.URL = "https://" + h.HTTPAddr()
		insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a readiness poll on loopback
		testenv.WaitHTTPWith(t, insecure, th.URL+"/readyz", 15*time.Second, nil)
	} else {
		testenv.WaitHTTP(t, th.URL+"/readyz", 15*time.Second, nil)
	}
	return th
}

// Stop stops the hub and waits for it (idempotent).
func (h *Hub) Stop() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
		h.cancel = nil
	}
}
