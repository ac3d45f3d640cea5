package alert_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"villagehub/hub/alert"
	"villagehub/hub/state"
	"villagehub/hub/testenv"
)

// TestMain lets this test binary run as a hub process (the rig) when
// ALERT_TEST_CHILD holds its spec, so that a test can SIGKILL it.
func TestMain(m *testing.M) {
	if spec := os.Getenv("ALERT_TEST_CHILD"); spec != "" {
		os.Exit(runChild(spec))
	}
	os.Exit(m.Run())
}

type childSpec struct {
	DataDir, HTTPAddr, Webhook string
	Cameras                    []camera
	Worker                     []string
	For                        time.Duration
	// Zalo, if set, is the only notifier; BrokerDown makes HubDegraded
	// fire (an alert without devices).
	Zalo       *alert.Notifier
	BrokerDown bool
}

func runChild(spec string) int {
	var cs childSpec
	if err := json.Unmarshal([]byte(spec), &cs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var rules alert.Rules
	rules.CameraDown.For = dur(cs.For)
	rules.HubDegraded.For = dur(time.Second)
	ns := []alert.Notifier{webhookCfg(cs.Webhook)}
	if cs.Zalo != nil {
		ns = []alert.Notifier{*cs.Zalo}
	}
	r, err := newRig(rigConfig{DataDir: cs.DataDir, HTTPAddr: cs.HTTPAddr, Sites: sites, Cameras: cs.Cameras,
		Worker: cs.Worker, ProbeInterval: probeInterval,
		Alerts: alert.Config{Rules: rules, Notifiers: ns},
		Edit:   func(d *alert.Deps) { d.BrokerConnected = func() bool { return !cs.BrokerDown } },
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	r.Stop()
	return 0
}

// TestKillRestart runs the hub as a process and SIGKILLs it twice: once
// while an alert fires (after restarting, the camera is still down and no
// second firing notice goes out), and once after the camera came back but
// before the resolved notice could be delivered (the receiver was failing):
// after restarting, the resolution still arrives, exactly once.
func TestKillRestart(t *testing.T) {
	t.Parallel()
	_, cams, cfg := rtspCameras(t, "kill", 1)
	rc := newReceiver(t, 0)
	const forDur = 3 * time.Second
	spec, _ := json.Marshal(childSpec{DataDir: t.TempDir(), HTTPAddr: testenv.FreeAddr(t), Webhook: rc.URL,
		Cameras: cfg, Worker: probeWorker(t), For: forDur})
	base := "http://" + func() string { var s childSpec; _ = json.Unmarshal(spec, &s); return s.HTTPAddr }()
	start := func() *testenv.Process {
		p := testenv.StartProcess(t, os.Args[0], []string{"ALERT_TEST_CHILD=" + string(spec)}, "-test.run=^$")
		testenv.WaitHTTP(t, base+"/api/v1/alerts", 20*time.Second, p)
		return p
	}
	alerts := func() alert.AlertsResponse {
		var a alert.AlertsResponse
		getJSON(t, base+"/api/v1/alerts", &a)
		return a
	}
	p := start()
	testenv.WaitFor(t, 30*time.Second, "the camera probed up", func() bool {
		var cs struct{ Cameras []state.CameraView }
		getJSON(t, base+"/api/v1/cameras", &cs)
		return len(cs.Cameras) == 1 && cs.Cameras[0].Stream != nil && cs.Cameras[0].Stream.Up
	})

	stopped := time.Now()
	cams[0].Stop()
	testenv.WaitFor(t, 15*time.Second, "the firing notice", func() bool { return rc.count("kill-0", "firing") == 1 })
	// Killed while the alert fires. (Not within the few milliseconds
	// between the receiver answering and the hub recording the delivery:
	// a kill there re-sends the notice after the restart, with the same
	// idempotency key: delivery is at least once, see docs/alerting.md.)
	testenv.WaitFor(t, 10*time.Second, "the delivery recorded", func() bool {
		var st struct{ Notifiers []alert.NotifierStatus }
		getJSON(t, base+"/api/v1/notifiers", &st)
		return len(st.Notifiers) == 1 && st.Notifiers[0].Sent == 1
	})
	p.Kill()
	p = start()
	if a := alerts(); len(a.Firing) != 1 || a.Firing[0].Device != "kill-0" {
		t.Fatalf("after the restart the alert is not firing: %+v\n%s", a, p.Output())
	}
	// Long enough for a forgetful hub to fire again: for + a few probes.
	settle(t, base, uint64((forDur+3*probeInterval)/time.Second))
	if k := rc.count("kill-0", "firing"); k != 1 {
		t.Fatalf("%d firing notices after the restart, want 1\n%s", k, p.Output())
	}

	rc.setFail(true)
	before := rc.attempts()
	restarted := time.Now()
	if err := cams[0].Start(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 15*time.Second, "the resolution recorded and its delivery failing", func() bool {
		return len(alerts().Resolved) == 1 && rc.attempts() > before
	})
	p.Kill()
	rc.setFail(false)
	p = start()
	testenv.WaitFor(t, 15*time.Second, "the resolved notice after the restart", func() bool { return rc.count("kill-0", "resolved") == 1 })
	settle(t, base, 3)
	if f, r := rc.count("kill-0", "firing"), rc.count("kill-0", "resolved"); f != 1 || r != 1 {
		t.Fatalf("%d firing and %d resolved notices, want 1 and 1\n%s", f, r, p.Output())
	}
	for _, g := range rc.notices(true) {
		if g.N.Kind != "resolved" {
			continue
		}
		if d := g.N.Duration(); d < restarted.Sub(stopped)-2*probeInterval || d > time.Since(stopped) {
			t.Errorf("resolved notice says the outage lasted %v; the camera was off for %v", d, restarted.Sub(stopped))
		}
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Errorf("clean stop: %v\n%s", err, p.Output())
	}
}

// TestZaloKillAfterRefresh: the hub process refreshes its Zalo token at
// start (the rotated refresh token is persisted before use) and is
// SIGKILLed right after, before any send. Restarted, its next alert
// reaches the group with the persisted access token: no second refresh,
// no refused token. Then the fake's tokens expire and a third start
// refreshes with the persisted (rotated) refresh token, which Zalo
// accepts: the chain survived both kills.
func TestZaloKillAfterRefresh(t *testing.T) {
	t.Parallel()
	z, first := testenv.NewFakeZalo(t)
	var (
		mu  sync.Mutex
		now = time.Now()
	)
	z.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	z.TokenTTL = time.Hour
	zn := zaloCfg(t, z, first)
	cs := childSpec{DataDir: t.TempDir(), HTTPAddr: testenv.FreeAddr(t), Zalo: &zn}
	base := "http://" + cs.HTTPAddr
	start := func(cs childSpec) *testenv.Process {
		spec, _ := json.Marshal(cs)
		p := testenv.StartProcess(t, os.Args[0], []string{"ALERT_TEST_CHILD=" + string(spec)}, "-test.run=^$")
		testenv.WaitHTTP(t, base+"/api/v1/alerts", 20*time.Second, p)
		return p
	}
	p := start(cs)
	testenv.WaitFor(t, 10*time.Second, "the refresh at start", func() bool { n, _, _, _ := z.Counts(); return n == 1 })
	state := filepath.Join(cs.DataDir, "zalo", "zalo-thon.json")
	testenv.WaitFor(t, 20*time.Second, "the persisted token", func() bool { _, err := os.Stat(state); return err == nil })
	p.Kill()
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file %v %v", fi, err)
	}

	cs.BrokerDown = true
	p = start(cs)
	testenv.WaitFor(t, 15*time.Second, "the HubDegraded message in Zalo, out of the outbox", func() bool {
		var st struct{ Notifiers []alert.NotifierStatus }
		getJSON(t, base+"/api/v1/notifiers", &st)
		return len(z.Messages()) == 1 && len(st.Notifiers) == 1 && st.Notifiers[0].Sent == 1
	})
	if refreshes, refused, invalid, _ := z.Counts(); refreshes != 1 || refused != 0 || invalid != 0 {
		t.Errorf("after restart: refreshes %d refused %d invalid %d; want 1, 0, 0\n%s", refreshes, refused, invalid, p.Output())
	}
	if m := z.Messages()[0].Text; !strings.Contains(m, "Hub gặp sự cố") {
		t.Errorf("message %q", m)
	}
	p.Kill()

	// The access token expires (on Zalo's clock) while the hub is down.
	// The next start resolves the alert; Zalo refuses the saved access
	// token (-216), so the hub refreshes at once with the rotated refresh
	// token from the state file, which Zalo accepts, and retries.
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	cs.BrokerDown = false
	p = start(cs)
	testenv.WaitFor(t, 20*time.Second, "the resolved message", func() bool { return len(z.Messages()) == 2 })
	if refreshes, refused, invalid, _ := z.Counts(); refreshes != 2 || refused != 0 || invalid != 1 {
		t.Errorf("third start: refreshes %d refused %d invalid %d; want 2, 0, 1\n%s", refreshes, refused, invalid, p.Output())
	}
	if m := z.Messages()[1].Text; !strings.Contains(m, "Hub hoạt động bình thường trở lại") || !strings.Contains(m, "hub đã ngừng theo dõi") {
		t.Errorf("resolved message %q", m)
	}
	for _, s := range z.Secrets() {
		if strings.Contains(p.Output(), s) {
			t.Errorf("a token or secret is in the hub's log")
		}
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Errorf("clean stop: %v", err)
	}
}
