package alert_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"villagehub/hub/alert"
	"villagehub/hub/testenv"
)

const (
	rulesFile        = "../../configs/prometheus/alerts.yml"
	rulesTestFile    = "../../configs/prometheus/alerts_test.yml"
	alertmanagerFile = "../../configs/alertmanager/alertmanager.yml"
)

// TestPrometheusRules: promtool checks the shipped rules and runs their
// unit tests (each rule firing and not firing), and a real Prometheus
// loads them.
func TestPrometheusRules(t *testing.T) {
	t.Parallel()
	out := testenv.Promtool(t, "check", "rules", rulesFile)
	if !strings.Contains(out, "SUCCESS: 12 rules found") {
		t.Errorf("promtool check rules:\n%s", out)
	}
	out = testenv.Promtool(t, "test", "rules", rulesTestFile)
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules:\n%s", out)
	}
	// Every rule has a test that expects it to fire.
	rules, _ := os.ReadFile(rulesFile)
	tests, _ := os.ReadFile(rulesTestFile)
	for _, m := range regexp.MustCompile(`(?m)^\s+- alert: (\w+)`).FindAllStringSubmatch(string(rules), -1) {
		if !regexp.MustCompile(`alertname: ` + m[1] + `\n\s+exp_alerts:\n\s+- exp_labels`).Match(tests) {
			t.Errorf("alerts_test.yml never expects %s to fire", m[1])
		}
		if !regexp.MustCompile(`alertname: ` + m[1] + `\n\s+exp_alerts: \[\]`).Match(tests) {
			t.Errorf("alerts_test.yml never expects %s not to fire", m[1])
		}
	}

	rulesText, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	p := testenv.StartPrometheus(t, "global: { evaluation_interval: 1s }\nrule_files: ['{{DIR}}/alerts.yml']\n",
		map[string]string{"alerts.yml": string(rulesText)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := p.API.Rules(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range res.Groups {
		n += len(g.Rules)
	}
	if n != 12 {
		t.Errorf("Prometheus loaded %d rules, want 12\n%s", n, p.Output())
	}
	// With nothing scraped, HubAbsent's condition holds at once.
	testenv.WaitFor(t, 10*time.Second, "HubAbsent pending in Prometheus", func() bool {
		return len(p.Query(t, `ALERTS{alertname="HubAbsent"}`)) == 1
	})
}

// amWebhook collects what Alertmanager posts to a webhook receiver.
type amWebhook struct {
	*httptest.Server
	mu   sync.Mutex
	msgs []amMessage
}

type amMessage struct {
	Receiver string `json:"receiver"`
	Status   string `json:"status"`
	Alerts   []struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     time.Time         `json:"startsAt"`
		EndsAt       time.Time         `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
	} `json:"alerts"`
	GroupLabels map[string]string `json:"groupLabels"`
}

func (w *amWebhook) all() []amMessage {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]amMessage(nil), w.msgs...)
}

// TestAlertmanager: the shipped alertmanager.yml (its receiver pointed at
// a test webhook, its waits shortened) in a real Alertmanager receives the
// hub's alert and routes it to the webhook, firing and then resolved.
func TestAlertmanager(t *testing.T) {
	t.Parallel()
	if out, err := exec.Command("amtool", "check-config", alertmanagerFile).CombinedOutput(); err != nil {
		t.Fatalf("amtool check-config: %v\n%s", err, out)
	}
	wh := &amWebhook{}
	wh.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m amMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("Alertmanager posted %s: %v", b, err)
		}
		wh.mu.Lock()
		wh.msgs = append(wh.msgs, m)
		wh.mu.Unlock()
	}))
	defer wh.Close()
	conf, err := os.ReadFile(alertmanagerFile)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(conf), "http://127.0.0.1:9099/alerts", wh.URL+"/am", 1)
	text = regexp.MustCompile(`group_wait: \S+`).ReplaceAllString(text, "group_wait: 0s")
	text = regexp.MustCompile(`group_interval: \S+`).ReplaceAllString(text, "group_interval: 1s")
	am := testenv.StartAlertmanager(t, text)

	rules := fastRules()
	notifier := alert.Notifier{Type: "alertmanager", URL: am.URL, ResendInterval: dur(time.Second)}
	r := startRig(t, rigConfig{DataDir: filepath.Join(t.TempDir(), "data"), Sites: sites, Cameras: statusCameras(1),
		Alerts: alert.Config{Rules: rules, Notifiers: []alert.Notifier{notifier}}})
	r.status(t, "camera", "tan-ngu-2", "cam-0", "offline")

	testenv.WaitFor(t, 15*time.Second, "Alertmanager's firing notification", func() bool {
		for _, m := range wh.all() {
			if m.Status == "firing" {
				return true
			}
		}
		return false
	})
	m := wh.all()[0]
	if len(m.Alerts) != 1 || m.Receiver != "village-webhook" || m.GroupLabels["alertname"] != "CameraDown" || m.GroupLabels["site"] != "tan-ngu-2" {
		t.Fatalf("Alertmanager's notification: %+v", m)
	}
	a := m.Alerts[0]
	if a.Labels["alertname"] != "CameraDown" || a.Labels["device"] != "cam-0" || a.Labels["severity"] != "critical" || a.Labels["hub"] != "test-hub" ||
		a.Annotations["summary_vi"] != "Camera mất kết nối: Camera 0 – Thôn Tân Ngữ 2" || a.GeneratorURL != "http://hub.example.vn/" || a.StartsAt.IsZero() {
		t.Errorf("alert as routed: %+v", a)
	}
	if got := am.Alerts(t); len(got) != 1 || got[0].Status.State != "active" {
		t.Errorf("Alertmanager holds %+v", got)
	}

	r.status(t, "camera", "tan-ngu-2", "cam-0", "online")
	testenv.WaitFor(t, 15*time.Second, "Alertmanager's resolved notification", func() bool {
		for _, m := range wh.all() {
			if m.Status == "resolved" && len(m.Alerts) == 1 && m.Alerts[0].Labels["device"] == "cam-0" && !m.Alerts[0].EndsAt.IsZero() {
				return true
			}
		}
		return false
	})
	// A notice counts as sent once it left the outbox, a moment after
	// Alertmanager had it.
	testenv.WaitFor(t, 20*time.Second, "the resolved notice counted as sent", func() bool {
		return counter(t, r.Engine, "villagehub_notifications_total", "alertmanager", "", "sent") >= 2
	})
	if v := counter(t, r.Engine, "villagehub_notifications_total", "alertmanager", "", "sent"); v != 2 {
		t.Errorf("alertmanager notifier sent %v notices, want 2", v)
	}
}
