package app

import (
	"reflect"
	"testing"

	"villagehub/hub/config"
)

// TestEverySectionDeclaresReload walks config.Config's keys: each must
// have exactly one entry in sections, so a new section cannot be added
// without saying whether it reloads live or needs a restart.
func TestEverySectionDeclaresReload(t *testing.T) {
	declared := map[string]int{}
	for _, s := range sections {
		declared[s.key]++
		if s.plan == nil && len(s.restart) == 0 {
			t.Errorf("section %q neither applies live nor needs a restart", s.key)
		}
	}
	keys := ConfigKeys()
	for _, k := range keys {
		if declared[k] != 1 {
			t.Errorf("config key %q has %d reload declarations in hub/app/reload.go, want 1", k, declared[k])
		}
		delete(declared, k)
	}
	for k := range declared {
		t.Errorf("sections declares %q, which config.Config does not have", k)
	}
	if len(keys) < 15 {
		t.Fatalf("found only %d config keys: %v", len(keys), keys)
	}
}

// TestDiffKeys: differences are named by their keys as in the file,
// inline structs included, secrets never by value.
func TestDiffKeys(t *testing.T) {
	a, b := config.Default(), config.Default()
	b.Broker.MaxPacketSize = 2048
	b.Broker.TLS.CertFile = "x.crt"
	b.MQTT.Password = "s3cret"
	b.Probe.Interval = config.Duration(7e9)
	var got []string
	for _, s := range sections {
		got = append(got, diffKeys(s.key, field(a, s.key), field(b, s.key))...)
	}
	want := []string{"broker.tls.cert_file", "broker.max_packet_size", "mqtt.password", "probe.interval"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("diff keys %v, want %v", got, want)
	}
	var broker section
	for _, s := range sections {
		if s.key == "broker" {
			broker = s
		}
	}
	for _, k := range []string{"broker.tls.cert_file", "broker.max_packet_size", "broker.max_inflight"} {
		if !needsRestart(broker.restart, k) {
			t.Errorf("%s should need a restart", k)
		}
	}
	if needsRestart(broker.restart, "broker.publish_rate") {
		t.Error("broker.publish_rate should reload live")
	}
}
