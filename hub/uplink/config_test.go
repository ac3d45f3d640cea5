package uplink_test

import (
	"strings"
	"testing"

	"villagehub/hub/config"
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
		"hub.yaml:9: uplink.remote_write[0].url:",
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
