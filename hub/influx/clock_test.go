package influx_test

import (
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"villagehub/hub/influx"
	"villagehub/hub/testenv"
)

// The writer's flush interval, retry back-off and staleness run on the
// clock in its Config. These tests drive them with a fake clock
// (testenv.Clock): each waits until the writer is blocked on the clock,
// checks what it waits for, and moves the clock past it. No real time has
// to pass for a back-off, so the counts checked afterwards are exact on a
// machine of any speed.

const clockWait = 30 * time.Second // real time allowed for the writer to reach its next wait

// fakeClockWriter starts a writer on a fake clock. The clock starts at the
// real time (truncated), so that the points' timestamps fall in Flux's
// default ranges.
func fakeClockWriter(t *testing.T, cfg influx.Config) (*influx.Writer, *testenv.Clock) {
	t.Helper()
	clk := testenv.NewClock(time.Now().Truncate(time.Second))
	cfg.Now, cfg.After = clk.Now, clk.After
	return startWriter(t, cfg), clk
}

// TestRetryBackoffOnFakeClock: with InfluxDB down, a batch waits the flush
// interval, then every failed attempt is counted once and followed by a
// back-off that doubles from 100 ms (±50 % jitter) up to max_retry_interval
// and never beyond it; Stale turns true exactly when the points have waited
// longer than the age asked; once InfluxDB is back the next attempt
// delivers every point.
func TestRetryBackoffOnFakeClock(t *testing.T) {
	in := testenv.StartInflux(t)
	cfg := testConfig(in, t.TempDir())
	cfg.FlushInterval = time.Second
	cfg.MaxRetryInterval = 2 * time.Second
	w, clk := fakeClockWriter(t, cfg)
	start := clk.Now()
	in.Stop()

	if err := w.Append(seqBatch(0, 100, 2)); err != nil {
		t.Fatal(err)
	}
	if left := clk.WaitForWaiters(t, 1, clockWait); len(left) != 1 || left[0] != cfg.FlushInterval {
		t.Fatalf("writer waits %v before the first send, want one wait of the flush interval %v", left, cfg.FlushInterval)
	}
	if v := metricValue(t, w, "villagehub_influx_write_duration_seconds"); v != 0 {
		t.Fatalf("%v write requests before the flush interval passed, want 0", v)
	}
	clk.Advance(cfg.FlushInterval)

	const attempts = 8
	for i := range attempts {
		left := clk.WaitForWaiters(t, 1, clockWait)
		// The failed attempt is counted before its back-off begins.
		if v := metricValue(t, w, "villagehub_influx_write_errors_total", "class", "network"); v != float64(i+1) {
			t.Fatalf("after attempt %d: network errors = %v, want %d", i+1, v, i+1)
		}
		base := min(100*time.Millisecond<<i, cfg.MaxRetryInterval)
		lo, hi := min(base/2, cfg.MaxRetryInterval), min(base*3/2, cfg.MaxRetryInterval)
		if len(left) != 1 || left[0] < lo || left[0] > hi {
			t.Fatalf("back-off after attempt %d: %v, want one wait in [%v, %v]", i+1, left, lo, hi)
		}
		t.Logf("attempt %d failed; back-off %v", i+1, left[0])
		if i == attempts-1 {
			break // InfluxDB comes back before this back-off ends
		}
		clk.Advance(left[0])
	}

	waited := clk.Now().Sub(start)
	if !w.Stale(waited - time.Nanosecond) {
		t.Errorf("Stale(%v) = false after the points waited %v with no write", waited-time.Nanosecond, waited)
	}
	if w.Stale(waited) {
		t.Errorf("Stale(%v) = true: the points waited exactly that long", waited)
	}
	if w.Waiting() != 100 {
		t.Errorf("Waiting = %d during the outage, want 100", w.Waiting())
	}

	in.Start()
	clk.AdvanceToNext(t, clockWait)
	// The attempt after the restart delivers, unless the restarted server
	// still refuses a write just after answering /ping: then the writer
	// backs off again, and the clock is moved on until one succeeds.
	late := 0
	for {
		testenv.WaitFor(t, clockWait, "the spool drained or another back-off", func() bool {
			return w.Waiting() == 0 || len(clk.Waiters()) > 0
		})
		if w.Waiting() == 0 {
			break
		}
		late++
		clk.AdvanceToNext(t, clockWait)
	}

	if v := metricValue(t, w, "villagehub_influx_write_errors_total", "class", "network"); v != attempts && late == 0 {
		t.Errorf("network errors = %v, want exactly %d (one per failed attempt)", v, attempts)
	}
	errs := 0.0
	for _, class := range []string{"network", "timeout", "server_error", "rate_limited", "bad_request", "other"} {
		errs += metricValue(t, w, "villagehub_influx_write_errors_total", "class", class)
	}
	if errs != float64(attempts+late) {
		t.Errorf("%v write errors, want exactly %d (one per failed attempt)", errs, attempts+late)
	}
	if v := metricValue(t, w, "villagehub_influx_write_duration_seconds"); v != float64(attempts+late+1) {
		t.Errorf("%v write requests, want %d", v, attempts+late+1)
	}
	if late > 0 {
		t.Logf("%d more attempts failed just after InfluxDB restarted", late)
	}
	if v := metricValue(t, w, "villagehub_influx_points_written_total"); v != 100 {
		t.Errorf("points_written_total = %v, want 100", v)
	}
	if v, want := metricValue(t, w, "villagehub_influx_last_success_timestamp_seconds"), float64(clk.Now().UnixNano())/1e9; math.Abs(v-want) > 1e-6 {
		t.Errorf("last_success_timestamp_seconds = %v, want the writer's clock %v", v, want)
	}
	if w.Stale(0) {
		t.Errorf("Stale with an empty spool")
	}
	counts := countsBySeries(t, in, "outage", "seq", "dev", start.Add(-time.Hour))
	if counts["d0"] != 50 || counts["d1"] != 50 {
		t.Errorf("points in InfluxDB per series: %v, want d0:50 d1:50", counts)
	}
	if left := clk.Waiters(); len(left) != 0 {
		t.Errorf("writer left %v waits pending with an empty spool", left)
	}
}

// scriptedProxy answers the first requests with the scripted statuses (and
// Retry-After headers), counts every request, and forwards the rest to
// InfluxDB.
type scriptedProxy struct {
	srv      *httptest.Server
	requests atomic.Int64
}

type scripted struct {
	status     int
	retryAfter string
}

func newScriptedProxy(t *testing.T, target string, script ...scripted) *scriptedProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &scriptedProxy{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := p.requests.Add(1)
		if int(n) <= len(script) {
			s := script[n-1]
			if s.retryAfter != "" {
				w.Header().Set("Retry-After", s.retryAfter)
			}
			http.Error(w, http.StatusText(s.status), s.status)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// TestRetryAfterOnFakeClock: a 429 with Retry-After makes the writer wait
// exactly that long, even beyond max_retry_interval; a 503 without it waits
// the ordinary back-off; each is counted once under its class, and the
// third attempt delivers.
func TestRetryAfterOnFakeClock(t *testing.T) {
	in := testenv.StartInflux(t)
	proxy := newScriptedProxy(t, in.URL(),
		scripted{status: http.StatusTooManyRequests, retryAfter: "7"},
		scripted{status: http.StatusServiceUnavailable},
	)
	cfg := testConfig(in, t.TempDir())
	cfg.URL = proxy.srv.URL
	cfg.MaxRetryInterval = 2 * time.Second
	w, clk := fakeClockWriter(t, cfg)

	if err := w.Append(seqBatch(0, 10, 1)); err != nil {
		t.Fatal(err)
	}
	clk.AdvanceToNext(t, clockWait) // the flush interval

	left := clk.WaitForWaiters(t, 1, clockWait)
	if len(left) != 1 || left[0] != 7*time.Second {
		t.Fatalf("wait after a 429 with Retry-After: 7: %v, want exactly 7s", left)
	}
	clk.Advance(left[0])

	left = clk.WaitForWaiters(t, 1, clockWait)
	// The back-off's second step: 200 ms ±50 %.
	if len(left) != 1 || left[0] < 100*time.Millisecond || left[0] > 300*time.Millisecond {
		t.Fatalf("wait after a 503 without Retry-After: %v, want one in [100ms, 300ms]", left)
	}
	clk.Advance(left[0])
	waitDrained(t, w, 30*time.Second)

	for class, want := range map[string]float64{"rate_limited": 1, "server_error": 1, "network": 0, "timeout": 0, "bad_request": 0, "other": 0} {
		if v := metricValue(t, w, "villagehub_influx_write_errors_total", "class", class); v != want {
			t.Errorf("write errors of class %s = %v, want %v", class, v, want)
		}
	}
	if n := proxy.requests.Load(); n != 3 {
		t.Errorf("%d requests reached the proxy, want 3", n)
	}
	if v := metricValue(t, w, "villagehub_influx_points_written_total"); v != 10 {
		t.Errorf("points_written_total = %v, want 10", v)
	}
}

// TestTimeoutsCountedOnFakeClock: a server that accepts requests and never
// answers costs one timeout per attempt (the request timeout is real time:
// it measures the network), the points wait, and they arrive once it
// answers again.
func TestTimeoutsCountedOnFakeClock(t *testing.T) {
	in := testenv.StartInflux(t)
	proxy := newGateProxy(t, in.URL())
	cfg := testConfig(in, t.TempDir())
	cfg.URL = proxy.srv.URL
	cfg.Timeout = 300 * time.Millisecond
	w, clk := fakeClockWriter(t, cfg)

	if err := w.Append(seqBatch(0, 50, 5)); err != nil {
		t.Fatal(err)
	}
	clk.AdvanceToNext(t, clockWait) // the flush interval
	const attempts = 3
	for i := range attempts {
		clk.WaitForWaiters(t, 1, clockWait) // the back-off after a timeout
		if v := metricValue(t, w, "villagehub_influx_write_errors_total", "class", "timeout"); v != float64(i+1) {
			t.Fatalf("after attempt %d: timeouts = %v, want %d", i+1, v, i+1)
		}
		if i < attempts-1 {
			clk.AdvanceToNext(t, clockWait)
		}
	}
	if w.Waiting() != 50 {
		t.Errorf("Waiting = %d after timeouts, want the 50 points kept", w.Waiting())
	}
	proxy.open()
	clk.AdvanceToNext(t, clockWait)
	waitDrained(t, w, 30*time.Second)
	if v := metricValue(t, w, "villagehub_influx_write_errors_total", "class", "timeout"); v != attempts {
		t.Errorf("timeouts = %v, want exactly %d", v, attempts)
	}
	if v := metricValue(t, w, "villagehub_influx_points_written_total"); v != 50 {
		t.Errorf("points_written_total = %v, want 50", v)
	}
}
