// Package alert turns the hub's live state into alerts and notifications:
// a camera without video (CameraDown), a poor stream (CameraDegraded), a QR
// board that stopped reporting (QRBoardSilent), a hub in trouble
// (HubDegraded), a notifier that stopped working (NotifierFailing) and a
// Frigate that went offline (FrigateDown).
// Each alert is a small state machine with a `for` duration before it
// fires and `recover_for` good observations before it resolves, so a
// flapping camera gives one alert, not one per flap. Alerts, their
// history, silences and undelivered notices live in alerts.db under the
// data directory and survive a crash.
//
// Where things are:
//
//	engine.go    the engine: evaluation loop on an injected clock (Deps.Now), changes, outbox
//	rules.go     the state machine (track), what each rule observes, the hub/notifier/removal checks
//	notifier.go  the notifier registry (notifierTypes), a sender per notifier: queue, retries by failure class, health
//	webhook.go, mqtt.go, alertmanager.go, zalo.go   one file per notifier type
//	text.go      the words of notices (Vietnamese and English)
//	reload.go    Reload: rules, notifiers and silences applied live
//	api.go       HTTP API, notifier status and test sends
//	config.go, model.go, silence.go, db.go, metrics.go
package alert

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"villagehub/hub/state"
)

// State is what the engine reads from the hub's state. *state.State
// implements it.
type State interface {
	// EachCamera is the cheap per-tick read: no copies.
	EachCamera(fn func(state.CameraSample))
	// Cameras and Sites give names, read only when an alert changes.
	Cameras() []state.CameraView
	Boards() []state.BoardView
	Sites() []state.Site
	// Inputs is each input's own availability (a Frigate's available
	// topic), for FrigateDown.
	Inputs() []state.Input
}

// Publisher publishes an MQTT message; the hub's embedded broker and its
// external-broker client both do.
type Publisher interface {
	Publish(topic string, payload []byte, retain bool, qos byte) error
}

// Deps are what the engine is given by the hub.
type Deps struct {
	State State
	// Publisher is needed by an mqtt notifier.
	Publisher Publisher
	// Prefix is the MQTT topic prefix (default "village").
	Prefix string
	HubID  string
	// DataDir holds alerts.db.
	DataDir string
	// PublicURL is the hub's address as people reach it, for links in
	// notices (http.public_url).
	PublicURL string
	// CurrentPublicURL, if set, is read instead of PublicURL for each
	// notice, so that a reloaded http.public_url reaches the links.
	CurrentPublicURL func() string
	// Location is the village's time zone (Asia/Ho_Chi_Minh if nil and the
	// config names none).
	Location *time.Location

	// HubDegraded checks; a nil func is not checked.
	BrokerConnected func() bool
	IngestQueue     func() (length, capacity int)
	SpoolPoints     func() int64
	// ProbeProblem says why RTSP probing is unavailable ("" while it
	// works): a probe worker that cannot start degrades the hub, it does
	// not stop ingest and alerting.
	ProbeProblem func() string
	// UplinkProblem says why the metrics uplink to the centre is stuck
	// ("" while it keeps up): its oldest queued sample is older than
	// uplink.backlog_alert_age. Reason uplink_backlog.
	UplinkProblem func() string

	// Frigates names the configured Frigate inputs ("frigate/<name>"):
	// only these can fire FrigateDown, so a Frigate removed from the
	// config whose last word (kept in the store) was offline does not
	// fire forever. Nil: every "frigate/" input the state reports.
	Frigates []string

	// Changed, if set, wakes the engine to evaluate at once (at most every
	// 100 ms) besides its 1 s tick: e.g. after the state applied a batch.
	Changed <-chan struct{}

	Logger *slog.Logger
	// HTTPClient for webhooks and Alertmanager (default: a plain client;
	// each request has the notifier's timeout).
	HTTPClient *http.Client
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Engine evaluates the rules and sends notices.
type Engine struct {
	cfg  Config // replaced by Reload, under mu
	deps Deps
	log  *slog.Logger
	now  func() time.Time
	loc  *time.Location
	db   *db

	down, degr, silent, hubSpec, notifSpec, frigSpec spec

	// senders, by config order; replaced by Reload. runCtx is Run's
	// context, for senders a reload starts.
	smu     sync.RWMutex
	senders []*sender
	runCtx  context.Context
	started time.Time

	mu     sync.Mutex
	pass   uint32
	cams   map[devKey]*camTrack
	boards map[devKey]*boardTrack
	hub    map[string]*hubTrack
	notif  map[string]*track // NotifierFailing, by notifier name
	frig   map[string]*track // FrigateDown, by input name (frigate/<name>)
	// restored: firing alerts loaded from alerts.db that no observation
	// has confirmed since the start; no repeat goes out for them until
	// one has (the device may have recovered while the hub was down).
	restored   map[string]bool
	nextRemove time.Time
	firing     map[string]*Alert // by ID
	silences   []*silence
	nextBoards time.Time
	nextDue    time.Time // earliest moment a pending alert could fire
	changes    []change
	unwritten  []change // changes whose write to alerts.db failed
	// undelivered: the outbox as New found it, for Run to send. Read in
	// New, not in Run: an Evaluate between the two (a reload as the hub
	// starts) commits new notices to the outbox and hands them to the
	// senders itself, and Run would send them a second time.
	undelivered []outboxEntry
	evalNanos   int64 // last evaluation's cost, for the metric
	evals       uint64

	closeOnce sync.Once
}

type devKey struct{ site, id string }

// New validates the config, opens alerts.db in deps.DataDir and loads the
// alerts that were firing. Close releases the database.
func New(cfg Config, deps Deps) (*Engine, error) {
	if ps := cfg.Validate(); len(ps) > 0 {
		return nil, &ValidationError{Problems: ps}
	}
	if deps.State == nil {
		return nil, errors.New("alert: Deps.State is required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Prefix == "" {
		deps.Prefix = "village"
	}
	if deps.HTTPClient == nil {
		deps.HTTPClient = &http.Client{}
	}
	loc := deps.Location
	if cfg.Timezone != "" {
		loc, _ = time.LoadLocation(cfg.Timezone) // checked by Validate
	}
	if loc == nil {
		var err error
		if loc, err = time.LoadLocation("Asia/Ho_Chi_Minh"); err != nil {
			return nil, fmt.Errorf("alert: loading time zone: %w", err)
		}
	}
	e := &Engine{
		cfg: cfg, deps: deps, log: deps.Logger, now: deps.Now, loc: loc,
		cams: map[devKey]*camTrack{}, boards: map[devKey]*boardTrack{}, hub: map[string]*hubTrack{},
		notif: map[string]*track{}, frig: map[string]*track{}, restored: map[string]bool{},
		firing: map[string]*Alert{}, started: deps.Now(),
	}
	e.setSpecs(&cfg.Rules)

	d, err := openDB(deps.DataDir)
	if err != nil {
		return nil, err
	}
	e.db = d
	if err := e.load(); err != nil {
		d.close()
		return nil, err
	}
	if e.undelivered, err = d.loadOutbox(); err != nil {
		d.close()
		return nil, fmt.Errorf("alert: loading the outbox: %w", err)
	}
	// Notifiers are built once the restored alerts are in: the MQTT
	// notifier keeps what fires at its start to republish.
	for i := range cfg.Notifiers {
		s, err := e.newSender(&cfg.Notifiers[i])
		if err != nil {
			d.close()
			return nil, fmt.Errorf("alert: notifiers[%d]: %w", i, err)
		}
		e.senders = append(e.senders, s)
	}
	return e, nil
}

// setSpecs turns the rules' settings into the state machines' specs.
func (e *Engine) setSpecs(r *Rules) {
	e.down = spec{name: CameraDown, forDur: time.Duration(r.CameraDown.For), recoverFor: r.CameraDown.RecoverFor, severity: r.CameraDown.Severity,
		flapThreshold: r.CameraDown.FlapThreshold, flapWindow: time.Duration(r.CameraDown.FlapWindow)}
	e.degr = spec{name: CameraDegraded, forDur: time.Duration(r.CameraDegraded.For), recoverFor: r.CameraDegraded.RecoverFor, severity: r.CameraDegraded.Severity}
	// The silence itself is the board rule's `for`; once silent it fires.
	e.silent = spec{name: QRBoardSilent, recoverFor: r.QRBoardSilent.RecoverFor, severity: r.QRBoardSilent.Severity}
	e.hubSpec = spec{name: HubDegraded, forDur: time.Duration(r.HubDegraded.For), recoverFor: r.HubDegraded.RecoverFor, severity: r.HubDegraded.Severity}
	e.notifSpec = spec{name: NotifierFailing, forDur: time.Duration(r.NotifierFailing.For), recoverFor: r.NotifierFailing.RecoverFor, severity: r.NotifierFailing.Severity}
	e.frigSpec = spec{name: FrigateDown, forDur: time.Duration(r.FrigateDown.For), recoverFor: r.FrigateDown.RecoverFor, severity: r.FrigateDown.Severity}
}

// newSender builds one notifier's sender with what notifiers may need.
func (e *Engine) newSender(cfg *Notifier) (*sender, error) {
	return newSender(cfg, notifierDeps{
		HTTP: e.deps.HTTPClient, Publisher: e.deps.Publisher, Prefix: e.deps.Prefix, Log: e.log, Loc: e.loc,
		DataDir: e.deps.DataDir, Now: e.now, Firing: e.firingNotices,
	}, e.finish)
}

// finish removes a delivered or abandoned notice from the outbox.
func (e *Engine) finish(o outboxEntry) {
	if err := e.db.done(o.id); err != nil {
		e.log.Error("removing a notice from the outbox", "notifier", o.Notifier, "err", err)
	}
}

// sendersNow is a snapshot of the senders (Reload may replace them).
func (e *Engine) sendersNow() []*sender {
	e.smu.RLock()
	defer e.smu.RUnlock()
	return e.senders
}

// load restores firing alerts and silences.
func (e *Engine) load() error {
	active, err := e.db.loadActive()
	if err != nil {
		return fmt.Errorf("alert: loading firing alerts: %w", err)
	}
	for _, a := range active {
		// The hub was not watching between its last look before the stop
		// and this start; a resolution seen first after the start says so.
		a.Unwatched = e.started
		e.firing[a.ID] = a
		e.restored[a.ID] = true
		t := &track{since: a.Since, reason: a.Reason, detail: a.Detail, alert: a}
		switch a.Name {
		case CameraDown, CameraDegraded:
			ct := e.camTrack(devKey{a.Site, a.Device})
			if a.Name == CameraDown {
				ct.down = *t
			} else {
				ct.degr = *t
			}
		case QRBoardSilent:
			bt := &boardTrack{silent: *t}
			e.boards[devKey{a.Site, a.Device}] = bt
		case HubDegraded:
			e.hub[a.Device] = &hubTrack{t: *t}
		case NotifierFailing:
			nt := *t
			e.notif[a.Device] = &nt
		case FrigateDown:
			ft := *t
			e.frig[frigatePrefix+a.Device] = &ft
		}
	}
	e.silences = append(e.silences, configSilences(e.cfg.Silences)...)
	saved, err := e.db.loadSilences()
	if err != nil {
		return fmt.Errorf("alert: loading silences: %w", err)
	}
	e.silences = append(e.silences, saved...)
	if len(active) > 0 {
		e.log.Info("alerts restored", "firing", len(active))
	}
	return nil
}

func (e *Engine) camTrack(k devKey) *camTrack {
	c := e.cams[k]
	if c == nil {
		c = &camTrack{}
		e.cams[k] = c
	}
	return c
}

// Close releases alerts.db. Call it after Run returned.
func (e *Engine) Close() error {
	var err error
	e.closeOnce.Do(func() { err = e.db.close() })
	return err
}

// Run evaluates the rules every second (and on Deps.Changed) and runs the
// notifiers, until ctx ends. Notices not delivered by then stay in the
// outbox and go out after the next start.
func (e *Engine) Run(ctx context.Context) error {
	pending := e.undelivered
	e.undelivered = nil
	g, gctx := errgroup.WithContext(ctx)
	e.smu.Lock()
	e.runCtx = gctx
	for _, s := range e.senders {
		s.start(gctx)
	}
	e.smu.Unlock()
	defer func() {
		for _, s := range e.sendersNow() {
			s.halt()
		}
	}()
	// Re-send what a previous run did not deliver, with the same keys.
	byName := map[string]*sender{}
	for _, s := range e.sendersNow() {
		byName[s.cfg.Name] = s
	}
	for _, o := range pending {
		if s := byName[o.Notifier]; s != nil {
			s.enqueue(o)
		} else {
			_ = e.db.done(o.id) // that notifier is gone from the config
		}
	}
	if len(pending) > 0 {
		e.log.Info("re-sending notices left undelivered before the restart", "notices", len(pending))
	}
	g.Go(func() error { return e.loop(gctx) })
	return g.Wait()
}

func (e *Engine) loop(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-e.deps.Changed:
			if d := e.now().Sub(last); d < 100*time.Millisecond {
				// Changes come in bursts: look once, a little later.
				timer.Reset(100*time.Millisecond - d)
				continue
			}
		}
		last = e.now()
		if err := e.Evaluate(); err != nil {
			// A failing disk: keep trying; the alerts stay in memory.
			e.log.Error("alert evaluation failed", "err", err)
		}
		timer.Reset(e.wait())
	}
}

// wait is how long until the next evaluation: a second, or less when a
// pending alert is due sooner, so alerts fire on time, not up to a tick
// late.
func (e *Engine) wait() time.Duration {
	e.mu.Lock()
	due := e.nextDue
	e.mu.Unlock()
	d := time.Second
	if !due.IsZero() {
		if w := due.Sub(e.now()); w < d {
			d = max(w, 10*time.Millisecond)
		}
	}
	return d
}

// Evaluate runs every rule once now and sends the notices that follow.
// Run calls it on its tick; tests and benchmarks may call it directly.
func (e *Engine) Evaluate() error {
	start := time.Now()
	now := e.now()
	e.mu.Lock()
	e.evaluate(now)
	// Changes a failed write left behind go first, in order.
	changes := append(e.unwritten, e.changes...)
	e.changes, e.unwritten = nil, nil
	e.evalNanos = int64(time.Since(start))
	e.evals++
	e.mu.Unlock()
	if len(changes) == 0 {
		return nil
	}
	if err := e.apply(changes, now); err != nil {
		e.mu.Lock()
		e.unwritten = append(changes, e.unwritten...)
		e.mu.Unlock()
		return err
	}
	return nil
}

// evaluate looks at every device and records changes. Called with e.mu.
func (e *Engine) evaluate(now time.Time) {
	e.pass++
	e.nextDue = time.Time{}
	r := &e.cfg.Rules
	downOn, degrOn := r.CameraDown.on(), r.CameraDegraded.on()
	named := len(e.changes)
	if downOn || degrOn {
		e.deps.State.EachCamera(func(s state.CameraSample) {
			k := devKey{s.Site, s.ID}
			c := e.cams[k]
			if c == nil {
				// Clone: the sample's strings belong to the state.
				k = devKey{strings.Clone(s.Site), strings.Clone(s.ID)}
				c = &camTrack{}
				e.cams[k] = c
			}
			c.pass = e.pass
			if c.removed {
				// Removed from the config while its alert fired, and kept
				// as an auto-registered camera with its last failed probe:
				// quiet until it is probed again.
				if s.Probe == nil || s.Probe.Probes == c.removedProbes {
					return
				}
				c.removed = false
			}
			od, og := c.observeCamera(&s, now, &e.down, &e.degr, &r.CameraDegraded)
			if downOn {
				e.stepTrack(&c.down, od, now, &e.down, k)
			}
			if degrOn {
				e.stepTrack(&c.degr, og, now, &e.degr, k)
			}
		})
		for k, c := range e.cams {
			if c.pass != e.pass {
				// The camera left the state (removed from the config).
				e.gone(&c.down, now, k)
				e.gone(&c.degr, now, k)
				delete(e.cams, k)
			}
		}
	}
	if r.QRBoardSilent.on() && !now.Before(e.nextBoards) {
		e.nextBoards = now.Add(time.Duration(r.QRBoardSilent.CheckInterval))
		boards := e.deps.State.Boards()
		for i := range boards {
			v := &boards[i]
			k := devKey{v.Site, v.ID}
			b := e.boards[k]
			if b == nil {
				b = &boardTrack{}
				e.boards[k] = b
			}
			b.pass = e.pass
			e.stepTrack(&b.silent, e.observeBoard(v, now), now, &e.silent, k)
		}
		for k, b := range e.boards {
			if b.pass != e.pass {
				e.gone(&b.silent, now, k)
				delete(e.boards, k)
			}
		}
	}
	if r.HubDegraded.on() {
		e.checkHub(now)
	}
	if r.NotifierFailing.on() {
		e.checkNotifiers(now)
	}
	if r.FrigateDown.on() {
		e.checkFrigates(now)
	}
	if downOn || degrOn {
		e.checkRemoved(now)
	}
	if len(e.changes) > named {
		e.name(e.changes[named:])
	}
	e.sweep(now)
}

// stepTrack feeds one observation to a track and records what changed.
func (e *Engine) stepTrack(t *track, o obs, now time.Time, sp *spec, k devKey) {
	if o.cond == bad && t.alert != nil {
		delete(e.restored, t.alert.ID) // still bad: the restored alert is confirmed
	}
	wasFlapping := t.alert != nil && t.alert.Flapping
	fired, resolved := t.step(o, now, sp)
	if fired == nil && t.alert != nil && t.alert.Flapping != wasFlapping {
		// Persist the flag: after a restart a flapping alert still needs
		// to stay good for `for` before it resolves.
		e.changes = append(e.changes, change{a: *t.alert})
	}
	if fired != nil {
		fired.Site, fired.Device = k.site, k.id
		fired.ID = alertID(sp.name, k.site, k.id)
		e.firing[fired.ID] = fired
		e.changes = append(e.changes, change{a: *fired, notice: KindFiring})
	}
	if resolved != nil {
		if e.restored[resolved.ID] && !resolved.Unwatched.IsZero() {
			// It fired before a restart and no bad look confirmed it since:
			// it may have ended while the hub was not watching. The end
			// reported is the first good look after the restart; say so.
			resolved.Detail = strings.TrimSpace(resolved.Detail + " (hub was not watching until " + resolved.Unwatched.In(e.loc).Format("15:04:05 02/01/2006") + ")")
		}
		delete(e.restored, resolved.ID)
		delete(e.firing, resolved.ID)
		e.changes = append(e.changes, change{a: *resolved, notice: KindResolved})
	}
	if t.alert == nil && !t.since.IsZero() && t.good == 0 {
		if due := t.since.Add(sp.forDur); e.nextDue.IsZero() || due.Before(e.nextDue) {
			e.nextDue = due
		}
	}
}

// gone resolves the alert of a device that no longer exists.
func (e *Engine) gone(t *track, now time.Time, k devKey) {
	e.retire(t, now, k, "removed", "device removed from the hub")
}

// retire resolves a track's alert for a reason of the hub's own (the
// device or the rule is gone), not because the device recovered.
func (e *Engine) retire(t *track, now time.Time, k devKey, reason, detail string) {
	if a := t.alert; a != nil {
		at := now
		a.ResolvedAt, a.State, a.Reason, a.Detail = &at, KindResolved, reason, detail
		t.alert = nil
		delete(e.firing, a.ID)
		delete(e.restored, a.ID)
		e.changes = append(e.changes, change{a: *a, notice: KindResolved})
	}
}

// name fills in device and site names of alerts that just changed. Reads
// the state's views (copies), which happens only when something changed.
func (e *Engine) name(cs []change) {
	sites := map[string]string{}
	for _, s := range e.deps.State.Sites() {
		sites[s.ID] = s.Name
	}
	var cams map[devKey]string
	var configured map[devKey]bool
	var boards map[devKey]string
	for i := range cs {
		a := &cs[i].a
		var n string
		switch a.Name {
		case CameraDown, CameraDegraded:
			if cams == nil {
				cams, configured = map[devKey]string{}, map[devKey]bool{}
				for _, c := range e.deps.State.Cameras() {
					cams[devKey{c.Site, c.ID}] = c.Name
					configured[devKey{c.Site, c.ID}] = c.Configured
				}
			}
			n = cams[devKey{a.Site, a.Device}]
			if a.State == KindFiring && configured[devKey{a.Site, a.Device}] {
				a.Configured = true
			}
		case QRBoardSilent:
			if boards == nil {
				boards = map[devKey]string{}
				for _, b := range e.deps.State.Boards() {
					boards[devKey{b.Site, b.ID}] = b.Name
				}
			}
			n = boards[devKey{a.Site, a.Device}]
		case FrigateDown:
			n = "Frigate " + a.Device
		}
		if a.DeviceName == "" {
			a.DeviceName = n
		}
		if a.SiteName == "" {
			a.SiteName = sites[a.Site]
		}
		if f := e.firing[a.ID]; f != nil {
			f.DeviceName, f.SiteName = a.DeviceName, a.SiteName
			f.Configured = f.Configured || a.Configured
		}
	}
}

// sweep decides the notices of every change and of firing alerts that
// need one now (a silence ended, a repeat is due). Called with e.mu.
func (e *Engine) sweep(now time.Time) {
	for i := range e.changes {
		c := &e.changes[i]
		f := e.firing[c.a.ID]
		switch {
		case c.notice == KindFiring && f != nil:
			if e.isSilenced(f, now) {
				c.notice = "" // recorded, not sent; goes out if the silence ends first
				continue
			}
			f.Notified, f.LastNotified = true, now
			c.a.Notified, c.a.LastNotified = true, now
		case c.notice == KindResolved && !c.a.Notified:
			c.notice = "" // nobody was told it fired
		}
	}
	repeat := time.Duration(*e.cfg.RepeatInterval)
	for _, a := range e.firing {
		if a.FiredAt.Equal(now) {
			continue // handled above
		}
		switch {
		case !a.Notified && !e.isSilenced(a, now):
			a.Notified, a.LastNotified = true, now
			e.changes = append(e.changes, change{a: *a, notice: KindFiring})
		case a.Notified && repeat > 0 && now.Sub(a.LastNotified) >= repeat && !e.restored[a.ID] && !e.isSilenced(a, now):
			a.LastNotified = now
			a.Repeats++
			e.changes = append(e.changes, change{a: *a, notice: KindRepeat})
		}
	}
}

// apply persists the changes with their notices, then hands the notices
// to the notifiers.
func (e *Engine) apply(changes []change, now time.Time) error {
	senders := e.sendersNow()
	var notices []outboxEntry
	for i := range changes {
		c := &changes[i]
		if c.notice == "" {
			continue
		}
		n := newNotification(&c.a, c.notice, now, e.deps.HubID, e.link())
		for _, s := range senders {
			if c.a.Name == NotifierFailing && c.a.Device == s.cfg.Name {
				continue // told through the others
			}
			if s.wants(c.notice) {
				notices = append(notices, outboxEntry{Notifier: s.cfg.Name, N: n})
			}
		}
		e.log.Info("alert "+c.notice, "alert", c.a.Name, "site", c.a.Site, "device", c.a.Device,
			"reason", c.a.Reason, "since", c.a.Since, "duration", c.a.Duration(now).Round(time.Second).String(), "flapping", c.a.Flapping)
	}
	e.mu.Lock()
	history := e.cfg.History // Reload may replace e.cfg
	e.mu.Unlock()
	notices, err := e.db.commit(changes, notices, history)
	if err != nil {
		return err
	}
	byName := map[string]*sender{}
	for _, s := range senders {
		byName[s.cfg.Name] = s
	}
	for _, o := range notices {
		if s := byName[o.Notifier]; s != nil {
			s.enqueue(o)
		} else {
			e.finish(o)
		}
	}
	return nil
}

func (e *Engine) link() string {
	u := e.deps.PublicURL
	if e.deps.CurrentPublicURL != nil {
		u = e.deps.CurrentPublicURL()
	}
	if u == "" {
		return ""
	}
	return strings.TrimRight(u, "/") + "/"
}

// Evaluations is how many times the rules were evaluated (the metric
// villagehub_alert_evaluations_total), for tests that wait until the
// engine has looked again.
func (e *Engine) Evaluations() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.evals
}

// Firing returns copies of the firing alerts, by site, device and name.
func (e *Engine) Firing() []Alert {
	now := e.now()
	e.mu.Lock()
	out := make([]Alert, 0, len(e.firing))
	for _, a := range e.firing {
		c := *a
		c.SilencedBy = e.silencedBy(a, now)
		c.Silenced = len(c.SilencedBy) > 0
		c.DurationS = a.Duration(now).Seconds()
		out = append(out, c)
	}
	e.mu.Unlock()
	slices.SortFunc(out, func(a, b Alert) int {
		return cmp.Or(cmp.Compare(a.Site, b.Site), cmp.Compare(a.Device, b.Device), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// History returns up to limit resolved alerts, newest first, matching m
// (an empty matcher matches all).
func (e *Engine) History(limit int, m Matcher) ([]Alert, error) {
	out, err := e.db.history(limit, m.matches)
	for i := range out {
		out[i].DurationS = out[i].Duration(time.Time{}).Seconds()
	}
	return out, err
}

// firingNotices are the notices an Alertmanager re-push carries: every
// firing alert whose firing notice went out and that is not silenced.
func (e *Engine) firingNotices() []Notification {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Notification
	for _, a := range e.firing {
		if a.Notified && !e.isSilenced(a, now) {
			out = append(out, newNotification(a, KindFiring, now, e.deps.HubID, e.link()))
		}
	}
	return out
}
