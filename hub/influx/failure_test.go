package influx_test

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"villagehub/hub/influx"
	"villagehub/hub/testenv"
)

// slowProxy sits between the writer and InfluxDB and delays every request;
// a negative delay holds the request until the client gives up, like a
// server that accepts but never answers.
type slowProxy struct {
	srv   *httptest.Server
	delay atomic.Int64
}

func newSlowProxy(t *testing.T, target string) *slowProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &slowProxy{}
	stop := make(chan struct{})
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := time.Duration(p.delay.Load())
		if d < 0 {
			// Read the body so that the server notices when the client
			// hangs up, then hold the request.
			io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		case <-stop:
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		close(stop)
		p.srv.Close()
	})
	return p
}

// TestSlowInfluxNeverBlocksAppend: while InfluxDB answers slowly or not at
// all, Append stays fast; once it answers again every point arrives.
func TestSlowInfluxNeverBlocksAppend(t *testing.T) {
	in := testenv.StartInflux(t)
	proxy := newSlowProxy(t, in.URL())
	cfg := testConfig(in, t.TempDir())
	cfg.URL = proxy.srv.URL
	cfg.Timeout = 2 * time.Second
	cfg.BatchSize = 1000
	w := startWriter(t, cfg)

	appendTimed := func(from, to int) (worst time.Duration) {
		for b := from; b < to; b++ {
			start := time.Now()
			if err := w.Append(seqBatch(b, 200, 5)); err != nil {
				t.Fatalf("Append: %v", err)
			}
			worst = max(worst, time.Since(start))
			time.Sleep(5 * time.Millisecond)
		}
		return worst
	}

	proxy.delay.Store(-1) // accepts, never answers
	worstHung := appendTimed(0, 50)
	time.Sleep(cfg.Timeout + 200*time.Millisecond)
	if v := metricValue(t, w, "villagehub_influx_write_errors_total", "class", "timeout"); v == 0 {
		t.Errorf("no timeouts counted while the proxy held every request")
	}
	if !w.Stale(cfg.Timeout) {
		t.Errorf("Stale(%s) = false while no write succeeded", cfg.Timeout)
	}
	proxy.delay.Store(int64(1500 * time.Millisecond)) // slow but within the timeout
	worstSlow := appendTimed(50, 100)
	proxy.delay.Store(0)
	waitDrained(t, w, 60*time.Second)

	t.Logf("worst Append: %s while InfluxDB hung, %s while it took 1.5s a request", worstHung, worstSlow)
	// Appends wait only for the local fsync. The bound is loose for a busy
	// 2-core machine but far below the proxy's delays.
	if worstHung > 500*time.Millisecond || worstSlow > 500*time.Millisecond {
		t.Errorf("Append blocked: worst %s (hung), %s (slow)", worstHung, worstSlow)
	}
	counts := countsBySeries(t, in, "outage", "seq", "dev", time.Now().Add(-time.Hour))
	total := int64(0)
	for _, n := range counts {
		total += n
	}
	if total != 100*200 {
		t.Errorf("%d points in InfluxDB, want %d (%v)", total, 100*200, counts)
	}
	if w.Stale(time.Millisecond) {
		t.Errorf("Stale after the drain")
	}
}

// TestDeadLetter: a point InfluxDB refuses (field type conflict) and a point
// that cannot be encoded (NaN) go to the dead-letter file; the rest of their
// batch and later batches arrive.
func TestDeadLetter(t *testing.T) {
	in := testenv.StartInflux(t)
	spoolDir := t.TempDir()
	w := startWriter(t, testConfig(in, spoolDir))

	now := time.Now().Add(-time.Minute)
	var pts []influx.Point
	for i := range 1000 {
		pts = append(pts, influx.QRScans("s1", "b1", "mqtt", 1, now))
		if i == 700 {
			pts = append(pts, influx.Point{
				Measurement: "qr_scans",
				Tags:        []influx.Tag{{Key: "board", Value: "b1"}, {Key: "site", Value: "s1"}, {Key: "source", Value: "mqtt"}},
				Fields:      []influx.Field{influx.String("scans", "seven")},
				Time:        now,
			})
		}
		if i == 300 {
			pts = append(pts, influx.CameraHealth("s1", "gate", influx.Health{Up: true, FPS: math.NaN()}, now))
		}
	}
	if err := w.Append(pts); err != nil {
		t.Fatalf("Append: %v", err)
	}
	waitDrained(t, w, 30*time.Second)
	if err := w.Append([]influx.Point{influx.QRScans("s1", "b1", "mqtt", 5, time.Time{})}); err != nil {
		t.Fatalf("Append after the bad point: %v", err)
	}
	waitDrained(t, w, 30*time.Second)

	rows := query(t, in, fmt.Sprintf(`from(bucket: %q) |> range(start: -1h)
  |> filter(fn: (r) => r._measurement == "qr_scans" and r._field == "scans")
  |> group() |> reduce(identity: {n: 0, sum: 0}, fn: (r, accumulator) => ({n: accumulator.n + 1, sum: accumulator.sum + r._value}))`, testenv.InfluxBucket))
	if len(rows) != 1 || rows[0]["n"] != int64(1001) || rows[0]["sum"] != int64(1005) {
		t.Errorf("qr_scans in InfluxDB: %v, want n=1001 sum=1005", rows)
	}
	dl, err := os.ReadFile(filepath.Join(spoolDir, influx.DeadLetterFile))
	if err != nil {
		t.Fatalf("reading dead-letter file: %v", err)
	}
	text := string(dl)
	t.Logf("dead-letter file:\n%s", text)
	if !strings.Contains(text, `scans="seven"`) || !strings.Contains(text, "conflict") {
		t.Errorf("dead-letter file lacks the refused point and its reason")
	}
	if !strings.Contains(text, "NaN") || !strings.Contains(text, "unencodable") {
		t.Errorf("dead-letter file lacks the NaN point")
	}
	if v := metricValue(t, w, "villagehub_influx_dead_letter_points_total"); v != 2 {
		t.Errorf("dead_letter_points_total = %v, want 2", v)
	}
	if v := metricValue(t, w, "villagehub_influx_write_errors_total", "class", "bad_request"); v == 0 {
		t.Errorf("no bad_request errors counted")
	}
}

// TestSpoolFull: with InfluxDB down the spool fills to its limit, Append
// returns ErrSpoolFull at once, and after InfluxDB is back appends work
// again and nothing accepted is lost.
func TestSpoolFull(t *testing.T) {
	in := testenv.StartInflux(t)
	cfg := testConfig(in, t.TempDir())
	cfg.SpoolMaxBytes = 1 << 20
	w := startWriter(t, cfg)
	in.Stop()

	accepted := 0
	b := 0
	var refused time.Duration
	for ; b < 10_000; b++ {
		start := time.Now()
		err := w.Append(seqBatch(b, 100, 3))
		if errors.Is(err, influx.ErrSpoolFull) {
			refused = time.Since(start)
			break
		}
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		accepted += 100
	}
	if refused == 0 {
		t.Fatalf("spool of %d bytes never filled", cfg.SpoolMaxBytes)
	}
	if refused > 50*time.Millisecond {
		t.Errorf("ErrSpoolFull took %s, want it at once", refused)
	}
	if err := w.Append(seqBatch(b, 100, 3)); !errors.Is(err, influx.ErrSpoolFull) {
		t.Errorf("second Append on a full spool: %v, want ErrSpoolFull", err)
	}
	if v := metricValue(t, w, "villagehub_influx_spool_bytes"); v > float64(cfg.SpoolMaxBytes) {
		t.Errorf("spool_bytes %v over the limit %d", v, cfg.SpoolMaxBytes)
	}
	if v := metricValue(t, w, "villagehub_influx_spool_points"); v != float64(accepted) {
		t.Errorf("spool_points = %v, want %d", v, accepted)
	}
	t.Logf("spool full after %d points (%.1f bytes a point); refusal took %s", accepted, float64(cfg.SpoolMaxBytes)/float64(accepted), refused)

	// InfluxDB returns; like the ingest pipeline, the test retries a
	// refused batch until it fits. Space comes back a segment at a time, so
	// a fast producer may meet ErrSpoolFull again while the backlog drains.
	in.Start()
	deadline := time.Now().Add(60 * time.Second)
	for ; b < 400; b++ {
		for {
			err := w.Append(seqBatch(b, 100, 3))
			if err == nil {
				accepted += 100
				break
			}
			if !errors.Is(err, influx.ErrSpoolFull) || time.Now().After(deadline) {
				t.Fatalf("Append after InfluxDB came back: %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitDrained(t, w, 60*time.Second)
	counts := countsBySeries(t, in, "outage", "seq", "dev", time.Now().Add(-time.Hour))
	total := int64(0)
	for _, n := range counts {
		total += n
	}
	if total != int64(accepted) {
		t.Errorf("%d points in InfluxDB, want the %d accepted", total, accepted)
	}
	if v := metricValue(t, w, "villagehub_influx_spool_full_total"); v < 2 {
		t.Errorf("spool_full_total = %v, want >= 2", v)
	}
}
