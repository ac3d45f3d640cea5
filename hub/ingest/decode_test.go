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
		kind         MsgKind
		site, device string
		r            Reason
	}{
		{"village/tan-ngu-2/camera/gate/motion", KindMotion, "tan-ngu-2", "gate", OK},
		{"village/tan-ngu-2/camera/gate/status", KindCameraStatus, "tan-ngu-2", "gate", OK},
		{"village/s1/qr/market-07/scans", KindQRScans, "s1", "market-07", OK},
		{"village/s1/qr/market_07/status", KindBoardStatus, "s1", "market_07", OK},
		{"village/s1/qr/m/other", KindUnknown, "", "", BadTopic},
		{"village/s1/camera/m/scans", KindUnknown, "", "", BadTopic},
		{"village/s1/camera/gate/motion/extra", KindUnknown, "", "", BadTopic},
		{"village/s1/camera/a/b/motion", KindUnknown, "", "", BadTopic}, // slash in an ID
		{"other/s1/camera/gate/motion", KindUnknown, "", "", BadTopic},
		{"village/s1/camera/gate", KindUnknown, "", "", BadTopic},
		{"village", KindUnknown, "", "", BadTopic},
		{"village/S1/camera/gate/motion", KindMotion, "", "", BadID},
		{"village/s1/camera/Gate/motion", KindMotion, "", "", BadID},
		{"village/s1/camera/+/motion", KindMotion, "", "", BadID},
		{"village/s1/camera/#/motion", KindMotion, "", "", BadID},
		{"village/s1/camera/cổng/motion", KindMotion, "", "", BadID},
		{"village/s1/camera/-gate/motion", KindMotion, "", "", BadID},
		{"village/s1/camera//motion", KindMotion, "", "", BadID},
		{"village/s1/camera/" + strings.Repeat("a", 64) + "/motion", KindMotion, "s1", strings.Repeat("a", 64), OK},
		{"village/s1/camera/" + strings.Repeat("a", 65) + "/motion", KindMotion, "", "", BadID},
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
		{"qr ts within 24h", "village/s/qr/b/scans", `{"total":5,"ts":"2026-11-28T07:00:00Z"}`, func(e event.Event) bool { return e.HasTS }},
	}
	for _, c := range cases {
		ev, _, r := d.Decode(c.topic, []byte(c.payload), now)
		if r != OK {
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
		want                 Reason
	}{
		{"oversized", "village/s/qr/b/scans", `{"total":1,"pad":"` + strings.Repeat("x", 4100) + `"}`, TooLarge},
		{"invalid utf8", "village/s/camera/c/status", "onl\xffine", BadUTF8},
		{"invalid json", "village/s/qr/b/scans", `{"total":1`, BadJSON},
		{"invalid motion json", "village/s/camera/c/motion", `{"active":tru}`, BadJSON},
		{"json array", "village/s/qr/b/scans", `[1,2]`, BadType},
		{"total string", "village/s/qr/b/scans", `{"total":"12"}`, BadType},
		{"total fraction", "village/s/qr/b/scans", `{"total":1.5}`, BadType},
		{"total huge", "village/s/qr/b/scans", `{"total":99999999999999999999}`, BadType},
		{"total missing", "village/s/qr/b/scans", `{"boot":"a"}`, BadValue},
		{"boot object", "village/s/qr/b/scans", `{"total":1,"boot":{}}`, BadType},
		{"boot too long", "village/s/qr/b/scans", `{"total":1,"boot":"` + strings.Repeat("b", 65) + `"}`, BadValue},
		{"negative total", "village/s/qr/b/scans", `{"total":-3}`, NegativeTotal},
		{"future ts ms", "village/s/qr/b/scans", `{"total":1,"ts":` + itoa(now.Add(25*time.Hour).UnixMilli()) + `}`, FutureTS},
		{"future ts text", "village/s/camera/c/motion", `{"active":true,"ts":"2026-11-29T00:00:00Z"}`, FutureTS},
		{"bad ts text", "village/s/camera/c/motion", `{"active":true,"ts":"yesterday"}`, BadTS},
		{"ts bool", "village/s/qr/b/scans", `{"total":1,"ts":true}`, BadType},
		{"active string", "village/s/camera/c/motion", `{"active":"yes"}`, BadType},
		{"active missing", "village/s/camera/c/motion", `{"zone":"a"}`, BadValue},
		{"score string", "village/s/camera/c/motion", `{"active":true,"score":"high"}`, BadType},
		{"zone number", "village/s/camera/c/motion", `{"active":true,"zone":7}`, BadType},
		{"motion word", "village/s/camera/c/motion", "MAYBE", BadValue},
		{"status word", "village/s/camera/c/status", "up", BadValue},
		{"bad id", "village/s/camera/UPPER/motion", "ON", BadID},
		{"bad topic", "village/s/door/c/motion", "ON", BadTopic},
	}
	for _, c := range cases {
		_, _, r := d.Decode(c.topic, []byte(c.payload), now)
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
		if _, _, r := d.Decode("village/tan-ngu-2/qr/market-07/scans", p, now); r != OK {
			b.Fatal(r)
		}
	}
}

func BenchmarkDecodeMotion(b *testing.B) {
	d := NewDecoder(DecoderConfig{})
	p := []byte("ON")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, r := d.Decode("village/tan-ngu-2/camera/gate/motion", p, now); r != OK {
			b.Fatal(r)
		}
	}
}
