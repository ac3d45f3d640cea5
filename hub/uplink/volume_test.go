package uplink_test

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"villagehub/hub/testenv"
	"villagehub/hub/uplink"
)

// snapshot is a gatherer that serves the families last scraped from a hub,
// so that several uplinks send exactly the same gathers.
type snapshot struct {
	mu  sync.Mutex
	mfs []*dto.MetricFamily
}

func (s *snapshot) Gather() ([]*dto.MetricFamily, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mfs, nil
}

// leanExclude is docs/province.md's example for a village on a tight data
// plan: per-camera probe diagnostics and the broker's and HTTP's guard
// counters, which no central rule or dashboard reads (the hub's own
// dashboard and alerts keep them).
var leanExclude = []string{`villagehub_camera_probe_failures_total`, `villagehub_camera_time_to_first_frame_seconds`,
	`villagehub_camera_keyframe_interval_frames`, `villagehub_broker_.*`, `villagehub_http_auth_failures_total`}

// volumeGathers is how many 15 s gathers TestUplinkVolume sends: 30
// simulated minutes, six 5-minute batches.
const volumeGathers = 120

// TestUplinkVolume measures the 4G data of one village's uplink and
// checks the defaults keep it to a few MB a day. A hub with 10 cameras
// (real RTSP streams, probed every 10 s) and 10 QR boards (scans from the
// device simulator) runs; every 250 ms its /metrics is scraped once and
// gathered by four uplinks, each on a fake clock that moves 15 s a gather
// (the default interval) and each pushing through a byte-counting TCP
// proxy into a real Prometheus:
//
//	before  everything sent, 1-minute batches (the old defaults)
//	exclude uplink.exclude's default, 1-minute batches
//	default the defaults: the default exclude and 5-minute batches
//	lean    the defaults, and leanExclude (docs/province.md's low-data example)
//
// (All three round times held in gauges to whole seconds, which the old
// code did not: "before" is a little below what it sent.)
//
// The fleet publishes one message a second (scans and motion), more than
// a real village. It prints bytes per gather and MB/day (× 5,760 gathers), as compressed
// request bodies and as TCP bytes both ways (HTTP without TLS). The
// default must stay under 5 MB/day, and what the central rules and
// dashboards read must still be at the centre.
func TestUplinkVolume(t *testing.T) {
	prom := testenv.StartPrometheus(t, "storage: { tsdb: { out_of_order_time_window: 2h } }\n", nil, "--web.enable-remote-write-receiver")
	h, cfg, stopVillage := startTenCameraVillage(t, "volume", `
uplink:
  remote_write: [ { name: central, url: "`+prom.URL+`/api/v1/write" } ]
`, 1)
	testenv.WaitFor(t, 60*time.Second, "10 cameras probed up and scans counted", func() bool {
		m := testenv.Scrape(t, h.URL)
		up, _ := m.Value("villagehub_camera_up")
		scans, _ := m.Value("villagehub_qr_scans_total")
		return up == 10 && scans > 0
	})

	type variant struct {
		name     string
		exclude  []string // nil: the default
		deadline time.Duration
		u        *uplink.Uplink
		proxy    *countingProxy
		drain    func()
	}
	vs := []*variant{
		{name: "before", exclude: []string{}, deadline: time.Minute},
		{name: "exclude", deadline: time.Minute},
		{name: "default"},
		{name: "lean", exclude: append(slices.Clone(uplink.DefaultExclude), leanExclude...)},
	}
	snap := &snapshot{}
	var fake atomic.Int64
	start := time.Now().Add(-volumeGathers * 15 * time.Second).Truncate(time.Minute)
	for _, v := range vs {
		v.proxy = startCountingProxy(t, strings.TrimPrefix(prom.URL, "http://"))
		rw := uplink.RemoteWrite{Name: "central", URL: "http://" + v.proxy.addr + "/api/v1/write"}
		if v.deadline > 0 {
			rw.BatchSendDeadline = new(uplink.Duration(v.deadline))
		}
		ucfg := uplink.Config{Exclude: v.exclude, RemoteWrite: []uplink.RemoteWrite{rw}}
		if p := ucfg.Validate(t.TempDir()); len(p) > 0 {
			t.Fatalf("%s: %v", v.name, p)
		}
		var err error
		v.u, err = uplink.New(uplink.Options{Config: ucfg, Place: cfg.Place, HubID: "volume-" + v.name, Gatherer: snap,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Now:    func() time.Time { return time.Unix(0, fake.Load()) }})
		if err != nil {
			t.Fatal(err)
		}
		v.drain = v.u.StartSenders()
	}
	// Catch-up: an uplink with the defaults whose senders do not run while
	// it gathers (the WAN is down), two gathers a tick on its own clock:
	// an hour of gathers (240), an hour and a half ago.
	var fakeCU atomic.Int64
	cuCfg := uplink.Config{RemoteWrite: []uplink.RemoteWrite{{Name: "central", URL: prom.URL + "/api/v1/write"}}}
	if p := cuCfg.Validate(t.TempDir()); len(p) > 0 {
		t.Fatal(p)
	}
	cu, err := uplink.New(uplink.Options{Config: cuCfg, Place: cfg.Place, HubID: "volume-catchup", Gatherer: snap,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:    func() time.Time { return time.Unix(0, fakeCU.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	cuStart := start.Add(-time.Hour)
	rng := rand.New(rand.NewPCG(1, 2))
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for i := range volumeGathers {
		<-tick.C
		mfs, err := scrapeGatherer(h.URL + "/metrics").Gather()
		if err != nil {
			t.Fatal(err)
		}
		snap.mu.Lock()
		snap.mfs = mfs
		snap.mu.Unlock()
		// A real ticker fires a few milliseconds late, never on the second.
		fake.Store(start.Add(time.Duration(i)*15*time.Second + time.Duration(1+rng.IntN(40))*time.Millisecond).UnixNano())
		for _, v := range vs {
			if err := v.u.GatherOnce(); err != nil {
				t.Fatal(err)
			}
		}
		for k := range 2 {
			fakeCU.Store(cuStart.Add(time.Duration(2*i+k)*15*time.Second + time.Duration(1+rng.IntN(40))*time.Millisecond).UnixNano())
			if err := cu.GatherOnce(); err != nil {
				t.Fatal(err)
			}
		}
	}
	stopVillage() // the gathers are done: the rest reads Prometheus
	fake.Store(start.Add(volumeGathers * 15 * time.Second).UnixNano())
	perDay := 86400.0 / 15
	mb := map[string]float64{}
	for _, v := range vs {
		v.drain()
		st := v.u.Stats("central")
		if st.QueueSamples != 0 || st.Sent != st.Queued || v.u.Gathers() != volumeGathers {
			t.Fatalf("%s: %d gathers, %v queued, %v sent, %d still queued", v.name, v.u.Gathers(), st.Queued, st.Sent, st.QueueSamples)
		}
		g := float64(v.u.Gathers())
		body, tcp := st.BytesSent/g, float64(v.proxy.in.Load()+v.proxy.out.Load())/g
		mb[v.name] = body * perDay / 1e6
		t.Logf("%-8s %4.0f series/gather, %5.0f bytes/gather body, %5.0f TCP: %5.1f MB/day body, %5.1f MB/day TCP (15 s gathers)",
			v.name, st.Sent/g, body, tcp, body*perDay/1e6, tcp*perDay/1e6)
	}
	if mb["default"] > 6 || mb["default"] > mb["before"]/2.5 || mb["lean"] > mb["default"] {
		t.Errorf("default settings send %.1f MB/day (before: %.1f, lean: %.1f): want under 6 and under 40%% of before", mb["default"], mb["before"], mb["lean"])
	}

	// The WAN is back: the hour goes up at the default rate limit.
	fakeCU.Store(time.Now().UnixNano())
	onDisk := cu.Stats("central").QueueBytes
	t0 := time.Now()
	cu.StartSenders()()
	took := time.Since(t0)
	cst := cu.Stats("central")
	if cst.QueueSamples != 0 || cu.Gathers() != 2*volumeGathers {
		t.Fatalf("catch-up: %d gathers, %d samples left", cu.Gathers(), cst.QueueSamples)
	}
	t.Logf("catch-up after a 1-hour cut: %d gathers, %d bytes on disk, sent in %v as %.0f bytes (%d KiB/s limit, %d samples a request)",
		cu.Gathers(), onDisk, took.Round(100*time.Millisecond), cst.BytesSent, uplink.DefaultMaxBytesPerSecond>>10, uplink.DefaultMaxSamplesPerSend)
	if got := prom.Query(t, `count_over_time(villagehub_place_info{hub="volume-catchup"}[3h])`); len(got) != 1 || int(got[0].Value) != 2*volumeGathers {
		t.Errorf("catch-up heartbeats at the centre: %v, want %d", got, 2*volumeGathers)
	}

	// What the centre needs arrived from the default uplink, and what is
	// excluded did not.
	for _, q := range []string{
		`villagehub_place_info{hub="volume-default"}`,
		`villagehub_camera_up{hub="volume-default"}`,
		`villagehub_camera_last_probe_success_timestamp_seconds{hub="volume-default"}`,
		`villagehub_qr_scans_total{hub="volume-default"}`,
		`villagehub_uplink_queue_bytes{hub="volume-default"}`,
		`villagehub_uplink_queue_oldest_sample_age_seconds{hub="volume-default"}`,
		`villagehub_uplink_sent_bytes_total{hub="volume-default"}`,
		`villagehub_uplink_samples_dropped_total{hub="volume-default"}`,
		`villagehub_uplink_send_failures_total{hub="volume-default"}`,
		`villagehub_uplink_last_success_timestamp_seconds{hub="volume-default"}`,
		`go_goroutines{hub="volume-before"}`,
	} {
		testenv.WaitFor(t, 10*time.Second, q, func() bool { return len(prom.Query(t, "last_over_time("+q+"[1h])")) > 0 })
	}
	for _, q := range []string{`{hub="volume-default",__name__=~"go_.*|process_.*|promhttp_.*|.*_bucket"}`} {
		if got := prom.Query(t, "count(last_over_time("+q+"[1h]))"); len(got) != 0 {
			t.Errorf("%s at the centre: %v", q, got)
		}
	}
	// Times as gauges in whole seconds at the centre.
	if got := prom.Query(t, `last_over_time(villagehub_camera_last_probe_success_timestamp_seconds{hub="volume-default"}[1h]) % 1 != 0`); len(got) != 0 {
		t.Errorf("probe times with fractions: %v", got)
	}
}
