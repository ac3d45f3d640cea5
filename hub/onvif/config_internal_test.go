package onvif

import "testing"

func TestInsertCamerasShapes(t *testing.T) {
	item := []string{"- id: x\n  site: s\n"}
	out, err := insertCameras([]byte("sites: [{id: s}]\n"), item)
	if err != nil || string(out) != "sites: [{id: s}]\ncameras:\n  - id: x\n    site: s\n" {
		t.Fatalf("no cameras key: %q %v", out, err)
	}
	out, err = insertCameras([]byte("cameras:\n- id: a\n  site: s\nsites: [{id: s}]\n"), item)
	if err != nil || string(out) != "cameras:\n- id: a\n  site: s\n- id: x\n  site: s\nsites: [{id: s}]\n" {
		t.Fatalf("unindented list: %q %v", out, err)
	}
	if _, err := insertCameras([]byte("cameras: [{id: a, site: s}]\n"), item); err == nil {
		t.Fatal("a flow list was edited")
	}
}
