package ui_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"villagehub/devices/onvifcam"
	"villagehub/hub/config"
	"villagehub/hub/onvif"
	"villagehub/hub/testenv"
	"villagehub/hub/web"
)

// TestFindCamerasDiscoverInNetns: "Tìm trong mạng" through the hub's API
// finds a camera by WS-Discovery and adds it. Multicast runs only inside
// the network namespace the test creates (testenv.InNetns), never on the
// machine's own interfaces.
func TestFindCamerasDiscoverInNetns(t *testing.T) {
	if !testenv.InNetns(t) {
		return
	}
	cam, err := onvifcam.New(onvifcam.Config{Addr: testenv.FreeAddr(t), Username: "admin", Password: "pw-cổng",
		Discovery: true, DiscoveryInterface: "lo", Name: "Cổng làng", MainURI: "rtsp://127.0.0.1:8554/gate"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cam.Close)
	token, sha := web.NewToken()
	h := startFileHub(t, `
hub_id: uinetns
data_dir: {{data}}
http:
  addr: {{http}}
  auth:
    tokens:
      - { name: script, token_sha256: `+sha+`, role: admin }
broker: { addr: {{broker}}, allow_anonymous: true }
probe: { enabled: false }
sites:
  - { id: tan-ngu-2, name: "Thôn Tân Ngữ 2" }
cameras:
  - { id: gate-old, site: tan-ngu-2 }
`)
	post := func(path, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("POST", h.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		c := &http.Client{Timeout: 60 * time.Second}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	code, b := post("/api/v1/admin/cameras/discover", `{"username":"admin","password":"pw-cổng","interface":"lo"}`)
	var found struct{ Devices []onvif.Device }
	if code != 200 || json.Unmarshal(b, &found) != nil {
		t.Fatalf("discover: %d %s", code, b)
	}
	if len(found.Devices) != 1 || found.Devices[0].XAddr != cam.XAddr() || found.Devices[0].Name != "Cổng làng" || found.Devices[0].MainURI != "rtsp://127.0.0.1:8554/gate" {
		t.Fatalf("discovered %s", b)
	}
	if strings.Contains(string(b), "pw-cổng") {
		t.Fatalf("the password is in the answer: %s", b)
	}
	code, b = post("/api/v1/admin/cameras/add", `{"site":"tan-ngu-2","username":"admin","password":"pw-cổng","xaddrs":["`+cam.XAddr()+`"]}`)
	if (code != 201 && code != 202) || strings.Contains(string(b), "pw-cổng") {
		t.Fatalf("add: %d %s", code, b)
	}
	cfg, err := config.Load(h.path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Cameras) != 2 || cfg.Cameras[1].ONVIF == nil || cfg.Cameras[1].ONVIF.URL != cam.XAddr() {
		t.Fatalf("cameras in the file: %+v", cfg.Cameras)
	}
	if pw, _ := os.ReadFile(cfg.Cameras[1].PasswordFile); string(pw) != "pw-cổng" {
		t.Errorf("the password file does not hold the password")
	}
}
