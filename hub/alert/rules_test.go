package alert_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"villagehub/hub/alert"
	"villagehub/hub/probe"
	"villagehub/hub/state"
	"villagehub/hub/testenv"
)

// TestBoardSilent: a board that reported once and then went quiet fires
// QRBoardSilent once the silence lasts `for`; a printed code that never
// reports does not; the next report resolves it.
func TestBoardSilent(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, 0)
	var rules alert.Rules
	rules.QRBoardSilent.For = dur(2 * time.Second)
	rules.QRBoardSilent.CheckInterval = dur(time.Second)
	r := startRig(t, rigConfig{Sites: sites,
		Boards: []state.BoardInfo{{ID: "market-07", Site: "tan-ngu-2", Name: "Chợ Bản, sạp 7"}, {ID: "printed", Site: "tan-ngu-2"}},
		Alerts: alert.Config{Rules: rules, Notifiers: []alert.Notifier{webhookCfg(rc.URL)}}})
	report := func(total int) {
		r.push(t, "village/tan-ngu-2/qr/market-07/scans", fmt.Sprintf(`{"total":%d,"boot":"b1"}`, total))
	}
	last := time.Now()
	report(10)
	testenv.WaitFor(t, 10*time.Second, "the silent board's notice", func() bool { return rc.count("market-07", "firing") == 1 })
	got := rc.notices(true)[0]
	if d := got.At.Sub(last); d < 2*time.Second || d > 4*time.Second {
		t.Errorf("fired %v after the last report, for=2s (boards checked every 1s)", d)
	}
	if n := got.N; n.Alert != "QRBoardSilent" || n.Reason != "silent" || n.DeviceName != "Chợ Bản, sạp 7" || n.Since.Sub(last).Abs() > 100*time.Millisecond {
		t.Errorf("notice: %+v", n)
	}
	report(12)
	testenv.WaitFor(t, 5*time.Second, "the resolution", func() bool { return rc.count("market-07", "resolved") == 1 })
	if rc.count("printed", "firing") != 0 {
		t.Error("a board that never reported fired")
	}
}

// TestHubDegraded: the hub checks the integrator wires (broker connection,
// ingest queue fill, InfluxDB spool) fire after `for` and resolve after
// recover_for good evaluations.
func TestHubDegraded(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, 0)
	var connected atomic.Bool
	var queued, spool atomic.Int64
	connected.Store(true)
	var rules alert.Rules
	rules.HubDegraded.For = dur(2 * time.Second)
	rules.HubDegraded.RecoverFor = 2
	startRig(t, rigConfig{Sites: sites, Alerts: alert.Config{Rules: rules, Notifiers: []alert.Notifier{webhookCfg(rc.URL)}},
		Edit: func(d *alert.Deps) {
			d.BrokerConnected = connected.Load
			d.IngestQueue = func() (int, int) { return int(queued.Load()), 1000 }
			d.SpoolPoints = spool.Load
		}})
	connected.Store(false)
	queued.Store(950)
	// The spool grows for 3 s, then drains.
	stopGrowing := make(chan struct{})
	go func() {
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopGrowing:
				for spool.Load() > 0 {
					spool.Add(-min(500, spool.Load()))
					time.Sleep(200 * time.Millisecond)
				}
				return
			case <-tk.C:
				spool.Add(100)
			}
		}
	}()
	start := time.Now()
	testenv.WaitFor(t, 10*time.Second, "three HubDegraded notices", func() bool {
		return rc.count(alert.CheckBroker, "firing") == 1 && rc.count(alert.CheckIngestQueue, "firing") == 1 && rc.count(alert.CheckInfluxSpool, "firing") == 1
	})
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("fired after %v, before for=2s", d)
	}
	for _, g := range rc.notices(true) {
		if g.N.Alert != "HubDegraded" || g.N.Site != alert.HubSite || g.N.Severity != "critical" {
			t.Errorf("notice: %+v", g.N)
		}
	}
	connected.Store(true)
	queued.Store(10)
	close(stopGrowing)
	testenv.WaitFor(t, 15*time.Second, "three resolutions", func() bool {
		return rc.count(alert.CheckBroker, "resolved") == 1 && rc.count(alert.CheckIngestQueue, "resolved") == 1 && rc.count(alert.CheckInfluxSpool, "resolved") == 1
	})
}

// TestCameraDegraded: a camera served by the RTSP simulator drops to 3 fps
// (expected 10): CameraDegraded fires with the measured rate; back to 10
// fps it resolves. CameraDown stays quiet throughout.
func TestCameraDegraded(t *testing.T) {
	t.Parallel()
	_, cams, cfg := rtspCameras(t, "slow", 1)
	rc := newReceiver(t, 0)
	var rules alert.Rules
	rules.CameraDegraded.For = dur(3 * time.Second)
	r := startRig(t, rigConfig{Sites: sites, Cameras: cfg, Worker: probeWorker(t),
		Probe:  &probe.Settings{Mode: probe.ModeSample, Interval: time.Second, Timeout: 2 * time.Second},
		Alerts: alert.Config{Rules: rules, Notifiers: []alert.Notifier{webhookCfg(rc.URL)}}})
	waitStreamsUp(t, r.State, 1)
	cams[0].SetFPS(3)
	testenv.WaitFor(t, 30*time.Second, "the degraded notice", func() bool { return rc.count("slow-0", "firing") == 1 })
	n := rc.notices(true)[0].N
	if n.Alert != "CameraDegraded" || n.Reason != "poor_grade" || n.Severity != "warning" {
		t.Errorf("notice: %+v", n)
	}
	cams[0].SetFPS(0)
	testenv.WaitFor(t, 30*time.Second, "the resolution", func() bool { return rc.count("slow-0", "resolved") == 1 })
	for _, g := range rc.notices(true) {
		if g.N.Alert != "CameraDegraded" {
			t.Errorf("unexpected notice %+v", g.N)
		}
	}
}
