package alert_test

import (
	"context"
	"testing"
	"time"

	"villagehub/hub/alert"
	"villagehub/hub/event"
	"villagehub/hub/testenv"
)

// TestFrigateDown (fake clock): a configured Frigate that says offline on
// its available topic fires FrigateDown exactly when the outage reaches
// `for`, told to the notifier with its site and name; online resolves it
// from when Frigate said so. An ONVIF input offline in the same list, a
// Frigate no longer in the config and a Frigate that stays online never
// fire.
func TestFrigateDown(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	rc := newReceiver(t, 0)
	var rules alert.Rules
	rules.FrigateDown.For = dur(2 * time.Minute)
	r := startRig(t, rigConfig{Sites: sites,
		Alerts: alert.Config{Rules: rules, Notifiers: []alert.Notifier{webhookCfg(rc.URL)}},
		Edit: func(d *alert.Deps) {
			d.Now = clk.Now
			d.Frigates = []string{"frigate/nvr", "frigate/nvr2"}
		}})
	input := func(name string, online bool) {
		t.Helper()
		ev := event.Event{Type: event.InputStatus, Source: name, Site: "tan-ngu-2", Online: online, Time: clk.Now()}
		if err := r.State.SubmitEvent(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	down := clk.Now()
	input("frigate/nvr", false)
	input("frigate/nvr2", true)
	input("frigate/old", false)          // removed from the config, last word offline
	input("onvif/tan-ngu-2/gate", false) // an ONVIF camera, not a Frigate

	step(t, r.Engine, clk, 119*time.Second)
	if f := r.Engine.Firing(); len(f) != 0 {
		t.Fatalf("firing after 119 s, for=2m: %+v", f)
	}
	step(t, r.Engine, clk, time.Second)
	f := r.Engine.Firing()
	if len(f) != 1 {
		t.Fatalf("firing after 120 s: %+v", f)
	}
	a := f[0]
	if a.Name != alert.FrigateDown || a.Site != "tan-ngu-2" || a.Device != "nvr" || a.DeviceName != "Frigate nvr" ||
		a.Severity != "critical" || a.Reason != "offline" || !a.Since.Equal(down) || !a.FiredAt.Equal(down.Add(2*time.Minute)) {
		t.Errorf("alert: %+v", a)
	}
	testenv.WaitFor(t, 10*time.Second, "the firing notice", func() bool { return rc.count("nvr", "firing") == 1 })
	if n := rc.notices(false)[0].N; n.Alert != "FrigateDown" || n.SiteName != "Thôn Tân Ngữ 2" || n.DeviceName != "Frigate nvr" {
		t.Errorf("notice: %+v", n)
	}

	// A while later Frigate is back.
	step(t, r.Engine, clk, 10*time.Minute)
	up := clk.Now()
	input("frigate/nvr", true)
	step(t, r.Engine, clk, time.Second)
	if f := r.Engine.Firing(); len(f) != 0 {
		t.Fatalf("still firing after online: %+v", f)
	}
	h, err := r.Engine.History(10, alert.Matcher{Alert: alert.FrigateDown})
	if err != nil || len(h) != 1 || h[0].ResolvedAt == nil || !h[0].ResolvedAt.Equal(up) || h[0].Duration(time.Time{}) != up.Sub(down) {
		t.Errorf("history: %+v %v", h, err)
	}
	testenv.WaitFor(t, 10*time.Second, "the resolved notice", func() bool { return rc.count("nvr", "resolved") == 1 })
	for _, g := range rc.notices(true) {
		if g.N.Device != "nvr" {
			t.Errorf("unexpected notice %+v", g.N)
		}
	}

	// Turned off by a reload: a new outage says nothing.
	rules.FrigateDown.Enabled = new(bool)
	if err := r.Engine.Reload(alert.Config{Rules: rules, Notifiers: []alert.Notifier{webhookCfg(rc.URL)}}); err != nil {
		t.Fatal(err)
	}
	input("frigate/nvr", false)
	step(t, r.Engine, clk, 5*time.Minute)
	if f := r.Engine.Firing(); len(f) != 0 {
		t.Errorf("firing with the rule off: %+v", f)
	}
}
