package onvifevents_test

import (
	"io"
	"log/slog"
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

// A camera with onvif: set: its ONVIF motion events reach the hub's motion
// path (the same counters and gauges as the MQTT motion topic), through a
// camera reboot; the hub unsubscribes when it stops.
func TestONVIFMotionThroughTheHub(t *testing.T) {
	const secret = "Mật-khẩu#onvif"
	cam, err := onvifcam.New(onvifcam.Config{Addr: "127.0.0.1:0", Username: "admin", Password: secret, ClockSkew: -7 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cam.Close)
	pwFile := filepath.Join(t.TempDir(), "gate.pw")
	if err := os.WriteFile(pwFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := `hub_id: test
sites: [{ id: tan-ngu-2 }]
cameras:
  - id: gate
    site: tan-ngu-2
    rtsp_url: "rtsp://127.0.0.1:1/none"
    username: admin
    password_file: ` + pwFile + `
    onvif: { url: "` + cam.XAddr() + `" }
`
	cfg, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	apptest.Prepare(t, cfg)
	logs := &testenv.SyncBuffer{}
	h := apptest.Start(t, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))

	metric := func(name string) float64 {
		v, _ := testenv.Scrape(t, h.URL).Value(name, "site=tan-ngu-2", "camera=gate")
		return v
	}
	testenv.WaitFor(t, 15*time.Second, "subscribed", func() bool { return cam.Stats().LiveSubscriptions == 1 })
	cam.SetMotion(true)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(logs.String())
			for _, l := range strings.Split(get(t, h.URL+"/metrics"), "\n") {
				if strings.Contains(l, "motion") {
					t.Log(l)
				}
			}
		}
	})
	testenv.WaitFor(t, 15*time.Second, "motion active", func() bool {
		return metric("villagehub_camera_motion_active") == 1 && metric("villagehub_camera_motion_events_total") == 1
	})
	cam.SetMotion(false)
	testenv.WaitFor(t, 15*time.Second, "motion ended", func() bool { return metric("villagehub_camera_motion_active") == 0 })

	// Reboot: the hub subscribes again and the next motion still counts.
	if err := cam.Reboot(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "subscribed after reboot", func() bool {
		s := cam.Stats()
		return s.Subscribes == 2 && s.LiveSubscriptions == 1
	})
	cam.SetMotion(true)
	testenv.WaitFor(t, 15*time.Second, "second motion event", func() bool {
		return metric("villagehub_camera_motion_events_total") == 2 && metric("villagehub_camera_motion_active") == 1
	})

	// Camera unreachable: its motion is unknown (not "no motion") until its
	// events are back.
	unknown := func() bool {
		for _, c := range h.State().Cameras() {
			if c.ID == "gate" {
				return c.MotionUnknown
			}
		}
		t.Fatal("camera gate missing")
		return false
	}
	if unknown() {
		t.Fatal("motion unknown while subscribed")
	}
	cam.PowerOff()
	testenv.WaitFor(t, 20*time.Second, "motion unknown while the camera is off", unknown)
	if v, _ := testenv.Scrape(t, h.URL).Value("villagehub_input_online", "input=onvif/tan-ngu-2/gate"); v != 0 {
		t.Fatalf("villagehub_input_online = %v while the camera is off", v)
	}
	if err := cam.PowerOn(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "motion known again", func() bool { return !unknown() && cam.Stats().LiveSubscriptions == 1 })

	h.Stop()
	if s := cam.Stats(); s.Unsubscribes != 1 || s.LiveSubscriptions != 0 {
		t.Fatalf("after the hub stopped: %+v, want the subscription unsubscribed", s)
	}
	if strings.Contains(logs.String(), secret) {
		t.Fatal("the ONVIF password appears in the hub's log")
	}
}

func get(t *testing.T, url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
