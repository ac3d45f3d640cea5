package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHelpExplainsEveryFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--help"}, &out, &errb); code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	help := errb.String()
	for _, f := range []string{"-config", "-demo", "-http-addr", "-broker-addr", "-mqtt-url", "-data-dir", "-public-url",
		"-influx-url", "-influx-org", "-influx-bucket", "-log-level", "-log-format", "check-config", "VILLAGEHUB_MQTT_URL"} {
		if !strings.Contains(help, f) {
			t.Errorf("--help does not mention %s", f)
		}
	}
}

func TestCheckConfig(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"check-config", "../../configs/villagehub.yaml"}, &out, &errb); code != 0 {
		t.Fatalf("example config: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "OK") {
		t.Fatalf("output %q", out.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("sites:\n  - { id: s1 }\ncameras:\n  - { id: gate, site: s2 }\nhttp:\n  port: 80\n"), 0o644)
	out.Reset()
	errb.Reset()
	if code := run([]string{"check-config", bad}, &out, &errb); code != 1 {
		t.Fatalf("bad config: exit %d", code)
	}
	// Unknown keys are found first (decoding stops there); fix it and the
	// semantic problem shows with its key and line.
	if !strings.Contains(errb.String(), bad+":6: port: unknown key") {
		t.Fatalf("output %q", errb.String())
	}
	os.WriteFile(bad, []byte("sites:\n  - { id: s1 }\ncameras:\n  - { id: gate, site: s2 }\n"), 0o644)
	errb.Reset()
	run([]string{"check-config", bad}, &out, &errb)
	if !strings.Contains(errb.String(), bad+":4: cameras[0].site: unknown site \"s2\"") {
		t.Fatalf("output %q", errb.String())
	}
}
