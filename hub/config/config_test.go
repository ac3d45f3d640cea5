package config

import (
	"errors"
	"strings"
	"testing"
)

func TestExampleConfigIsValid(t *testing.T) {
	c, err := Load("../../configs/villagehub.yaml", func(string) string { return "" })
	if err != nil {
		t.Fatalf("the shipped example config is invalid:\n%v", err)
	}
	if len(c.Sites) != 2 || len(c.Cameras) != 2 || len(c.Boards) != 2 || !c.EmbeddedBroker() {
		t.Fatalf("example config decoded wrong: %+v", c)
	}
	if c.Location == nil || c.Location.String() != "Asia/Ho_Chi_Minh" {
		t.Fatalf("time zone %v", c.Location)
	}
}

func problems(t *testing.T, yaml string) []Problem {
	t.Helper()
	c, err := Parse("v.yaml", []byte(yaml))
	if err == nil {
		err = c.Validate()
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("want a config error, got %v", err)
	}
	return ce.Problems
}

func TestUnknownKeyNamesLineAndKey(t *testing.T) {
	ps := problems(t, "hub_id: x\nhttp:\n  addr: 127.0.0.1:8080\n  adress: oops\n")
	if len(ps) != 1 || ps[0].Line != 4 || ps[0].Key != "adress" || ps[0].File != "v.yaml" {
		t.Fatalf("problems: %+v", ps)
	}
	if s := ps[0].String(); !strings.HasPrefix(s, "v.yaml:4: adress: unknown key") {
		t.Fatalf("message %q", s)
	}
}

func TestTypeErrorNamesLine(t *testing.T) {
	ps := problems(t, "hub_id: x\nlimits:\n  queue_size: lots\n")
	if len(ps) != 1 || ps[0].Line != 3 || !strings.Contains(ps[0].Msg, "lots") {
		t.Fatalf("problems: %+v", ps)
	}
}

func TestValidationNamesKeyAndLine(t *testing.T) {
	ps := problems(t, `hub_id: x
sites:
  - { id: s1, name: "One" }
cameras:
  - id: gate
    site: nowhere
    rtsp_url: "http://10.0.0.5/stream"
  - { id: BAD, site: s1 }
qr_boards:
  - { id: b1, site: s1, target_url: "ftp://x" }
http:
  addr: "not-an-address"
limits:
  queue_size: 3
`)
	want := map[string]int{
		"cameras[0].site":         6,
		"cameras[0].rtsp_url":     7,
		"cameras[1].id":           8,
		"qr_boards[0].target_url": 10,
		"http.addr":               12,
		"limits.queue_size":       14,
	}
	got := map[string]int{}
	for _, p := range ps {
		got[p.Key] = p.Line
	}
	for k, line := range want {
		if got[k] != line {
			t.Errorf("problem for %s at line %d, want line %d (all: %+v)", k, got[k], line, ps)
		}
	}
	if len(ps) != len(want) {
		t.Errorf("%d problems, want %d: %+v", len(ps), len(want), ps)
	}
}

func TestPasswordNeverInProblems(t *testing.T) {
	ps := problems(t, "hub_id: x\nsites: [{id: s}]\ncameras:\n  - { id: c, site: s, rtsp_url: \"rtsp://admin:hunter2@%zz/\" }\n")
	for _, p := range ps {
		if strings.Contains(p.String(), "hunter2") {
			t.Fatalf("problem shows the password: %s", p)
		}
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	c, err := Parse("v.yaml", []byte("http: { addr: 127.0.0.1:1 }\ndata_dir: /file\n"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"VILLAGEHUB_HTTP_ADDR": "127.0.0.1:9999", "VILLAGEHUB_MQTT_URL": "tcp://broker:1883",
		"VILLAGEHUB_DATA_DIR": "/env", "VILLAGEHUB_INFLUX_URL": "http://influx:8086",
		"VILLAGEHUB_INFLUX_TOKEN": "tok", "VILLAGEHUB_INFLUX_ORG": "o", "VILLAGEHUB_INFLUX_BUCKET": "b",
		"VILLAGEHUB_BROKER_ADDR": "0.0.0.0:1884",
	}
	if err := c.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != "127.0.0.1:9999" || c.MQTT.URL != "tcp://broker:1883" || c.DataDir != "/env" ||
		c.Influx.URL != "http://influx:8086" || c.Influx.Token != "tok" || c.Influx.Org != "o" ||
		c.Influx.Bucket != "b" || c.Broker.Addr != "0.0.0.0:1884" || c.EmbeddedBroker() {
		t.Fatalf("overrides not applied: %+v", c)
	}
}

func TestDefaults(t *testing.T) {
	c := Default()
	if c.HTTP.Addr != "127.0.0.1:8080" || c.Broker.Addr != "127.0.0.1:1883" || c.DataDir != "./data" ||
		c.Limits.MaxAutoCameras != 10000 || c.Limits.MaxPayloadBytes != 4096 || c.TopicPrefix != "village" {
		t.Fatalf("defaults: %+v", c)
	}
}

// FuzzParse: the loader never panics and reports problems, not crashes.
func FuzzParse(f *testing.F) {
	f.Add([]byte("hub_id: x\nsites: [{id: s}]\n"))
	f.Add([]byte("cameras:\n  - { id: c, site: s, rtsp_url: \"rtsp://a:b@h/\" }\n"))
	f.Add([]byte("http: [1, 2]\n"))
	f.Add([]byte("limits: { queue_size: -1 }\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err != nil {
			return
		}
		_ = c.Validate()
	})
}

// TestDefaultsInOnePlace: an empty file gets the contract's defaults from
// applyDefaults alone (the components no longer default these).
func TestDefaultsInOnePlace(t *testing.T) {
	c := Default()
	for _, d := range []struct{ key, got, want string }{
		{"hub_id", c.HubID, DefaultHubID}, {"topic_prefix", c.TopicPrefix, "village"},
		{"timezone", c.Timezone, DefaultTimezone}, {"http.addr", c.HTTP.Addr, DefaultHTTPAddr},
		{"broker.addr", c.Broker.Addr, DefaultBrokerAddr}, {"mqtt.client_id", c.MQTT.ClientID, "villagehub-villagehub"},
		{"data_dir", c.DataDir, DefaultDataDir}, {"log.level", c.Log.Level, "info"},
	} {
		if d.got != d.want {
			t.Errorf("%s = %q, want %q", d.key, d.got, d.want)
		}
	}
	if c.Limits.MaxPayloadBytes != 4096 || c.Limits.MaxAutoCameras != 10000 || c.MQTT.KeepAlive == 0 ||
		c.Influx.SpoolMaxBytes != 1<<30 || c.Broker.MaxPacketSize != 65536 || c.Broker.MaxInflight != 1000 {
		t.Errorf("defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
}

// TestEachSectionValidated: a bad value in each section is reported with
// the file, its line and its key.
func TestEachSectionValidated(t *testing.T) {
	ps := problems(t, `hub_id: "Bad Hub"
timezone: Mars/Olympus
shutdown_timeout: 10ms
http:
  public_url: "ftp://hub"
broker:
  max_packet_size: 10
influx:
  batch_size: -1
log:
  format: xml
qr:
  rate_per_second: -1
probe:
  workers: 100
sites:
  - { id: "Bad Site" }
`)
	want := map[string]int{
		"hub_id": 1, "timezone": 2, "shutdown_timeout": 3, "http.public_url": 5, "broker.max_packet_size": 7,
		"influx.batch_size": 9, "log.format": 11, "qr.rate_per_second": 13, "probe.workers": 15, "sites[0].id": 17,
	}
	got := map[string]int{}
	for _, p := range ps {
		if p.File != "v.yaml" {
			t.Errorf("problem without the file: %+v", p)
		}
		got[p.Key] = p.Line
	}
	for k, line := range want {
		if got[k] != line {
			t.Errorf("%s: line %d, want %d (all: %+v)", k, got[k], line, ps)
		}
	}
}

func TestCameraONVIFBlock(t *testing.T) {
	ps := problems(t, `hub_id: x
sites: [{id: s}]
cameras:
  - id: gate
    site: s
    onvif: { url: "http://10.0.0.5/onvif/device_service", username: admin, password_file: /nonexistent/onvif-pw }
  - id: market
    site: s
    onvif:
      url: "rtsp://10.0.0.6/"
      password: x
      password_file: /nonexistent/y
`)
	want := map[string]int{
		"cameras[0].onvif.password_file": 6,
		"cameras[1].onvif.url":           10,
	}
	got := map[string]int{}
	for _, p := range ps {
		got[p.Key] = p.Line
	}
	for k, line := range want {
		if got[k] != line {
			t.Errorf("problem for %s at line %d, want %d (all: %+v)", k, got[k], line, ps)
		}
	}
	ps = problems(t, "hub_id: x\nsites: [{id: s}]\ncameras:\n  - { id: gate, site: s, onvif: { url: \"http://admin:hunter2@10.0.0.5/onvif/device_service\" } }\n")
	if len(ps) != 1 || ps[0].Key != "cameras[0].onvif.url" || strings.Contains(ps[0].String(), "hunter2") {
		t.Fatalf("credentials in onvif.url: %+v", ps)
	}
	c, err := Parse("v.yaml", []byte("hub_id: x\nsites: [{id: s}]\ncameras:\n  - { id: gate, site: s, onvif: { url: \"http://10.0.0.5/onvif/device_service\" } }\n"))
	if err != nil || c.Cameras[0].ONVIF == nil || c.Cameras[0].ONVIF.URL != "http://10.0.0.5/onvif/device_service" {
		t.Fatalf("Parse = %+v, %v", c, err)
	}
}
