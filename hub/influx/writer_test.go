package influx_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"villagehub/hub/influx"
	"villagehub/hub/testenv"
)

func testConfig(in *testenv.Influx, spoolDir string) influx.Config {
	return influx.Config{
		URL:              in.URL(),
		Bucket:           testenv.InfluxBucket,
		BatchSize:        5000,
		FlushInterval:    50 * time.Millisecond,
		Timeout:          5 * time.Second,
		MaxRetryInterval: 500 * time.Millisecond,
		SpoolDir:         spoolDir,
		Logger:           slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// startWriter opens a Writer and runs it until the test ends.
func startWriter(t *testing.T, cfg influx.Config) *influx.Writer {
	t.Helper()
	w, err := influx.New(cfg)
	if err != nil {
		t.Fatalf("influx.New: %v", err)
	}
	runWriter(t, w)
	return w
}

func runWriter(t *testing.T, w *influx.Writer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

// waitDrained waits until the spool is empty.
func waitDrained(t testing.TB, w *influx.Writer, timeout time.Duration) {
	t.Helper()
	testenv.WaitFor(t, timeout, "the spool to drain", func() bool { return w.Waiting() == 0 })
}

func query(t *testing.T, in *testenv.Influx, flux string) []map[string]any {
	t.Helper()
	rows, err := in.Query(flux)
	if err != nil {
		t.Fatalf("%v\nquery: %s", err, flux)
	}
	return rows
}

// countsBySeries returns count() of one field per value of tag.
func countsBySeries(t *testing.T, in *testenv.Influx, measurement, field, tag string, start time.Time) map[string]int64 {
	t.Helper()
	rows := query(t, in, fmt.Sprintf(`from(bucket: %q)
  |> range(start: %s, stop: 2100-01-01T00:00:00Z)
  |> filter(fn: (r) => r._measurement == %q and r._field == %q)
  |> group(columns: [%q])
  |> count()`, testenv.InfluxBucket, start.UTC().Format(time.RFC3339Nano), measurement, field, tag))
	out := map[string]int64{}
	for _, r := range rows {
		out[fmt.Sprint(r[tag])] = r["_value"].(int64)
	}
	return out
}

func metricValue(t testing.TB, c prometheus.Collector, name string, labels ...string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatalf("registering collector: %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

// TestKnownPointsReadBack writes every measurement of the schema and reads
// the exact values back with Flux.
func TestKnownPointsReadBack(t *testing.T) {
	in := testenv.StartInflux(t)
	w := startWriter(t, testConfig(in, t.TempDir()))

	base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	var pts []influx.Point
	// 20 QR reports of board b1, all in the same instant: each must survive.
	for i := range 20 {
		pts = append(pts, influx.QRScans("tan-ngu-2", "b1", "mqtt", int64(i+1), base))
	}
	pts = append(pts,
		influx.QRScans("tan-ngu-2", "b2", "printed", 1, base),
		influx.QRScans("tan-ngu-2", "b2", "printed", 1, base),
		influx.MotionStart("tan-ngu-2", "gate", "yard, east", 0.91, base.Add(time.Second)),
		influx.MotionEnd("tan-ngu-2", "gate", 12500*time.Millisecond, base.Add(13500*time.Millisecond)),
		influx.DeviceStatus("tan-ngu-2", "camera", "gate", false, base.Add(2*time.Second)),
		influx.DeviceStatus("tan-ngu-2", "camera", "gate", true, base.Add(3*time.Second)),
		influx.CameraHealth("tan-ngu-2", "gate", influx.Health{
			Up: true, FPS: 25, BitrateBPS: 2.5e6, Width: 1920, Height: 1080, KeyframeInterval: 50,
			Codec: "H264", ProbeDuration: 1500 * time.Millisecond,
		}, base.Add(4*time.Second)),
		influx.CameraHealth("tan-ngu-2", "gate", influx.Health{
			Reason: "timeout", ProbeDuration: 5 * time.Second,
		}, base.Add(5*time.Second)),
	)
	// Append in two calls, one from another goroutine, to share fsyncs.
	var wg sync.WaitGroup
	var errA, errB error
	wg.Add(2)
	go func() { defer wg.Done(); errA = w.Append(pts[:10]) }()
	go func() { defer wg.Done(); errB = w.Append(pts[10:]) }()
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("Append: %v, %v", errA, errB)
	}
	waitDrained(t, w, 30*time.Second)

	start := base.Add(-time.Second)
	rows := query(t, in, fmt.Sprintf(`from(bucket: %q)
  |> range(start: %s)
  |> filter(fn: (r) => r._measurement == "qr_scans")
  |> group(columns: ["board", "source"])
  |> sort(columns: ["_time"])
  |> reduce(identity: {n: 0, sum: 0}, fn: (r, accumulator) => ({n: accumulator.n + 1, sum: accumulator.sum + r._value}))`,
		testenv.InfluxBucket, start.Format(time.RFC3339Nano)))
	got := map[string]string{}
	for _, r := range rows {
		got[fmt.Sprintf("%v/%v", r["board"], r["source"])] = fmt.Sprintf("n=%v sum=%v", r["n"], r["sum"])
	}
	want := map[string]string{"b1/mqtt": "n=20 sum=210", "b2/printed": "n=2 sum=2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("qr_scans per board: got %v, want %v", got, want)
	}

	rows = query(t, in, fmt.Sprintf(`from(bucket: %q)
  |> range(start: %s)
  |> filter(fn: (r) => r._measurement != "qr_scans")
  |> sort(columns: ["_time"])`, testenv.InfluxBucket, start.Format(time.RFC3339Nano)))
	var lines []string
	for _, r := range rows {
		ts := r["_time"].(time.Time).Sub(base)
		extra := ""
		if r["_measurement"] == "device_status" {
			extra = fmt.Sprintf(" kind=%v device=%v", r["kind"], r["device"])
		}
		lines = append(lines, fmt.Sprintf("%v site=%v camera=%v%s +%v %v=%v", r["_measurement"], r["site"], r["camera"], extra, ts, r["_field"], r["_value"]))
	}
	slices.Sort(lines)
	wantLines := []string{
		"camera_health site=tan-ngu-2 camera=gate +4s bitrate_bps=2.5e+06",
		"camera_health site=tan-ngu-2 camera=gate +4s codec=H264",
		"camera_health site=tan-ngu-2 camera=gate +4s fps=25",
		"camera_health site=tan-ngu-2 camera=gate +4s height=1080",
		"camera_health site=tan-ngu-2 camera=gate +4s keyframe_interval=50",
		"camera_health site=tan-ngu-2 camera=gate +4s probe_duration_s=1.5",
		"camera_health site=tan-ngu-2 camera=gate +4s up=1",
		"camera_health site=tan-ngu-2 camera=gate +4s width=1920",
		"camera_health site=tan-ngu-2 camera=gate +5s probe_duration_s=5",
		"camera_health site=tan-ngu-2 camera=gate +5s reason=timeout",
		"camera_health site=tan-ngu-2 camera=gate +5s up=0",
		"camera_motion site=tan-ngu-2 camera=gate +13.5s active=false",
		"camera_motion site=tan-ngu-2 camera=gate +13.5s duration_s=12.5",
		"camera_motion site=tan-ngu-2 camera=gate +1s active=true",
		"camera_motion site=tan-ngu-2 camera=gate +1s score=0.91",
		"camera_motion site=tan-ngu-2 camera=gate +1s zone=yard, east",
		"device_status site=tan-ngu-2 camera=<nil> kind=camera device=gate +2s online=0",
		"device_status site=tan-ngu-2 camera=<nil> kind=camera device=gate +3s online=1",
	}
	if strings.Join(lines, "\n") != strings.Join(wantLines, "\n") {
		t.Errorf("points read back:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(wantLines, "\n"))
	}

	if v := metricValue(t, w, "villagehub_influx_points_written_total"); v != float64(len(pts)) {
		t.Errorf("points_written_total = %v, want %d", v, len(pts))
	}
	if v := metricValue(t, w, "villagehub_influx_spool_points"); v != 0 {
		t.Errorf("spool_points = %v, want 0", v)
	}
	if v := metricValue(t, w, "villagehub_influx_last_success_timestamp_seconds"); time.Since(time.Unix(int64(v), 0)) > time.Minute {
		t.Errorf("last_success_timestamp_seconds = %v, not recent", v)
	}
	if w.Stale(time.Second) {
		t.Errorf("Stale with an empty spool")
	}
	if problems, err := testutil.CollectAndLint(w); err != nil || len(problems) > 0 {
		t.Errorf("metrics lint: %v %v", err, problems)
	}
	_ = errors.New
	_ = filepath.Join
}
