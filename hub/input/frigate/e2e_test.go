package frigate_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"villagehub/hub/app/apptest"
	"villagehub/hub/config"
	"villagehub/hub/state"
	"villagehub/hub/testenv"
)

func getJSON(t testing.TB, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func cameras(t testing.TB, url string) map[string]state.CameraView {
	var v struct{ Cameras []state.CameraView }
	getJSON(t, url+"/api/v1/cameras", &v)
	out := map[string]state.CameraView{}
	for _, c := range v.Cameras {
		out[c.ID] = c
	}
	return out
}

func events(t testing.TB, url, typ string) []state.EventRecord {
	var p struct{ Events []state.EventRecord }
	getJSON(t, url+"/api/v1/events?type="+typ, &p)
	return p.Events
}

func hubConfig(t testing.TB, mqttURL string) *config.Config {
	cfg := config.Default()
	apptest.Prepare(t, cfg)
	cfg.Sites = []config.Site{{ID: "tan-ngu-2", Name: "Thôn Tân Ngữ 2"}}
	cfg.Cameras = []config.Camera{{ID: "gate", Site: "tan-ngu-2", Name: "Cổng làng"}}
	cfg.Frigate = []config.Frigate{{Name: "nvr", TopicPrefix: "frigate", Site: "tan-ngu-2", Cameras: map[string]string{"front_door": "gate"}}}
	cfg.MQTT.URL = mqttURL
	cfg.MQTT.ClientID = "villagehub-frigate-test"
	return cfg
}

// replay publishes msgs as Frigate would with qos: 1 (docs/frigate.md),
// waiting for each acknowledgement: the hub's PUBACK (embedded broker) or
// Mosquitto's.
func replay(t testing.TB, c paho.Client, msgs []msg) {
	for _, m := range msgs {
		retain := strings.HasSuffix(m.topic, "/available") // Frigate retains it
		testenv.Publish(t, c, m.topic, 1, retain, m.payload)
	}
}

// TestFrigateEmbeddedBroker replays the fixture through the hub's own
// broker, then the events again (a redelivery), then again after a
// restart, and checks the API, the event history and /metrics.
func TestFrigateEmbeddedBroker(t *testing.T) {
	cfg := hubConfig(t, "")
	h := apptest.Start(t, cfg, nil)
	msgs := load(t, "sequence.txt", time.Now())
	fr := testenv.MQTT(t, "tcp://"+cfg.Broker.Addr, "frigate")
	replay(t, fr, msgs)
	check(t, h.URL, msgs)

	// Redelivered events (the same ids) count nothing.
	evs := only(msgs, "frigate/events")
	replay(t, fr, evs)
	check(t, h.URL, msgs)

	// And after a restart on the same data directory neither; Frigate's
	// last word (offline) is remembered.
	h.Stop()
	h = apptest.Start(t, cfg, nil)
	fr = testenv.MQTT(t, "tcp://"+cfg.Broker.Addr, "frigate-2")
	replay(t, fr, evs)
	replay(t, fr, only(msgs, "frigate/stats"))
	check(t, h.URL, msgs)
}

// TestFrigateMosquitto: the same through Mosquitto, with the hub as a
// subscriber of Frigate's topics.
func TestFrigateMosquitto(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	cfg := hubConfig(t, mq.URL())
	h := apptest.Start(t, cfg, nil)
	msgs := load(t, "sequence.txt", time.Now())
	fr := testenv.MQTT(t, mq.URL(), "frigate")
	replay(t, fr, msgs)
	check(t, h.URL, msgs)
	replay(t, fr, only(msgs, "frigate/events"))
	check(t, h.URL, msgs)
}

func only(msgs []msg, topic string) []msg {
	var out []msg
	for _, m := range msgs {
		if m.topic == topic {
			out = append(out, m)
		}
	}
	return out
}

// check waits until the hub has handled every message it should take
// from msgs (and those replayed since), then checks what it says.
func check(t *testing.T, url string, msgs []msg) {
	t.Helper()
	var cams map[string]state.CameraView
	testenv.WaitFor(t, 20*time.Second, "the fixture applied", func() bool {
		cams = cameras(t, url)
		g, b := cams["gate"], cams["back_yard"]
		return g.Stats != nil && b.Stats != nil && g.MotionUnknown && g.Detections["person"] > 0 && b.Detections["car"] > 0 &&
			len(events(t, url, state.EventDetectionEnd)) >= 2
	})
	g, b := cams["gate"], cams["back_yard"]
	if g.MotionEvents != 1 || g.MotionActive || !g.Configured || g.Source != "frigate/nvr" {
		t.Errorf("gate: %d motion events, active %v, configured %v, source %q", g.MotionEvents, g.MotionActive, g.Configured, g.Source)
	}
	if b.MotionEvents != 1 || b.Configured || b.Site != "tan-ngu-2" {
		t.Errorf("back_yard (auto-registered): %d motion events, configured %v, site %s", b.MotionEvents, b.Configured, b.Site)
	}
	if fmt.Sprint(g.Detections) != "map[person:1]" || fmt.Sprint(b.Detections) != "map[car:1]" {
		t.Errorf("detections: gate %v, back_yard %v", g.Detections, b.Detections)
	}
	if g.Stats.CameraFPS != 5.02 || g.Stats.ProcessFPS != 5.01 || g.Stats.DetectionFPS != 1.2 || g.Stats.FPSZeroSince != nil {
		t.Errorf("gate stats %+v", g.Stats)
	}
	if b.Stats.CameraFPS != 0 || b.Stats.FPSZeroSince == nil {
		t.Errorf("back_yard stats %+v", b.Stats)
	}
	// Frigate said offline last: its cameras' motion is unknown.
	if !g.MotionUnknown || !b.MotionUnknown {
		t.Errorf("motion unknown: gate %v, back_yard %v", g.MotionUnknown, b.MotionUnknown)
	}

	starts, ends := events(t, url, state.EventDetection), events(t, url, state.EventDetectionEnd)
	if len(starts) != 2 || len(ends) != 2 {
		t.Fatalf("%d detection and %d detection_end events, want 2 and 2", len(starts), len(ends))
	}
	slices.SortFunc(ends, func(a, b state.EventRecord) int { return strings.Compare(a.Device, b.Device) })
	p, c := ends[1], ends[0]
	if p.Device != "gate" || p.Label != "person" || p.Score != 0.958984375 || strings.Join(p.Zones, ",") != "yard,driveway" ||
		math.Abs(p.Duration-14.774623) > 1e-3 || !strings.HasSuffix(p.ID, "-mxklsc") || p.Source != "frigate/nvr" {
		t.Errorf("person's end: %+v", p)
	}
	if c.Device != "back_yard" || c.Label != "car" || math.Abs(c.Duration-17.678756) > 1e-3 || len(c.Zones) != 0 {
		t.Errorf("car's end: %+v", c)
	}

	m := testenv.Scrape(t, url)
	want := []struct {
		name   string
		labels []string
		v      float64
	}{
		{"villagehub_camera_detections_total", []string{"site=tan-ngu-2", "camera=gate", "label=person"}, 1},
		{"villagehub_camera_detections_total", []string{"site=tan-ngu-2", "camera=back_yard", "label=car"}, 1},
		{"villagehub_frigate_camera_fps", []string{"camera=gate"}, 5.02},
		{"villagehub_frigate_process_fps", []string{"camera=gate"}, 5.01},
		{"villagehub_frigate_skipped_fps", []string{"camera=gate"}, 0},
		{"villagehub_frigate_detection_fps", []string{"camera=gate"}, 1.2},
		{"villagehub_frigate_camera_fps", []string{"camera=back_yard"}, 0},
		{"villagehub_camera_motion_events_total", []string{"camera=gate"}, 1},
		{"villagehub_input_online", []string{"input=frigate/nvr", "site=tan-ngu-2"}, 0},
	}
	for _, w := range want {
		if v, ok := m.Value(w.name, w.labels...); !ok || v != w.v {
			t.Errorf("%s%v = %v (found %v), want %v", w.name, w.labels, v, ok, w.v)
		}
	}
	if n := m.Count("villagehub_camera_motion_active", "camera=gate"); n != 0 {
		t.Errorf("villagehub_camera_motion_active{camera=gate} present while Frigate is offline")
	}
	if v, _ := m.Value("villagehub_mqtt_messages_total", "result=rejected"); v != 0 {
		t.Errorf("%v messages rejected", v)
	}
}
