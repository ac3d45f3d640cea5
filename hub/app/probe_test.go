package app_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"villagehub/devices/rtspcam"
	"villagehub/hub/app/apptest"
	"villagehub/hub/config"
	"villagehub/hub/state"
	"villagehub/hub/testenv"
)

// TestProbeEndToEnd runs the hub with two cameras served by the RTSP
// simulator, one behind Digest auth with its password in the config: stream
// health reaches the API and /metrics, a stopped camera goes down with the
// right reason, and the password shows nowhere.
func TestProbeEndToEnd(t *testing.T) {
	cams, err := rtspcam.New(rtspcam.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer cams.Close()
	gate, _ := cams.AddCamera("gate", rtspcam.CameraOptions{Auth: rtspcam.Auth{Method: rtspcam.AuthDigest, Username: "admin", Password: "pa55word"}})
	market, _ := cams.AddCamera("market", rtspcam.CameraOptions{})
	h := startHub(t, func(c *config.Config) {
		apptest.EnableProbe(c)
		c.Cameras = []config.Camera{
			{ID: "gate", Site: "tan-ngu-2", RTSPURL: strings.Replace(gate.URL(), "rtsp://", "rtsp://admin:pa55word@", 1), ExpectedFPS: 10},
			{ID: "market", Site: "tan-ngu-2", RTSPURL: market.URL(), ExpectedFPS: 10},
		}
	})
	streams := func() map[string]*state.StreamView {
		var cs struct{ Cameras []state.CameraView }
		getJSON(t, h.URL+"/api/v1/cameras", &cs)
		out := map[string]*state.StreamView{}
		for _, c := range cs.Cameras {
			if strings.Contains(c.RTSPURL, "pa55word") {
				t.Fatalf("API shows the password: %s", c.RTSPURL)
			}
			out[c.ID] = c.Stream
		}
		return out
	}
	testenv.WaitFor(t, 15*time.Second, "both cameras sampled", func() bool {
		s := streams()
		return s["gate"] != nil && s["gate"].FPS > 0 && s["market"] != nil && s["market"].FPS > 0
	})
	s := streams()["gate"]
	if !s.Up || s.Codec != "h264" || s.Width != 320 || s.Height != 240 || s.FPS < 9.5 || s.FPS > 10.5 || s.KeyframeInterval != 10 || s.Grade != "good" {
		t.Errorf("gate stream: %+v", s)
	}
	m := testenv.Scrape(t, h.URL)
	if v, _ := m.Value("villagehub_camera_up", "camera=gate"); v != 1 {
		t.Errorf("camera_up{gate} = %v", v)
	}
	if v, _ := m.Value("villagehub_camera_stream_fps", "camera=market"); v < 9.5 || v > 10.5 {
		t.Errorf("stream_fps{market} = %v", v)
	}
	if n, _ := m.Value("villagehub_camera_probe_duration_seconds", "site=tan-ngu-2"); n < 2 {
		t.Errorf("probe duration histogram has %v observations", n)
	}

	market.Stop()
	testenv.WaitFor(t, 15*time.Second, "market down", func() bool {
		s := streams()["market"]
		return s != nil && !s.Up
	})
	if s := streams()["market"]; s.Reason != "not_found" || s.Grade != "down" || s.FPS != 0 {
		t.Errorf("market stream after stop: %+v", s)
	}
	m = testenv.Scrape(t, h.URL)
	if v, _ := m.Value("villagehub_camera_probe_failures_total", "camera=market", "reason=not_found"); v < 1 {
		t.Errorf("probe_failures_total{market,not_found} = %v", v)
	}
	// The live view changes as the batch is applied; the event log
	// answers once the batch is committed.
	var page struct{ Events []state.EventRecord }
	testenv.WaitFor(t, 10*time.Second, "the camera_down event in the log", func() bool {
		getJSON(t, h.URL+"/api/v1/events?device=market&type=camera_down", &page)
		return len(page.Events) > 0
	})
	if len(page.Events) != 1 || page.Events[0].Reason != "not_found" {
		t.Errorf("camera_down events: %+v", page.Events)
	}
	if body := get(t, h.URL+"/metrics"); strings.Contains(body, "pa55word") {
		t.Error("/metrics shows the password")
	}
}

// TestH265CroppedThroughAPIAndMetrics: a 1080p H.265 camera, coded as
// 1088 rows and cropped by its SPS conformance window (as camera encoders
// code it), served by a real gst-rtsp-server, shows as 1920x1080 in the
// API and in villagehub_camera_stream_info, through the hub's probe
// workers, after samples and handshakes alike: vdk alone reports
// 1920x1088 (docs/vdk-findings.md finding 13).
func TestH265CroppedThroughAPIAndMetrics(t *testing.T) {
	clip, err := testenv.FFmpegClip("h265", testenv.H265Clip1080p)
	if err != nil {
		t.Fatal(err)
	}
	srv := testenv.StartGstRTSPServer(t, testenv.GstMount{Path: "/h265", Launch: fmt.Sprintf(testenv.H265Launch1080p, clip)})
	h := startHub(t, func(c *config.Config) {
		apptest.EnableProbe(c)
		c.Probe.Timeout = config.Duration(5 * time.Second)
		c.Cameras = []config.Camera{{ID: "market", Site: "tan-ngu-2", RTSPURL: srv.URL("/h265"), ExpectedFPS: 5}}
	})
	var stream *state.StreamView
	testenv.WaitFor(t, 30*time.Second, "the H.265 camera sampled", func() bool {
		var cs struct{ Cameras []state.CameraView }
		getJSON(t, h.URL+"/api/v1/cameras", &cs)
		for _, c := range cs.Cameras {
			if c.ID == "market" && c.Stream != nil && c.Stream.FPS > 0 {
				stream = c.Stream
				return true
			}
		}
		return false
	})
	if !stream.Up || stream.Codec != "h265" || stream.Width != 1920 || stream.Height != 1080 {
		t.Errorf("API stream after the sample: %+v, want h265 1920x1080", stream)
	}
	// Handshakes (through vdk) follow every second: they must not put the
	// coded height back.
	var m testenv.Metrics
	testenv.WaitFor(t, 20*time.Second, "handshakes after the sample", func() bool {
		m = testenv.Scrape(t, h.URL)
		n, _ := m.Value("villagehub_camera_probe_duration_seconds", "site=tan-ngu-2")
		return n >= 4
	})
	var cs struct{ Cameras []state.CameraView }
	getJSON(t, h.URL+"/api/v1/cameras", &cs)
	if s := cs.Cameras[0].Stream; s == nil || s.Codec != "h265" || s.Width != 1920 || s.Height != 1080 {
		t.Errorf("API stream after handshakes: %+v, want h265 1920x1080", s)
	}
	if v, ok := m.Value("villagehub_camera_stream_info", "camera=market", "codec=h265", "resolution=1920x1080"); !ok || v != 1 {
		t.Errorf("villagehub_camera_stream_info{codec=h265,resolution=1920x1080} = %v (found %v)", v, ok)
	}
	if _, ok := m.Value("villagehub_camera_stream_info", "camera=market", "resolution=1920x1088"); ok {
		t.Error("villagehub_camera_stream_info shows the coded 1920x1088")
	}
}

// TestProbeWorkerCannotStart: a probe worker that cannot start (here a
// binary that does not exist, as a foreign-architecture build or a full
// disk would give) degrades the hub instead of stopping it: MQTT ingest
// and the API keep working, and HubDegraded fires with reason
// probes_unavailable, through the alert API and /metrics.
func TestProbeWorkerCannotStart(t *testing.T) {
	cfg, err := config.Parse("test.yaml", []byte(village))
	if err != nil {
		t.Fatal(err)
	}
	apptest.Prepare(t, cfg)
	apptest.EnableProbe(cfg)
	cfg.Cameras = []config.Camera{{ID: "gate", Site: "tan-ngu-2", RTSPURL: "rtsp://127.0.0.1:1/none"}}
	cfg.Alerts.Rules.HubDegraded.For = config.Duration(time.Second)
	h := apptest.StartWorker(t, cfg, nil, []string{"/nonexistent/villagehub", "probe-worker"})

	pub := testenv.MQTT(t, "tcp://"+h.BrokerAddr(), "still-ingesting")
	testenv.Publish(t, pub, "village/tan-ngu-2/qr/market-07/scans", 1, false, `{"total":3,"boot":"x"}`)
	testenv.WaitFor(t, 20*time.Second, "the scan counted with probing down", func() bool {
		v, _ := testenv.Scrape(t, h.URL).Value("villagehub_qr_scans_total", "board=market-07")
		return v == 3
	})
	testenv.WaitFor(t, 20*time.Second, "HubDegraded for the probes", func() bool {
		v, _ := testenv.Scrape(t, h.URL).Value("villagehub_alerts_firing", "alert=HubDegraded")
		return v >= 1
	})
	var a struct {
		Firing []struct {
			Alert, Device, Reason string
		} `json:"firing"`
	}
	getJSON(t, h.URL+"/api/v1/alerts", &a)
	found := false
	for _, f := range a.Firing {
		found = found || (f.Alert == "HubDegraded" && f.Device == "probes" && f.Reason == "probes_unavailable")
	}
	if !found {
		t.Errorf("/api/v1/alerts firing: %+v", a.Firing)
	}
}
