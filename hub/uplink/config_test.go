package uplink_test

import (
	"strings"
	"testing"
	"time"

	"villagehub/hub/config"
	"villagehub/hub/uplink"
)

// TestConfigErrorsNameFileLineKey: problems in place and uplink come back
// from the hub's config loader with file, line and key, and never echo a
// password or a URL's credentials.
func TestConfigErrorsNameFileLineKey(t *testing.T) {
	cfg, err := config.Parse("hub.yaml", []byte(`hub_id: h1
place:
  province: thanh-hoa
  district: "Ngọc Lặc"
  commune: minh-son
uplink:
  interval: 15s
  exclude: [ "go_.*", "bad_(" ]
  remote_write:
    - url: https://village:s3cret@central.example.vn/api/v1/write
      basic_auth: { username: village, password: hunter2, password_file: /etc/pw }
`))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		"hub.yaml:4: place.district:",
		"place.village: is required",
		"hub.yaml:10: uplink.remote_write[0].url:",
		"hub.yaml:8: uplink.exclude[1]: not a regular expression",
		"uplink.remote_write[0].basic_auth.password_file:",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("no %q in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "s3cret") || strings.Contains(msg, "hunter2") {
		t.Errorf("a secret in the config errors:\n%s", msg)
	}
}

// TestExcludeDefaults: no exclude key drops the default families; an
// empty list sends everything.
func TestExcludeDefaults(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want int
	}{{"", len(uplink.DefaultExclude)}, {"exclude: []", 0}} {
		cfg, err := config.Parse("hub.yaml", []byte(`hub_id: h1
place: { province: p, district: d, commune: c, village: v }
uplink:
  `+c.yaml+`
  remote_write: [ { url: "http://127.0.0.1:1/api/v1/write" } ]
`))
		if err != nil {
			t.Fatal(err)
		}
		cfg.DataDir = t.TempDir()
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := cfg.Uplink.Exclude; got == nil || len(got) != c.want {
			t.Errorf("%q: exclude %q, want %d entries", c.yaml, got, c.want)
		}
		if d := time.Duration(*cfg.Uplink.BacklogAlertAge); d != uplink.DefaultBacklogAlertAge {
			t.Errorf("backlog_alert_age %v", d)
		}
		if d := time.Duration(*cfg.Uplink.RemoteWrite[0].BatchSendDeadline); d != 5*time.Minute {
			t.Errorf("batch_send_deadline %v", d)
		}
	}
}
