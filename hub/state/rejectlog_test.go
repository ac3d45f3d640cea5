package state

import (
	"strings"
	"testing"

	"villagehub/hub/testenv"
)

// TestRejectLogEachMistakeOnceAMinute: four different payload mistakes of
// one board within a minute are four log lines, each saying what was
// expected; the same mistake again within the minute is not logged again;
// after the minute it is (issue 17, item 9).
func TestRejectLogEachMistakeOnceAMinute(t *testing.T) {
	log := testenv.NewLog(t)
	s := newRulesState(t, Config{})
	s.log = log.Logger
	const scans = "village/s1/qr/b1/scans"
	play(t, s, []step{
		{topic: scans, payload: `{"total":"12"}`, at: 0, want: "bad_type"},
		{topic: scans, payload: `{"total":`, at: 5, want: "bad_json"},
		{topic: scans, payload: `{"boot":"a"}`, at: 10, want: "bad_value"},
		{topic: scans, payload: `{"total":-1}`, at: 15, want: "negative_total"},
		{topic: scans, payload: `{"total":1.5}`, at: 20, want: "bad_type"}, // again: not logged
		{topic: scans, payload: `{"total":"x"}`, at: 61, want: "bad_type"}, // a minute on: logged
	})
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(log.String()), "\n") {
		if strings.Contains(l, "rejected MQTT message") {
			lines = append(lines, l)
		}
	}
	want := []string{
		`reason=bad_type expected="total must be a non-negative integer, boot a string or number, the payload a JSON object" bytes=14`,
		`reason=bad_json expected="payload must be JSON like {\"total\":5,\"boot\":\"b1\"}" bytes=9`,
		`reason=bad_value expected="total is required; boot at most 64 bytes; battery 0-100, rssi -150..0" bytes=12`,
		`reason=negative_total expected="total must be a non-negative integer" bytes=12`,
		`reason=bad_type expected="total must be a non-negative integer, boot a string or number, the payload a JSON object" bytes=13`,
	}
	if len(lines) != len(want) {
		t.Fatalf("%d log lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(lines[i], "topic="+scans+" "+w) {
			t.Errorf("line %d: %s\nwant it to end: topic=%s %s", i, lines[i], scans, w)
		}
	}
}
