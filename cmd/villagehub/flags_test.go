package main

import (
	"bytes"
	"strings"
	"testing"
)

// A bad value given as a flag is blamed on the flag, not on a line of the
// config file (issue 17, item 7).
func TestBadFlagValueBlamedOnFlag(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"--config", "../../configs/villagehub.yaml", "--mqtt-url", "127.0.0.1:1883"}, &out, &errb)
	if code == 0 {
		t.Fatal("a hub started with --mqtt-url 127.0.0.1:1883")
	}
	msg := errb.String()
	if !strings.Contains(msg, "flag --mqtt-url: mqtt.url:") || strings.Contains(msg, "villagehub.yaml") {
		t.Errorf("error %q", msg)
	}
	var f runFlags
	if s := f.source("mqtt.url", func(k string) string {
		if k == "VILLAGEHUB_MQTT_URL" {
			return "x"
		}
		return ""
	}); s != "environment variable VILLAGEHUB_MQTT_URL" {
		t.Errorf("source from the environment: %q", s)
	}
}
