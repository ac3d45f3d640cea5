package uplink_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"villagehub/hub/app/apptest"
	"villagehub/hub/config"
	"villagehub/hub/testenv"
)

type hubAlert struct {
	Alert, Device, Reason, Detail string
}

// uplinkAlert returns the HubDegraded alert of the uplink check, if it
// fires.
func uplinkAlert(t *testing.T, hubURL string) *hubAlert {
	t.Helper()
	resp, err := http.Get(hubURL + "/api/v1/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a struct {
		Firing []hubAlert `json:"firing"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	for _, f := range a.Firing {
		if f.Alert == "HubDegraded" && f.Device == "uplink" {
			return &f
		}
	}
	return nil
}

// TestBacklogAlertsLocally: a hub whose link to the centre is cut (a real
// Prometheus behind a black-holed Toxiproxy link) fires its own
// HubDegraded alert, check uplink, reason uplink_backlog, once the oldest
// queued sample is older than uplink.backlog_alert_age (shortened to 3 s);
// when the link returns and the queue drains, the alert resolves. The
// village hears about a stuck uplink even though the centre, which would
// alert on its silence, is what it cannot reach.
func TestBacklogAlertsLocally(t *testing.T) {
	prom := testenv.StartPrometheus(t, "storage: { tsdb: { out_of_order_time_window: 1h } }\n", nil, "--web.enable-remote-write-receiver")
	link := testenv.StartToxiproxy(t).Link(t, "wan", strings.TrimPrefix(prom.URL, "http://"))
	link.Cut(t)
	cfg, err := config.Parse("hub.yaml", []byte(fmt.Sprintf(`
hub_id: stuck
place: { province: thanh-hoa, district: ngoc-lac, commune: minh-son, village: ban-stuck }
uplink:
  interval: 1s
  backlog_alert_age: 3s
  remote_write:
    - { name: central, url: "http://%s/api/v1/write", batch_send_deadline: 0s, timeout: 1s, min_backoff: 100ms, max_backoff: 500ms }
alerts: { rules: { hub_degraded: { for: 1s, recover_for: 2 } } }
sites: [ { id: cho, name: "Chợ" } ]
`, link.Addr)))
	if err != nil {
		t.Fatal(err)
	}
	apptest.Prepare(t, cfg)
	// Before Start: the hub queues its first sample while starting, and
	// the 4 s below count from that sample (measured from after Start,
	// the alert once came 0.1 ms "early").
	start := time.Now()
	h := apptest.Start(t, cfg, nil)

	var a *hubAlert
	testenv.WaitFor(t, 30*time.Second, "HubDegraded uplink_backlog", func() bool {
		a = uplinkAlert(t, h.URL)
		return a != nil
	})
	// 3 s of backlog, plus `for` (1 s).
	if took := time.Since(start); took < 4*time.Second {
		t.Errorf("fired after %v: before the backlog was 3 s old and held for 1 s", took)
	}
	if a.Reason != "uplink_backlog" || !strings.Contains(a.Detail, "uplink central") {
		t.Errorf("alert %+v", *a)
	}
	if v, _ := testenv.Scrape(t, h.URL).Value("villagehub_alerts_firing", "alert=HubDegraded"); v < 1 {
		t.Errorf("villagehub_alerts_firing{alert=HubDegraded} = %v", v)
	}

	link.Restore(t)
	testenv.WaitFor(t, 30*time.Second, "the backlog at the centre and the alert resolved", func() bool {
		return uplinkAlert(t, h.URL) == nil && h.Uplink().Stats("central").Sent > 0
	})
	// The samples queued during the cut kept their times.
	v := prom.Query(t, `count_over_time(villagehub_place_info{hub="stuck"}[5m])`)
	if len(v) != 1 || v[0].Value < 4 {
		t.Errorf("heartbeats at the centre after the cut: %v", v)
	}
}
