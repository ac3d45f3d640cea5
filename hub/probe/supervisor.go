package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Supervisor.
type Config struct {
	// WorkerCommand starts one probe worker: a process that runs
	// ServeWorker on its stdin/stdout. Default: this executable with the
	// argument "probe-worker".
	WorkerCommand []string
	// Workers is how many shared worker processes probe cameras. Zero
	// scales with the cameras: one worker up to CamerasPerWorker cameras and
	// one more for each further CamerasPerWorker (see wantWorkers).
	Workers int
	// Concurrency caps probes in flight across all workers. Zero scales
	// with the cameras: 64, or one slot per CamerasPerSlot cameras when
	// that is more (see limit).
	Concurrency int
	// RecycleAfter replaces a worker after this many probes (vdk leaks a
	// socket on every failed Dial). Default 1000.
	RecycleAfter int
	// Defaults apply to targets that leave a setting zero.
	Defaults Settings
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Supervisor schedules probes of its targets, runs them in worker
// processes, and reports each outcome to its onResult callback.
//
// It implements prometheus.Collector for its own operational metrics
// (villagehub_probe_*). Camera metrics are built by the caller from Results.
type Supervisor struct {
	cfg      Config
	log      *slog.Logger
	onResult func(Result)

	mu      sync.Mutex // guards cams, secrets, nextGen
	cams    map[string]*camState
	secrets scrubber
	nextGen uint64
	changed chan struct{}

	running atomic.Bool
	events  chan workerEvent
	wg      sync.WaitGroup // worker pipe readers
	metrics supervisorMetrics

	// Owned by Run's goroutine.
	workers        map[*workerProc]struct{}
	nextWorkerID   int
	nextJobID      uint64
	inFlight       int
	suspects       []*pendingJob
	suspectRunning bool
	respawnAt      time.Time
	respawnDelay   time.Duration
	stopping       bool

	// hungGrace is how far past its own deadline a probe may run before
	// its worker is deemed stuck and killed.
	hungGrace time.Duration

	// now is the scheduler's clock: time.Now, or a fake one in tests,
	// which then drive dispatch and handle themselves.
	now func() time.Time
}

type pendingJob struct {
	j        job
	cam      string
	gen      uint64
	started  time.Time
	deadline time.Time
	suspect  bool // re-run alone after its worker crashed
}

// camState is the supervisor's view of one target.
type camState struct {
	t        Target
	set      Settings
	url      string // with credentials, escaped for vdk; only ever sent to workers
	redacted string
	sc       scrubber
	gen      uint64

	next       time.Time
	lastSample time.Time
	probed     bool
	up         bool
	lastFPS    float64
	sdpFPS     int
	phase      keyPhase // the camera's keyframes, for the next sample
	busy       bool
	isolated   bool
}

type supervisorMetrics struct {
	workerStarts   atomic.Uint64
	workerCrashes  atomic.Uint64
	workerRecycles atomic.Uint64
	workers        atomic.Int64
	inFlight       atomic.Int64
	isolated       atomic.Int64
	handshakes     atomic.Uint64
	samples        atomic.Uint64
	// Finished workers' resource use (for benchmarks and the curious).
	workerCPUNanos atomic.Int64
	workerMaxRSS   atomic.Int64 // KiB, the largest seen
}

// NewSupervisor validates cfg. onResult is called from Run's goroutine,
// one result at a time; it should return quickly.
func NewSupervisor(cfg Config, onResult func(Result)) (*Supervisor, error) {
	if onResult == nil {
		return nil, errors.New("probe: NewSupervisor needs an onResult callback")
	}
	if len(cfg.WorkerCommand) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("probe: finding this executable for the worker command: %w", err)
		}
		cfg.WorkerCommand = []string{exe, "probe-worker"}
	}
	if cfg.Workers < 0 {
		cfg.Workers = 0
	}
	if cfg.Concurrency < 0 {
		cfg.Concurrency = 0
	}
	if cfg.RecycleAfter <= 0 {
		cfg.RecycleAfter = 1000
	}
	cfg.Defaults = cfg.Defaults.merged(builtinSettings)
	if err := cfg.Defaults.validate(); err != nil {
		return nil, fmt.Errorf("probe: default settings: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Supervisor{
		cfg:       cfg,
		log:       cfg.Logger,
		onResult:  onResult,
		cams:      make(map[string]*camState),
		changed:   make(chan struct{}, 1),
		events:    make(chan workerEvent, 64),
		workers:   make(map[*workerProc]struct{}),
		hungGrace: 10 * time.Second,
		now:       time.Now,
	}, nil
}

func (s Settings) validate() error {
	switch s.Mode {
	case ModeAuto, ModeHandshake, ModeSample:
	default:
		return fmt.Errorf("mode %q: want auto, handshake or sample", s.Mode)
	}
	if s.SampleWindow > s.MaxSampleWindow {
		return fmt.Errorf("sample window %s is longer than the max sample window %s", s.SampleWindow, s.MaxSampleWindow)
	}
	return nil
}

// SetTargets replaces the set of cameras. Cameras whose Target is unchanged
// keep their schedule and history; new or changed ones are probed (with a
// sample) as soon as there is room.
func (s *Supervisor) SetTargets(targets []Target) {
	now := s.now()
	s.mu.Lock()
	keep := make(map[string]bool, len(targets))
	var secrets []string
	for _, t := range targets {
		if t.ID == "" {
			s.log.Warn("probe: ignoring a camera without an ID", "url", Redact(t.URL))
			continue
		}
		if keep[t.ID] {
			s.log.Warn("probe: camera listed twice; the last entry wins", "camera", t.ID)
		}
		keep[t.ID] = true
		set := t.Settings.merged(s.cfg.Defaults)
		if err := set.validate(); err != nil {
			s.log.Warn("probe: invalid camera settings; using the defaults", "camera", t.ID, "err", err)
			set = s.cfg.Defaults
		}
		withCreds, user, pass := buildURL(t)
		sc := newScrubber(t.URL, user, pass)
		secrets = append(secrets, sc.secrets...)
		if cs, ok := s.cams[t.ID]; ok && cs.t == t {
			continue
		}
		s.nextGen++
		if old := s.cams[t.ID]; old != nil && old.isolated {
			s.metrics.isolated.Add(-1)
		}
		s.cams[t.ID] = &camState{
			t:        t,
			set:      set,
			url:      withCreds,
			redacted: Redact(withCreds),
			sc:       sc,
			gen:      s.nextGen,
			next:     now,
		}
	}
	for id, cs := range s.cams {
		if !keep[id] {
			if cs.isolated {
				s.metrics.isolated.Add(-1)
			}
			delete(s.cams, id)
		}
	}
	s.secrets = scrubber{secrets: secrets}
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// buildURL folds Username/Password into the URL. Userinfo is fully
// percent-escaped, '&' included: vdk HTML-unescapes the URL before parsing
// it, which would corrupt a password containing e.g. "&amp;".
func buildURL(t Target) (withCreds, user, pass string) {
	u, err := url.Parse(t.URL)
	if err != nil {
		return t.URL, t.Username, t.Password
	}
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
	}
	if t.Username != "" {
		user = t.Username
	}
	if t.Password != "" {
		pass = t.Password
	}
	u.User = nil
	plain := u.String()
	if user == "" && pass == "" {
		return plain, "", ""
	}
	esc := func(v string) string { return strings.ReplaceAll(url.QueryEscape(v), "+", "%20") }
	info := esc(user)
	if pass != "" {
		info += ":" + esc(pass)
	}
	i := strings.Index(plain, "://")
	if i < 0 {
		return plain, user, pass
	}
	return plain[:i+3] + info + "@" + plain[i+3:], user, pass
}

// scrub removes every configured secret from text.
func (s *Supervisor) scrub(text string) string {
	s.mu.Lock()
	sc := s.secrets
	s.mu.Unlock()
	return sc.clean(text)
}

// Run starts the worker processes and probes until ctx ends; then it
// kills the workers, waits for them, and returns nil. It fails only if the
// first workers cannot be started (a wrong WorkerCommand).
func (s *Supervisor) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("probe: Supervisor.Run called twice")
	}
	defer s.shutdown()
	for i := 0; i < s.wantWorkers(); i++ {
		w, err := s.startWorker(false)
		if err != nil {
			return fmt.Errorf("probe: %w", err)
		}
		s.workers[w] = struct{}{}
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		now := s.now()
		s.reapHung(now)
		s.ensureWorkers(now)
		wake := s.dispatch(now)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wake.Sub(now))
		select {
		case <-ctx.Done():
			return nil
		case ev := <-s.events:
			s.handle(ev)
		case <-s.changed:
		case <-timer.C:
		}
	}
}

func (s *Supervisor) shutdown() {
	s.stopping = true
	workers, inFlight := len(s.workers), s.inFlight
	for w := range s.workers {
		w.kill("shutting down")
	}
	for len(s.workers) > 0 {
		ev := <-s.events
		if ev.exited {
			s.forget(ev)
		}
	}
	s.wg.Wait()
	s.metrics.inFlight.Store(0)
	s.log.Info("probe: supervisor stopped", "workers_stopped", workers, "probes_abandoned", inFlight,
		"samples", s.metrics.samples.Load(), "handshakes", s.metrics.handshakes.Load())
}

func (s *Supervisor) forget(ev workerEvent) {
	delete(s.workers, ev.w)
	s.metrics.workers.Add(-1)
	s.metrics.workerCPUNanos.Add(int64(ev.cpu))
	for {
		old := s.metrics.workerMaxRSS.Load()
		if ev.maxRSS <= old || s.metrics.workerMaxRSS.CompareAndSwap(old, ev.maxRSS) {
			break
		}
	}
}

// CamerasPerWorker is how many cameras one shared worker probes when
// Config.Workers is zero. A worker process costs 14-16 MB PSS whatever it
// probes (about 6 MB its own heap, the rest pages of the binary it shares
// with the hub), while 64 cameras at the shipped schedule keep one worker well
// under a tenth of a core; crash isolation does not depend on the count
// (a crashed worker's probes are re-run one by one in workers of their own,
// and a camera found guilty is probed alone from then on).
const CamerasPerWorker = 64

// wantWorkers is how many shared workers to keep: Config.Workers when set,
// else one per CamerasPerWorker cameras (at least one). When cameras are
// removed, surplus workers are not stopped at once; they go at their next
// recycle (RecycleAfter), which ensureWorkers does not make up.
func (s *Supervisor) wantWorkers() int {
	if s.cfg.Workers > 0 {
		return s.cfg.Workers
	}
	s.mu.Lock()
	n := len(s.cams)
	s.mu.Unlock()
	return max(1, (n+CamerasPerWorker-1)/CamerasPerWorker)
}

// MinConcurrency and CamerasPerSlot size the probes in flight when
// Config.Concurrency is zero. At the shipped schedule a camera keeps a
// slot busy about a twentieth of the time (a 2-4 s sample a minute, a
// handshake of tens of ms every 10 s); one slot per 8 cameras leaves
// twice that, so a district's 1,000 cameras keep their cadence where a
// fixed 64 left 745 of them waiting (docs/performance.md).
const (
	MinConcurrency = 64
	CamerasPerSlot = 8
)

// limit is how many probes may be in flight. Called with s.mu held.
func (s *Supervisor) limit() int {
	if s.cfg.Concurrency > 0 {
		return s.cfg.Concurrency
	}
	return max(MinConcurrency, (len(s.cams)+CamerasPerSlot-1)/CamerasPerSlot)
}

// ensureWorkers keeps wantWorkers shared workers that take new jobs,
// restarting at once after a crash and backing off if starting fails.
func (s *Supervisor) ensureWorkers(now time.Time) {
	if now.Before(s.respawnAt) {
		return
	}
	n := 0
	for w := range s.workers {
		if !w.solo && !w.draining && !w.closing {
			n++
		}
	}
	for want := s.wantWorkers(); n < want; n++ {
		w, err := s.startWorker(false)
		if err != nil {
			s.respawnDelay = min(max(2*s.respawnDelay, time.Second), 30*time.Second)
			s.respawnAt = now.Add(s.respawnDelay)
			s.log.Error("probe: cannot start a worker; retrying", "in", s.respawnDelay, "err", err)
			return
		}
		s.workers[w] = struct{}{}
		s.respawnDelay = 0
	}
}

// pickShared returns the shared worker with the fewest jobs, or nil.
func (s *Supervisor) pickShared() *workerProc {
	var best *workerProc
	for w := range s.workers {
		if w.solo || w.draining || w.closing {
			continue
		}
		if best == nil || len(w.pending) < len(best.pending) {
			best = w
		}
	}
	return best
}

func (cs *camState) nextMode(now time.Time) Mode {
	switch cs.set.Mode {
	case ModeHandshake, ModeSample:
		return cs.set.Mode
	}
	if !cs.probed || !cs.up || now.Sub(cs.lastSample) >= cs.set.SampleInterval {
		return ModeSample
	}
	return ModeHandshake
}

func (s *Supervisor) newJob(cs *camState, mode Mode, now time.Time) *pendingJob {
	s.nextJobID++
	j := job{
		ID:              s.nextJobID,
		URL:             cs.url,
		Mode:            mode,
		Timeout:         cs.set.Timeout,
		SampleWindow:    cs.set.SampleWindow,
		MaxSampleWindow: cs.set.MaxSampleWindow,
		NoVideoTimeout:  cs.set.NoVideoTimeout,
	}
	if mode == ModeSample {
		cs.phase.apply(&j)
	}
	return &pendingJob{
		j:       j,
		cam:     cs.t.ID,
		gen:     cs.gen,
		started: now,
		// The worker enforces j.hardDeadline itself; past this margin the
		// worker is stuck and gets killed.
		deadline: now.Add(j.hardDeadline() + s.hungGrace),
	}
}

// dispatch starts due probes while there is room, and returns when it next
// needs to look.
func (s *Supervisor) dispatch(now time.Time) time.Time {
	wake := now.Add(time.Second) // also the cadence of the hung-worker check

	// Cameras whose worker crashed are retried one by one, each alone in a
	// fresh process, so the one that crashes again is the culprit.
	s.mu.Lock()
	limit := s.limit()
	s.mu.Unlock()
	if !s.suspectRunning && len(s.suspects) > 0 && s.inFlight < limit {
		pj := s.suspects[0]
		s.mu.Lock()
		cs := s.cams[pj.cam]
		current := cs != nil && cs.gen == pj.gen
		s.mu.Unlock()
		if !current {
			s.suspects = s.suspects[1:]
			return now // look again at once
		}
		s.nextJobID++
		pj.j.ID = s.nextJobID
		pj.started = now
		pj.deadline = now.Add(pj.j.hardDeadline() + s.hungGrace)
		pj.suspect = true
		if s.startSolo(pj) {
			s.suspects = s.suspects[1:]
			s.suspectRunning = true
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var due []*camState
	for _, cs := range s.cams {
		if cs.busy {
			continue
		}
		if !cs.next.After(now) {
			due = append(due, cs)
		} else if cs.next.Before(wake) {
			wake = cs.next
		}
	}
	sort.Slice(due, func(i, k int) bool { return due[i].next.Before(due[k].next) })
	for _, cs := range due {
		if s.inFlight >= limit {
			break
		}
		pj := s.newJob(cs, cs.nextMode(now), now)
		if cs.isolated {
			if !s.startSolo(pj) {
				cs.next = now.Add(time.Second)
				continue
			}
		} else {
			w := s.pickShared()
			if w == nil {
				break // all restarting; ensureWorkers will bring one
			}
			if err := w.send(pj.j); err != nil {
				s.log.Warn("probe: worker not accepting jobs; killing it", "worker", w.id, "err", err)
				w.kill("stdin blocked")
				break
			}
			w.pending[pj.j.ID] = pj
			w.sent++
			if w.sent >= s.cfg.RecycleAfter {
				// ensureWorkers starts its replacement on the next turn.
				w.draining = true
			}
			s.inFlight++
		}
		cs.busy = true
	}
	s.metrics.inFlight.Store(int64(s.inFlight))
	return wake
}

// startSolo runs one job in a fresh worker of its own.
func (s *Supervisor) startSolo(pj *pendingJob) bool {
	w, err := s.startWorker(true)
	if err != nil {
		s.log.Error("probe: cannot start a worker for an isolated probe", "camera", pj.cam, "err", err)
		return false
	}
	s.workers[w] = struct{}{}
	if err := w.send(pj.j); err != nil {
		w.kill("stdin blocked")
		return false
	}
	w.pending[pj.j.ID] = pj
	w.sent++
	w.retire() // one job only: it exits when done
	s.inFlight++
	s.metrics.inFlight.Store(int64(s.inFlight))
	return true
}

// reapHung kills workers holding a probe far past its deadline.
func (s *Supervisor) reapHung(now time.Time) {
	for w := range s.workers {
		for _, pj := range w.pending {
			if now.After(pj.deadline) {
				s.log.Warn("probe: worker stuck on a probe; killing it", "worker", w.id, "camera", pj.cam)
				w.kill("a probe overran its deadline")
				break
			}
		}
	}
}

func (s *Supervisor) handle(ev workerEvent) {
	w := ev.w
	if ev.resp != nil {
		pj, ok := w.pending[ev.resp.ID]
		if !ok {
			return
		}
		delete(w.pending, ev.resp.ID)
		s.inFlight--
		s.metrics.inFlight.Store(int64(s.inFlight))
		if pj.suspect {
			s.suspectRunning = false
		}
		if w.draining && len(w.pending) == 0 {
			w.retire()
		}
		s.finish(pj, ev.resp.M)
		return
	}
	if !ev.exited {
		return
	}
	s.forget(ev)
	if s.stopping {
		return
	}
	crashed := len(w.pending) > 0 || !w.closing || w.killed != ""
	if !crashed {
		if w.draining {
			s.metrics.workerRecycles.Add(1)
		}
		return
	}
	s.metrics.workerCrashes.Add(1)
	cams := make([]string, 0, len(w.pending))
	for _, pj := range w.pending {
		cams = append(cams, pj.cam)
	}
	sort.Strings(cams)
	why := w.panicLine()
	if w.killed != "" {
		why = "killed: " + w.killed
	}
	// A camera already isolated crashes its own worker on every probe;
	// that is expected by now and not worth a warning each time.
	level := slog.LevelWarn
	if w.solo && len(cams) == 1 && s.isIsolated(cams[0]) {
		level = slog.LevelDebug
	}
	s.log.Log(context.Background(), level, "probe: worker died", "worker", w.id, "alone", w.solo, "cause", why,
		"exit", fmt.Sprint(ev.err), "cameras_in_flight", strings.Join(cams, ","))
	pending := make([]*pendingJob, 0, len(w.pending))
	for _, pj := range w.pending {
		pending = append(pending, pj)
	}
	sort.Slice(pending, func(i, k int) bool { return pending[i].cam < pending[k].cam })
	for _, pj := range pending {
		delete(w.pending, pj.j.ID)
		s.inFlight--
		if w.solo {
			if pj.suspect {
				s.suspectRunning = false
			}
			s.culprit(pj, why)
		} else {
			s.suspects = append(s.suspects, pj)
		}
	}
	s.metrics.inFlight.Store(int64(s.inFlight))
}

func (s *Supervisor) isIsolated(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.cams[id]
	return cs != nil && cs.isolated
}

// culprit reports a camera whose probe crashed a worker it had to itself,
// and isolates it from now on.
func (s *Supervisor) culprit(pj *pendingJob, why string) {
	s.mu.Lock()
	cs := s.cams[pj.cam]
	if cs != nil && cs.gen == pj.gen && !cs.isolated {
		cs.isolated = true
		s.metrics.isolated.Add(1)
		s.log.Warn("probe: camera crashes the probe; probing it alone from now on",
			"camera", pj.cam, "url", cs.redacted, "cause", why)
	}
	s.mu.Unlock()
	detail := "the stream crashed the probe worker (malformed RTP); this camera is probed in a process of its own"
	if strings.HasPrefix(why, "killed:") {
		detail = "the probe hung its worker; this camera is probed in a process of its own"
	}
	s.finish(pj, measurement{
		Reason:   ReasonProtocol,
		Detail:   detail,
		Duration: s.now().Sub(pj.started),
	})
}

// finish turns a measurement into a Result, updates the camera's state and
// schedule, and reports it.
func (s *Supervisor) finish(pj *pendingJob, m measurement) {
	s.mu.Lock()
	cs := s.cams[pj.cam]
	if cs == nil || cs.gen != pj.gen {
		s.mu.Unlock()
		return // removed or changed while in flight
	}
	cs.busy = false
	if !m.Up && m.Reason == "" {
		m.Reason, m.Detail = ReasonOther, "worker gave no reason"
	}
	r := Result{
		Camera:   cs.t.ID,
		Site:     cs.t.Site,
		URL:      cs.redacted,
		Mode:     pj.j.Mode,
		Up:       m.Up,
		Detail:   cs.sc.clean(m.Detail),
		Codec:    m.Codec,
		Width:    m.Width,
		Height:   m.Height,
		Duration: m.Duration,
		At:       pj.started,
		Isolated: cs.isolated,
	}
	if !m.Up {
		r.Reason = m.Reason
	}
	if m.SDPFPS > 0 {
		cs.sdpFPS = m.SDPFPS
	}
	cs.probed = true
	cs.up = m.Up
	fps := cs.lastFPS
	if pj.j.Mode == ModeSample {
		cs.lastSample = pj.started
		cs.phase.observe(m)
		if m.Up {
			r.FPS = m.FPS
			r.BitrateBps = m.BitrateBps
			r.KeyframeInterval = m.KeyframeInterval
			r.TimeToFirstFrame = m.TTFF
			r.TimeToFirstKeyframe = m.TTFK
			cs.lastFPS = m.FPS
			fps = m.FPS
		}
	}
	expected := cs.t.ExpectedFPS
	if expected <= 0 {
		expected = float64(cs.sdpFPS)
	}
	r.Grade = grade(m.Up, fps, expected)
	cs.next = pj.started.Add(cs.set.Interval)
	if now := s.now(); cs.next.Before(now) {
		cs.next = now
	}
	s.mu.Unlock()

	if pj.j.Mode == ModeSample {
		s.metrics.samples.Add(1)
	} else {
		s.metrics.handshakes.Add(1)
	}
	s.onResult(r)
}

// grade rates a camera from its fps against the expected fps, in the
// spirit of Frigate's camera health: without an expectation any video is
// good.
func grade(up bool, fps, expected float64) string {
	switch {
	case !up:
		return GradeDown
	case expected <= 0 || fps <= 0:
		return GradeGood
	case fps >= 0.9*expected:
		return GradeGood
	case fps >= 0.5*expected:
		return GradeFair
	}
	return GradePoor
}
