package influx_test

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"villagehub/hub/influx"
	"villagehub/hub/testenv"
)

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitMetric(t *testing.T, w *influx.Writer, name string, labels ...string) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("%s%v above 0", name, labels), func() bool {
		return metricValue(t, w, name, labels...) > 0
	})
}

// TestWrongTokenWaitsNotDeadLetters: InfluxDB 1.8 with authentication
// refuses a wrong "user:password" token with 401. That is a configuration
// problem, not bad data: the points wait in the spool (nothing is
// dead-lettered) and arrive once the token is fixed. The token never shows
// in the logs.
func TestWrongTokenWaitsNotDeadLetters(t *testing.T) {
	in := testenv.StartInflux(t, testenv.WithInfluxAuth("admin", "Pa55-right"))
	spoolDir := t.TempDir()
	var logs syncBuffer
	cfg := testConfig(in, spoolDir)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	cfg.Token = "admin:Wr0ng-pa55"

	w, err := influx.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger.Info("starting", "config", cfg)
	runWriter(t, w)
	if err := w.Append(seqBatch(0, 100, 2)); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, w, "villagehub_influx_write_errors_total", "class", "other")
	if w.Waiting() != 100 {
		t.Errorf("Waiting = %d after a 401, want the 100 points kept", w.Waiting())
	}
	if v := metricValue(t, w, "villagehub_influx_dead_letter_points_total"); v != 0 {
		t.Errorf("%v points dead-lettered on a 401", v)
	}
	if _, err := os.Stat(filepath.Join(spoolDir, influx.DeadLetterFile)); err == nil {
		t.Errorf("dead-letter file written on a 401")
	}

	// The operator fixes the token and restarts.
	w.Close()
	cfg.Token = in.Token()
	w2 := startWriter(t, cfg)
	waitDrained(t, w2, 30*time.Second)
	counts := countsBySeries(t, in, "outage", "seq", "dev", time.Now().Add(-time.Hour))
	if counts["d0"]+counts["d1"] != 100 {
		t.Errorf("points in InfluxDB after fixing the token: %v, want 100", counts)
	}
	text := logs.String()
	if strings.Contains(text, "Wr0ng-pa55") || strings.Contains(text, "Pa55-right") {
		t.Errorf("a token leaked into the logs:\n%s", text)
	}
	if !strings.Contains(text, "check influx.token") {
		t.Errorf("the log does not point at influx.token:\n%s", text)
	}
}

// TestTLSAndGzip: an https endpoint trusted through influx.tls.ca_file, with
// gzip-compressed requests, in front of the real server.
func TestTLSAndGzip(t *testing.T) {
	in := testenv.StartInflux(t)
	target, _ := url.Parse(in.URL())
	rp := httputil.NewSingleHostReverseProxy(target)
	var gzipped atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v2/write" && r.Header.Get("Content-Encoding") == "gzip" {
			gzipped.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted handshakes below are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	// Without the CA the server is not trusted: points wait.
	cfg := testConfig(in, t.TempDir())
	cfg.URL = srv.URL
	cfg.Gzip = true
	w := startWriter(t, cfg)
	if err := w.Append(seqBatch(0, 50, 1)); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, w, "villagehub_influx_write_errors_total", "class", "network")
	if w.Waiting() != 50 {
		t.Errorf("Waiting = %d with an untrusted certificate, want 50", w.Waiting())
	}

	cfg2 := testConfig(in, t.TempDir())
	cfg2.URL = srv.URL
	cfg2.Gzip = true
	cfg2.TLS.CAFile = caFile
	if err := cfg2.Validate(); err != nil {
		t.Fatal(err)
	}
	w2 := startWriter(t, cfg2)
	if err := w2.Append(seqBatch(1, 50, 1)); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, w2, 30*time.Second)
	if n := countsBySeries(t, in, "outage", "seq", "dev", time.Now().Add(-time.Hour))["d0"]; n != 50 {
		t.Errorf("%d points through TLS, want 50", n)
	}
	if gzipped.Load() == 0 {
		t.Errorf("no gzip-encoded write reached the server")
	}
}
