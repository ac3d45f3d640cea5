package app_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"villagehub/devices/onvifcam"
	"villagehub/hub/app/apptest"
	"villagehub/hub/config"
	"villagehub/hub/testenv"
)

// TestReloadONVIFCameraLive: a camera with an onvif: block added by a
// reload (as the dashboard's "Tìm camera" does) is subscribed, and its
// motion counted, without a restart; pointed at another camera by a reload
// it gives the first camera its subscription back and subscribes to the
// second; removed by a reload, its subscription is unsubscribed. A reload
// whose ONVIF password file cannot be read is refused whole: nothing of
// that file is applied and the running subscription stays.
func TestReloadONVIFCameraLive(t *testing.T) {
	const secret = "Mật-khẩu#1"
	newCam := func() *onvifcam.Camera {
		c, err := onvifcam.New(onvifcam.Config{Addr: "127.0.0.1:0", Username: "admin", Password: secret})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	cam1, cam2 := newCam(), newCam()
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "gate.pw")
	if err := os.WriteFile(pwFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start, err := config.Parse("onvif-reload.yaml", []byte(`sites: [{ id: s1, name: "Thôn 1" }]
qr_boards: [{ id: b1, site: s1, target_url: "http://example.invalid/old" }]
`))
	if err != nil {
		t.Fatal(err)
	}
	apptest.Prepare(t, start)
	log := testenv.NewLog(t)
	h := apptest.Start(t, start, log.Logger)
	var next *config.Config
	h.SetReloader(func() (*config.Config, error) { return next, nil })
	// with is the starting config plus camera "gate" watched over ONVIF at
	// xaddr with the password in passwordFile.
	with := func(xaddr, passwordFile, target string) *config.Config {
		c := *start
		c.Cameras = []config.Camera{{ID: "gate", Site: "s1", Name: "Cổng", Username: "admin", PasswordFile: passwordFile,
			ONVIF: &config.CameraONVIF{URL: xaddr}}}
		c.Boards = []config.Board{{ID: "b1", Site: "s1", TargetURL: target}}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		return &c
	}
	reload := func(want int) string {
		t.Helper()
		code, body := postReload(t, h.URL)
		if code != want {
			t.Fatalf("reload answered %d %s, want %d", code, body, want)
		}
		return body
	}
	gate := func() (motionEvents uint64, active, configured bool) {
		for _, c := range h.State().Cameras() {
			if c.Site == "s1" && c.ID == "gate" {
				return c.MotionEvents, c.MotionActive, c.Configured
			}
		}
		return 0, false, false
	}

	// Added by a reload: subscribed, motion counted.
	next = with(cam1.XAddr(), pwFile, "http://example.invalid/old")
	reload(http.StatusOK)
	testenv.WaitFor(t, 20*time.Second, "the new camera subscribed without a restart", func() bool { return cam1.Stats().LiveSubscriptions == 1 })
	cam1.SetMotion(true)
	testenv.WaitFor(t, 15*time.Second, "its motion reaches the hub", func() bool {
		n, active, configured := gate()
		return n == 1 && active && configured
	})
	if s := cam1.Stats(); s.AuthFailures != 0 {
		t.Fatalf("%d authentication failures: the password file was not used", s.AuthFailures)
	}

	// A change elsewhere in the camera (its name) keeps the subscription.
	next = with(cam1.XAddr(), pwFile, "http://example.invalid/old")
	next.Cameras[0].Name = "Cổng mới"
	reload(http.StatusOK)
	if s := cam1.Stats(); s.Subscribes != 1 || s.Unsubscribes != 0 || s.LiveSubscriptions != 1 {
		t.Fatalf("camera 1 after a rename: %+v, want the same subscription", s)
	}

	// A password file that cannot be read when the reload applies (it was
	// there when the file was checked): refused whole.
	gone := filepath.Join(dir, "gone.pw")
	if err := os.WriteFile(gone, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	next = with(cam2.XAddr(), gone, "http://example.invalid/new")
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	body := reload(http.StatusUnprocessableEntity)
	if !strings.Contains(body, "gone.pw") || strings.Contains(body, secret) {
		t.Fatalf("refusal %s: want the file named, never a secret", body)
	}
	if b, _ := h.State().Board("s1", "b1"); b.TargetURL != "http://example.invalid/old" {
		t.Fatalf("a refused reload applied the board change: target %q", b.TargetURL)
	}
	if s1, s2 := cam1.Stats(), cam2.Stats(); s1.LiveSubscriptions != 1 || s1.Unsubscribes != 0 || s2.Subscribes != 0 {
		t.Fatalf("after a refused reload: camera 1 %+v, camera 2 %+v; want camera 1 still subscribed, camera 2 untouched", s1, s2)
	}

	cam1.SetMotion(false)
	testenv.WaitFor(t, 15*time.Second, "motion ended", func() bool { _, active, _ := gate(); return !active })

	// Changed (another camera at the same ID): the first is told first.
	next = with(cam2.XAddr(), pwFile, "http://example.invalid/old")
	reload(http.StatusOK)
	if s := cam1.Stats(); s.Unsubscribes != 1 || s.LiveSubscriptions != 0 {
		t.Fatalf("camera 1 after the change: %+v, want unsubscribed once the reload answered", s)
	}
	testenv.WaitFor(t, 20*time.Second, "the changed camera subscribed", func() bool { return cam2.Stats().LiveSubscriptions == 1 })
	// Each camera's clock offset is measured to the second (ONVIF's
	// SystemDateAndTime), so a start stamped within a second or two of the
	// first camera's end can be taken for a replay: move again until one
	// counts, a second apart.
	var moved time.Time
	testenv.WaitFor(t, 20*time.Second, "motion from the changed camera", func() bool {
		if n, active, _ := gate(); n >= 2 && active {
			return true
		}
		if time.Since(moved) > time.Second {
			cam2.SetMotion(false)
			cam2.SetMotion(true)
			moved = time.Now()
		}
		return false
	})

	// Removed by a reload: unsubscribed by the time the reload answers,
	// and not subscribed again.
	next = with(cam2.XAddr(), pwFile, "http://example.invalid/old")
	next.Cameras = nil
	reload(http.StatusOK)
	s := cam2.Stats()
	if s.Unsubscribes != 1 || s.LiveSubscriptions != 0 {
		t.Fatalf("camera 2 after its removal: %+v, want unsubscribed", s)
	}
	if _, _, configured := gate(); configured {
		t.Fatal("the removed camera is still configured")
	}
	// The hub's log names what the reload changed.
	if out := log.String(); !strings.Contains(out, "onvif: event subscriptions changed by a reload") || strings.Contains(out, secret) {
		t.Fatalf("log (want the change named, never the password):\n%s", out)
	}
	h.Stop()
	if got := cam2.Stats(); got.Subscribes != s.Subscribes || got.Unsubscribes != 1 {
		t.Fatalf("camera 2 after the hub stopped: %+v, want nothing more after its removal (%+v)", got, s)
	}
	if got := cam1.Stats(); got.Subscribes != 1 || got.Unsubscribes != 1 {
		t.Fatalf("camera 1 at the end: %+v, want one subscription, given back once", got)
	}
}
