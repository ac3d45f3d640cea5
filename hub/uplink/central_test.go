package uplink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/common/model"

	"villagehub/hub/app/apptest"
	"villagehub/hub/config"
	"villagehub/hub/testenv"
)

// The shipped central rules with shorter times so the test stays around a
// minute: VillageHubSilent looks for 6 s of silence (not 7m) and holds for
// 3 s (not 3m), evaluated every second. The hubs gather every second (not
// 15 s) and send in batches of up to 2 s (not 5m). So the "2 minute" cut
// of the issue is a 20 s cut here, long enough to fire; the repeated
// "10 s" cuts are 2 s cuts, short enough not to fire.
const (
	testInterval = time.Second
	longCut      = 20 * time.Second
	shortCut     = 2 * time.Second
)

func centralRules(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../configs/prometheus/central-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, r := range [][2]string{
		{"interval: 15s", "interval: 1s"},
		{"present_over_time(villagehub_place_info[7m])", "present_over_time(villagehub_place_info[6s])"},
		{"        for: 3m\n", "        for: 3s\n"},
	} {
		if strings.Count(s, r[0]) != 1 {
			t.Fatalf("central-rules.yml: expected %q once (the test shortens it)", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	return s
}

// webhook records Alertmanager notifications.
type webhook struct {
	mu   sync.Mutex
	msgs []notification
}

type notification struct {
	Status      string `json:"status"`
	ExternalURL string `json:"externalURL"`
	at          time.Time
	Alerts      []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	var n notification
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &n); err == nil {
		n.at = time.Now()
		w.mu.Lock()
		w.msgs = append(w.msgs, n)
		w.mu.Unlock()
	}
}

// count returns how many notifications carried alertname/hub in status.
func (w *webhook) count(alertname, hub, status string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, m := range w.msgs {
		for _, a := range m.Alerts {
			if a.Labels["alertname"] == alertname && a.Labels["hub"] == hub && a.Status == status {
				n++
			}
		}
	}
	return n
}

// firingBeforeResolved counts the firing notifications for alertname/hub
// that arrived before the first resolved one.
func (w *webhook) firingBeforeResolved(alertname, hub string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, m := range w.msgs {
		for _, a := range m.Alerts {
			if a.Labels["alertname"] != alertname || a.Labels["hub"] != hub {
				continue
			}
			if a.Status == "resolved" {
				return n
			}
			n++
		}
	}
	return n
}

func (w *webhook) hubs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, m := range w.msgs {
		for _, a := range m.Alerts {
			out = append(out, fmt.Sprintf("%s:%s from %s at %s", a.Labels["hub"], a.Status, m.ExternalURL, m.at.Format("15:04:05.000")))
		}
	}
	return out
}

// startAlertmanagerCluster starts two Alertmanagers gossiping on loopback
// ports, both notifying hook.
func startAlertmanagerCluster(t *testing.T, hookURL string) (a, b *testenv.Alertmanager) {
	t.Helper()
	conf := `
route:
  receiver: hook
  group_by: [alertname, province, district, commune, village, hub]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: ` + hookURL + `
        send_resolved: true
`
	ga, gb := testenv.FreeAddr(t), testenv.FreeAddr(t)
	flags := func(self, peer string) []string {
		return []string{"--cluster.listen-address=" + self, "--cluster.advertise-address=" + self, "--cluster.peer=" + peer,
			"--cluster.peer-timeout=3s", "--cluster.settle-timeout=2s", "--cluster.gossip-interval=100ms", "--cluster.pushpull-interval=2s"}
	}
	a = testenv.StartAlertmanager(t, conf, flags(ga, gb)...)
	b = testenv.StartAlertmanager(t, conf, flags(gb, ga)...)
	return a, b
}

type village struct {
	id, commune string
	hub         *apptest.Hub
	promLink    *testenv.Link
	influxLink  *testenv.Link
	mqtt        paho.Client
	reports     int
}

func hubConfig(t *testing.T, v *village, influxURL string) *config.Config {
	t.Helper()
	y := fmt.Sprintf(`
hub_id: hub-%[1]s
place: { province: thanh-hoa, district: ngoc-lac, commune: %[2]s, village: %[1]s, lat: 20.1, lon: 105.3, names: { village: "Bản %[1]s" } }
uplink:
  interval: 1s
  remote_write:
    - name: central
      url: http://%[3]s/api/v1/write
      timeout: 2s
      batch_send_deadline: 2s
      min_backoff: 200ms
      max_backoff: 1s
influx: { url: %[4]s, bucket: village/autogen, timeout: 2s, max_retry_interval: 1s, flush_interval: 200ms }
sites: [ { id: cho, name: "Chợ" } ]
cameras: [ { id: gate, site: cho, name: "Cổng" } ]
qr_boards:
  - { id: b1, site: cho, name: "B1", target_url: "https://example.vn/b1" }
  - { id: b2, site: cho, name: "B2", target_url: "https://example.vn/b2" }
`, v.id, v.commune, v.promLink.Addr, influxURL)
	cfg, err := config.Parse("hub-"+v.id+".yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	apptest.Prepare(t, cfg)
	return cfg
}

// TestProvinceWANCuts: three hubs push metrics to a real Prometheus (remote
// write receiver) and points to a real InfluxDB, each through its own
// Toxiproxy link. Village a is cut for longer than VillageHubSilent's
// window, village b is cut briefly again and again, village c never. At
// the end every gathered sample and every point is at the centre exactly
// once, VillageHubSilent fired and resolved for a only (one notification
// each through a two-node Alertmanager cluster), and none for b and c.
func TestProvinceWANCuts(t *testing.T) {
	hook := &webhook{}
	hookSrv := httptest.NewServer(hook)
	t.Cleanup(hookSrv.Close)
	amA, amB := startAlertmanagerCluster(t, hookSrv.URL)

	prom := testenv.StartPrometheus(t, `
global: { evaluation_interval: 1s }
storage: { tsdb: { out_of_order_time_window: 1h } }
rule_files: [ "{{DIR}}/central-rules.yml" ]
alerting:
  alertmanagers:
    - static_configs: [ { targets: [ "`+strings.TrimPrefix(amA.URL, "http://")+`", "`+strings.TrimPrefix(amB.URL, "http://")+`" ] } ]
`, map[string]string{"central-rules.yml": centralRules(t)}, "--web.enable-remote-write-receiver")
	influx := testenv.StartInflux(t)
	tp := testenv.StartToxiproxy(t)

	vs := []*village{{id: "a", commune: "minh-son"}, {id: "b", commune: "minh-son"}, {id: "c", commune: "yen-lac"}}
	for _, v := range vs {
		v.promLink = tp.Link(t, "prom-"+v.id, strings.TrimPrefix(prom.URL, "http://"))
		v.influxLink = tp.Link(t, "influx-"+v.id, influx.Addr())
		v.hub = apptest.Start(t, hubConfig(t, v, "http://"+v.influxLink.Addr), nil)
		v.mqtt = testenv.MQTT(t, "tcp://"+v.hub.BrokerAddr(), "board-"+v.id)
	}
	start := time.Now()

	// Boards report scans all along (one report = one scan = one point).
	ctx, stopBoards := context.WithCancel(context.Background())
	var boards sync.WaitGroup
	for _, v := range vs {
		boards.Go(func() {
			tick := time.NewTicker(150 * time.Millisecond)
			defer tick.Stop()
			for n := 1; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				board := []string{"b1", "b2"}[n%2]
				tok := v.mqtt.Publish("village/cho/qr/"+board+"/scans", 1, false, fmt.Sprintf(`{"total":%d,"boot":"t1"}`, (n+1)/2))
				if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
					v.reports++
				}
			}
		})
	}
	defer stopBoards()

	testenv.WaitFor(t, 30*time.Second, "all three hubs at the centre", func() bool {
		return len(prom.Query(t, `villagehub_place_info`)) == 3
	})

	// Cut a for longCut; cut b for shortCut, again and again, meanwhile.
	a, b, c := vs[0], vs[1], vs[2]
	a.promLink.Cut(t)
	a.influxLink.Cut(t)
	cutEnd := time.Now().Add(longCut)
	for time.Now().Before(cutEnd) {
		b.promLink.Cut(t)
		b.influxLink.Cut(t)
		hold(shortCut)
		b.promLink.Restore(t)
		b.influxLink.Restore(t)
		hold(3 * time.Second)
	}
	firing := prom.Query(t, `ALERTS{alertname="VillageHubSilent",alertstate="firing"}`)
	if len(firing) != 1 || firing[0].Metric["hub"] != "hub-a" {
		t.Errorf("at the end of a's cut, firing: %v (want hub-a only)", firing)
	}
	// Both members of the cluster hold the alert (so one notification at
	// the end means deduplication, not a lost alert).
	for _, am := range []*testenv.Alertmanager{amA, amB} {
		testenv.WaitFor(t, 10*time.Second, "the alert at both Alertmanagers", func() bool {
			for _, al := range am.Alerts(t) {
				if al.Labels["alertname"] == "VillageHubSilent" && al.Labels["hub"] == "hub-a" {
					return true
				}
			}
			return false
		})
	}
	a.promLink.Restore(t)
	a.influxLink.Restore(t)

	testenv.WaitFor(t, 30*time.Second, "VillageHubSilent resolved for a through the cluster", func() bool {
		return hook.count("VillageHubSilent", "hub-a", "resolved") > 0
	})
	stopBoards()
	boards.Wait()
	for _, v := range vs {
		// Drained: everything queued so far has been sent (the hub keeps
		// gathering every second, so an empty queue is only a moment).
		queued := v.hub.Uplink().Stats("central").Queued
		testenv.WaitFor(t, 60*time.Second, "hub "+v.id+" drained", func() bool {
			return v.hub.Uplink().Stats("central").Sent >= queued && influxPoints(t, influx, v) >= int64(v.reports)
		})
	}
	// The second Alertmanager would send a duplicate peer_timeout (3 s)
	// after the first: give it time to show before counting.
	hold(4 * time.Second)
	// Alerts: a fired and resolved once (the cluster deduplicated the two
	// Alertmanagers' notifications); nothing for b or c.
	// While the alert fired, the two members sent one notification
	// between them. The second member flushes its group every
	// group_interval (1 s here) and waits peer_timeout (3 s) before
	// looking at the first one's notification log: a flush that started
	// just before the resolution finds "resolved" in the log against its
	// own "firing" and sends a late firing+resolved pair. That is
	// Alertmanager failing open (it would rather repeat than lose a
	// notification), more likely with this test's 1 s group_interval than
	// with the shipped 2m; it is logged, not failed.
	if f, r := hook.firingBeforeResolved("VillageHubSilent", "hub-a"), hook.count("VillageHubSilent", "hub-a", "resolved"); f != 1 || r < 1 {
		t.Errorf("hub-a: %d firing notifications before the first resolved one (want 1), %d resolved (want 1+); all: %v", f, r, hook.hubs())
	}
	if f := hook.count("VillageHubSilent", "hub-a", "firing"); f > 1 {
		t.Logf("a late member sent its own notifications after the resolution: %v", hook.hubs())
	}
	for _, v := range []*village{b, c} {
		if n := hook.count("VillageHubSilent", "hub-"+v.id, "firing"); n != 0 {
			t.Errorf("VillageHubSilent fired for %s", v.id)
		}
	}
	ever := prom.Query(t, fmt.Sprintf(`max_over_time(ALERTS{alertname="VillageHubSilent",alertstate="firing"}[%ds])`, int(time.Since(start).Seconds())+5))
	if len(ever) != 1 || ever[0].Metric["hub"] != "hub-a" {
		t.Errorf("VillageHubSilent ever firing: %v", ever)
	}

	// Stopped hubs go silent: the alert checks above come first.
	for _, v := range vs {
		v.hub.Stop() // a clean stop sends what is left
	}

	// Metrics: every gather of every hub once, no gap, nothing dropped.
	end := time.Now()
	for _, v := range vs {
		st := v.hub.Uplink().Stats("central")
		gathers := v.hub.Uplink().Gathers()
		if st.QueueSamples != 0 || st.Dropped["queue_full"]+st.Dropped["rejected"]+st.Dropped["corrupt"] != 0 {
			t.Errorf("hub %s: %d samples still queued, dropped %v", v.id, st.QueueSamples, st.Dropped)
		}
		ts := sampleTimes(t, prom, fmt.Sprintf(`villagehub_place_info{hub="hub-%s"}`, v.id), end.Sub(start)+time.Minute)
		if int64(len(ts)) != gathers {
			t.Errorf("hub %s: %d heartbeat samples at the centre, %d gathered", v.id, len(ts), gathers)
		}
		for i := 1; i < len(ts); i++ {
			if d := ts[i].Sub(ts[i-1]); d <= 0 || d > 3*testInterval {
				t.Errorf("hub %s: gap of %v at %s", v.id, d, ts[i-1].Format(time.RFC3339Nano))
			}
		}
		total := samplesAt(t, prom, fmt.Sprintf(`{hub="hub-%s",__name__!~"ALERTS.*"}[%ds]`, v.id, int(end.Sub(start).Seconds())+60))
		if float64(total) != st.Queued || st.Queued != st.Sent {
			t.Errorf("hub %s: centre holds %d samples; hub queued %v, sent %v", v.id, total, st.Queued, st.Sent)
		}
		t.Logf("hub %s: %d gathers, %v samples, %v bytes sent, %v failed pushes", v.id, gathers, st.Sent, st.BytesSent, st.Failures)
	}
	if st := a.hub.Uplink().Stats("central"); st.Failures == 0 {
		t.Error("village a's cut caused no failed push: the cut did not cut")
	}

	// History: every scan point once in the central bucket, per hub.
	for _, v := range vs {
		if got := influxPoints(t, influx, v); got != int64(v.reports) || v.reports == 0 {
			t.Errorf("hub %s: %d qr_scans points in InfluxDB, %d reports accepted by the hub", v.id, got, v.reports)
		}
	}
}

// hold keeps a link cut or up for d: the fault schedule itself, not a
// wait for a condition.
func hold(d time.Duration) { <-time.After(d) }

// influxPoints counts v's qr_scans points in the central bucket, found by
// the place tags its hub adds.
func influxPoints(t *testing.T, in *testenv.Influx, v *village) int64 {
	t.Helper()
	rows, err := in.Query(fmt.Sprintf(`from(bucket: "village/autogen") |> range(start: -1h)
  |> filter(fn: (r) => r._measurement == "qr_scans" and r._field == "scans" and r.hub == "hub-%s" and r.village == "%s" and r.commune == "%s" and r.province == "thanh-hoa")
  |> group() |> count()`, v.id, v.id, v.commune))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		return 0
	}
	n, _ := rows[0]["_value"].(int64)
	return n
}

// samplesAt counts the samples a range selector returns now.
func samplesAt(t *testing.T, prom *testenv.Prometheus, sel string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v, _, _, err := prom.API.Query(ctx, sel, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range v.(model.Matrix) {
		n += len(s.Values)
	}
	return n
}

// sampleTimes returns the timestamps of the one series expr selects, over
// the last rng.
func sampleTimes(t *testing.T, prom *testenv.Prometheus, expr string, rng time.Duration) []time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, _, _, err := prom.API.Query(ctx, fmt.Sprintf("%s[%ds]", expr, int(rng.Seconds())), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m, ok := v.(model.Matrix)
	if !ok || len(m) != 1 {
		t.Fatalf("%s: %v", expr, v)
	}
	var out []time.Time
	for _, p := range m[0].Values {
		out = append(out, p.Timestamp.Time())
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}
