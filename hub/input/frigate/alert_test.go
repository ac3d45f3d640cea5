package frigate_test

import (
	"bytes"
	"encoding/json"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"villagehub/hub/alert"
	"villagehub/hub/app/apptest"
	"villagehub/hub/auth"
	"villagehub/hub/config"
	"villagehub/hub/testenv"
)

// TestFrigateDownAlert: a whole hub with its embedded broker (anonymous
// access off: Frigate logs in with the account `villagehub device add
// frigate nvr` made, a watcher with a viewer's), a webhook and the MQTT
// notifier. Frigate connects with its last will (offline,
// retained, on frigate/available) and says online; its connection then
// breaks, the broker publishes the will, and FrigateDown fires after
// `for` (not before) at both notifiers; Frigate reconnecting and saying
// online resolves it at both.
func TestFrigateDownAlert(t *testing.T) {
	hook := apptest.NewWebhook(t)
	notices := hook.Notices

	const forDur = 2 * time.Second
	cfg := hubConfig(t, "")
	cfg.Alerts.Rules.FrigateDown.For = config.Duration(forDur)
	cfg.Alerts.Notifiers = []alert.Notifier{{Type: "webhook", URL: hook.URL}, {Type: "mqtt"}}
	cfg.Broker.AllowAnonymous = false
	creds := cfg.Broker.CredentialsPath(cfg.DataDir)
	frUser, frPW := deviceAdd(t, creds, "frigate", "nvr")
	viewUser, viewPW := deviceAdd(t, creds, "viewer", "watch")
	h := apptest.Start(t, cfg, nil)
	broker := "tcp://" + cfg.Broker.Addr

	mqttAlerts := make(chan paho.Message, 10)
	sub := testenv.MQTT(t, broker, "alert-watcher", func(o *paho.ClientOptions) { o.SetUsername(viewUser).SetPassword(viewPW) })
	if tok := sub.Subscribe("village/+/alerts/#", 1, func(_ paho.Client, m paho.Message) { mqttAlerts <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	mqttAlert := func(state string) {
		t.Helper()
		select {
		case m := <-mqttAlerts:
			var a struct{ Alert, State, Site, Device string }
			if err := json.Unmarshal(m.Payload(), &a); err != nil || m.Topic() != "village/tan-ngu-2/alerts/nvr" ||
				a.Alert != "FrigateDown" || a.State != state || a.Site != "tan-ngu-2" || a.Device != "nvr" {
				t.Errorf("MQTT alert: %s %s (%v)", m.Topic(), m.Payload(), err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("no %s alert on MQTT", state)
		}
	}

	// Frigate as it connects (frigate/comms/mqtt.py): will "offline"
	// retained on <prefix>/available, then "online" retained. The
	// connection goes through conn, which the test breaks.
	var conn atomic.Pointer[net.Conn]
	frigate := func(id string) paho.Client {
		return testenv.MQTT(t, broker, id, func(o *paho.ClientOptions) {
			o.SetUsername(frUser).SetPassword(frPW)
			o.SetWill("frigate/available", "offline", 1, true)
			o.SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
				c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
				if err == nil {
					conn.Store(&c)
				}
				return c, err
			})
		})
	}
	fr := frigate("frigate")
	testenv.Publish(t, fr, "frigate/available", 1, true, "online")
	testenv.WaitFor(t, 10*time.Second, "Frigate online", func() bool {
		v, ok := testenv.Scrape(t, h.URL).Value("villagehub_input_online", "input=frigate/nvr")
		return ok && v == 1
	})

	broke := time.Now()
	_ = (*conn.Load()).Close() // no DISCONNECT: the broker sends the will
	testenv.WaitFor(t, 10*time.Second, "the firing notice", func() bool { return len(notices()) == 1 })
	if d := time.Since(broke); d < forDur {
		t.Errorf("notified %v after Frigate went offline, before for=%v", d, forDur)
	}
	n := notices()[0]
	if n.Alert != "FrigateDown" || n.Kind != "firing" || n.Site != "tan-ngu-2" || n.Device != "nvr" || n.Reason != "offline" ||
		n.FiredAt.Sub(n.Since) < forDur || n.Since.Before(broke.Add(-time.Second)) {
		t.Errorf("firing notice: %+v", n)
	}
	mqttAlert("firing")
	var a alert.AlertsResponse
	getJSON(t, h.URL+"/api/v1/alerts", &a)
	if len(a.Firing) != 1 || a.Firing[0].Name != "FrigateDown" || a.Firing[0].DeviceName != "Frigate nvr" {
		t.Errorf("/api/v1/alerts: %+v", a.Firing)
	}
	if v, _ := testenv.Scrape(t, h.URL).Value("villagehub_alerts_firing", "alert=FrigateDown", "site=tan-ngu-2"); v != 1 {
		t.Errorf("villagehub_alerts_firing{alert=FrigateDown} = %v", v)
	}

	fr.Disconnect(0)
	fr = frigate("frigate")
	testenv.Publish(t, fr, "frigate/available", 1, true, "online")
	testenv.WaitFor(t, 10*time.Second, "the resolved notice", func() bool { return len(notices()) == 2 })
	if n := notices()[1]; n.Kind != "resolved" || n.Alert != "FrigateDown" || n.Device != "nvr" || n.DurationS < forDur.Seconds() {
		t.Errorf("resolved notice: %+v", n)
	}
	mqttAlert("resolved")
	getJSON(t, h.URL+"/api/v1/alerts", &a)
	if len(a.Firing) != 0 {
		t.Errorf("still firing: %+v", a.Firing)
	}
	for _, n := range notices() {
		if !strings.EqualFold(n.Alert, "FrigateDown") {
			t.Errorf("unexpected notice %+v", n)
		}
	}
	// The frigate account is held to its prefix by the hub's own wiring
	// (frigate: entries to the broker's ACL).
	fr.Publish("village/tan-ngu-2/camera/gate/status", 0, false, "offline").WaitTimeout(5 * time.Second)
	testenv.Publish(t, fr, "frigate/available", 1, true, "online")
	testenv.WaitFor(t, 10*time.Second, "the denial counted", func() bool {
		v, _ := testenv.Scrape(t, h.URL).Value("villagehub_broker_acl_denied_total", "action=publish")
		return v == 1
	})
}

// deviceAdd runs `villagehub device add ...` on the hub's credentials
// file and returns the username and password it printed.
func deviceAdd(t *testing.T, path string, args ...string) (user, password string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := auth.DeviceCommand(append([]string{"add"}, args...), &out, &errb, path); code != 0 {
		t.Fatalf("device add %v: exit %d: %s", args, code, errb.String())
	}
	for _, l := range strings.Split(out.String(), "\n") {
		if v, ok := strings.CutPrefix(l, "  username: "); ok {
			user = v
		}
		if v, ok := strings.CutPrefix(l, "  password: "); ok {
			password = v
		}
	}
	if user == "" || password == "" {
		t.Fatalf("no username/password in %q", out.String())
	}
	return user, password
}
