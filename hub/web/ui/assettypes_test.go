package ui

import (
	"strings"
	"testing"

	"villagehub/hub/state"
)

type emptySource struct{}

func (emptySource) Cameras() []state.CameraView { return nil }
func (emptySource) Boards() []state.BoardView   { return nil }
func (emptySource) Sites() []state.Site         { return nil }

// Every embedded asset is served with its type from assetTypes (the types
// mime.TypeByExtension gave before, without loading the system's tables);
// an asset with an extension missing there would fall back to text/plain.
func TestAssetTypes(t *testing.T) {
	u, err := New(Config{Source: emptySource{}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"app.css":                  "text/css; charset=utf-8",
		"app.js":                   "text/javascript; charset=utf-8",
		"vendor/uPlot.min.css":     "text/css; charset=utf-8",
		"vendor/uPlot.iife.min.js": "text/javascript; charset=utf-8",
		"vendor/uPlot.LICENSE":     "text/plain; charset=utf-8",
	}
	for name, ct := range want {
		a := u.files[name]
		if a == nil {
			t.Errorf("no asset %s", name)
			continue
		}
		if a.ctype != ct {
			t.Errorf("%s: Content-Type %q, want %q", name, a.ctype, ct)
		}
	}
	for name, a := range u.files {
		if _, ok := want[name]; !ok && a.ctype == "text/plain; charset=utf-8" && !strings.HasSuffix(name, "LICENSE") {
			t.Errorf("%s: no type in assetTypes (served as text/plain)", name)
		}
	}
}
