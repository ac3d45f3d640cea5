package ingest

import (
	"testing"
	"time"
	"unicode/utf8"

	"villagehub/hub/event"
)

// FuzzDecode checks the decoder's promises on any input: it never panics,
// and whatever it accepts is safe to use as labels and store keys.
func FuzzDecode(f *testing.F) {
	seeds := []struct{ topic, payload string }{
		{"village/s/camera/c/motion", "ON"},
		{"village/s/camera/c/motion", `{"active":true,"ts":"2026-11-27T01:02:03Z","zone":"gate","score":0.91}`},
		{"village/s/camera/c/motion", `{"active":false,"ts":1764205323000}`},
		{"village/s/camera/c/status", "online"},
		{"village/s/qr/b/scans", `{"total":1234,"boot":"7f3a","ts":1764205323000}`},
		{"village/s/qr/b/scans", `{"total":-1}`},
		{"village/s/qr/b/scans", `{"total":1e400}`},
		{"village/s/qr/b/scans", `{"total":1,"ts":"9999-12-31T23:59:59Z"}`},
		{"village/s/qr/b/status", "offline"},
		{"village/S/qr/b/scans", "{}"},
		{"village/s/qr/b/scans", "\xff\xfe"},
	}
	for _, s := range seeds {
		f.Add(s.topic, []byte(s.payload))
	}
	d := NewDecoder(DecoderConfig{})
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		ev, kind, r := d.DecodeOne(topic, payload, now)
		if r != event.OK {
			return
		}
		if kind == event.KindUnknown {
			t.Fatalf("accepted a message of unknown kind: %q", topic)
		}
		if !event.ValidID(ev.Site) || !event.ValidID(ev.Device) {
			t.Fatalf("accepted invalid IDs %q %q from %q", ev.Site, ev.Device, topic)
		}
		if len(payload) > DefaultMaxPayload || !utf8.Valid(payload) {
			t.Fatalf("accepted an oversized or non-UTF-8 payload")
		}
		if ev.Total < 0 {
			t.Fatalf("accepted negative total %d", ev.Total)
		}
		if ev.Time.After(now.Add(DefaultMaxFuture)) {
			t.Fatalf("accepted a time %v more than 24 h ahead", ev.Time)
		}
		if len(ev.BootBytes) > maxBootLen || len(ev.Zone) > maxZoneLen {
			t.Fatalf("accepted an overlong boot or zone")
		}
		if ev.HasTS && ev.Time.Before(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("kept a pre-2000 ts")
		}
	})
}

// FuzzParseTopic checks that the topic parser only returns valid IDs that
// are really parts of the topic.
func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{
		"village/tan-ngu-2/camera/gate/motion", "village/s/qr/b/scans", "village/s/camera/a/b/motion",
		"village/+/camera/#/status", "village//qr//scans", "", "village/", "villagex/s/qr/b/scans",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		kind, site, dev, r := ParseTopic("village/", topic)
		if r != event.OK {
			return
		}
		if kind == event.KindUnknown || !event.ValidID(site) || !event.ValidID(dev) {
			t.Fatalf("ParseTopic(%q) accepted %v %q %q", topic, kind, site, dev)
		}
		want := "village/" + site + "/"
		switch kind {
		case event.KindMotion:
			want += "camera/" + dev + "/motion"
		case event.KindCameraStatus:
			want += "camera/" + dev + "/status"
		case event.KindQRScans:
			want += "qr/" + dev + "/scans"
		case event.KindBoardStatus:
			want += "qr/" + dev + "/status"
		}
		if want != topic {
			t.Fatalf("ParseTopic(%q) parts rebuild %q", topic, want)
		}
	})
}
