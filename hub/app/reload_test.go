package app_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"villagehub/hub/state"
	"villagehub/hub/testenv"
)

// TestReloadOnSIGHUP changes a board's target and name and adds a camera
// in the config file of a running hub, sends SIGHUP, and checks the hub
// took them; then an invalid file and a restart-only change are refused
// with the old configuration kept.
func TestReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	httpAddr, brokerAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	cfgPath := filepath.Join(dir, "v.yaml")
	write := func(extra string) {
		t.Helper()
		yaml := fmt.Sprintf(`data_dir: %s
http: { addr: %s, public_url: "http://%s" }
broker: { addr: %s, allow_anonymous: true }
sites: [{ id: s1, name: "Thôn 1" }]
%s`, filepath.Join(dir, "data"), httpAddr, httpAddr, brokerAddr, extra)
		if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`qr_boards: [{ id: b1, site: s1, name: "Bảng cũ", target_url: "http://example.invalid/old" }]
`)
	p := testenv.StartProcess(t, testenv.Build(t, "./cmd/villagehub"), nil, "--config", cfgPath)
	base := "http://" + httpAddr
	testenv.WaitHTTP(t, base+"/readyz", 20*time.Second, p)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	target := func() string {
		req, _ := http.NewRequest("GET", base+"/q/b1", nil)
		req.Header.Set("User-Agent", phoneA)
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Location")
	}
	if got := target(); got != "http://example.invalid/old" {
		t.Fatalf("before reload /q/b1 -> %q", got)
	}

	write(`qr_boards: [{ id: b1, site: s1, name: "Bảng mới", target_url: "http://example.invalid/new" }]
cameras: [{ id: newcam, site: s1, name: "Camera mới" }]
`)
	p.Cmd.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, 10*time.Second, "new target after SIGHUP", func() bool { return target() == "http://example.invalid/new" })
	var bs struct {
		Boards []state.BoardView `json:"qr_boards"`
	}
	getJSON(t, base+"/api/v1/qr-boards", &bs)
	if len(bs.Boards) != 1 || bs.Boards[0].Name != "Bảng mới" {
		t.Fatalf("boards after reload: %+v", bs.Boards)
	}
	var cs struct{ Cameras []state.CameraView }
	getJSON(t, base+"/api/v1/cameras", &cs)
	if len(cs.Cameras) != 1 || cs.Cameras[0].ID != "newcam" || !cs.Cameras[0].Configured {
		t.Fatalf("cameras after reload: %+v", cs.Cameras)
	}

	// An invalid file: refused, old config kept, the reason logged.
	write("qr_boards: [{ id: b1, site: s1, target_url: \"http://example.invalid/broken\", colour: red }]\n")
	p.Cmd.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, 10*time.Second, "refusal logged", func() bool {
		return strings.Contains(p.Output(), "configuration not reloaded") && strings.Contains(p.Output(), "colour")
	})
	if got := target(); got != "http://example.invalid/new" {
		t.Fatalf("after a refused reload /q/b1 -> %q", got)
	}
	// A restart-only change: refused, naming the key.
	write(`hub_id: another-hub
qr_boards: [{ id: b1, site: s1, target_url: "http://example.invalid/x" }]
`)
	p.Cmd.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, 10*time.Second, "restart-only change refused", func() bool {
		return strings.Contains(p.Output(), "only change with a restart") && strings.Contains(p.Output(), "restart_needed=hub_id")
	})
	if got := target(); got != "http://example.invalid/new" {
		t.Fatalf("after a refused reload /q/b1 -> %q", got)
	}
	// SIGHUP and the API take the same path: both record the outcome at
	// /api/v1/status, and the API refuses the same file the same way.
	if st := status(t, base); st.Reload.Result != "restart_needed" || !slices.Contains(st.Reload.RestartNeeded, "hub_id") {
		t.Fatalf("/api/v1/status after SIGHUP: %+v", st.Reload)
	}
	if code, body := postReload(t, base); code != http.StatusUnprocessableEntity || !strings.Contains(body, "hub_id") {
		t.Fatalf("POST /api/v1/reload of the same file: %d %s", code, body)
	}
	// An invalid file through the API: refused, and shown as an error.
	write("qr_boards: [{ id: b1, site: nowhere }]\n")
	if code, body := postReload(t, base); code != http.StatusUnprocessableEntity || !strings.Contains(body, "qr_boards[0].site") {
		t.Fatalf("POST /api/v1/reload of an invalid file: %d %s", code, body)
	}
	if st := status(t, base); st.Reload.Result != "error" || !strings.Contains(st.Reload.Error, "qr_boards[0].site") {
		t.Fatalf("/api/v1/status after an invalid file: %+v", st.Reload)
	}
}
