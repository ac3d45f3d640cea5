package probe

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"villagehub/devices/rtspcam"
	"villagehub/hub/testenv"
)

func newTestSupervisor(t testing.TB, cfg Config, res *results) *Supervisor {
	t.Helper()
	if cfg.WorkerCommand == nil {
		cfg.WorkerCommand = workerCommand()
	}
	cfg.Defaults = cfg.Defaults.merged(testSettings)
	s, err := NewSupervisor(cfg, res.add)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func countWhere(rs []Result, f func(Result) bool) int {
	n := 0
	for _, r := range rs {
		if f(r) {
			n++
		}
	}
	return n
}

// The schedule: the first probe is a sample, handshakes follow, a sample
// every SampleInterval, samples while down, and the first probe that sees
// the camera again is a sample.
func TestSupervisorScheduleAndFigures(t *testing.T) {
	t.Parallel()
	sim := newSim(t)
	cam := addCam(t, sim, "gate", rtspcam.CameraOptions{})
	want := clipStats(t)
	res := newResults()
	sup := newTestSupervisor(t, Config{Workers: 1}, res)
	sup.SetTargets([]Target{{ID: "gate", Site: "tan-ngu-2", URL: cam.URL(), ExpectedFPS: 10}})
	runSupervisor(t, sup)

	all := res.waitFor(t, 15*time.Second, "a sample, three handshakes, another sample", func(rs []Result) bool {
		return len(rs) >= 5 && countWhere(rs[1:], func(r Result) bool { return r.Mode == ModeSample }) >= 1
	})
	first := all[0]
	if first.Mode != ModeSample || !first.Up {
		t.Fatalf("first probe: %+v, want an up sample", first)
	}
	if first.Camera != "gate" || first.Site != "tan-ngu-2" || first.URL != cam.URL() || first.Grade != GradeGood {
		t.Errorf("first result identity/grade: %+v", first)
	}
	if first.Codec != "h264" || first.Width != want.Width || first.Height != want.Height ||
		!within(first.FPS, want.FPS, 0.05) || !within(first.BitrateBps, want.BitsPerSecond, 0.05) ||
		first.KeyframeInterval != want.KeyframeInterval || first.TimeToFirstFrame <= 0 || first.TimeToFirstKeyframe < first.TimeToFirstFrame {
		t.Errorf("first sample figures: %+v (clip %+v)", first, want)
	}
	var second Result
	for _, r := range all[1:] {
		if r.Mode == ModeSample {
			second = r
			break
		}
		if r.Mode != ModeHandshake || !r.Up || r.Grade != GradeGood || r.FPS != 0 {
			t.Fatalf("between samples want up handshakes graded from the last sample, got %+v", r)
		}
	}
	if gap := second.At.Sub(first.At); gap < testSettings.SampleInterval || gap > testSettings.SampleInterval+2*time.Second {
		t.Errorf("samples %s apart, want about SampleInterval %s", gap, testSettings.SampleInterval)
	}

	cam.Stop()
	n := len(res.snapshot())
	res.waitFor(t, 15*time.Second, "two not_found results", func(rs []Result) bool {
		return countWhere(rs[n:], func(r Result) bool { return r.Reason == ReasonNotFound }) >= 2
	})
	if err := cam.Start(); err != nil {
		t.Fatal(err)
	}
	all = res.waitFor(t, 15*time.Second, "the camera back up", func(rs []Result) bool {
		return rs[len(rs)-1].Up
	})
	downs := all[n:]
	sawDown := false
	for i, r := range downs {
		if !r.Up {
			if r.Grade != GradeDown {
				t.Errorf("down result graded %s", r.Grade)
			}
			if sawDown && r.Mode != ModeSample {
				t.Errorf("probe %d while down was a %s, want sample", i, r.Mode)
			}
			sawDown = true
			continue
		}
		if sawDown {
			if r.Mode != ModeSample {
				t.Fatalf("first probe after recovery was a %s, want sample", r.Mode)
			}
			break
		}
	}
}

func TestSupervisorIsolatesCrashingCameras(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		payload []byte
		padding bool
		panic   string
	}{
		{"zero-size STAP-A", payloadZeroSizeSTAPA, false, "index out of range [2] with length 2"},
		{"2-byte SPS", payloadTwoByteSPS, false, "index out of range [2] with length 2"},
		{"oversized RTP padding", payloadOversizedPadding, true, "slice bounds out of range [16:12]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sim := newSim(t)
			a := addCam(t, sim, "a", rtspcam.CameraOptions{})
			b := addCam(t, sim, "b", rtspcam.CameraOptions{})
			bad := startFake(t, malformedBehavior(c.payload, c.padding))
			var logs logBuffer
			res := newResults()
			sup := newTestSupervisor(t, Config{Workers: 1, Logger: newLogger(&logs),
				Defaults: Settings{SampleWindow: 500 * time.Millisecond, MaxSampleWindow: 1500 * time.Millisecond}}, res)
			sup.SetTargets([]Target{
				{ID: "a", URL: a.URL()},
				{ID: "b", URL: b.URL()},
				// Samples read RTP without vdk and skip malformed packets;
				// handshakes still run vdk's demuxer on the first packet.
				{ID: "bad", URL: bad.url("stream"), Settings: Settings{Mode: ModeHandshake}},
			})
			runSupervisor(t, sup)

			all := res.waitFor(t, 20*time.Second, "the culprit isolated", func(rs []Result) bool {
				return countWhere(rs, func(r Result) bool { return r.Camera == "bad" && r.Isolated }) >= 1
			})
			var isolatedAt int
			for i, r := range all {
				if r.Camera == "bad" && r.Isolated {
					isolatedAt = i
					if r.Up || r.Reason != ReasonProtocol || r.Grade != GradeDown {
						t.Fatalf("culprit result %+v, want down with reason protocol", r)
					}
					break
				}
			}
			for _, r := range all {
				if r.Camera != "bad" && (!r.Up || r.Isolated) {
					t.Fatalf("a healthy camera suffered: %+v", r)
				}
			}
			// The others keep being probed, and the culprit keeps being
			// probed alone (and keeps crashing its own worker).
			res.waitFor(t, 15*time.Second, "results after the isolation", func(rs []Result) bool {
				after := rs[isolatedAt+1:]
				return countWhere(after, func(r Result) bool { return r.Camera == "a" && r.Up }) >= 3 &&
					countWhere(after, func(r Result) bool { return r.Camera == "b" && r.Up }) >= 3 &&
					countWhere(after, func(r Result) bool { return r.Camera == "bad" && r.Reason == ReasonProtocol && r.Isolated }) >= 1
			})
			if n := sup.metrics.workerCrashes.Load(); n < 2 {
				t.Errorf("%d worker crashes, want the shared worker's and the culprit's own", n)
			}
			if n := testutil.ToFloat64(gaugeOf(t, sup, "villagehub_probe_isolated_cameras")); n != 1 {
				t.Errorf("isolated cameras metric %v, want 1", n)
			}
			if l := logs.String(); !strings.Contains(l, "worker died") || !strings.Contains(l, c.panic) {
				t.Errorf("log lacks the worker's death by %q:\n%s", c.panic, lastLines(l, 30))
			}
		})
	}
}

// gaugeOf extracts one metric of the supervisor's collector.
func gaugeOf(t testing.TB, sup *Supervisor, name string) prometheus.Collector {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(sup); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "copy"})
			m := mf.GetMetric()[0]
			if m.GetGauge() != nil {
				g.Set(m.GetGauge().GetValue())
			} else {
				g.Set(m.GetCounter().GetValue())
			}
			return g
		}
	}
	t.Fatalf("metric %s not collected", name)
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// 1,000 probes against a flapping server (it vanishes and returns, and one
// path comes and goes) leave no goroutine or file descriptor behind in the
// hub process, while workers are recycled under it.
func TestNoLeaksOverThousandProbes(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	before := goleak.IgnoreCurrent()
	fd0 := countFDs(t)

	sim := startSimChild(t, 8, "VILLAGEHUB_SIM_FLAP=1")
	fdSim := countFDs(t) // the simulator process's pipes and pidfd
	res := newResults()
	var logs logBuffer
	sup := newTestSupervisor(t, Config{
		Workers:      2,
		Concurrency:  16,
		RecycleAfter: 100,
		Logger:       newLogger(&logs),
		Defaults:     Settings{Mode: ModeHandshake, Interval: 5 * time.Millisecond, Timeout: time.Second},
	}, res)
	var targets []Target
	for i := 0; i < 8; i++ {
		id := "cam000" + string(rune('0'+i))
		targets = append(targets, Target{ID: id, URL: "rtsp://user:Leak-Test-Pw@" + sim.addr + "/" + id})
	}
	sup.SetTargets(targets)
	stop := runSupervisor(t, sup)

	res.waitFor(t, 60*time.Second, "200 probes", func(rs []Result) bool { return len(rs) >= 200 })
	fdWarm := countFDs(t)
	all := res.waitFor(t, 90*time.Second, "1000 probes", func(rs []Result) bool { return len(rs) >= 1000 })
	// While running, the hub holds four descriptors per live worker (three
	// pipes and a pidfd) and nothing else: probes' sockets live in
	// workers. Workers are recycled every 100 probes, so a look may fall
	// while one is being started (its pipes open before it is counted) or
	// has just exited: look until the count matches, for a few seconds.
	// A leak grows with the probes and never matches.
	var fdLate int
	var workersLate int64
	for deadline := time.Now().Add(5 * time.Second); ; {
		w1 := sup.metrics.workers.Load()
		fdLate = countFDs(t)
		workersLate = max(w1, sup.metrics.workers.Load())
		if fdLate-fdSim <= 4*int(workersLate)+1 || time.Now().After(deadline) {
			break
		}
		<-time.After(10 * time.Millisecond) // probing goes on meanwhile
	}
	stop()
	sim.stop()

	reasons := map[string]int{}
	for _, r := range all {
		if r.Up {
			reasons["up"]++
		} else {
			reasons[r.Reason]++
		}
	}
	t.Logf("%d probes: %v; worker starts %d, recycles %d, crashes %d; fds %d -> %d (warm) -> %d (late)",
		len(all), reasons, sup.metrics.workerStarts.Load(), sup.metrics.workerRecycles.Load(), sup.metrics.workerCrashes.Load(), fd0, fdWarm, fdLate)
	if reasons["up"] == 0 || reasons[ReasonRefused] == 0 {
		t.Errorf("the server did not flap as intended: %v", reasons)
	}
	if n := sup.metrics.workerRecycles.Load(); n < 5 {
		t.Errorf("%d worker recycles over 1000 probes with RecycleAfter 100", n)
	}
	if n := sup.metrics.workerCrashes.Load(); n != 0 {
		t.Errorf("%d worker crashes against a merely flapping server:\n%s", n, lastLines(logs.String(), 20))
	}
	if extra := fdLate - fdSim; extra > 4*int(workersLate)+1 {
		t.Errorf("file descriptors grew while probing: %d before, %d after 200 probes, %d after 1000 with %d workers",
			fdSim, fdWarm, fdLate, workersLate)
	}
	testenv.WaitFor(t, 5*time.Second, fmt.Sprintf("file descriptors back to %d", fd0), func() bool { return countFDs(t) == fd0 })
	goleak.VerifyNone(t, before)
}

// No password reaches a result, a log line (the supervisor's or a
// worker's stderr), a metric or an error, whatever happens to the probe.
func TestNoSecretInResultsLogsOrMetrics(t *testing.T) {
	t.Parallel()
	const pw = "Very-Secret-Pw-77"
	sim := newSim(t)
	dig := addCam(t, sim, "digest", rtspcam.CameraOptions{Auth: rtspcam.Auth{Method: rtspcam.AuthDigest, Username: "admin", Password: pw}})
	addCam(t, sim, "basic", rtspcam.CameraOptions{Auth: rtspcam.Auth{Method: rtspcam.AuthBasic, Username: "admin", Password: "other"}})
	silent := startFake(t, silentBehavior)
	bad := startFake(t, malformedBehavior(payloadTwoByteSPS, false))
	host := sim.Addr()
	var logs logBuffer
	res := newResults()
	sup := newTestSupervisor(t, Config{Workers: 1, Logger: newLogger(&logs)}, res)
	sup.SetTargets([]Target{
		{ID: "ok", URL: "rtsp://admin:" + pw + "@" + host + "/digest"},
		{ID: "ok-split", URL: dig.URL(), Username: "admin", Password: pw},
		{ID: "wrong", URL: "rtsp://admin:" + pw + "@" + host + "/basic"},
		{ID: "missing", URL: "rtsp://admin:" + pw + "@" + host + "/nope"},
		{ID: "refused", URL: "rtsp://admin:" + pw + "@" + closedPort(t) + "/x"},
		{ID: "silent", URL: "rtsp://admin:" + pw + "@" + silent.addr() + "/x"},
		{ID: "crash", URL: "rtsp://admin:" + pw + "@" + bad.addr() + "/x", Settings: Settings{Mode: ModeHandshake}},
		{ID: "bad-url", URL: "rtsp://admin:" + pw + "@[::1/x"},
	})
	runSupervisor(t, sup)
	all := res.waitFor(t, 30*time.Second, "a result for every camera, the crasher isolated", func(rs []Result) bool {
		seen := map[string]bool{}
		for _, r := range rs {
			seen[r.Camera] = true
		}
		return len(seen) == 8 && countWhere(rs, func(r Result) bool { return r.Camera == "crash" && r.Isolated }) > 0
	})
	want := map[string]string{"ok": "", "ok-split": "", "wrong": ReasonUnauthorized, "missing": ReasonNotFound,
		"refused": ReasonRefused, "silent": ReasonTimeout, "bad-url": ReasonOther}
	for _, r := range all {
		if w, ok := want[r.Camera]; ok && r.Reason != w {
			t.Errorf("%s: reason %q (%s), want %q", r.Camera, r.Reason, r.Detail, w)
		}
		if r.URL != "" && !strings.Contains(r.URL, "***") {
			t.Errorf("%s: URL %q not redacted", r.Camera, r.URL)
		}
	}
	blob, _ := json.Marshal(all)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(sup)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := json.Marshal(mfs)
	for what, text := range map[string]string{"results": string(blob), "logs": logs.String(), "metrics": string(metricsText)} {
		if strings.Contains(text, pw) || strings.Contains(text, "Very-Secret") {
			t.Errorf("%s contain the password", what)
		}
	}
	if !strings.Contains(logs.String(), "probe worker stderr") {
		t.Errorf("expected the crashing worker's stderr in the debug log, to check it was scrubbed")
	}
}

func TestServeWorkerProtocol(t *testing.T) {
	t.Parallel()
	sim := newSim(t)
	cam := addCam(t, sim, "gate", rtspcam.CameraOptions{})
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- ServeWorker(context.Background(), inR, outW); outW.Close() }()

	enc := json.NewEncoder(inW)
	for i, mode := range []Mode{ModeHandshake, ModeHandshake} {
		if err := enc.Encode(job{ID: uint64(i + 7), URL: cam.URL(), Mode: mode, Timeout: time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	inW.Close() // no more jobs: the worker finishes what it holds and returns
	sc := bufio.NewScanner(outR)
	ids := map[uint64]bool{}
	for sc.Scan() {
		var r response
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("worker wrote %q: %v", sc.Text(), err)
		}
		if !r.M.Up {
			t.Errorf("job %d: %+v", r.ID, r.M)
		}
		ids[r.ID] = true
	}
	if !ids[7] || !ids[8] {
		t.Fatalf("responses for %v, want jobs 7 and 8", ids)
	}
	if err := <-done; err != nil {
		t.Fatalf("ServeWorker after EOF: %v", err)
	}

	// A corrupt line ends the worker with an error that does not echo it.
	err := ServeWorker(context.Background(), strings.NewReader(`{"id":1,"url":"rtsp://u:Echo-Me-Not@h/x",`+"\n"), io.Discard)
	if err == nil || strings.Contains(err.Error(), "Echo-Me-Not") {
		t.Fatalf("corrupt job: err %v", err)
	}
}

func TestSupervisorKillsStuckWorkers(t *testing.T) {
	t.Parallel()
	res := newResults()
	var logs logBuffer
	// A "worker" that never reads its stdin nor answers.
	sup := newTestSupervisor(t, Config{Workers: 1, WorkerCommand: []string{"/bin/sh", "-c", "exec sleep 600"}, Logger: newLogger(&logs)}, res)
	sup.hungGrace = 500 * time.Millisecond
	sup.SetTargets([]Target{{ID: "cam", URL: "rtsp://127.0.0.1:9/x", Settings: Settings{Mode: ModeHandshake, Timeout: 500 * time.Millisecond}}})
	stop := runSupervisor(t, sup)
	all := res.waitFor(t, 15*time.Second, "the stuck probe reported", func(rs []Result) bool { return len(rs) > 0 })
	if r := all[0]; r.Up || r.Reason != ReasonProtocol || !strings.Contains(r.Detail, "hung") {
		t.Fatalf("stuck probe: %+v", r)
	}
	if sup.metrics.workerCrashes.Load() < 2 {
		t.Errorf("want the shared and the solo worker killed, got %d", sup.metrics.workerCrashes.Load())
	}
	// Stopping says so in the log, once the workers are gone.
	stop()
	if l := logs.String(); !strings.Contains(l, "probe: supervisor stopped") || !strings.Contains(l, "workers_stopped=") {
		t.Errorf("no stop line in the log:\n%s", lastLines(l, 10))
	}
}

func TestSupervisorBadWorkerCommand(t *testing.T) {
	t.Parallel()
	sup, err := NewSupervisor(Config{WorkerCommand: []string{"/nonexistent/villagehub", "probe-worker"}}, func(Result) {})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sup.Run(ctx); err == nil || !strings.Contains(err.Error(), "/nonexistent/villagehub") {
		t.Fatalf("Run with a missing worker binary: %v", err)
	}
	if _, err := NewSupervisor(Config{}, nil); err == nil {
		t.Fatal("NewSupervisor without a callback must fail")
	}
	if _, err := NewSupervisor(Config{Defaults: Settings{Mode: "sometimes"}}, func(Result) {}); err == nil {
		t.Fatal("NewSupervisor with an unknown mode must fail")
	}
}

func TestSupervisorMetricsLint(t *testing.T) {
	t.Parallel()
	sup, err := NewSupervisor(Config{WorkerCommand: workerCommand()}, func(Result) {})
	if err != nil {
		t.Fatal(err)
	}
	sup.SetTargets([]Target{{ID: "a", URL: "rtsp://127.0.0.1:9/x"}})
	problems, err := testutil.CollectAndLint(sup)
	if err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", err, problems)
	}
	if n := testutil.CollectAndCount(sup); n != 10 {
		t.Fatalf("%d metrics collected, want 10", n)
	}
	if v := testutil.ToFloat64(gaugeOf(t, sup, "villagehub_probe_targets")); v != 1 {
		t.Fatalf("targets = %v", v)
	}
}

// Without Workers, the shared workers scale with the cameras: one up to
// CamerasPerWorker, one more for each further CamerasPerWorker; an explicit
// Workers wins whatever the cameras.
func TestSupervisorDefaultWorkers(t *testing.T) {
	t.Parallel()
	targets := func(n int) []Target {
		ts := make([]Target, n)
		for i := range ts {
			ts[i] = Target{ID: fmt.Sprintf("cam-%d", i), URL: fmt.Sprintf("rtsp://127.0.0.1:1/cam-%d", i)}
		}
		return ts
	}
	for _, c := range []struct{ workers, cameras, want int }{
		{0, 0, 1}, {0, 1, 1}, {0, 16, 1}, {0, CamerasPerWorker, 1},
		{0, CamerasPerWorker + 1, 2}, {0, 2 * CamerasPerWorker, 2}, {0, 2*CamerasPerWorker + 1, 3},
		{2, 16, 2}, {1, 1000, 1}, {3, 0, 3},
	} {
		sup := newTestSupervisor(t, Config{Workers: c.workers}, newResults())
		sup.SetTargets(targets(c.cameras))
		if got := sup.wantWorkers(); got != c.want {
			t.Errorf("Workers %d, %d cameras: %d workers, want %d", c.workers, c.cameras, got, c.want)
		}
	}
	// Cameras added by a reload bring their worker.
	sup := newTestSupervisor(t, Config{}, newResults())
	sup.SetTargets(targets(10))
	sup.SetTargets(targets(CamerasPerWorker + 10))
	if got := sup.wantWorkers(); got != 2 {
		t.Errorf("after growing to %d cameras: %d workers, want 2", CamerasPerWorker+10, got)
	}
	// Probes in flight scale the same way: 64, or one per 8 cameras past
	// 512 (a district); an explicit concurrency wins.
	for _, c := range []struct{ concurrency, cameras, want int }{
		{0, 0, MinConcurrency}, {0, 16, MinConcurrency}, {0, MinConcurrency * CamerasPerSlot, MinConcurrency},
		{0, MinConcurrency*CamerasPerSlot + 1, MinConcurrency + 1}, {0, 1000, 125}, {16, 1000, 16}, {200, 10, 200},
	} {
		sup := newTestSupervisor(t, Config{Concurrency: c.concurrency}, newResults())
		sup.SetTargets(targets(c.cameras))
		sup.mu.Lock()
		got := sup.limit()
		sup.mu.Unlock()
		if got != c.want {
			t.Errorf("Concurrency %d, %d cameras: limit %d, want %d", c.concurrency, c.cameras, got, c.want)
		}
	}
}
