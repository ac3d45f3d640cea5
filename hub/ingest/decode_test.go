package ingest

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"villagehub/hub/event"
)

var now = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

func TestParseTopic(t *testing.T) {
	cases := []struct {
		topic        string
		kind         event.MsgKind
		site, device string
		r            event.Reason
	}{
		{"village/tan-ngu-2/camera/gate/motion", event.KindMotion, "tan-ngu-2", "gate", event.OK},
		{"village/tan-ngu-2/camera/gate/status", event.KindCameraStatus, "tan-ngu-2", "gate", event.OK},
		{"village/s1/qr/market-07/scans", event.KindQRScans, "s1", "market-07", event.OK},
		{"village/s1/qr/market_07/status", event.KindBoardStatus, "s1", "market_07", event.OK},
		{"village/s1/qr/m/other", event.KindUnknown, "", "", event.BadTopic},
		{"village/s1/camera/m/scans", event.KindUnknown, "", "", event.BadTopic},
		{"village/s1/camera/gate/motion/extra", event.KindUnknown, "", "", event.BadTopic},
		{"village/s1/camera/a/b/motion", event.KindUnknown, "", "", event.BadTopic}, // slash in an ID
		{"other/s1/camera/gate/motion", event.KindUnknown, "", "", event.BadTopic},
		{"village/s1/camera/gate", event.KindUnknown, "", "", event.BadTopic},
		{"village", event.KindUnknown, "", "", event.BadTopic},
		{"village/S1/camera/gate/motion", event.KindMotion, "", "", event.BadID},
		{"village/s1/camera/Gate/motion", event.KindMotion, "", "", event.BadID},
		{"village/s1/camera/+/motion", event.KindMotion, "", "", event.BadID},
		{"village/s1/camera/#/motion", event.KindMotion, "", "", event.BadID},
		{"village/s1/camera/cổng/motion", event.KindMotion, "", "", event.BadID},
		{"village/s1/camera/-gate/motion", event.KindMotion, "", "", event.BadID},
		{"village/s1/camera//motion", event.KindMotion, "", "", event.BadID},
		{"village/s1/camera/" + strings.Repeat("a", 64) + "/motion", event.KindMotion, "s1", strings.Repeat("a", 64), event.OK},
		{"village/s1/camera/" + strings.Repeat("a", 65) + "/motion", event.KindMotion, "", "", event.BadID},
	}
	for _, c := range cases {
		kind, site, dev, r := ParseTopic("village/", c.topic)
		if kind != c.kind || site != c.site || dev != c.device || r != c.r {
			t.Errorf("ParseTopic(%q) = %v %q %q %v, want %v %q %q %v", c.topic, kind, site, dev, r, c.kind, c.site, c.device, c.r)
		}
	}
}

func TestDecodeAccepts(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	ts := time.Date(2026, 11, 27, 1, 2, 3, 0, time.UTC)
	cases := []struct {
		name, topic, payload string
		check                func(event.Event) bool
	}{
		{"motion ON", "village/s/camera/c/motion", "ON", func(e event.Event) bool { return e.Type == event.Motion && e.Active && !e.HasTS && e.Time.Equal(now) }},
		{"motion OFF", "village/s/camera/c/motion", "OFF\n", func(e event.Event) bool { return e.Type == event.Motion && !e.Active }},
		{"motion JSON", "village/s/camera/c/motion", `{"active":true,"ts":"2026-11-27T01:02:03Z","zone":"gate","score":0.91}`,
			func(e event.Event) bool {
				return e.Active && e.HasTS && e.Time.Equal(ts) && e.Zone == "gate" && e.Score == 0.91
			}},
		{"motion JSON ms", "village/s/camera/c/motion", `{"active":false,"ts":` + itoa(ts.UnixMilli()) + `}`,
			func(e event.Event) bool { return !e.Active && e.HasTS && e.Time.Equal(ts) }},
		{"motion JSON unknown field", "village/s/camera/c/motion", `{"active":true,"label":"person"}`, func(e event.Event) bool { return e.Active }},
		{"camera online", "village/s/camera/c/status", "online", func(e event.Event) bool { return e.Type == event.Status && e.Kind == event.Camera && e.Online }},
		{"board offline", "village/s/qr/b/status", "offline", func(e event.Event) bool { return e.Type == event.Status && e.Kind == event.Board && !e.Online }},
		{"qr total", "village/s/qr/b/scans", `{"total":1234,"boot":"7f3a","ts":` + itoa(ts.UnixMilli()) + `}`,
			func(e event.Event) bool { return e.Total == 1234 && string(e.BootBytes) == "7f3a" && e.Time.Equal(ts) }},
		{"qr no boot", "village/s/qr/b/scans", `{"total":0}`, func(e event.Event) bool { return e.Total == 0 && e.BootBytes == nil && !e.HasTS }},
		{"qr numeric boot", "village/s/qr/b/scans", `{"total":5,"boot":42}`, func(e event.Event) bool { return string(e.BootBytes) == "42" }},
		{"qr 1970 clock", "village/s/qr/b/scans", `{"total":5,"ts":1000}`, func(e event.Event) bool { return !e.HasTS && e.Time.Equal(now) }},
		{"board health in status", "village/s/qr/b/status", `{"status":"online","battery":87.5,"rssi":-67}`, func(e event.Event) bool {
			return e.Type == event.Status && e.Online && e.HasBattery && e.Battery == 87.5 && e.HasRSSI && e.RSSI == -67
		}},
		{"board health bounds", "village/s/qr/b/status", ` {"status":"offline","battery":0,"rssi":-150} `, func(e event.Event) bool {
			return !e.Online && e.HasBattery && e.Battery == 0 && e.HasRSSI && e.RSSI == -150
		}},
		{"board health null", "village/s/qr/b/status", `{"status":"online","battery":null}`, func(e event.Event) bool { return e.Online && !e.HasBattery && !e.HasRSSI }},
		{"board health in scans", "village/s/qr/b/scans", `{"total":3,"battery":100,"rssi":0}`, func(e event.Event) bool {
			return e.Total == 3 && e.HasBattery && e.Battery == 100 && e.HasRSSI && e.RSSI == 0
		}},
		{"qr without health", "village/s/qr/b/scans", `{"total":3}`, func(e event.Event) bool { return !e.HasBattery && !e.HasRSSI }},
		{"qr ts within 24h", "village/s/qr/b/scans", `{"total":5,"ts":"2026-11-28T07:00:00Z"}`, func(e event.Event) bool { return e.HasTS }},
	}
	for _, c := range cases {
		ev, _, r := d.DecodeOne(c.topic, []byte(c.payload), now)
		if r != event.OK {
			t.Errorf("%s: rejected (%v)", c.name, r)
			continue
		}
		if !c.check(ev) {
			t.Errorf("%s: wrong event %+v", c.name, ev)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	cases := []struct {
		name, topic, payload string
		want                 event.Reason
	}{
		{"oversized", "village/s/qr/b/scans", `{"total":1,"pad":"` + strings.Repeat("x", 4100) + `"}`, event.TooLarge},
		{"invalid utf8", "village/s/camera/c/status", "onl\xffine", event.BadUTF8},
		{"invalid json", "village/s/qr/b/scans", `{"total":1`, event.BadJSON},
		{"invalid motion json", "village/s/camera/c/motion", `{"active":tru}`, event.BadJSON},
		{"json array", "village/s/qr/b/scans", `[1,2]`, event.BadType},
		{"total string", "village/s/qr/b/scans", `{"total":"12"}`, event.BadType},
		{"total fraction", "village/s/qr/b/scans", `{"total":1.5}`, event.BadType},
		{"total huge", "village/s/qr/b/scans", `{"total":99999999999999999999}`, event.BadType},
		{"total missing", "village/s/qr/b/scans", `{"boot":"a"}`, event.BadValue},
		{"boot object", "village/s/qr/b/scans", `{"total":1,"boot":{}}`, event.BadType},
		{"boot too long", "village/s/qr/b/scans", `{"total":1,"boot":"` + strings.Repeat("b", 65) + `"}`, event.BadValue},
		{"negative total", "village/s/qr/b/scans", `{"total":-3}`, event.NegativeTotal},
		{"future ts ms", "village/s/qr/b/scans", `{"total":1,"ts":` + itoa(now.Add(25*time.Hour).UnixMilli()) + `}`, event.FutureTS},
		{"future ts text", "village/s/camera/c/motion", `{"active":true,"ts":"2026-11-29T00:00:00Z"}`, event.FutureTS},
		{"bad ts text", "village/s/camera/c/motion", `{"active":true,"ts":"yesterday"}`, event.BadTS},
		{"ts bool", "village/s/qr/b/scans", `{"total":1,"ts":true}`, event.BadType},
		{"active string", "village/s/camera/c/motion", `{"active":"yes"}`, event.BadType},
		{"active missing", "village/s/camera/c/motion", `{"zone":"a"}`, event.BadValue},
		{"score string", "village/s/camera/c/motion", `{"active":true,"score":"high"}`, event.BadType},
		{"zone number", "village/s/camera/c/motion", `{"active":true,"zone":7}`, event.BadType},
		{"motion word", "village/s/camera/c/motion", "MAYBE", event.BadValue},
		{"status word", "village/s/camera/c/status", "up", event.BadValue},
		{"camera status json", "village/s/camera/c/status", `{"status":"online"}`, event.BadValue},
		{"board status json word", "village/s/qr/b/status", `{"status":"up"}`, event.BadValue},
		{"board status json missing", "village/s/qr/b/status", `{"battery":50}`, event.BadValue},
		{"board status json number", "village/s/qr/b/status", `{"status":1}`, event.BadType},
		{"board status bad json", "village/s/qr/b/status", `{"status":"online"`, event.BadJSON},
		{"battery over 100", "village/s/qr/b/status", `{"status":"online","battery":101}`, event.BadValue},
		{"battery negative", "village/s/qr/b/scans", `{"total":1,"battery":-1}`, event.BadValue},
		{"battery string", "village/s/qr/b/scans", `{"total":1,"battery":"87%"}`, event.BadType},
		{"rssi positive", "village/s/qr/b/status", `{"status":"online","rssi":3}`, event.BadValue},
		{"rssi too low", "village/s/qr/b/scans", `{"total":1,"rssi":-151}`, event.BadValue},
		{"rssi bool", "village/s/qr/b/status", `{"status":"online","rssi":true}`, event.BadType},
		{"bad id", "village/s/camera/UPPER/motion", "ON", event.BadID},
		{"bad topic", "village/s/door/c/motion", "ON", event.BadTopic},
	}
	for _, c := range cases {
		_, _, r := d.DecodeOne(c.topic, []byte(c.payload), now)
		if r != c.want {
			t.Errorf("%s: got %v, want %v", c.name, r, c.want)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func BenchmarkDecodeQR(b *testing.B) {
	d := NewDecoder(DecoderConfig{})
	p := []byte(`{"total":1234,"boot":"7f3a","ts":1764205323000}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, r := d.DecodeOne("village/tan-ngu-2/qr/market-07/scans", p, now); r != event.OK {
			b.Fatal(r)
		}
	}
}

func BenchmarkDecodeMotion(b *testing.B) {
	d := NewDecoder(DecoderConfig{})
	p := []byte("ON")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, r := d.DecodeOne("village/tan-ngu-2/camera/gate/motion", p, now); r != event.OK {
			b.Fatal(r)
		}
	}
}
