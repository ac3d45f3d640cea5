package config

import (
	"errors"
	"testing"
)

// A value a field's own parser refuses (a duration "30 sec", "-5s") is
// reported with its line and key, and every such value in the file is
// reported, not just the first (issue 17, item 7).
func TestBadValuesNamedWithLineAndKey(t *testing.T) {
	_, err := Parse("v.yaml", []byte(`hub_id: x
alerts:
  rules:
    camera_down: { for: 30 sec }
    hub_degraded: { for: -5s }
store:
  event_retention: 3 weeks
`))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v", err)
	}
	want := []struct {
		line int
		key  string
	}{{4, "alerts.rules.camera_down.for"}, {5, "alerts.rules.hub_degraded.for"}, {7, "store.event_retention"}}
	if len(e.Problems) != len(want) {
		t.Fatalf("problems: %v", e)
	}
	for i, w := range want {
		if p := e.Problems[i]; p.Line != w.line || p.Key != w.key || p.File != "v.yaml" {
			t.Errorf("problem %d: %+v, want line %d key %s", i, p, w.line, w.key)
		}
	}
}
