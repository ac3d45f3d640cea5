package frigate_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"villagehub/hub/config"
	"villagehub/hub/event"
	"villagehub/hub/input/frigate"
)

var nvr = config.Frigate{Name: "nvr", TopicPrefix: "frigate", Site: "tan-ngu-2", Cameras: map[string]string{"front_door": "gate"}}

func TestMatchAndFilters(t *testing.T) {
	in := frigate.New(nvr)
	take := []string{"frigate/available", "frigate/events", "frigate/stats", "frigate/front_door/motion", "frigate/Back Yard/motion"}
	leave := []string{"frigate/front_door/motion/state", "frigate/front_door/person", "frigate/front_door/person/snapshot",
		"frigate/reviews", "frigate//motion", "frigate/a/b/motion", "village/s/camera/c/motion", "frigatex/events", "frigate"}
	for _, tp := range take {
		if !in.Match(tp) {
			t.Errorf("Match(%q) = false", tp)
		}
	}
	for _, tp := range leave {
		if in.Match(tp) {
			t.Errorf("Match(%q) = true", tp)
		}
	}
	want := "frigate/available frigate/events frigate/stats frigate/+/motion"
	if got := strings.Join(in.Filters(), " "); got != want {
		t.Errorf("Filters = %s, want %s", got, want)
	}
	if in.Name() != "frigate/nvr" {
		t.Errorf("Name = %s", in.Name())
	}
}

// TestDecodeFixture decodes every message of the fixture and checks what
// each one says.
func TestDecodeFixture(t *testing.T) {
	now := time.Now()
	in := frigate.New(nvr)
	var got []string
	var dets []event.DetectionInfo
	var stats = map[string]event.Stats{}
	for _, m := range load(t, "sequence.txt", now) {
		if !in.Match(m.topic) {
			got = append(got, "skip "+m.topic)
			continue
		}
		evs, kind, r := in.Decode(m.topic, m.payload, now, nil)
		if r != event.OK {
			t.Fatalf("%s: rejected %v", m.topic, r)
		}
		for _, e := range evs {
			if e.Source != "frigate/nvr" || e.Site != "tan-ngu-2" {
				t.Errorf("%s: source %q site %q", m.topic, e.Source, e.Site)
			}
			switch e.Type {
			case event.Motion:
				got = append(got, kind.String()+" "+e.Device+" "+map[bool]string{true: "ON", false: "OFF"}[e.Active])
			case event.InputStatus:
				got = append(got, kind.String()+" "+map[bool]string{true: "online", false: "offline"}[e.Online])
			case event.Detection:
				d := *e.Detection
				d.Zones = append([]string(nil), d.Zones...)
				dets = append(dets, d)
				// IDs begin with the start time, which load moved.
				_, suffix, _ := strings.Cut(d.ID, "-")
				got = append(got, kind.String()+" "+e.Device+" "+d.Label+" "+suffix)
			case event.CameraStats:
				stats[e.Device] = *e.Stats
			}
		}
	}
	want := []string{
		"motion gate OFF", "motion back_yard OFF", "input_status online",
		"skip frigate/front_door/motion/state", "motion gate ON",
		"detection gate person mxklsc", "skip frigate/front_door/person",
		"detection gate person mxklsc", "detection gate person mxklsc",
		"detection gate person mxklsc",
		"motion back_yard ON", "detection back_yard car k3b9za", "detection back_yard car k3b9za",
		"motion gate OFF", "motion back_yard OFF", "input_status offline",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("decoded:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The person: new, update (zone), update (the docs' example), end.
	phases := []event.Phase{event.PhaseNew, event.PhaseUpdate, event.PhaseUpdate, event.PhaseEnd}
	for i, p := range phases {
		if dets[i].Phase != p {
			t.Errorf("detection %d: phase %v, want %v", i, dets[i].Phase, p)
		}
	}
	end := dets[3]
	if end.Score != 0.958984375 || strings.Join(end.Zones, ",") != "yard,driveway" {
		t.Errorf("end: score %v zones %v", end.Score, end.Zones)
	}
	if d := end.End.Sub(end.Start).Seconds(); math.Abs(d-14.774623) > 1e-3 {
		t.Errorf("person tracked %.6f s, want 14.774623", d)
	}
	if !dets[0].End.IsZero() || dets[0].Start.Sub(fixtureTime(1607123955.475377, now)).Abs() > time.Millisecond {
		t.Errorf("new: start %v end %v", dets[0].Start, dets[0].End)
	}
	if g := stats["gate"]; g.CameraFPS != 5.02 || g.ProcessFPS != 5.01 || g.SkippedFPS != 0 || g.DetectionFPS != 1.2 {
		t.Errorf("gate stats %+v", g)
	}
	if b, ok := stats["back_yard"]; !ok || b.CameraFPS != 0 {
		t.Errorf("back_yard stats %+v (%v)", b, ok)
	}
}

func TestDecodeRejects(t *testing.T) {
	now := time.Now()
	in := frigate.New(nvr)
	cases := []struct {
		topic, payload string
		want           event.Reason
	}{
		{"frigate/front_door/motion", "on", event.BadValue},
		{"frigate/Front Door/motion", "ON", event.BadID}, // not mapped, not a valid ID
		{"frigate/available", "maybe", event.BadValue},
		{"frigate/events", "{", event.BadJSON},
		{"frigate/events", `{"type":"begin","after":{}}`, event.BadValue},
		{"frigate/events", `{"type":"new"}`, event.BadValue},
		{"frigate/events", `{"type":"new","after":{"id":"x","camera":"front_door","label":"person"}}`, event.BadTS},
		{"frigate/events", `{"type":"new","after":{"id":"x","camera":"front_door","label":"person","start_time":"soon"}}`, event.BadTS},
		{"frigate/events", `{"type":"new","after":{"id":"x","camera":"front_door","label":"person","start_time":99999999999}}`, event.FutureTS},
		{"frigate/events", `{"type":"new","after":{"id":"` + strings.Repeat("x", 65) + `","camera":"front_door","label":"person","start_time":1}}`, event.BadValue},
		{"frigate/stats", `[1,2]`, event.BadType},
		{"frigate/stats", `{"cameras":{"Bad Name":{"camera_fps":1}}}`, event.BadID},
		{"frigate/stats", `{"service":{}}` + strings.Repeat(" ", frigate.MaxPayload), event.TooLarge},
	}
	for _, c := range cases {
		evs, _, r := in.Decode(c.topic, []byte(c.payload), now, nil)
		if r != c.want || (r != event.OK && len(evs) > 0) {
			t.Errorf("%s %.60q: %v (%d events), want %v", c.topic, c.payload, r, len(evs), c.want)
		}
	}
	// A label that is not a plain name counts as "other"; a false
	// positive is no detection at all.
	evs, _, r := in.Decode("frigate/events", []byte(`{"type":"new","after":{"id":"a","camera":"front_door","label":"Big Dog","start_time":1764205323.5}}`), now, nil)
	if r != event.OK || len(evs) != 1 || evs[0].Detection.Label != "other" {
		t.Errorf("odd label: %v %+v", r, evs)
	}
	evs, _, r = in.Decode("frigate/events", []byte(`{"type":"update","after":{"id":"a","camera":"front_door","label":"person","false_positive":true,"start_time":1764205323.5}}`), now, nil)
	if r != event.OK || len(evs) != 0 {
		t.Errorf("false positive: %v %d events", r, len(evs))
	}
	// Stats in the layout before Frigate 0.14: cameras at the top level.
	evs, _, r = in.Decode("frigate/stats", []byte(`{"front_door":{"camera_fps":5.0,"process_fps":4.9,"skipped_fps":0.1,"detection_fps":0.5,"pid":1},"detectors":{"cpu":{"inference_speed":10}},"service":{"uptime":1}}`), now, nil)
	if r != event.OK || len(evs) != 1 || evs[0].Device != "gate" || evs[0].Stats.ProcessFPS != 4.9 {
		t.Errorf("old stats layout: %v %+v", r, evs)
	}
}
