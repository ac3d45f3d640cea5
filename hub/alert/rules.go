package alert

import (
	"fmt"
	"strings"
	"time"

	"villagehub/hub/state"
)

// cond is what one look at a device says about a rule's condition.
type cond int8

const (
	unknown cond = iota // nothing to say (not probed yet, camera down for the degraded rule)
	good
	bad
)

// obs is one observation.
type obs struct {
	cond cond
	// start: when the condition became bad (from the device's own state
	// where it is known, so "down since" is the first failed probe).
	start time.Time
	// n: how many new good observations this look carries (new good RTSP
	// probes for camera rules).
	n              int
	reason, detail string
}

// spec is a rule's settings, as the state machine needs them.
type spec struct {
	name       string
	forDur     time.Duration
	recoverFor int
	severity   string
	// flapThreshold > 0 turns on flap detection.
	flapThreshold int
	flapWindow    time.Duration
}

// track is one rule on one device: the state machine of an alert.
//
//	ok ──bad──▶ pending ──bad for `for`, or flapping──▶ firing
//	 ▲             │                                     │
//	 └── recover_for consecutive good observations ◀─────┘
//
// A pending or firing alert goes back to ok only after recover_for good
// observations in a row (a firing alert that is flapping also needs to stay
// good for `for`); a bad observation in between is a relapse, counted as a
// flap, and the episode goes on from where it began.
type track struct {
	since     time.Time // start of the current episode; zero when ok
	good      int       // consecutive good observations in this episode
	goodSince time.Time
	reason    string
	detail    string
	flaps     []time.Time // recent episode starts and relapses
	alert     *Alert      // the firing alert, nil if none
	// lastEnd: when the last alert of this track resolved; flaps before
	// it belong to outages already told, so a new alert's since never
	// reaches back past it.
	lastEnd time.Time
}

func (t *track) flapping(now time.Time, sp *spec) bool {
	if sp.flapThreshold == 0 {
		return false
	}
	n := 0
	for _, f := range t.flaps {
		if now.Sub(f) <= sp.flapWindow {
			n++
		}
	}
	return n >= sp.flapThreshold
}

func (t *track) flap(now time.Time, sp *spec) {
	if sp.flapThreshold == 0 {
		return
	}
	// Keep only what the window still holds, and never more than the
	// threshold needs.
	keep := t.flaps[:0]
	for _, f := range t.flaps {
		if now.Sub(f) <= sp.flapWindow {
			keep = append(keep, f)
		}
	}
	if len(keep) >= sp.flapThreshold {
		keep = append(keep[:0], keep[1:]...)
	}
	t.flaps = append(keep, now)
	if t.alert != nil {
		t.alert.Flaps++
	}
}

// step applies one observation. It returns the alert that fired or
// resolved, if any (resolved alerts have their ResolvedAt set).
func (t *track) step(o obs, now time.Time, sp *spec) (fired, resolved *Alert) {
	switch o.cond {
	case bad:
		if t.since.IsZero() {
			start := o.start
			if start.IsZero() || start.After(now) {
				start = now
			}
			t.since = start
			t.flap(now, sp)
		} else if t.good > 0 {
			t.flap(now, sp) // relapse
		}
		t.good, t.goodSince = 0, time.Time{}
		t.reason, t.detail = o.reason, o.detail
		if t.alert != nil {
			t.alert.Reason, t.alert.Detail = o.reason, o.detail
		}
	case good:
		if t.since.IsZero() || o.n <= 0 {
			break
		}
		if t.good == 0 {
			// The first good look: from the device's own state when known
			// (the first good probe), so the outage reported is first
			// failure to first good probe, not to when the hub looked.
			t.goodSince = now
			if !o.start.IsZero() && o.start.After(t.since) && o.start.Before(now) {
				t.goodSince = o.start
			}
		}
		t.good += o.n
		stable := t.alert == nil || !t.alert.Flapping || now.Sub(t.goodSince) >= sp.forDur
		if t.good >= sp.recoverFor && stable {
			if a := t.alert; a != nil {
				at := t.goodSince
				a.ResolvedAt, a.State = &at, KindResolved
				resolved, t.alert = a, nil
				t.lastEnd = at
			}
			t.since, t.good, t.goodSince = time.Time{}, 0, time.Time{}
			return nil, resolved
		}
	}
	if t.since.IsZero() {
		return nil, nil
	}
	flapping := t.flapping(now, sp)
	if t.alert == nil && ((t.good == 0 && now.Sub(t.since) >= sp.forDur) || flapping) {
		since := t.since
		if flapping {
			for _, f := range t.flaps {
				if f.After(t.lastEnd) {
					if f.Before(since) {
						since = f
					}
					break
				}
			}
		}
		t.alert = &Alert{
			Name: sp.name, Severity: sp.severity, State: KindFiring,
			Since: since, FiredAt: now, Reason: t.reason, Detail: t.detail,
			Flapping: flapping, Flaps: len(t.flaps),
		}
		if flapping && t.good > 0 {
			// Fired on a flap while momentarily good: say why.
			t.alert.Reason = "flapping"
		}
		return t.alert, nil
	}
	if t.alert != nil && flapping {
		t.alert.Flapping = true
	}
	return nil, nil
}

// camTrack is what the engine keeps per camera.
type camTrack struct {
	pass       uint32
	seen       bool // probe bookkeeping below is valid
	probes     uint64
	probeUp    int8
	probeSince time.Time
	offline    time.Time // first seen offline on MQTT; zero when not
	down, degr track
	// removed: its alert resolved as "removed"; ignored until probed again.
	removed       bool
	removedProbes uint64
}

// observeCamera turns a camera's state into observations for CameraDown
// and CameraDegraded.
func (c *camTrack) observeCamera(s *state.CameraSample, now time.Time, down, degr *spec, cd *CameraDegradedRule) (od, og obs) {
	p := s.Probe
	stream := p != nil && p.Up >= 0 && !p.LastProbe.IsZero()
	newProbes, newGood := 0, 0
	if stream {
		if c.seen && p.Probes > c.probes {
			newProbes = int(min(p.Probes-c.probes, 1000))
			if p.Up == 1 {
				if c.probeUp == 1 && p.Since.Equal(c.probeSince) {
					newGood = newProbes
				} else {
					// It came up since we last looked: of the probes in
					// between only the last is known good.
					newGood = 1
				}
			}
		}
		c.seen, c.probes, c.probeUp, c.probeSince = true, p.Probes, p.Up, p.Since
	}
	if s.Online == 0 {
		if c.offline.IsZero() {
			c.offline = now
		}
	} else {
		c.offline = time.Time{}
	}

	switch {
	case stream && p.Up == 0:
		od = obs{cond: bad, start: p.Since, reason: p.Reason, detail: p.Detail}
		if od.reason == "" {
			od.reason = "no_video"
		}
	case s.Online == 0:
		od = obs{cond: bad, start: c.offline, reason: "offline", detail: "MQTT status offline"}
	case stream:
		od = obs{cond: good, n: newGood, start: p.Since}
	case s.Online == 1:
		// No RTSP stream to count probes on: coming online is enough.
		od = obs{cond: good, n: down.recoverFor}
	}

	if stream && p.Up == 1 {
		switch {
		case cd.MinFPS > 0 && p.FPS > 0 && p.FPS < cd.MinFPS:
			og = obs{cond: bad, reason: "low_fps", detail: fmt.Sprintf("%.1f fps, under %.1f", p.FPS, cd.MinFPS)}
		case cd.MinBitrateBps > 0 && p.BitrateBps > 0 && p.BitrateBps < cd.MinBitrateBps:
			og = obs{cond: bad, reason: "low_bitrate", detail: fmt.Sprintf("%.0f kbit/s, under %.0f", p.BitrateBps/1000, cd.MinBitrateBps/1000)}
		case p.Grade == "poor" && cd.Grade != "off", p.Grade == "fair" && cd.Grade == "fair":
			og = obs{cond: bad, reason: "poor_grade", detail: fmt.Sprintf("grade %s at %.1f fps", p.Grade, p.FPS)}
		default:
			og = obs{cond: good, n: newProbes}
		}
	}
	return od, og
}

// boardTrack is what the engine keeps per QR board.
type boardTrack struct {
	pass   uint32
	silent track
}

// observeBoard: silent when no report came for `for` (counting only
// opening hours if configured).
func (e *Engine) observeBoard(v *state.BoardView, now time.Time) obs {
	if v.LastReport == nil {
		return obs{} // never reported: a printed code, or not yet installed
	}
	r := &e.cfg.Rules.QRBoardSilent
	limit := time.Duration(r.For)
	silent := openTime(r.OpeningHours, *v.LastReport, now, e.loc, limit)
	if silent >= limit {
		return obs{cond: bad, start: *v.LastReport, reason: "silent",
			detail: "no report since " + v.LastReport.In(e.loc).Format("2006-01-02 15:04")}
	}
	return obs{cond: good, n: r.RecoverFor}
}

// hubTrack is one HubDegraded check.
type hubTrack struct {
	t track
	// InfluxDB spool sizes over the last `for`, oldest first.
	spool []spoolSample
}

type spoolSample struct {
	at time.Time
	n  int64
}

// checkNotifiers fires NotifierFailing for a notifier that failed
// rules.notifier_failing.after attempts in a row or whose token chain is
// broken; the next success resolves it. Called with e.mu.
func (e *Engine) checkNotifiers(now time.Time) {
	after := e.cfg.Rules.NotifierFailing.After
	seen := map[string]bool{}
	for _, s := range e.sendersNow() {
		name := s.cfg.Name
		seen[name] = true
		t := e.notif[name]
		if t == nil {
			t = &track{}
			e.notif[name] = t
		}
		st := s.status(after)
		o := obs{cond: good, n: 1}
		switch {
		case st.Broken:
			o = obs{cond: bad, reason: "credentials", detail: st.Problem}
		case !st.Healthy:
			o = obs{cond: bad, reason: "failing", detail: fmt.Sprintf("%d failed attempts in a row (%s): %s", st.ConsecutiveFailures, st.LastReason, st.LastError)}
		}
		e.stepTrack(t, o, now, &e.notifSpec, devKey{HubSite, name})
	}
	for name, t := range e.notif {
		if !seen[name] {
			e.gone(t, now, devKey{HubSite, name})
			delete(e.notif, name)
		}
	}
}

// checkRemoved resolves, with reason "removed", the camera alerts of
// cameras that were configured when they fired and are configured no
// more (the state keeps them as auto-registered cameras with their last
// failed probe, which would otherwise keep them firing forever). It reads
// the state's views, so it runs at most every 5 s and only while a
// configured camera's alert fires. Called with e.mu.
func (e *Engine) checkRemoved(now time.Time) {
	if now.Before(e.nextRemove) {
		return
	}
	e.nextRemove = now.Add(5 * time.Second)
	watch := false
	for _, a := range e.firing {
		if (a.Name == CameraDown || a.Name == CameraDegraded) && a.Configured {
			watch = true
			break
		}
	}
	if !watch {
		return
	}
	conf := map[devKey]bool{}
	for _, c := range e.deps.State.Cameras() {
		if c.Configured {
			conf[devKey{c.Site, c.ID}] = true
		}
	}
	for k, c := range e.cams {
		if conf[k] {
			continue
		}
		for _, t := range []*track{&c.down, &c.degr} {
			if t.alert != nil && t.alert.Configured {
				e.gone(t, now, k)
				*t = track{}
				c.removed, c.removedProbes = true, c.probes
			}
		}
	}
}

// checkHub runs the HubDegraded checks.
func (e *Engine) checkHub(now time.Time) {
	k := func(check string) (*hubTrack, devKey) {
		h := e.hub[check]
		if h == nil {
			h = &hubTrack{}
			e.hub[check] = h
		}
		return h, devKey{HubSite, check}
	}
	if f := e.deps.BrokerConnected; f != nil {
		h, key := k(CheckBroker)
		o := obs{cond: good, n: 1}
		if !f() {
			o = obs{cond: bad, reason: "disconnected", detail: "not connected to the MQTT broker"}
		}
		e.stepTrack(&h.t, o, now, &e.hubSpec, key)
	}
	if f := e.deps.IngestQueue; f != nil {
		h, key := k(CheckIngestQueue)
		n, c := f()
		o := obs{cond: good, n: 1}
		if c > 0 && float64(n) >= e.cfg.Rules.HubDegraded.QueueSaturation*float64(c) {
			o = obs{cond: bad, reason: "queue_saturated", detail: fmt.Sprintf("ingest queue %d of %d", n, c)}
		}
		e.stepTrack(&h.t, o, now, &e.hubSpec, key)
	}
	if f := e.deps.ProbeProblem; f != nil {
		h, key := k(CheckProbes)
		o := obs{cond: good, n: 1}
		if p := f(); p != "" {
			o = obs{cond: bad, reason: "probes_unavailable", detail: p}
		}
		e.stepTrack(&h.t, o, now, &e.hubSpec, key)
	}
	if f := e.deps.UplinkProblem; f != nil {
		h, key := k(CheckUplink)
		o := obs{cond: good, n: 1}
		if p := f(); p != "" {
			o = obs{cond: bad, reason: "uplink_backlog", detail: p}
		}
		e.stepTrack(&h.t, o, now, &e.hubSpec, key)
	}
	if f := e.deps.SpoolPoints; f != nil {
		h, key := k(CheckInfluxSpool)
		n := f()
		// Not draining: the spool holds points and has not shrunk over the
		// last `for` (growing is the same, only worse). Comparing with the
		// value `for` ago, not the previous one, lets a spool that drains
		// in bursts count as draining.
		h.spool = append(h.spool, spoolSample{now, n})
		cut := 0
		for cut < len(h.spool)-1 && now.Sub(h.spool[cut+1].at) >= e.hubSpec.forDur {
			cut++
		}
		h.spool = h.spool[cut:]
		o := obs{cond: good, n: 1}
		if old := h.spool[0]; n > 0 && now.Sub(old.at) >= e.hubSpec.forDur && n >= old.n {
			o = obs{cond: bad, start: old.at, reason: "spool_not_draining",
				detail: fmt.Sprintf("%d points waiting for InfluxDB", n)}
		}
		e.stepTrack(&h.t, o, now, &e.hubSpec, key)
	}
}

// frigatePrefix starts the state's name of a Frigate input; ONVIF
// cameras report there too (onvif/<site>/<camera>) and are not Frigates.
const frigatePrefix = "frigate/"

// checkFrigates runs FrigateDown: each configured Frigate's last word on
// its available topic. offline (or stopped) is bad from when it was said,
// online is good from when it was said, and a Frigate that never spoke
// tells nothing. Called with e.mu.
func (e *Engine) checkFrigates(now time.Time) {
	var conf map[string]bool
	if e.deps.Frigates != nil {
		conf = make(map[string]bool, len(e.deps.Frigates))
		for _, n := range e.deps.Frigates {
			conf[n] = true
		}
	}
	seen := map[string]bool{}
	for _, in := range e.deps.State.Inputs() {
		name, ok := strings.CutPrefix(in.Name, frigatePrefix)
		if !ok || name == "" || (conf != nil && !conf[in.Name]) {
			continue
		}
		seen[in.Name] = true
		t := e.frig[in.Name]
		if t == nil {
			t = &track{}
			e.frig[in.Name] = t
		}
		var at time.Time
		if in.Since != nil {
			at = *in.Since
		}
		var o obs
		switch in.Status {
		case "offline":
			o = obs{cond: bad, start: at, reason: "offline", detail: in.Name + " reported offline on its available topic"}
		case "online":
			o = obs{cond: good, n: 1, start: at}
		}
		site := in.Site
		if site == "" {
			site = HubSite
		}
		e.stepTrack(t, o, now, &e.frigSpec, devKey{site, name})
	}
	for name, t := range e.frig {
		if !seen[name] {
			if a := t.alert; a != nil {
				e.gone(t, now, devKey{a.Site, a.Device})
			}
			delete(e.frig, name)
		}
	}
}
