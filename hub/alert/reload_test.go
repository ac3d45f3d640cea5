package alert_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"villagehub/hub/alert"
	"villagehub/hub/state"
	"villagehub/hub/testenv"
)

// TestReloadLive: a reload shortens `for`, adds a notifier and a silence,
// and they take effect at once; the kept notifier keeps running (its
// counters go on); a config with a problem is refused whole and the old
// one stays; removing a notifier stops it.
func TestReloadLive(t *testing.T) {
	t.Parallel()
	a, b := newReceiver(t, 0), newReceiver(t, 0)
	wa := webhookCfg(a.URL)
	wa.Name = "a"
	var slow alert.Rules
	slow.CameraDown.For = dur(time.Hour)
	r := startRig(t, rigConfig{Sites: sites, Cameras: statusCameras(2), Alerts: alert.Config{Rules: slow, Notifiers: []alert.Notifier{wa}}})
	r.status(t, "camera", "tan-ngu-2", "cam-0", "offline")

	// 1: `for` from 1h to 1s: cam-0 fires at once.
	if err := r.Engine.Reload(alert.Config{Rules: fastRules(), Notifiers: []alert.Notifier{wa}}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "cam-0's notice at a", func() bool { return r.Engine.Notifiers()[0].Sent == 1 })

	// 2: notifier b and a silence for cam-1 added; a kept as it was.
	wb := webhookCfg(b.URL)
	wb.Name = "b"
	next := alert.Config{Rules: fastRules(), Notifiers: []alert.Notifier{wa, wb},
		Silences: []alert.Silence{{Matcher: alert.Matcher{Device: "cam-1"}, Start: time.Now().Add(-time.Minute), End: time.Now().Add(time.Hour)}}}
	if err := r.Engine.Reload(next); err != nil {
		t.Fatal(err)
	}
	r.status(t, "camera", "tan-ngu-2", "cam-1", "offline")
	testenv.WaitFor(t, 10*time.Second, "cam-1 firing, silenced", func() bool { return len(r.alerts(t).Silenced) == 1 })
	st := r.Engine.Notifiers()
	if len(st) != 2 || st[0].Name != "a" || st[0].Sent != 1 || st[1].Name != "b" {
		t.Errorf("after adding b, a should be the same sender with its count: %+v", st)
	}
	if a.count("cam-1", "firing")+b.count("cam-1", "firing") != 0 {
		t.Error("a silenced alert was sent")
	}

	bad := next
	bad.Notifiers = append([]alert.Notifier{}, next.Notifiers...)
	bad.Notifiers = append(bad.Notifiers, alert.Notifier{Type: "pager"})
	bad.Rules.CameraDown.For = dur(-time.Second)
	err := r.Engine.Reload(bad)
	var ve *alert.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "notifiers[2].type") || !strings.Contains(err.Error(), "rules.camera_down.for") {
		t.Fatalf("a bad reload: %v", err)
	}
	if st := r.Engine.Notifiers(); len(st) != 2 {
		t.Errorf("a refused reload changed the notifiers: %+v", st)
	}

	only := alert.Config{Rules: fastRules(), Notifiers: []alert.Notifier{wb}}
	if err := r.Engine.Reload(only); err != nil {
		t.Fatal(err)
	}
	if st := r.Engine.Notifiers(); len(st) != 1 || st[0].Name != "b" {
		t.Errorf("after removing a: %+v", st)
	}
	// The silence is gone with the config: cam-1 now notifies b.
	testenv.WaitFor(t, 10*time.Second, "cam-1's notice at b", func() bool { return b.count("cam-1", "firing") == 1 })
	if a.count("cam-1", "firing") != 0 {
		t.Error("the removed notifier still got notices")
	}
}

// TestWebhookBodyChecks: a chat API that answers 200 with an error in the
// body is a failure (reason rejected), retried until it answers success.
func TestWebhookBodyChecks(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		answer = `{"ok":false,"error_code":429,"description":"Too Many Requests"}`
		hits   int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		hits++
		if hits == 3 {
			answer = `{"ok":true,"result":{"message_id":1}}`
		}
		_, _ = w.Write([]byte(answer))
	}))
	t.Cleanup(srv.Close)
	zsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"error": -216, "message": "Access token is invalid"})
	}))
	t.Cleanup(zsrv.Close)
	tg := webhookCfg(srv.URL)
	tg.Name, tg.SuccessField = "telegram", "ok"
	zl := webhookCfg(zsrv.URL)
	zl.Name, zl.ErrorField = "zalo-hook", "error"
	zl.Retry.MaxElapsed = dur(300 * time.Millisecond)
	rules := fastRules()
	rules.NotifierFailing.Enabled = boolp(false)
	r := startRig(t, rigConfig{Sites: sites, Cameras: statusCameras(1), Alerts: alert.Config{Rules: rules, Notifiers: []alert.Notifier{tg, zl}}})
	r.status(t, "camera", "tan-ngu-2", "cam-0", "offline")
	testenv.WaitFor(t, 10*time.Second, "telegram's success and zalo-hook's failure", func() bool {
		st := r.Engine.Notifiers()
		return st[0].Sent == 1 && st[1].Failed == 1
	})
	if v := counter(t, r.Engine, "villagehub_notification_errors_total", "telegram", "rejected"); v != 2 {
		t.Errorf("telegram: %v rejected attempts, want 2", v)
	}
	if v := counter(t, r.Engine, "villagehub_notifications_total", "zalo-hook", "rejected", "failed"); v != 1 {
		t.Errorf("zalo-hook failed{rejected} = %v", v)
	}
	if st := r.Engine.Notifiers(); !strings.Contains(st[1].LastError, "error is -216") {
		t.Errorf("last error %q", st[1].LastError)
	}
}

// TestRemovedCameraResolves (fake clock): a camera removed from the config
// while its alert fires resolves with reason "removed" within 5 s, and
// does not fire again as the auto-registered camera it becomes.
func TestRemovedCameraResolves(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	r := startRig(t, rigConfig{Sites: sites, Cameras: statusCameras(2), Alerts: alert.Config{Rules: fastRules()},
		Edit: func(d *alert.Deps) { d.Now = clk.Now }})
	r.status(t, "camera", "tan-ngu-2", "cam-0", "offline")
	step(t, r.Engine, clk, 2*time.Second)
	if a := firingOf(r.Engine, "cam-0"); a == nil || !a.Configured {
		t.Fatalf("cam-0 not firing as a configured camera: %+v", a)
	}
	if err := r.State.SetDevices(context.Background(), sites, []state.CameraInfo{{ID: "cam-1", Site: "tan-ngu-2"}}, nil); err != nil {
		t.Fatal(err)
	}
	step(t, r.Engine, clk, 5*time.Second)
	if a := firingOf(r.Engine, "cam-0"); a != nil {
		t.Fatalf("still firing after removal: %+v", a)
	}
	h, _ := r.Engine.History(5, alert.Matcher{Device: "cam-0"})
	if len(h) != 1 || h[0].Reason != "removed" {
		t.Fatalf("history %+v", h)
	}
	step(t, r.Engine, clk, time.Minute)
	if len(r.Engine.Firing()) != 0 {
		t.Errorf("fired again: %+v", r.Engine.Firing())
	}
	if v := counter(t, r.Engine, "villagehub_alerts_firing", "CameraDown", "tan-ngu-2"); v != 0 {
		t.Errorf("villagehub_alerts_firing = %v", v)
	}
}

// TestRestartRepublishesAndDoesNotRepeat: the hub stops while an alert
// fires and the camera recovers meanwhile (the restarted hub has forgotten
// the devices' state). After the start: the MQTT notifier republishes the
// retained alert message (the embedded broker lost it); no false "Vẫn
// còn" repeat goes out although the repeat interval passed; the
// resolution, once the camera reports, says the hub was not watching.
func TestRestartRepublishesAndDoesNotRepeat(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	rc := newReceiver(t, 0)
	dir := t.TempDir()
	rep := dur(time.Minute)
	cfg := func() alert.Config {
		return alert.Config{Rules: fastRules(), RepeatInterval: &rep, Notifiers: []alert.Notifier{webhookCfg(rc.URL), {Type: "mqtt"}}}
	}
	pub1 := &publisher{}
	r := startRig(t, rigConfig{DataDir: dir, StoreDir: t.TempDir(), Sites: sites, Cameras: statusCameras(1), Alerts: cfg(),
		Edit: func(d *alert.Deps) { d.Now = clk.Now; d.Publisher = pub1 }})
	r.status(t, "camera", "tan-ngu-2", "cam-0", "offline")
	step(t, r.Engine, clk, 2*time.Second)
	testenv.WaitFor(t, 20*time.Second, "the firing notice", func() bool { return rc.count("cam-0", "firing") == 1 && len(pub1.all()) == 1 })
	r.Stop()

	clk.Add(10 * time.Minute) // down for longer than the repeat interval
	pub2 := &publisher{}
	r = startRig(t, rigConfig{DataDir: dir, StoreDir: t.TempDir(), Sites: sites, Cameras: statusCameras(1), Alerts: cfg(),
		Edit: func(d *alert.Deps) { d.Now = clk.Now; d.Publisher = pub2 }})
	testenv.WaitFor(t, 20*time.Second, "the retained alert republished", func() bool { return len(pub2.all()) == 1 })
	m1, m2 := pub1.all()[0], pub2.all()[0]
	if m1.Topic != m2.Topic || string(m1.Payload) != string(m2.Payload) || !m2.Retain {
		t.Errorf("republished %s %s, first %s %s", m2.Topic, m2.Payload, m1.Topic, m1.Payload)
	}
	step(t, r.Engine, clk, 5*time.Second)
	r.status(t, "camera", "tan-ngu-2", "cam-0", "online")
	step(t, r.Engine, clk, time.Second)
	testenv.WaitFor(t, 20*time.Second, "the resolution", func() bool { return rc.count("cam-0", "resolved") == 1 })
	if n := rc.count("cam-0", "repeat"); n != 0 {
		t.Errorf("%d repeat notices for an alert no look confirmed after the restart", n)
	}
	var res alert.Notification
	for _, g := range rc.notices(true) {
		if g.N.Kind == "resolved" {
			res = g.N
		}
	}
	if !strings.Contains(res.Detail, "hub was not watching") {
		t.Errorf("resolved notice: %+v", res)
	}
}

// TestNotifierFailingAfterConsecutiveFailures: a webhook that fails three
// attempts in a row fires NotifierFailing (reason failing) through the
// other webhook, not through itself; once it delivers again, the alert
// resolves.
func TestNotifierFailingAfterConsecutiveFailures(t *testing.T) {
	t.Parallel()
	bad, good := newReceiver(t, 0), newReceiver(t, 0)
	bad.setFail(true)
	wb := webhookCfg(bad.URL)
	wb.Name = "flaky"
	wg := webhookCfg(good.URL)
	wg.Name = "steady"
	r := startRig(t, rigConfig{Sites: sites, Cameras: statusCameras(1), Alerts: alert.Config{Rules: fastRules(), Notifiers: []alert.Notifier{wb, wg}}})
	r.status(t, "camera", "tan-ngu-2", "cam-0", "offline")
	testenv.WaitFor(t, 10*time.Second, "NotifierFailing at the steady webhook", func() bool { return good.count("flaky", "firing") == 1 })
	var n alert.Notification
	for _, g := range good.notices(true) {
		if g.N.Alert == alert.NotifierFailing {
			n = g.N
		}
	}
	if n.Reason != "failing" || !strings.Contains(n.Detail, "failed attempts in a row") || n.Site != alert.HubSite {
		t.Errorf("notice %+v", n)
	}
	if st := r.Engine.Notifiers(); st[0].Healthy || st[0].ConsecutiveFailures < 3 || st[0].LastReason != "unavailable" {
		t.Errorf("status %+v", st[0])
	}
	bad.setFail(false)
	testenv.WaitFor(t, 15*time.Second, "the camera notice through, and NotifierFailing resolved", func() bool {
		return bad.count("cam-0", "firing") == 1 && good.count("flaky", "resolved") == 1
	})
	for _, g := range bad.notices(true) {
		if g.N.Alert == alert.NotifierFailing {
			t.Errorf("the failing notifier was told about itself: %+v", g.N)
		}
	}
}
