package ui_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"villagehub/devices/onvifcam"
	"villagehub/hub/config"
	"villagehub/hub/testenv"
)

// TestFindCamerasInBrowser: the village head adds a camera from the admin
// page "Tìm camera", with no shell. The simulated ONVIF camera is read by
// its URL (as for a camera on another subnet; multicast discovery only
// runs inside a network namespace a test creates): a wrong password is
// shown as such, the right one lists make, model and main stream; adding
// it writes the camera into the config file with the password in a 0600
// file under data_dir (never in the YAML, never shown again), and the hub
// reloads, shows the camera and subscribes to its events (no restart).
// Changes without the CSRF header are refused.
func TestFindCamerasInBrowser(t *testing.T) {
	const camPassword = "Cổng-làng#1"
	cam, err := onvifcam.New(onvifcam.Config{Addr: testenv.FreeAddr(t), Username: "admin", Password: camPassword,
		Name: "Cổng trường", MainURI: "rtsp://127.0.0.1:8554/truong", SubURI: "rtsp://127.0.0.1:8554/truong-sub"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cam.Close)

	hash, err := bcrypt.GenerateFromPassword([]byte("mat-khau-123"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	h := startFileHub(t, `
hub_id: uifind
data_dir: {{data}}
http:
  addr: {{http}}
  auth:
    anonymous: viewer
    users:
      - { name: truong-thon, password_hash: "`+string(hash)+`", role: admin }
broker: { addr: {{broker}}, allow_anonymous: true }
probe: { enabled: false }
sites:
  - { id: tan-ngu-2, name: "Thôn Tân Ngữ 2" }
  - { id: ban-chieng, name: "Bản Chiềng" }
cameras:
  - { id: gate, site: tan-ngu-2, name: "Cổng làng" }
`)
	dataDir := filepath.Join(filepath.Dir(h.path), "data")

	// Not for viewers.
	resp, err := http.Post(h.url+"/api/v1/admin/cameras/inspect", "application/json", strings.NewReader(`{"url":"`+cam.XAddr()+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 && resp.StatusCode != 403 {
		t.Errorf("anonymous inspect: %s, want 401 or 403", resp.Status)
	}

	chrome := testenv.StartChromium(t, 1280, 900)
	ctx := chrome.Context()
	dir := t.TempDir()
	do(t, ctx, chromedp.Navigate(h.url+"/login"))
	poll(t, ctx, 15*time.Second, "the login page", `document.getElementById('u')`)
	do(t, ctx,
		chromedp.SendKeys(chromedp.ID("u"), "truong-thon"),
		chromedp.SendKeys(chromedp.ID("p"), "mat-khau-123"),
		chromedp.Submit(chromedp.ID("p")),
	)
	poll(t, ctx, 15*time.Second, "logged in as admin", `location.pathname === '/' && document.body.dataset.role === 'admin' && document.body.dataset.ready === 'true'`)
	poll(t, ctx, 10*time.Second, "Tìm camera shown with the sites", `!document.getElementById('find-cams').hidden && document.querySelectorAll('#onvif-site option').length === 2 && document.getElementById('h-find-cams').textContent === 'Tìm camera'`)

	// Without the CSRF header a logged-in browser's change is refused.
	if code := await[int](t, ctx, `fetch('/api/v1/admin/cameras/inspect', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({url: '`+cam.XAddr()+`'})}).then(r => r.status)`); code != 403 {
		t.Errorf("inspect without the CSRF header: %d, want 403", code)
	}

	// An empty URL: asked for, nothing sent.
	do(t, ctx, chromedp.Click(chromedp.ID("onvif-inspect")))
	poll(t, ctx, 5*time.Second, "asked for the URL", `document.getElementById('onvif-msg').textContent === 'Nhập địa chỉ ONVIF của camera.'`)

	// A wrong password: listed, marked, not addable.
	do(t, ctx,
		chromedp.SetValue(chromedp.ID("onvif-site"), "ban-chieng"),
		chromedp.SendKeys(chromedp.ID("onvif-pass"), "sai-mat-khau"),
		chromedp.SendKeys(chromedp.ID("onvif-url"), cam.XAddr()),
		chromedp.Click(chromedp.ID("onvif-inspect")),
	)
	row := fmt.Sprintf(`document.querySelector('#onvif-table tr[data-xaddr=%q]')`, cam.XAddr())
	poll(t, ctx, 20*time.Second, "the camera listed as refusing the password", row+` && `+row+`.dataset.state === 'unauthorized' && `+row+`.querySelector('.cnote').textContent.includes('sai tên đăng nhập hoặc mật khẩu') && `+row+`.querySelector('input').disabled && document.getElementById('onvif-add').hidden`)

	// The right password: make, model, main stream; chosen by default.
	// (Read by URL, the camera's name scope is not asked for: the name is
	// its make and model, as `cameras discover --add` writes it.)
	run[bool](t, ctx, `document.getElementById('onvif-pass').value = ''; true`)
	do(t, ctx,
		chromedp.SendKeys(chromedp.ID("onvif-pass"), camPassword),
		chromedp.Click(chromedp.ID("onvif-inspect")),
	)
	poll(t, ctx, 20*time.Second, "the camera read", row+` && `+row+`.dataset.state === 'ok' && `+row+`.querySelector('input').checked && !document.getElementById('onvif-add').hidden`)
	if got := run[[]string](t, ctx, `[...`+row+`.querySelectorAll('th, td')].map(c => c.textContent)`); len(got) != 6 ||
		got[1] != "HIKVISION DS-2CD1023G0E-I" || got[2] != "HIKVISION DS-2CD1023G0E-I" || got[3] != cam.XAddr() || got[4] != "rtsp://127.0.0.1:8554/truong" {
		t.Errorf("the camera's row: %q", got)
	}
	if n := run[int](t, ctx, `document.querySelectorAll('#onvif-table tbody tr').length`); n != 1 {
		t.Errorf("%d rows after reading the same camera twice, want 1", n)
	}
	shots(t, ctx, dir, "admin-find-cameras")

	// Add it: written to the file, and the running hub reloads it and
	// subscribes to the camera's ONVIF events at once, with the password
	// from the file: no restart.
	do(t, ctx, chromedp.Click(chromedp.ID("onvif-add")))
	id := "cam-127-0-0-1-" + cam.XAddr()[strings.LastIndex(cam.XAddr(), ":")+1:strings.Index(cam.XAddr(), "/onvif")]
	poll(t, ctx, 20*time.Second, "the camera added", `document.getElementById('onvif-msg').className === 'ok' && document.getElementById('onvif-msg').textContent === 'Đã thêm 1 camera: `+id+`. Hub đã nạp lại cấu hình.'`)
	failures := cam.Stats().AuthFailures
	testenv.WaitFor(t, 30*time.Second, "the running hub subscribed to the new camera's ONVIF events", func() bool { return cam.Stats().LiveSubscriptions == 1 })
	if n := cam.Stats().AuthFailures - failures; n != 0 {
		t.Errorf("%d authentication failures at the camera: the password file is wrong", n)
	}
	poll(t, ctx, 15*time.Second, "the camera on the dashboard", `document.querySelector('#cam-grid li[data-key="ban-chieng/`+id+`"]')`)
	if v := run[string](t, ctx, `document.getElementById('onvif-pass').value`); v != "" {
		t.Errorf("the password field still holds %d characters after adding", len(v))
	}
	if strings.Contains(run[string](t, ctx, `document.documentElement.outerHTML`), camPassword) {
		t.Error("the camera password is in the page")
	}
	shots(t, ctx, dir, "admin-find-cameras-added")

	raw, err := os.ReadFile(h.path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), camPassword) {
		t.Errorf("the camera password is in the config file:\n%s", raw)
	}
	cfg, err := config.Load(h.path, noEnv)
	if err != nil {
		t.Fatalf("the edited config no longer loads: %v", err)
	}
	var found *config.Camera
	for i := range cfg.Cameras {
		if cfg.Cameras[i].ID == id {
			found = &cfg.Cameras[i]
		}
	}
	if found == nil {
		t.Fatalf("camera %s not in the file:\n%s", id, raw)
	}
	if found.Site != "ban-chieng" || found.RTSPURL != "rtsp://127.0.0.1:8554/truong" || found.Username != "admin" || found.ONVIF == nil || found.ONVIF.URL != cam.XAddr() || found.Name != "HIKVISION DS-2CD1023G0E-I" {
		t.Errorf("camera in the file: %+v", *found)
	}
	if !strings.HasPrefix(found.PasswordFile, filepath.Join(dataDir, "camera-passwords")+string(filepath.Separator)) {
		t.Errorf("password_file %q, want under %s/camera-passwords", found.PasswordFile, dataDir)
	}
	st, err := os.Stat(found.PasswordFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("password file mode %v, want 0600", st.Mode().Perm())
	}
	if b, _ := os.ReadFile(found.PasswordFile); string(b) != camPassword {
		t.Errorf("password file holds %d bytes, not the password", len(b))
	}
	// Adding it again changes nothing (same ONVIF URL already there).
	got := await[string](t, ctx, `fetch('/api/v1/admin/cameras/add', {method: 'POST', headers: Object.assign({'Content-Type': 'application/json'},
		{'X-CSRF-Token': decodeURIComponent(document.cookie.match(/(?:^|;\s*)vh_csrf=([^;]+)/)[1])}),
		body: JSON.stringify({site: 'ban-chieng', username: 'admin', password: '`+camPassword+`', xaddrs: ['`+cam.XAddr()+`']})}).then(r => r.text())`)
	if !strings.Contains(got, `"status":"unchanged"`) || strings.Contains(got, camPassword) {
		t.Errorf("adding again: %s", got)
	}
	ents, _ := os.ReadDir(filepath.Join(dataDir, "camera-passwords"))
	if len(ents) != 1 {
		t.Errorf("%d password files after adding nothing, want 1 (the unused one removed)", len(ents))
	}

	// A hub started from the file (a later restart) has the camera too,
	// and reads its motion over ONVIF with the password from the file.
	h.stop()
	if s := cam.Stats(); s.LiveSubscriptions != 0 {
		t.Errorf("the stopped hub did not give its subscription back: %+v", s)
	}
	failures = cam.Stats().AuthFailures
	h2 := startFileHubAt(t, h.path)
	inState := false
	for _, c := range h2.State().Cameras() {
		inState = inState || (c.Site == "ban-chieng" && c.ID == id)
	}
	if !inState {
		t.Error("a hub started from the edited file does not have the new camera")
	}
	testenv.WaitFor(t, 30*time.Second, "the restarted hub subscribed to the camera's ONVIF events", func() bool { return cam.Stats().LiveSubscriptions == 1 })
	if n := cam.Stats().AuthFailures - failures; n != 0 {
		t.Errorf("%d authentication failures at the camera after the restart: the password file is wrong", n)
	}
}

// await evaluates js, a promise, and returns what it resolves to.
func await[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}
