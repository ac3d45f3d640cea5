package uplink_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"villagehub/hub/testenv"
	"villagehub/hub/uplink"
)

// TestKill9RealHub: the villagehub binary (built by testenv) gathers with
// its receiver unreachable (a real Prometheus behind a black-holed
// Toxiproxy link), so its queue grows on disk; it is killed with SIGKILL,
// started again while the link is still down, and then the link returns.
// Every sample that was queued on disk at the kill reaches Prometheus
// exactly once, with its original timestamp and value, and so does
// everything gathered after the restart.
func TestKill9RealHub(t *testing.T) {
	prom := testenv.StartPrometheus(t, "storage: { tsdb: { out_of_order_time_window: 1h } }\n", nil, "--web.enable-remote-write-receiver")
	link := testenv.StartToxiproxy(t).Link(t, "wan", strings.TrimPrefix(prom.URL, "http://"))
	link.Cut(t)

	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	httpAddr := testenv.FreeAddr(t)
	cfgPath := filepath.Join(dir, "villagehub.yaml")
	// The default 5-minute batches would hold everything until the
	// clean-up; 0s sends each gather as soon as the link lets it.
	yaml := fmt.Sprintf(`hub_id: killed-hub
data_dir: %s
http: { addr: %s }
broker: { addr: %s, allow_anonymous: true }
place: { province: thanh-hoa, district: ngoc-lac, commune: minh-son, village: ban-kill }
uplink:
  interval: 1s
  remote_write:
    - { name: central, url: "http://%s/api/v1/write", batch_send_deadline: 0s, timeout: 1s, min_backoff: 100ms, max_backoff: 500ms }
sites: [ { id: cho, name: "Chợ" } ]
qr_boards: [ { id: b1, site: cho, name: "B1", target_url: "https://example.vn/b1" } ]
`, dataDir, httpAddr, testenv.FreeAddr(t), link.Addr)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := testenv.Build(t, "./cmd/villagehub")
	queueDir := filepath.Join(dataDir, "uplink", "central")
	start := func() *testenv.Process {
		p := testenv.StartProcess(t, bin, nil, "--config", cfgPath, "--log-level", "warn")
		testenv.WaitHTTP(t, "http://"+httpAddr+"/readyz", 20*time.Second, p)
		return p
	}

	p1 := start()
	testenv.WaitFor(t, 20*time.Second, "5 gathers queued on disk", func() bool { return queued(t, queueDir) >= 5 })
	p1.Kill()
	atKill, err := uplink.ReadQueue(queueDir)
	if err != nil {
		t.Fatal(err)
	}
	// Heartbeats (villagehub_place_info, one per gather) on disk at the kill.
	beats := map[int64]bool{}
	for _, s := range atKill {
		if s.Labels["__name__"] == "villagehub_place_info" {
			beats[s.TS] = true
		}
	}
	if len(beats) < 5 {
		t.Fatalf("%d heartbeats on disk after the kill", len(beats))
	}
	last := int64(0)
	for ts := range beats {
		last = max(last, ts)
	}

	// Restarted with the link still down: the old queue is kept and grows.
	p2 := start()
	testenv.WaitFor(t, 20*time.Second, "more gathers queued after the restart", func() bool { return queued(t, queueDir) >= len(beats)+3 })
	link.Restore(t)
	testenv.WaitFor(t, 30*time.Second, "the queue drained into Prometheus", func() bool {
		v := prom.Query(t, `count_over_time(villagehub_place_info{hub="killed-hub"}[10m])`)
		return len(v) == 1 && int(v[0].Value) >= len(beats)+3 && queued(t, queueDir) <= 1
	})
	if err := p2.Stop(10 * time.Second); err != nil {
		t.Errorf("clean stop: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Every sample of run 1 (ts up to the last one on disk at the kill),
	// all series: what is at the centre is exactly what was on disk.
	at := time.UnixMilli(last)
	res, _, _, err := prom.API.Query(ctx, `{hub="killed-hub"}[10m]`, at)
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		series string
		ts     int64
	}
	centre := map[key][]float64{}
	for _, s := range res.(model.Matrix) {
		for _, v := range s.Values {
			k := key{s.Metric.String(), int64(v.Timestamp)}
			centre[k] = append(centre[k], float64(v.Value))
		}
	}
	want := map[key]float64{}
	for _, s := range atKill {
		m := model.Metric{}
		for n, v := range s.Labels {
			if v != "" { // a receiver keeps no empty label
				m[model.LabelName(n)] = model.LabelValue(v)
			}
		}
		want[key{m.String(), s.TS}] = s.Value
	}
	missing, wrong := 0, 0
	for k, v := range want {
		got := centre[k]
		switch {
		case len(got) == 0:
			if missing++; missing <= 5 {
				t.Errorf("queued at the kill, not at the centre: %s @%d", k.series, k.ts)
			}
		case len(got) > 1 || got[0] != v && !(math.IsNaN(got[0]) && math.IsNaN(v)):
			if wrong++; wrong <= 5 {
				t.Errorf("%s @%d: centre has %v, the queue had %v", k.series, k.ts, got, v)
			}
		}
	}
	if len(centre) != len(want) {
		t.Errorf("centre holds %d samples up to the kill's last gather, the queue held %d", len(centre), len(want))
	}
	t.Logf("%d samples (%d gathers) on disk at the kill, all at the centre once; %d gathers in all", len(want), len(beats),
		int(prom.Query(t, `count_over_time(villagehub_place_info{hub="killed-hub"}[10m])`)[0].Value))
}
