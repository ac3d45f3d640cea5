package alert_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"villagehub/hub/alert"
	"villagehub/hub/state"
	"villagehub/hub/testenv"
)

// statusCameras are cameras without RTSP: CameraDown comes from their MQTT
// status alone.
func statusCameras(n int) []camera {
	out := make([]camera, n)
	for i := range out {
		out[i] = camera{ID: fmt.Sprintf("cam-%d", i), Site: "tan-ngu-2", Name: fmt.Sprintf("Camera %d", i)}
	}
	return out
}

var sites = []state.Site{{ID: "tan-ngu-2", Name: "Thôn Tân Ngữ 2"}}

func fastRules() alert.Rules {
	var r alert.Rules
	r.CameraDown.For = dur(time.Second)
	return r
}

// TestWebhookRetriesOnceDelivered: a webhook that fails three times and
// then works gets the notice exactly once, every attempt with the same
// idempotency key (in the header and the body), and the counters say so.
func TestWebhookRetriesOnceDelivered(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, 3)
	cfg := alert.Config{Rules: fastRules(), Notifiers: []alert.Notifier{webhookCfg(rc.URL)}}
	r := startRig(t, rigConfig{Sites: sites, Cameras: statusCameras(1), Alerts: cfg})
	r.status(t, "camera", "tan-ngu-2", "cam-0", "online")
	r.status(t, "camera", "tan-ngu-2", "cam-0", "offline")
	testenv.WaitFor(t, 10*time.Second, "the notice to get through", func() bool { return len(rc.notices(true)) > 0 })
	settle(t, r.URL, 3) // anything more would come by now
	got := rc.notices(true)
	if len(got) != 1 {
		t.Fatalf("receiver got %d notices, want exactly 1", len(got))
	}
	rc.mu.Lock()
	requests := rc.requests
	rc.mu.Unlock()
	if requests != 4 {
		t.Errorf("receiver saw %d requests, want 4 (3 failures, then success)", requests)
	}
	n := got[0].N
	if n.Kind != "firing" || n.Alert != "CameraDown" || n.Device != "cam-0" || n.Reason != "offline" || n.DeviceName != "Camera 0" || n.SiteName != "Thôn Tân Ngữ 2" {
		t.Errorf("notice: %+v", n)
	}
	if n.Key == "" || got[0].Header.Get("Idempotency-Key") != n.Key {
		t.Errorf("idempotency key: body %q, header %q", n.Key, got[0].Header.Get("Idempotency-Key"))
	}
	if v := counter(t, r.Engine, "villagehub_notifications_total", "webhook", "", "sent"); v != 1 {
		t.Errorf("sent = %v", v)
	}
	if v := counter(t, r.Engine, "villagehub_notification_retries_total", "webhook"); v != 3 {
		t.Errorf("retries = %v", v)
	}
	if v := counter(t, r.Engine, "villagehub_alerts_firing", "CameraDown", "tan-ngu-2"); v != 1 {
		t.Errorf("alerts_firing = %v", v)
	}
}

// counter reads one series of the engine's metrics by its label values
// (in the order of the metric's labels, which are sorted by name).
func counter(t *testing.T, c prometheus.Collector, name string, labels ...string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for i, l := range m.GetLabel() {
				if l.GetValue() != labels[i] {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// hangingServer accepts connections and never answers: the worst kind of
// dead webhook.
func hangingServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "http://" + ln.Addr().String() + "/hook"
}

// publisher records MQTT publishes.
type publisher struct {
	mu   sync.Mutex
	msgs []published
}

type published struct {
	Topic   string
	Payload []byte
	Retain  bool
	QoS     byte
}

func (p *publisher) Publish(topic string, payload []byte, retain bool, qos byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, published{topic, append([]byte(nil), payload...), retain, qos})
	return nil
}

func (p *publisher) all() []published {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]published(nil), p.msgs...)
}

// TestDeadWebhookBlocksNothing: one webhook hangs (accepts, never
// answers), another refuses connections; a working webhook and MQTT still
// get every notice at once, and the hanging one's small queue drops
// instead of growing.
func TestDeadWebhookBlocksNothing(t *testing.T) {
	t.Parallel()
	good := newReceiver(t, 0)
	hang := webhookCfg(hangingServer(t))
	hang.Name, hang.Timeout, hang.QueueSize = "hanging", dur(20*time.Second), 2
	refused := webhookCfg("http://" + testenv.FreeAddr(t) + "/hook")
	refused.Name = "refused"
	ok := webhookCfg(good.URL)
	ok.Name = "good"
	pub := &publisher{}
	rules := fastRules()
	// The refused webhook would fire NotifierFailing through the others;
	// this test counts camera notices only (zalo_test.go covers that).
	rules.NotifierFailing.Enabled = boolp(false)
	cfg := alert.Config{Rules: rules, Notifiers: []alert.Notifier{hang, refused, ok, {Type: "mqtt"}}}
	r := startRig(t, rigConfig{Sites: sites, Cameras: statusCameras(6), Alerts: cfg,
		Edit: func(d *alert.Deps) { d.Publisher = pub }})
	start := time.Now()
	for i := range 6 {
		r.status(t, "camera", "tan-ngu-2", fmt.Sprintf("cam-%d", i), "offline")
	}
	testenv.WaitFor(t, 20*time.Second, "six notices at the good webhook, counted", func() bool {
		return len(good.notices(false)) == 6 && r.Engine.Notifiers()[2].Sent == 6
	})
	testenv.WaitFor(t, 20*time.Second, "six MQTT alerts", func() bool { return len(pub.all()) == 6 })
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("notices took %v with for=1s: something waited on the dead webhooks", d)
	}
	for _, m := range pub.all() {
		var a struct {
			Alert, State, Site, Device, Reason, Key string
			Since                                   time.Time
		}
		if err := json.Unmarshal(m.Payload, &a); err != nil {
			t.Fatal(err)
		}
		if m.Topic != "village/tan-ngu-2/alerts/"+a.Device || a.Alert != "CameraDown" || a.State != "firing" || a.Reason != "offline" || a.Since.IsZero() || a.Key == "" || !m.Retain || m.QoS != 1 {
			t.Errorf("MQTT alert on %s: %s", m.Topic, m.Payload)
		}
	}
	// The hanging webhook holds one notice in flight and 2 queued: the
	// rest were dropped and counted.
	if v := counter(t, r.Engine, "villagehub_notifications_total", "hanging", "", "dropped"); v < 3 {
		t.Errorf("hanging webhook dropped %v, want at least 3", v)
	}
	if v := counter(t, r.Engine, "villagehub_notifications_total", "good", "", "sent"); v != 6 {
		t.Errorf("good webhook sent %v", v)
	}
	if v := counter(t, r.Engine, "villagehub_notification_retries_total", "refused"); v < 1 {
		t.Errorf("refused webhook retried %v times", v)
	}
}

// TestSilenceAPI: a silenced alert shows in /api/v1/alerts but sends
// nothing; when the silence is deleted the firing notice goes out; the
// resolution follows. Config silences cannot be deleted through the API.
func TestSilenceAPI(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, 0)
	cfg := alert.Config{Rules: fastRules(), Notifiers: []alert.Notifier{webhookCfg(rc.URL)},
		Silences: []alert.Silence{{Matcher: alert.Matcher{Site: "ban-chieng"}, Start: time.Now().Add(-time.Hour), End: time.Now().Add(time.Hour), Comment: "bảo trì"}}}
	r := startRig(t, rigConfig{Sites: sites, Cameras: statusCameras(2), Alerts: cfg})

	var sil alert.SilenceView
	code := doJSON(t, "POST", r.URL+"/api/v1/silences", `{"device":"cam-0","duration":"1h","comment":"thay dây mạng","created_by":"anh Tuấn"}`, &sil)
	if code != 201 || sil.ID == "" || sil.State != "active" || sil.CreatedBy != "anh Tuấn" {
		t.Fatalf("POST silence: %d %+v", code, sil)
	}
	for _, bad := range []string{`{"duration":"1h"}`, `{"device":"cam-0"}`, `{"device":"Cam 0","duration":"1h"}`, `{"device":"cam-0","ends_at":"2001-01-01T00:00:00Z"}`, `{"device":"cam-0","duration":"1h","x":1}`} {
		if code := doJSON(t, "POST", r.URL+"/api/v1/silences", bad, nil); code != 400 {
			t.Errorf("POST %s: %d, want 400", bad, code)
		}
	}
	r.status(t, "camera", "tan-ngu-2", "cam-0", "offline")
	r.status(t, "camera", "tan-ngu-2", "cam-1", "offline")
	testenv.WaitFor(t, 20*time.Second, "cam-1's notice", func() bool { return rc.count("cam-1", "firing") == 1 })
	a := r.alerts(t)
	if len(a.Silenced) != 1 || a.Silenced[0].Device != "cam-0" || !a.Silenced[0].Silenced || a.Silenced[0].SilencedBy[0] != sil.ID {
		t.Errorf("silenced alerts: %+v", a.Silenced)
	}
	if len(a.Firing) != 1 || a.Firing[0].Device != "cam-1" {
		t.Errorf("firing alerts: %+v", a.Firing)
	}
	if rc.count("cam-0", "firing") != 0 {
		t.Fatal("a silenced alert was notified")
	}
	if v := counter(t, r.Engine, "villagehub_alerts_silenced", "CameraDown", "tan-ngu-2"); v != 1 {
		t.Errorf("alerts_silenced = %v", v)
	}

	var list struct{ Silences []alert.SilenceView }
	getJSON(t, r.URL+"/api/v1/silences", &list)
	if len(list.Silences) != 2 || list.Silences[0].Source != "config" || list.Silences[0].Comment != "bảo trì" {
		t.Errorf("silences: %+v", list.Silences)
	}
	if code := doJSON(t, "DELETE", r.URL+"/api/v1/silences/"+list.Silences[0].ID, "", nil); code != 409 {
		t.Errorf("DELETE a config silence: %d, want 409", code)
	}
	if code := doJSON(t, "DELETE", r.URL+"/api/v1/silences/nope", "", nil); code != 404 {
		t.Errorf("DELETE an unknown silence: %d, want 404", code)
	}
	if code := doJSON(t, "DELETE", r.URL+"/api/v1/silences/"+sil.ID, "", &sil); code != 200 || sil.State != "expired" {
		t.Fatalf("DELETE silence: %d %+v", code, sil)
	}
	testenv.WaitFor(t, 20*time.Second, "cam-0's notice once the silence ended", func() bool { return rc.count("cam-0", "firing") == 1 })
	r.status(t, "camera", "tan-ngu-2", "cam-0", "online")
	testenv.WaitFor(t, 20*time.Second, "cam-0's resolution", func() bool { return rc.count("cam-0", "resolved") == 1 })
	a = r.alerts(t)
	if len(a.Resolved) != 1 || a.Resolved[0].Device != "cam-0" || a.Resolved[0].ResolvedAt == nil || a.Resolved[0].DurationS <= 0 {
		t.Errorf("resolved: %+v", a.Resolved)
	}
}

func doJSON(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	req, err := newRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode < 300 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// metricsText is the collector's exposition, as /metrics would show it.
func metricsText(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// TestSilenceWriteMiddleware: RegisterWith wraps only the writing
// handlers; a middleware can refuse them and name the user.
func TestSilenceWriteMiddleware(t *testing.T) {
	t.Parallel()
	r := startRig(t, rigConfig{Sites: sites, Cameras: statusCameras(1), Alerts: alert.Config{Rules: fastRules()}})
	mux := http.NewServeMux()
	r.Engine.RegisterWith(mux, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			user := req.Header.Get("X-User")
			if user == "" {
				http.Error(w, "who are you?", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, req.WithContext(alert.WithUser(req.Context(), user)))
		})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	if code := doJSON(t, "POST", srv.URL+"/api/v1/silences", `{"device":"cam-0","duration":"1h"}`, nil); code != 401 {
		t.Errorf("POST without a user: %d", code)
	}
	req, _ := newRequest("POST", srv.URL+"/api/v1/silences", `{"device":"cam-0","duration":"1h","created_by":"someone else"}`)
	req.Header.Set("X-User", "chi-lan")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var s alert.SilenceView
	_ = json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	if resp.StatusCode != 201 || s.CreatedBy != "chi-lan" {
		t.Errorf("POST with a user: %d %+v", resp.StatusCode, s)
	}
	var list struct{ Silences []alert.SilenceView }
	getJSON(t, srv.URL+"/api/v1/silences", &list) // reading is not wrapped
	if len(list.Silences) != 1 {
		t.Errorf("silences: %+v", list.Silences)
	}
}
