package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
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

// A file with decoding problems (a bad duration, a word for a number) and
// value problems (a camera in an unknown site, a bad ID) reports all of
// them in one go, in line order, each with file, line and key (issue 17,
// item 7).
func TestDecodeAndValueProblemsTogether(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "v.yaml")
	os.WriteFile(path, []byte(`hub_id: x
limits:
  queue_size: lots
alerts:
  rules:
    camera_down: { for: 30 sec }
sites:
  - { id: s1, name: "One" }
cameras:
  - { id: gate, site: nowhere }
  - { id: BAD, site: s1 }
`), 0o600)
	_, err := Load(path, func(string) string { return "" })
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v", err)
	}
	want := []struct {
		line int
		key  string
	}{{3, "limits.queue_size"}, {6, "alerts.rules.camera_down.for"}, {10, "cameras[0].site"}, {11, "cameras[1].id"}}
	if len(e.Problems) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(e.Problems), len(want), e)
	}
	for i, w := range want {
		if p := e.Problems[i]; p.Line != w.line || p.Key != w.key || p.File != path {
			t.Errorf("problem %d: %+v, want line %d key %s", i, p, w.line, w.key)
		}
	}
}

// A relative template_file is read from the config file's directory, not
// the working directory; a missing one is reported with its full path.
func TestRelativeTemplateFileNextToConfig(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "alerts"), 0o755)
	os.WriteFile(filepath.Join(dir, "alerts", "t.json.tmpl"), []byte(`{"text": {{ json .Title }}}`), 0o644)
	body := func(tmpl string) []byte {
		return []byte(`hub_id: x
data_dir: ` + filepath.Join(dir, "data") + `
alerts:
  notifiers:
    - { type: webhook, name: chat, url: "http://127.0.0.1:9/hook", template_file: ` + tmpl + ` }
`)
	}
	path := filepath.Join(dir, "villagehub.yaml")
	os.WriteFile(path, body("alerts/t.json.tmpl"), 0o600)
	t.Chdir(t.TempDir()) // somewhere else
	c, err := Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatalf("relative template_file beside the config: %v", err)
	}
	if got, want := c.Alerts.Notifiers[0].TemplateFile, filepath.Join(dir, "alerts", "t.json.tmpl"); got != want {
		t.Errorf("template_file %q, want %q", got, want)
	}
	os.WriteFile(path, body("alerts/missing.tmpl"), 0o600)
	_, err = Load(path, func(string) string { return "" })
	missing := filepath.Join(dir, "alerts", "missing.tmpl")
	if err == nil || !strings.Contains(err.Error(), "villagehub.yaml:5: alerts.notifiers[0].template_file: cannot read "+missing) {
		t.Errorf("missing template error: %v", err)
	}
}

// docs/influxdb.md quotes check-config's message for a bad batch size: it
// is the real one.
func TestInfluxErrorAsDocumented(t *testing.T) {
	_, err := Load(writeTemp(t, "hub_id: x\ninflux:\n  url: http://127.0.0.1:8086\n  bucket: village\n  batch_size: -5\n"), func(string) string { return "" })
	var e *Error
	if !errors.As(err, &e) || len(e.Problems) != 1 {
		t.Fatalf("error %v", err)
	}
	p := e.Problems[0]
	msg := p.Key + ": " + p.Msg
	doc, _ := os.ReadFile("../../docs/influxdb.md")
	if p.Line != 5 || !strings.Contains(strings.Join(strings.Fields(string(doc)), " "), ":31: "+msg+"`") {
		t.Errorf("check-config says %q (line %d); docs/influxdb.md must quote it", msg, p.Line)
	}
}

func writeTemp(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "villagehub.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A key out of line is reported at its own line, not where its block
// began (issue 17, item 7).
func TestBadIndentAtItsLine(t *testing.T) {
	for _, c := range []struct {
		yaml string
		line int
	}{
		{"hub_id: x\nhttp:\n   addr: 127.0.0.1:8080\n  public_url: http://x\n", 4},
		{"hub_id: x\nsites:\n  - { id: a }\n cameras: []\n", 4},
	} {
		_, err := Parse("v.yaml", []byte(c.yaml))
		var e *Error
		if !errors.As(err, &e) || len(e.Problems) != 1 || e.Problems[0].Line != c.line {
			t.Errorf("%q: %v, want one problem at line %d", c.yaml, err, c.line)
		}
	}
}
