package dashboards_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTitlesVietnameseFirst: every dashboard and panel title reads
// "<Vietnamese> · <English>", as the built-in dashboard does, so a village
// head opening Grafana reads their own language first.
func TestTitlesVietnameseFirst(t *testing.T) {
	files, _ := filepath.Glob("*.json")
	if len(files) < 3 {
		t.Fatalf("dashboards: %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Title  string `json:"title"`
			Panels []struct {
				Title string `json:"title"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		titles := []string{d.Title}
		for _, p := range d.Panels {
			titles = append(titles, p.Title)
		}
		for _, title := range titles {
			vi, en, ok := strings.Cut(title, " · ")
			if !ok || vi == "" || en == "" || vi == en {
				t.Errorf("%s: title %q is not \"Vietnamese · English\"", f, title)
			}
		}
	}
}
