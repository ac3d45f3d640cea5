package alert

import (
	"encoding/json"
	"fmt"
	"maps"
	"time"
)

// Reload applies a new alerts configuration live: rules (their `for`,
// recover_for, thresholds, on/off), notifiers (added, removed, changed)
// and the silences of the config file (API silences stay). A config with
// problems is refused whole with a *ValidationError, and the old one stays
// in force. Nothing needs a restart.
//
// A notifier whose settings (and the files they point at) did not change
// keeps running untouched: its queue, its retries and, for Zalo, its
// access token. A changed one is replaced; notices waiting in its queue
// move to the new one. A removed one stops; its waiting notices are
// dropped. Alerts of a rule turned off resolve with reason "rule_disabled";
// a pending episode goes on under the new `for`.
func (e *Engine) Reload(cfg Config) error {
	if ps := cfg.Validate(); len(ps) > 0 {
		return &ValidationError{Problems: ps}
	}
	loc := e.loc
	if cfg.Timezone != "" {
		loc, _ = time.LoadLocation(cfg.Timezone) // checked by Validate
	} else if e.deps.Location != nil {
		loc = e.deps.Location
	}
	// Build every new sender before touching anything, so a failure
	// leaves the old config whole.
	old := map[string]*sender{}
	for _, s := range e.sendersNow() {
		old[s.cfg.Name] = s
	}
	var next, fresh []*sender
	keep := map[string]bool{}
	for i := range cfg.Notifiers {
		n := &cfg.Notifiers[i]
		if s := old[n.Name]; s != nil && sameNotifier(s.cfg, n) {
			next = append(next, s)
			keep[n.Name] = true
			continue
		}
		s, err := e.newSender(n)
		if err != nil {
			return fmt.Errorf("alert: notifiers[%d]: %w", i, err)
		}
		next = append(next, s)
		fresh = append(fresh, s)
	}

	now := e.now()
	e.mu.Lock()
	e.cfg = cfg
	e.loc = loc
	e.setSpecs(&cfg.Rules)
	e.nextBoards = time.Time{}
	e.nextDue = time.Time{} // a shorter `for` may make a pending alert due now
	api := e.silences[:0:0]
	for _, s := range e.silences {
		if s.Source != "config" {
			api = append(api, s)
		}
	}
	e.silences = append(configSilences(cfg.Silences), api...)
	e.retireDisabled(now)
	changes := len(e.changes) > 0
	e.mu.Unlock()

	e.smu.Lock()
	e.senders = next
	ctx := e.runCtx
	e.smu.Unlock()
	// Stop the replaced and removed ones first, so a new notifier never
	// runs beside the old one it replaces (a Zalo token chain must have
	// one user at a time), then start the new ones with the old queues.
	byName := map[string]*sender{}
	for _, s := range fresh {
		byName[s.cfg.Name] = s
	}
	var moved []outboxEntry
	for name, s := range old {
		if keep[name] {
			continue
		}
		s.halt()
		for _, o := range s.drain() {
			if byName[name] != nil {
				moved = append(moved, o)
			} else {
				e.finish(o)
			}
		}
	}
	for _, s := range fresh {
		if ctx != nil {
			s.start(ctx)
		}
	}
	for _, o := range moved {
		byName[o.Notifier].enqueue(o)
	}
	e.log.Info("alert configuration reloaded", "notifiers", len(next), "replaced_or_added", len(fresh),
		"removed", len(old)-len(keep)-countIn(fresh, old), "silences", len(cfg.Silences))
	if changes {
		return e.Evaluate()
	}
	return nil
}

func countIn(fresh []*sender, old map[string]*sender) int {
	n := 0
	for _, s := range fresh {
		if old[s.cfg.Name] != nil {
			n++
		}
	}
	return n
}

// sameNotifier: the same settings and the same content of the files they
// point at (a rotated secret in a header file is a change).
func sameNotifier(a, b *Notifier) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb) && a.url == b.url && a.secret == b.secret && a.tmplText == b.tmplText &&
		maps.Equal(a.headers, b.headers)
}

// retireDisabled resolves the alerts of rules now turned off, which would
// otherwise fire forever unobserved. Called with e.mu.
func (e *Engine) retireDisabled(now time.Time) {
	r := &e.cfg.Rules
	for k, c := range e.cams {
		if !r.CameraDown.on() {
			e.retire(&c.down, now, k, "rule_disabled", "the rule was turned off")
		}
		if !r.CameraDegraded.on() {
			e.retire(&c.degr, now, k, "rule_disabled", "the rule was turned off")
		}
	}
	if !r.QRBoardSilent.on() {
		for k, b := range e.boards {
			e.retire(&b.silent, now, k, "rule_disabled", "the rule was turned off")
		}
	}
	if !r.HubDegraded.on() {
		for check, h := range e.hub {
			e.retire(&h.t, now, devKey{HubSite, check}, "rule_disabled", "the rule was turned off")
		}
	}
	if !r.NotifierFailing.on() {
		for name, t := range e.notif {
			e.retire(t, now, devKey{HubSite, name}, "rule_disabled", "the rule was turned off")
		}
	}
	if !r.FrigateDown.on() {
		for name, t := range e.frig {
			if t.alert != nil {
				e.retire(t, now, devKey{t.alert.Site, t.alert.Device}, "rule_disabled", "the rule was turned off")
			}
			delete(e.frig, name)
		}
	}
}

// configSilences turns the config's silences into the engine's.
func configSilences(cs []Silence) []*silence {
	var out []*silence
	for i, c := range cs {
		s := &silence{ID: fmt.Sprintf("config-%d", i), Matcher: c.Matcher, StartsAt: c.Start, EndsAt: c.End,
			Comment: c.Comment, CreatedBy: c.CreatedBy, Source: "config"}
		if c.Daily != nil {
			h := *c.Daily
			s.Daily = &h
		}
		out = append(out, s)
	}
	return out
}
