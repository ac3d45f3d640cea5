package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"villagehub/devices/onvifcam"
	"villagehub/hub/config"
	"villagehub/hub/testenv"
)

const discoverConfig = `# the village's hub
hub_id: test
sites:
  - { id: tan-ngu-2, name: "Thôn Tân Ngữ 2" }

cameras:
  # the gate, added by hand
  - id: gate
    site: tan-ngu-2
    rtsp_url: "rtsp://127.0.0.1:1/gate"

# boards at the market
qr_boards:
  - { id: market-07, site: tan-ngu-2 }
`

// villagehub cameras discover [--add]: inside a network namespace of its
// own, two simulated cameras answer the multicast probe; one is listed
// with its streams, the other (another password) as unauthorized; --add
// writes the readable one into the config, keeping its comments, with no
// credentials in the URL; a second run adds nothing.
func TestCamerasDiscoverAdd(t *testing.T) {
	if !testenv.InNetns(t) {
		return
	}
	gate, err := onvifcam.New(onvifcam.Config{Addr: "127.0.0.1:0", Username: "admin", Password: "pw", Discovery: true, DiscoveryInterface: "lo",
		Name: "Cổng chợ", MainURI: "rtsp://admin:pw@127.0.0.1:8554/market", SubURI: "rtsp://127.0.0.1:8554/market-sub", ClockSkew: -26 * 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Close()
	other, err := onvifcam.New(onvifcam.Config{Addr: "127.0.0.1:0", Username: "admin", Password: "different", Discovery: true, DiscoveryInterface: "lo", Auth: onvifcam.AuthDigest})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "villagehub.yaml")
	if err := os.WriteFile(cfgPath, []byte(discoverConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "cams.pw")
	if err := os.WriteFile(pwFile, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"cameras", "discover", "--timeout", "1500ms", "--interface", "lo", "--username", "admin", "--password-file", pwFile, "--add", "--config", cfgPath, "--site", "tan-ngu-2"}
	var out, errOut bytes.Buffer
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s %s", code, out.String(), errOut.String())
	}
	t.Log(out.String())
	for _, want := range []string{gate.XAddr(), "HIKVISION", "Cổng chợ", "rtsp://127.0.0.1:8554/market ", "rtsp://127.0.0.1:8554/market-sub", "camera clock off by",
		other.XAddr(), "wrong username or password", "added to"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "admin:pw@") {
		t.Error("output shows the credentials the camera put in its URL")
	}

	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, keep := range []string{"# the village's hub", "  # the gate, added by hand", "# boards at the market"} {
		if !bytes.Contains(data, []byte(keep)) {
			t.Errorf("comment %q lost:\n%s", keep, data)
		}
	}
	if fi, _ := os.Stat(cfgPath); fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v, want 0600 kept", fi.Mode().Perm())
	}
	cfg, err := config.Parse(cfgPath, data)
	if err != nil {
		t.Fatalf("edited config: %v\n%s", err, data)
	}
	if len(cfg.Cameras) != 2 {
		t.Fatalf("cameras %+v, want gate plus the one found:\n%s", cfg.Cameras, data)
	}
	c := cfg.Cameras[1]
	if c.Site != "tan-ngu-2" || c.Name != "Cổng chợ" || c.RTSPURL != "rtsp://127.0.0.1:8554/market" || c.Username != "admin" ||
		c.PasswordFile != pwFile || c.Password != "" || c.ONVIF == nil || c.ONVIF.URL != gate.XAddr() {
		t.Fatalf("added camera %+v\n%s", c, data)
	}
	if len(cfg.Boards) != 1 {
		t.Fatalf("boards lost: %+v", cfg.Boards)
	}

	out.Reset()
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("second run exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "no new camera") {
		t.Fatalf("second run: %s", out.String())
	}
	again, _ := os.ReadFile(cfgPath)
	if !bytes.Equal(again, data) {
		t.Fatal("second run changed the config")
	}
}
