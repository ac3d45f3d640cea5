package influx_test

import (
	"bytes"
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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"villagehub/hub/influx"
	"villagehub/hub/testenv"
)

// gateProxy sits between the writer and InfluxDB and holds every request
// until the test opens it (then it passes them on) or the client gives up:
// a server that accepts but does not answer. It counts the requests it
// holds, so a test can tell what the writer is doing without timing it.
type gateProxy struct {
	srv   *httptest.Server
	gate  chan struct{}
	once  sync.Once
	held  atomic.Int64 // requests held now
	ended atomic.Int64 // held requests the client gave up on
}

func newGateProxy(t *testing.T, target string) *gateProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &gateProxy{gate: make(chan struct{})}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the body first: like a server that took the request and
		// then went silent, and so that it can be passed on later.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		p.held.Add(1)
		select {
		case <-p.gate:
			p.held.Add(-1)
			rp.ServeHTTP(w, r)
		case <-r.Context().Done():
			p.held.Add(-1)
			p.ended.Add(1)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// open lets held and later requests through to InfluxDB.
func (p *gateProxy) open() { p.once.Do(func() { close(p.gate) }) }

// TestSlowInfluxNeverBlocksAppend: while InfluxDB holds the writer's
// request without answering, every Append returns (it waits only for the
// local fsync) and the request is still held after the last one; the
// points wait and Stale is true; once InfluxDB answers every point arrives.
// (Timeouts of a server that never answers are counted in
// TestTimeoutsCountedOnFakeClock.)
func TestSlowInfluxNeverBlocksAppend(t *testing.T) {
	in := testenv.StartInflux(t)
	proxy := newGateProxy(t, in.URL())
	cfg := testConfig(in, t.TempDir())
	cfg.URL = proxy.srv.URL
	cfg.Timeout = 10 * time.Minute // the held request must not time out during the test
	cfg.BatchSize = 1000
	w := startWriter(t, cfg)

	if err := w.Append(seqBatch(0, 200, 5)); err != nil {
		t.Fatalf("Append: %v", err)
	}
	testenv.WaitFor(t, 30*time.Second, "the writer's first request to reach the proxy", func() bool { return proxy.held.Load() == 1 })
	var worst time.Duration
	for b := 1; b < 100; b++ {
		start := time.Now()
		if err := w.Append(seqBatch(b, 200, 5)); err != nil {
			t.Fatalf("Append: %v", err)
		}
		worst = max(worst, time.Since(start))
	}
	// If Append waited for InfluxDB, the loop above could not have ended
	// while the request is held: the proxy answers nothing until opened.
	if h, e := proxy.held.Load(), proxy.ended.Load(); h != 1 || e != 0 {
		t.Errorf("after the appends the proxy holds %d requests (%d given up), want the first one still held", h, e)
	}
	if v := metricValue(t, w, "villagehub_influx_write_duration_seconds"); v != 0 {
		t.Errorf("%v write requests finished while the proxy held them, want 0", v)
	}
	if n := w.Waiting(); n != 100*200 {
		t.Errorf("Waiting = %d while InfluxDB holds the request, want %d", n, 100*200)
	}
	// The first request left a flush interval after the first point was
	// spooled, and no write has succeeded since.
	if !w.Stale(cfg.FlushInterval / 2) {
		t.Errorf("Stale(%s) = false while no write succeeded", cfg.FlushInterval/2)
	}

	proxy.open()
	waitDrained(t, w, 60*time.Second)
	t.Logf("worst Append while InfluxDB held the request: %s", worst)
	counts := countsBySeries(t, in, "outage", "seq", "dev", time.Now().Add(-time.Hour))
	total := int64(0)
	for _, n := range counts {
		total += n
	}
	if total != 100*200 {
		t.Errorf("%d points in InfluxDB, want %d (%v)", total, 100*200, counts)
	}
	if v := metricValue(t, w, "villagehub_influx_points_written_total"); v != 100*200 {
		t.Errorf("points_written_total = %v, want %d", v, 100*200)
	}
	for _, class := range []string{"network", "timeout", "server_error", "rate_limited", "bad_request", "other"} {
		if v := metricValue(t, w, "villagehub_influx_write_errors_total", "class", class); v != 0 {
			t.Errorf("write errors of class %s = %v, want 0 (the held request was answered)", class, v)
		}
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
	if err := w.Append(seqBatch(b, 100, 3)); !errors.Is(err, influx.ErrSpoolFull) {
		t.Errorf("second Append on a full spool: %v, want ErrSpoolFull", err)
	}
	if v := metricValue(t, w, "villagehub_influx_spool_bytes"); v > float64(cfg.SpoolMaxBytes) {
		t.Errorf("spool_bytes %v over the limit %d", v, cfg.SpoolMaxBytes)
	}
	if v := metricValue(t, w, "villagehub_influx_spool_points"); v != float64(accepted) {
		t.Errorf("spool_points = %v, want %d", v, accepted)
	}
	// That the refusals returned at all while InfluxDB is down shows that
	// Append does not wait for room; their durations are only logged.
	t.Logf("spool full after %d points (%.1f bytes a point); refusal took %s", accepted, float64(cfg.SpoolMaxBytes)/float64(accepted), refused)

	// InfluxDB returns; like the ingest pipeline, the test retries a
	// refused batch until it fits. Space comes back a segment at a time, so
	// a fast producer may meet ErrSpoolFull again while the backlog drains.
	in.Start()
	for ; b < 400; b++ {
		testenv.WaitFor(t, 60*time.Second, fmt.Sprintf("room in the spool for batch %d", b), func() bool {
			err := w.Append(seqBatch(b, 100, 3))
			if err != nil && !errors.Is(err, influx.ErrSpoolFull) {
				t.Fatalf("Append after InfluxDB came back: %v", err)
			}
			return err == nil
		})
		accepted += 100
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
