package alert

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Reload applies a changed alerting configuration to the running engine:
// rule settings and the silences written in the config take effect at the
// next evaluation. It returns an error, and changes nothing, when cfg is
// invalid or changes what this engine cannot yet swap while running
// (notifiers, timezone, repeat_interval, history): the hub then refuses the
// reload, naming the keys, rather than pretending they took effect.
//
// This is the minimal version the hub's reload contract is built on; the
// alerting package's own work replaces it with one that also swaps
// notifiers live.
func (e *Engine) Reload(cfg Config) error {
	if ps := cfg.Validate(); len(ps) > 0 {
		return &ValidationError{Problems: ps}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var fixed []string
	for _, k := range []struct {
		key  string
		x, y any
	}{
		{"notifiers", e.cfg.Notifiers, cfg.Notifiers}, {"timezone", e.cfg.Timezone, cfg.Timezone},
		{"repeat_interval", e.cfg.RepeatInterval, cfg.RepeatInterval}, {"history", e.cfg.History, cfg.History},
	} {
		if !reflect.DeepEqual(k.x, k.y) {
			fixed = append(fixed, "alerts."+k.key)
		}
	}
	if len(fixed) > 0 {
		return fmt.Errorf("these settings only change with a restart: %s", strings.Join(fixed, ", "))
	}
	// Rules are read only under e.mu (evaluate, pending), so swapping them
	// here is safe; RepeatInterval and History, read outside it, stay.
	e.cfg.Rules = cfg.Rules
	r := &cfg.Rules
	e.down = spec{name: CameraDown, forDur: time.Duration(r.CameraDown.For), recoverFor: r.CameraDown.RecoverFor, severity: r.CameraDown.Severity,
		flapThreshold: r.CameraDown.FlapThreshold, flapWindow: time.Duration(r.CameraDown.FlapWindow)}
	e.degr = spec{name: CameraDegraded, forDur: time.Duration(r.CameraDegraded.For), recoverFor: r.CameraDegraded.RecoverFor, severity: r.CameraDegraded.Severity}
	e.silent = spec{name: QRBoardSilent, recoverFor: r.QRBoardSilent.RecoverFor, severity: r.QRBoardSilent.Severity}
	e.hubSpec = spec{name: HubDegraded, forDur: time.Duration(r.HubDegraded.For), recoverFor: r.HubDegraded.RecoverFor, severity: r.HubDegraded.Severity}
	e.nextDue = time.Time{} // a shorter `for` may make a pending alert due now

	// Silences from the config file are replaced; those made through the
	// API stay.
	kept := e.silences[:0]
	for _, s := range e.silences {
		if s.Source != "config" {
			kept = append(kept, s)
		}
	}
	var fromFile []*silence
	for i, c := range cfg.Silences {
		s := &silence{ID: fmt.Sprintf("config-%d", i), Matcher: c.Matcher, StartsAt: c.Start, EndsAt: c.End,
			Comment: c.Comment, CreatedBy: c.CreatedBy, Source: "config"}
		if c.Daily != nil {
			h := *c.Daily
			s.Daily = &h
		}
		fromFile = append(fromFile, s)
	}
	e.silences = append(fromFile, kept...)
	e.cfg.Silences = cfg.Silences
	e.log.Info("alerting configuration reloaded", "silences_from_config", len(fromFile))
	return nil
}
