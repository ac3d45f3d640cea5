package alert_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"villagehub/hub/alert"
	"villagehub/hub/probe"
	"villagehub/hub/state"
	"villagehub/hub/testenv"
)

// fakeClock is the engine's clock in rule tests: time moves only when the
// test says so, and the test evaluates the rules itself.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// step advances the clock by d, one evaluation per second.
func step(t *testing.T, e *alert.Engine, c *fakeClock, d time.Duration) {
	t.Helper()
	for range int(d / time.Second) {
		c.Add(time.Second)
		if err := e.Evaluate(); err != nil {
			t.Fatal(err)
		}
	}
}

func firingOf(e *alert.Engine, device string) *alert.Alert {
	for _, a := range e.Firing() {
		if a.Device == device {
			return &a
		}
	}
	return nil
}

// TestBoardSilent (fake clock): a board that reported once and then went
// quiet fires QRBoardSilent exactly when the silence reaches `for` (boards
// looked at every check_interval); a printed code that never reports does
// not; the next report resolves it.
func TestBoardSilent(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	var rules alert.Rules
	rules.QRBoardSilent.For = dur(2 * time.Minute)
	rules.QRBoardSilent.CheckInterval = dur(time.Second)
	r := startRig(t, rigConfig{Sites: sites,
		Boards: []state.BoardInfo{{ID: "market-07", Site: "tan-ngu-2", Name: "Chợ Bản, sạp 7"}, {ID: "printed", Site: "tan-ngu-2"}},
		Alerts: alert.Config{Rules: rules}, Edit: func(d *alert.Deps) { d.Now = clk.Now }})
	report := func(total int) {
		r.push(t, "village/tan-ngu-2/qr/market-07/scans", fmt.Sprintf(`{"total":%d,"boot":"b1","ts":%d}`, total, clk.Now().UnixMilli()))
	}
	last := clk.Now()
	report(10)
	step(t, r.Engine, clk, 119*time.Second)
	if a := firingOf(r.Engine, "market-07"); a != nil {
		t.Fatalf("fired after 119 s of silence, for=2m: %+v", a)
	}
	step(t, r.Engine, clk, time.Second)
	a := firingOf(r.Engine, "market-07")
	if a == nil {
		t.Fatal("not firing after 120 s of silence")
	}
	if a.Name != "QRBoardSilent" || a.Reason != "silent" || a.DeviceName != "Chợ Bản, sạp 7" || !a.Since.Equal(last) || !a.FiredAt.Equal(last.Add(2*time.Minute)) {
		t.Errorf("alert: %+v", a)
	}
	step(t, r.Engine, clk, time.Hour)
	if firingOf(r.Engine, "printed") != nil {
		t.Error("a board that never reported fired")
	}
	report(12)
	step(t, r.Engine, clk, time.Second)
	if firingOf(r.Engine, "market-07") != nil {
		t.Error("still firing after a report")
	}
	h, err := r.Engine.History(10, alert.Matcher{})
	if err != nil || len(h) != 1 || h[0].Duration(time.Time{}) < time.Hour {
		t.Errorf("history %+v %v", h, err)
	}
}

// TestHubDegraded (fake clock): the hub checks the integrator wires
// (broker connection, ingest queue fill, InfluxDB spool) fire exactly
// after `for` and resolve after recover_for good evaluations; a spool
// that grows fires, one that drains in bursts does not.
func TestHubDegraded(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	var connected atomic.Bool
	var queued, spool atomic.Int64
	connected.Store(true)
	var rules alert.Rules
	rules.HubDegraded.For = dur(10 * time.Second)
	rules.HubDegraded.RecoverFor = 2
	r := startRig(t, rigConfig{Sites: sites, Alerts: alert.Config{Rules: rules},
		Edit: func(d *alert.Deps) {
			d.Now = clk.Now
			d.BrokerConnected = connected.Load
			d.IngestQueue = func() (int, int) { return int(queued.Load()), 1000 }
			d.SpoolPoints = spool.Load
		}})
	connected.Store(false)
	queued.Store(950)
	for range 9 {
		spool.Add(100)
		step(t, r.Engine, clk, time.Second)
	}
	if n := len(r.Engine.Firing()); n != 0 {
		t.Fatalf("%d alerts after 9 s, for=10s", n)
	}
	for range 2 {
		spool.Add(100)
		step(t, r.Engine, clk, time.Second)
	}
	for _, c := range []string{alert.CheckBroker, alert.CheckIngestQueue, alert.CheckInfluxSpool} {
		a := firingOf(r.Engine, c)
		if a == nil || a.Name != "HubDegraded" || a.Site != alert.HubSite || a.Severity != "critical" {
			t.Errorf("%s: %+v", c, a)
		}
	}
	connected.Store(true)
	queued.Store(10)
	// Drains in bursts: 500 points every 3 s.
	for spool.Load() > 0 {
		spool.Add(-min(500, spool.Load()))
		step(t, r.Engine, clk, 3*time.Second)
	}
	step(t, r.Engine, clk, 2*time.Second)
	if f := r.Engine.Firing(); len(f) != 0 {
		t.Errorf("still firing: %+v", f)
	}
	if h, _ := r.Engine.History(10, alert.Matcher{}); len(h) != 3 {
		t.Errorf("%d resolved, want 3", len(h))
	}
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
