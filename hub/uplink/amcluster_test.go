package uplink_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"villagehub/hub/testenv"
	"villagehub/hub/uplink"
)

// sentBy tells which Alertmanager sent the notifications for hub: its
// external URL ends with the member's port.
func (w *webhook) sentBy(hub string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, m := range w.msgs {
		for _, a := range m.Alerts {
			if a.Labels["hub"] == hub {
				out = append(out, m.ExternalURL)
				break
			}
		}
	}
	return out
}

func port(url string) string { return url[strings.LastIndexByte(url, ':')+1:] }

// TestAlertmanagerClusterOneNotification: two Prometheus replicas
// evaluate the shipped central rules (times shortened as in
// TestProvinceWANCuts) over the same pushes, from two villages' uplinks
// each writing to both, and both send their alerts to both members of a
// two-node Alertmanager cluster gossiping on loopback. Village v1 goes
// silent: one notification reaches the webhook, not two or four. The
// member that sent it is then killed (SIGKILL): the survivor, which holds
// the same alert and the shared notification log, sends nothing more for
// v1; and when v2 goes silent it sends exactly one notification for it.
func TestAlertmanagerClusterOneNotification(t *testing.T) {
	hook := &webhook{}
	hookSrv := httptest.NewServer(hook)
	t.Cleanup(hookSrv.Close)
	amA, amB := startAlertmanagerCluster(t, hookSrv.URL)
	rules := centralRules(t)
	var proms []*testenv.Prometheus
	for range 2 {
		proms = append(proms, testenv.StartPrometheus(t, `
global: { evaluation_interval: 1s }
storage: { tsdb: { out_of_order_time_window: 1h } }
rule_files: [ "{{DIR}}/central-rules.yml" ]
alerting:
  alertmanagers:
    - static_configs: [ { targets: [ "`+strings.TrimPrefix(amA.URL, "http://")+`", "`+strings.TrimPrefix(amB.URL, "http://")+`" ] } ]
`, map[string]string{"central-rules.yml": rules}, "--web.enable-remote-write-receiver"))
	}

	// Two villages, each pushing to both replicas every second.
	stop := map[string]func(){}
	for _, v := range []string{"v1", "v2"} {
		reg := prometheus.NewRegistry()
		cfg := uplink.Config{Interval: uplink.Duration(time.Second)}
		for i, p := range proms {
			cfg.RemoteWrite = append(cfg.RemoteWrite, uplink.RemoteWrite{Name: []string{"prom-a", "prom-b"}[i], URL: p.URL + "/api/v1/write",
				BatchSendDeadline: new(uplink.Duration(0)), MinBackoff: uplink.Duration(100 * time.Millisecond), MaxBackoff: uplink.Duration(time.Second)})
		}
		if p := cfg.Validate(t.TempDir()); len(p) > 0 {
			t.Fatal(p)
		}
		u, err := uplink.New(uplink.Options{Config: cfg, HubID: "hub-" + v, Gatherer: reg, Registerer: reg,
			Place:  uplink.Place{Province: "thanh-hoa", District: "ngoc-lac", Commune: "minh-son", Village: v},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = u.Run(ctx); close(done) }()
		stop[v] = func() { cancel(); <-done }
		t.Cleanup(stop[v])
	}
	for _, p := range proms {
		testenv.WaitFor(t, 30*time.Second, "both villages at both replicas", func() bool { return len(p.Query(t, `villagehub_place_info`)) == 2 })
	}

	// v1 goes silent.
	stop["v1"]()
	testenv.WaitFor(t, 40*time.Second, "VillageHubSilent for v1 notified", func() bool { return hook.count("VillageHubSilent", "hub-v1", "firing") >= 1 })
	for i, p := range proms {
		// The replicas evaluate on their own phases: the second may be a
		// moment behind the first.
		testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("replica %d firing for v1", i), func() bool {
			f := p.Query(t, `ALERTS{alertname="VillageHubSilent",alertstate="firing"}`)
			return len(f) == 1 && f[0].Metric["hub"] == "hub-v1"
		})
	}
	for _, am := range []*testenv.Alertmanager{amA, amB} {
		testenv.WaitFor(t, 10*time.Second, "the alert at both members", func() bool {
			for _, al := range am.Alerts(t) {
				if al.Labels["alertname"] == "VillageHubSilent" && al.Labels["hub"] == "hub-v1" {
					return true
				}
			}
			return false
		})
	}
	// The other member would send its own copy a peer_timeout (3 s) after
	// the first, and either would repeat at each 1 s group_interval if it
	// forgot: watch for longer than both.
	hold(5 * time.Second)
	if n := hook.count("VillageHubSilent", "hub-v1", "firing"); n != 1 {
		t.Fatalf("v1: %d firing notifications from a cluster of two fed by two replicas, want 1: %v", n, hook.hubs())
	}

	// The member that notified dies.
	sender, survivor := amA, amB
	by := hook.sentBy("hub-v1")
	switch {
	case len(by) == 1 && strings.HasSuffix(by[0], ":"+port(amB.URL)):
		sender, survivor = amB, amA
	case len(by) != 1 || !strings.HasSuffix(by[0], ":"+port(amA.URL)):
		t.Fatalf("v1 notified by %v: neither member", by)
	}
	sender.Kill()
	t.Logf("killed the member that notified (%s); %s survives", sender.URL, survivor.URL)
	hold(5 * time.Second)
	if n := hook.count("VillageHubSilent", "hub-v1", "firing"); n != 1 {
		t.Errorf("v1 after a member died: %d firing notifications, want still 1: %v", n, hook.hubs())
	}

	// v2 goes silent: the survivor alone notifies, once.
	stop["v2"]()
	testenv.WaitFor(t, 40*time.Second, "VillageHubSilent for v2 notified by the survivor", func() bool {
		return hook.count("VillageHubSilent", "hub-v2", "firing") >= 1
	})
	hold(3 * time.Second)
	if n := hook.count("VillageHubSilent", "hub-v2", "firing"); n != 1 {
		t.Errorf("v2: %d firing notifications, want 1: %v", n, hook.hubs())
	}
	if by := hook.sentBy("hub-v2"); len(by) == 0 || !strings.HasSuffix(by[0], ":"+port(survivor.URL)) {
		t.Errorf("v2 notified by %v, want the survivor %s", by, survivor.URL)
	}
	if n := hook.count("VillageHubSilent", "hub-v1", "firing"); n != 1 {
		t.Errorf("v1 at the end: %d firing notifications, want 1: %v", n, hook.hubs())
	}
}
