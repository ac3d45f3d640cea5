package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"villagehub/hub/app"
	"villagehub/hub/app/apptest"
	"villagehub/hub/config"
	"villagehub/hub/state"
	"villagehub/hub/testenv"
)

const village = `
hub_id: test
sites:
  - { id: tan-ngu-2, name: "Thôn Tân Ngữ 2" }
cameras:
  - { id: gate, site: tan-ngu-2, name: "Cổng làng", rtsp_url: "rtsp://admin:s3cret@10.0.0.5:554/stream1" }
qr_boards:
  - { id: market-07, site: tan-ngu-2, name: "Chợ Bản, sạp 7", target_url: "https://example.vn/cho-ban/sap-7" }
  - { id: nobootboard, site: tan-ngu-2, name: "Bảng không boot" }
`

type testHub = apptest.Hub

// startHub runs a hub in this process on free ports with its own data
// directory; edit adjusts the config before validation.
func startHub(t *testing.T, edit func(*config.Config)) *testHub {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(village))
	if err != nil {
		t.Fatal(err)
	}
	apptest.Prepare(t, cfg)
	if edit != nil {
		edit(cfg)
	}
	return apptest.Start(t, cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// handled is how many device messages the hub has finished with.
func handled(m testenv.Metrics) float64 {
	v, _ := m.Value("villagehub_mqtt_messages_total")
	return v
}

func waitHandled(t *testing.T, url string, n float64) testenv.Metrics {
	t.Helper()
	var m testenv.Metrics
	testenv.WaitFor(t, 20*time.Second, fmt.Sprintf("%v messages handled", n), func() bool {
		m = testenv.Scrape(t, url)
		return handled(m) >= n
	})
	if got := handled(m); got != n {
		t.Fatalf("hub handled %v messages, want exactly %v", got, n)
	}
	return m
}

func ms(t time.Time) string { return fmt.Sprint(t.UnixMilli()) }

// TestEndToEnd publishes every message of the contract through a real
// broker with real MQTT clients and checks /metrics and the API exactly.
func TestEndToEnd(t *testing.T) {
	for _, broker := range []string{"embedded", "mosquitto"} {
		t.Run(broker, func(t *testing.T) {
			var mq *testenv.Mosquitto
			if broker == "mosquitto" {
				mq = testenv.StartMosquitto(t, testenv.MosquittoOptions{})
			}
			h := startHub(t, func(c *config.Config) {
				if mq != nil {
					c.MQTT.URL = mq.URL()
				}
			})
			url := "tcp://" + h.BrokerAddr()
			if mq != nil {
				url = mq.URL()
			}
			pub := testenv.MQTT(t, url, "e2e-publisher")
			p := func(topic, body string) { testenv.Publish(t, pub, "village/tan-ngu-2/"+topic, 1, false, body) }
			t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
			// Motion JSON times come after the plain ON/OFF (stamped when
			// received): an older ON would be a replay.
			tm := time.Now().Add(time.Minute).Truncate(time.Second)

			p("camera/gate/status", "online")
			p("camera/gate/motion", "ON")
			p("camera/gate/motion", "ON") // duplicate while active
			p("camera/gate/motion", "OFF")
			p("camera/gate/motion", fmt.Sprintf(`{"active":true,"ts":"%s","zone":"gate","score":0.91}`, tm.Format(time.RFC3339)))
			p("camera/gate/motion", fmt.Sprintf(`{"active":false,"ts":%s}`, ms(tm.Add(42*time.Second))))
			p("camera/gate/motion", fmt.Sprintf(`{"active":true,"ts":"%s"}`, tm.Format(time.RFC3339))) // replayed ON
			p("camera/newcam/motion", "ON")                                                            // auto-registered
			p("qr/market-07/status", "online")
			p("qr/market-07/status", "offline")
			// QR: 10 + 5 + (reorder 0) + (dup 0) + reboot 3 + late earlier boot 5 = 23
			p("qr/market-07/scans", `{"total":10,"boot":"a","ts":`+ms(t0)+`}`)
			p("qr/market-07/scans", `{"total":15,"boot":"a","ts":`+ms(t0.Add(2*time.Minute))+`}`)
			p("qr/market-07/scans", `{"total":12,"boot":"a","ts":`+ms(t0.Add(time.Minute))+`}`)
			p("qr/market-07/scans", `{"total":15,"boot":"a","ts":`+ms(t0.Add(2*time.Minute))+`}`)
			p("qr/market-07/scans", `{"total":3,"boot":"b","ts":`+ms(t0.Add(5*time.Minute))+`}`)
			p("qr/market-07/scans", `{"total":20,"boot":"a","ts":`+ms(t0.Add(3*time.Minute))+`}`)
			// No boot: 5 + 2 + reset 2 + stale 0 = 9
			p("qr/nobootboard/scans", `{"total":5,"ts":`+ms(t0)+`}`)
			p("qr/nobootboard/scans", `{"total":7,"ts":`+ms(t0.Add(time.Minute))+`}`)
			p("qr/nobootboard/scans", `{"total":2,"ts":`+ms(t0.Add(2*time.Minute))+`}`)
			p("qr/nobootboard/scans", `{"total":1}`)
			// Rejected.
			p("qr/market-07/scans", `{"total":-1,"boot":"a"}`)
			p("camera/gate/motion", `{"active":"yes"}`)

			m := waitHandled(t, h.URL, 22)
			expect := []struct {
				name   string
				labels []string
				want   float64
			}{
				{"villagehub_qr_scans_total", []string{"board=market-07", "site=tan-ngu-2"}, 23},
				{"villagehub_qr_scans_total", []string{"board=nobootboard"}, 9},
				{"villagehub_camera_motion_events_total", []string{"camera=gate", "site=tan-ngu-2"}, 2},
				{"villagehub_camera_motion_events_total", []string{"camera=newcam"}, 1},
				{"villagehub_camera_motion_active", []string{"camera=gate"}, 0},
				{"villagehub_camera_motion_active", []string{"camera=newcam"}, 1},
				{"villagehub_device_online", []string{"kind=camera", "device=gate"}, 1},
				{"villagehub_device_online", []string{"kind=board", "device=market-07"}, 0},
				{"villagehub_mqtt_messages_total", []string{"kind=motion", "result=accepted"}, 5},
				{"villagehub_mqtt_messages_total", []string{"kind=motion", "result=duplicate"}, 2},
				{"villagehub_mqtt_messages_total", []string{"kind=motion", "result=rejected"}, 1},
				{"villagehub_mqtt_messages_total", []string{"kind=qr_scans", "result=accepted"}, 7},
				{"villagehub_mqtt_messages_total", []string{"kind=qr_scans", "result=duplicate"}, 3},
				{"villagehub_mqtt_messages_total", []string{"kind=qr_scans", "result=rejected"}, 1},
				{"villagehub_mqtt_messages_total", []string{"kind=board_status", "result=accepted"}, 2},
				{"villagehub_mqtt_rejected_total", []string{"reason=negative_total"}, 1},
				{"villagehub_mqtt_rejected_total", []string{"reason=bad_type"}, 1},
				{"villagehub_devices", []string{"kind=camera", "origin=auto"}, 1},
				{"villagehub_broker_connected", nil, 1},
			}
			for _, e := range expect {
				if got, _ := m.Value(e.name, e.labels...); got != e.want {
					t.Errorf("%s%v = %v, want %v", e.name, e.labels, got, e.want)
				}
			}

			var cams struct{ Cameras []state.CameraView }
			getJSON(t, h.URL+"/api/v1/cameras", &cams)
			if len(cams.Cameras) != 2 || cams.Cameras[0].ID != "gate" || cams.Cameras[0].Name != "Cổng làng" ||
				cams.Cameras[0].Status != "online" || cams.Cameras[0].MotionEvents != 2 || cams.Cameras[0].LastMotionDur != 42 {
				t.Errorf("cameras API: %+v", cams.Cameras)
			}
			if u := cams.Cameras[0].RTSPURL; strings.Contains(u, "s3cret") || u != "rtsp://admin:***@10.0.0.5:554/stream1" {
				t.Errorf("camera URL not redacted: %q", u)
			}
			var boards struct {
				Boards []state.BoardView `json:"qr_boards"`
			}
			getJSON(t, h.URL+"/api/v1/qr-boards", &boards)
			if len(boards.Boards) != 2 || boards.Boards[0].ID != "market-07" || boards.Boards[0].ScansTotal != 23 ||
				boards.Boards[0].Boot != "a" || boards.Boards[0].LastTotal != 20 || boards.Boards[0].Status != "offline" {
				t.Errorf("boards API: %+v", boards.Boards)
			}
			var page struct {
				Events []state.EventRecord
				Next   string
			}
			getJSON(t, h.URL+"/api/v1/events?device=gate&limit=3", &page)
			if len(page.Events) != 3 || page.Next == "" || page.Events[0].Type != state.EventMotionEnd || page.Events[0].Duration != 42 {
				t.Errorf("events page 1: %+v", page)
			}
			getJSON(t, h.URL+"/api/v1/events?device=gate&limit=3&cursor="+page.Next, &page)
			if len(page.Events) != 2 || page.Events[1].Type != state.EventOnline {
				t.Errorf("events page 2: %+v", page)
			}
			body := get(t, h.URL+"/metrics")
			if strings.Contains(body, "s3cret") {
				t.Error("/metrics contains the RTSP password")
			}
		})
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestRejections publishes one message per rejection rule and checks each
// is counted under its reason while the hub keeps running.
func TestRejections(t *testing.T) {
	h := startHub(t, nil)
	pub := testenv.MQTT(t, "tcp://"+h.BrokerAddr(), "rejections")
	cases := []struct{ topic, body, reason string }{
		{"village/s/qr/b/scans", `{"total":1,"x":"` + strings.Repeat("a", 4200) + `"}`, "too_large"},
		{"village/s/camera/c/status", "onl\xffine", "bad_utf8"},
		{"village/s/qr/b/scans", `{"total":`, "bad_json"},
		{"village/s/qr/b/scans", `{"total":"7"}`, "bad_type"},
		{"village/s/qr/b/scans", `{"total":-5,"boot":"z"}`, "negative_total"},
		{"village/s/qr/b/scans", `{"total":1,"ts":"2099-01-01T00:00:00Z"}`, "future_ts"},
		{"village/s/qr/b/scans", `{"total":1,"ts":"soon"}`, "bad_ts"},
		{"village/s/camera/c/motion", "MAYBE", "bad_value"},
		{"village/S/camera/c/motion", "ON", "bad_id"},
		{"village/s/camera/cổng/motion", "ON", "bad_id"},
		{"village/s/camera/" + strings.Repeat("x", 65) + "/motion", "ON", "bad_id"},
		{"village/s/camera/a/b/motion", "ON", "bad_topic"},
		{"village/s/door/c/open", "ON", "bad_topic"},
	}
	for _, c := range cases {
		testenv.Publish(t, pub, c.topic, 1, false, c.body)
	}
	m := waitHandled(t, h.URL, float64(len(cases)))
	want := map[string]float64{}
	for _, c := range cases {
		want[c.reason]++
	}
	for reason, n := range want {
		if got, _ := m.Value("villagehub_mqtt_rejected_total", "reason="+reason); got != n {
			t.Errorf("rejected{reason=%s} = %v, want %v", reason, got, n)
		}
	}
	if got, _ := m.Value("villagehub_mqtt_messages_total", "result=rejected"); got != float64(len(cases)) {
		t.Errorf("rejected total = %v, want %d", got, len(cases))
	}
	// Nothing rejected became a device or a label.
	if n := m.Count("villagehub_camera_motion_events_total"); n != 1 { // only the configured gate
		t.Errorf("%d camera series after rejections, want 1", n)
	}
	if get(t, h.URL+"/healthz") != "ok\n" {
		t.Error("hub not healthy after rejections")
	}
}

// TestAutoRegistrationCap publishes from 20,000 unknown cameras: at most the
// cap (10,000) is registered, in memory and in /metrics.
func TestAutoRegistrationCap(t *testing.T) {
	h := startHub(t, nil)
	pub := testenv.MQTT(t, "tcp://"+h.BrokerAddr(), "flood")
	const n = 20000
	for i := range n {
		tok := pub.Publish(fmt.Sprintf("village/flood/camera/cam-%d/motion", i), 0, false, "ON")
		tok.Wait()
	}
	m := waitHandled(t, h.URL, n)
	if got, _ := m.Value("villagehub_devices", "kind=camera", "origin=auto"); got != 10000 {
		t.Errorf("auto-registered cameras = %v, want 10000", got)
	}
	if got := m.Count("villagehub_camera_motion_events_total", "site=flood"); got != 10000 {
		t.Errorf("%d camera series in /metrics, want 10000", got)
	}
	if got, _ := m.Value("villagehub_mqtt_rejected_total", "reason=cap_reached"); got != 10000 {
		t.Errorf("cap_reached = %v, want 10000", got)
	}
	var cams struct{ Cameras []state.CameraView }
	getJSON(t, h.URL+"/api/v1/cameras", &cams)
	if len(cams.Cameras) != 10001 {
		t.Errorf("API lists %d cameras, want 10001", len(cams.Cameras))
	}
}

// TestPortInUse: a busy port gives a one-line error naming the address and
// the setting.
func TestPortInUse(t *testing.T) {
	h := startHub(t, nil)
	cfg, _ := config.Parse("x.yaml", []byte("hub_id: x"))
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Addr = testenv.FreeAddr(t)
	cfg.Broker.Addr = h.BrokerAddr()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	_, err := app.New(cfg, app.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), h.BrokerAddr()) || !strings.Contains(err.Error(), "broker.addr") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error = %v", err)
	}
	cfg.Broker.Addr = testenv.FreeAddr(t)
	cfg.HTTP.Addr = h.HTTPAddr()
	_, err = app.New(cfg, app.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "http.addr") {
		t.Fatalf("error = %v", err)
	}
}
