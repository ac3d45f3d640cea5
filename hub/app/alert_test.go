package app_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"villagehub/devices/rtspcam"
	"villagehub/hub/alert"
	"villagehub/hub/app/apptest"
	"villagehub/hub/config"
	"villagehub/hub/testenv"
)

// TestAlertsWired: the whole hub, with a camera from the RTSP simulator
// and a webhook, an MQTT and no other notifier: the stopped camera's alert
// reaches the webhook and the contract's MQTT topic, shows in
// /api/v1/alerts and /metrics; a silence can be made through the API.
func TestAlertsWired(t *testing.T) {
	cams, err := rtspcam.New(rtspcam.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer cams.Close()
	gate, _ := cams.AddCamera("gate", rtspcam.CameraOptions{})

	hook := apptest.NewWebhook(t)
	notices := hook.Notices

	h := startHub(t, func(c *config.Config) {
		apptest.EnableProbe(c)
		c.HTTP.PublicURL = "http://hub.example.vn"
		c.Cameras = []config.Camera{{ID: "gate", Site: "tan-ngu-2", Name: "Cổng làng", RTSPURL: gate.URL(), ExpectedFPS: 10}}
		c.Alerts.Rules.CameraDown.For = config.Duration(3 * time.Second)
		c.Alerts.Notifiers = []alert.Notifier{{Type: "webhook", URL: hook.URL}, {Type: "mqtt"}}
	})

	mqttMsgs := make(chan paho.Message, 10)
	sub := testenv.MQTT(t, "tcp://"+h.BrokerAddr(), "alert-watcher")
	if tok := sub.Subscribe("village/+/alerts/#", 1, func(_ paho.Client, m paho.Message) { mqttMsgs <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	testenv.WaitFor(t, 20*time.Second, "the camera probed up", func() bool {
		return strings.Contains(get(t, h.URL+"/metrics"), `villagehub_camera_up{camera="gate",site="tan-ngu-2"} 1`)
	})
	stopped := time.Now()
	gate.Stop()
	testenv.WaitFor(t, 15*time.Second, "the firing notice", func() bool { return len(notices()) == 1 })
	if d := time.Since(stopped); d < 3*time.Second {
		t.Errorf("notified %v after the stop, before for=3s", d)
	}
	n := notices()[0]
	if n.Alert != "CameraDown" || n.Kind != "firing" || n.DeviceName != "Cổng làng" || n.URL != "http://hub.example.vn/" {
		t.Errorf("notice: %+v", n)
	}
	select {
	case m := <-mqttMsgs:
		if m.Topic() != "village/tan-ngu-2/alerts/gate" || !strings.Contains(string(m.Payload()), `"state":"firing"`) {
			t.Errorf("MQTT alert: %s %s", m.Topic(), m.Payload())
		}
	case <-time.After(5 * time.Second):
		t.Error("no MQTT alert")
	}
	var a alert.AlertsResponse
	getJSON(t, h.URL+"/api/v1/alerts", &a)
	if len(a.Firing) != 1 || a.Firing[0].Device != "gate" {
		t.Errorf("/api/v1/alerts: %+v", a)
	}
	// A notice counts as sent once it left the outbox, a moment after the
	// receiver had it.
	testenv.WaitFor(t, 5*time.Second, "the notice counted as sent", func() bool {
		v, _ := testenv.Scrape(t, h.URL).Value("villagehub_notifications_total", "notifier=webhook", "result=sent")
		return v == 1
	})
	m := testenv.Scrape(t, h.URL)
	if v, _ := m.Value("villagehub_alerts_firing", "alert=CameraDown", "site=tan-ngu-2"); v != 1 {
		t.Errorf("villagehub_alerts_firing = %v", v)
	}
	var st struct {
		Notifiers []alert.NotifierStatus `json:"notifiers"`
	}
	getJSON(t, h.URL+"/api/v1/status", &st)
	if len(st.Notifiers) != 2 || st.Notifiers[0].Name != "webhook" || !st.Notifiers[0].Healthy || st.Notifiers[0].Sent != 1 {
		t.Errorf("/api/v1/status notifiers: %+v", st.Notifiers)
	}
	// As the dashboard does: the page gives a CSRF cookie, the change
	// carries it in a header (a loopback visitor administers while no
	// user is configured).
	resp, err := adminPost(t, h.URL, "/api/v1/silences", `{"device":"gate","duration":"1h"}`)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("POST /api/v1/silences: %v %v", err, resp)
	}
	resp.Body.Close()

	if err := gate.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 15*time.Second, "the resolved notice", func() bool { return len(notices()) == 2 })
	if n := notices()[1]; n.Kind != "resolved" || n.DurationS <= 0 {
		t.Errorf("resolved notice: %+v", n)
	}

	// The dashboard's "Gửi thử" button reaches the engine's notifier and
	// shows the channel's answer.
	resp, err = adminPost(t, h.URL, "/api/v1/admin/notifiers/webhook/test", ``)
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		OK     bool   `json:"ok"`
		Answer string `json:"answer"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !tr.OK || !strings.Contains(tr.Answer, "200") {
		t.Errorf("test send from the dashboard: %v %d %+v", err, resp.StatusCode, tr)
	}
	testenv.WaitFor(t, 5*time.Second, "the test notice at the webhook", func() bool { return len(notices()) == 3 })
}
