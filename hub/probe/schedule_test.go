package probe

import (
	"bufio"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeClock is the scheduler's clock in tests: it moves only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// schedHarness drives a Supervisor's scheduler by hand on a fake clock,
// with a stand-in shared worker whose jobs the test reads and answers: no
// process, no network, no waiting.
type schedHarness struct {
	t     *testing.T
	clock *fakeClock
	sup   *Supervisor
	res   *results
	w     *workerProc
	jobs  *bufio.Scanner
}

func newSchedHarness(t *testing.T, cfg Config) *schedHarness {
	t.Helper()
	res := newResults()
	cfg.WorkerCommand = []string{"/bin/false"} // never started
	sup, err := NewSupervisor(cfg, res.add)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)}
	sup.now = clock.Now
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	wp := &workerProc{id: 1, in: w, pending: make(map[uint64]*pendingJob)}
	sup.workers[wp] = struct{}{}
	return &schedHarness{t: t, clock: clock, sup: sup, res: res, w: wp, jobs: bufio.NewScanner(r)}
}

// dispatch runs one scheduling round at the clock's time and returns the
// jobs sent to the worker and when the scheduler wants to look again.
func (h *schedHarness) dispatch() ([]job, time.Time) {
	h.t.Helper()
	before := len(h.w.pending)
	wake := h.sup.dispatch(h.clock.Now())
	var out []job
	for range len(h.w.pending) - before {
		if !h.jobs.Scan() {
			h.t.Fatal("the scheduler recorded a job it did not send")
		}
		var j job
		if err := json.Unmarshal(h.jobs.Bytes(), &j); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, j)
	}
	return out, wake
}

// answer reports a job done, as a worker would.
func (h *schedHarness) answer(j job, up bool) Result {
	h.t.Helper()
	m := measurement{Up: up, Codec: "h264", Width: 640, Height: 480}
	if up && j.Mode == ModeSample {
		m.FPS = 10
	}
	if !up {
		m.Reason, m.Detail = ReasonNotFound, "camera replied 404 Not Found"
	}
	n := len(h.res.snapshot())
	h.sup.handle(workerEvent{w: h.w, resp: &response{ID: j.ID, M: m}})
	all := h.res.snapshot()
	if len(all) != n+1 {
		h.t.Fatalf("answering job %d gave %d results", j.ID, len(all)-n)
	}
	return all[n]
}

// The schedule of ModeAuto, on a fake clock: a sample first, a handshake
// every Interval, a sample every SampleInterval, samples while the camera
// is down and on its return; intervals run from probe start to probe
// start; the scheduler wakes exactly when the next probe is due.
func TestScheduleOnFakeClock(t *testing.T) {
	h := newSchedHarness(t, Config{Defaults: Settings{Interval: 10 * time.Second, SampleInterval: 60 * time.Second}})
	t0 := h.clock.Now()
	h.sup.SetTargets([]Target{{ID: "gate", URL: "rtsp://127.0.0.1:9/gate", ExpectedFPS: 10}})

	type step struct {
		at   time.Duration // clock offset when the probe is due
		mode Mode
		up   bool
	}
	steps := []step{
		{0, ModeSample, true}, // first probe: a sample
		{10 * time.Second, ModeHandshake, true},
		{20 * time.Second, ModeHandshake, true},
		{30 * time.Second, ModeHandshake, true},
		{40 * time.Second, ModeHandshake, true},
		{50 * time.Second, ModeHandshake, true},
		{60 * time.Second, ModeSample, true}, // SampleInterval after the first sample
		{70 * time.Second, ModeHandshake, false},
		{80 * time.Second, ModeSample, false}, // down: samples
		{90 * time.Second, ModeSample, true},  // back: the probe that sees it is a sample
		{100 * time.Second, ModeHandshake, true},
	}
	for i, st := range steps {
		h.clock.t = t0.Add(st.at)
		if i > 0 {
			// One nanosecond early, nothing is due.
			h.clock.Advance(-time.Nanosecond)
			if jobs, wake := h.dispatch(); len(jobs) != 0 || !wake.Equal(t0.Add(st.at)) {
				t.Fatalf("step %d: %d jobs before due, wake %v, want none and %v", i, len(jobs), wake.Sub(t0), st.at)
			}
			h.clock.Advance(time.Nanosecond)
		}
		jobs, _ := h.dispatch()
		if len(jobs) != 1 || jobs[0].Mode != st.mode {
			t.Fatalf("step %d at %v: jobs %+v, want one %s", i, st.at, jobs, st.mode)
		}
		// The probe takes 3 s; the next is due Interval after it started.
		h.clock.Advance(3 * time.Second)
		r := h.answer(jobs[0], st.up)
		if r.Mode != st.mode || r.Up != st.up || !r.At.Equal(t0.Add(st.at)) {
			t.Fatalf("step %d: result %+v", i, r)
		}
		wantGrade := GradeGood
		if !st.up {
			wantGrade = GradeDown
		}
		if r.Grade != wantGrade {
			t.Errorf("step %d: grade %s, want %s", i, r.Grade, wantGrade)
		}
		if st.mode == ModeHandshake && st.up && r.FPS != 0 {
			t.Errorf("step %d: a handshake carries fps %v", i, r.FPS)
		}
	}
}

// At most Concurrency probes run; due cameras wait oldest first and show
// in villagehub_probe_queued; a probe that overruns its interval is
// followed at once, not after another interval.
func TestScheduleConcurrencyOnFakeClock(t *testing.T) {
	h := newSchedHarness(t, Config{Concurrency: 2, Defaults: Settings{Mode: ModeHandshake, Interval: 10 * time.Second}})
	h.sup.SetTargets([]Target{{ID: "a", URL: "rtsp://127.0.0.1:9/a"}})
	h.clock.Advance(time.Second)
	h.sup.SetTargets([]Target{{ID: "a", URL: "rtsp://127.0.0.1:9/a"}, {ID: "b", URL: "rtsp://127.0.0.1:9/b"}})
	h.clock.Advance(time.Second)
	h.sup.SetTargets([]Target{{ID: "a", URL: "rtsp://127.0.0.1:9/a"}, {ID: "b", URL: "rtsp://127.0.0.1:9/b"}, {ID: "c", URL: "rtsp://127.0.0.1:9/c"}})

	jobs, _ := h.dispatch()
	if len(jobs) != 2 || h.w.pending[jobs[0].ID].cam != "a" || h.w.pending[jobs[1].ID].cam != "b" {
		t.Fatalf("first round: %d jobs, want a and b (the oldest due)", len(jobs))
	}
	if q := testutil.ToFloat64(gaugeOf(t, h.sup, "villagehub_probe_queued")); q != 1 {
		t.Fatalf("queued = %v, want 1 (c)", q)
	}
	if more, _ := h.dispatch(); len(more) != 0 {
		t.Fatalf("%d more jobs past the concurrency cap", len(more))
	}
	// a's probe overruns its interval (15 s > 10 s): a is due again at once.
	h.clock.Advance(15 * time.Second)
	h.answer(jobs[0], true)
	next, _ := h.dispatch()
	if len(next) != 1 || h.w.pending[next[0].ID].cam != "c" {
		t.Fatalf("after a slot frees: want c (waiting longest), got %d jobs", len(next))
	}
	h.clock.Advance(time.Second)
	h.answer(jobs[1], true) // b is now due too, but a has waited longer
	next, _ = h.dispatch()
	if len(next) != 1 || h.w.pending[next[0].ID].cam != "a" {
		t.Fatalf("want a again at once after its overrun, got %d jobs", len(next))
	}
}
