// Package frigate reads a Frigate NVR's own MQTT topics (the config key
// frigate:, docs/frigate.md), as Frigate publishes them
// (docs/docs/integrations/mqtt.md and frigate/comms/mqtt.py,
// frigate/track/object_processing.py, frigate/stats/util.py in
// github.com/blakeblackshear/frigate):
//
//   - <prefix>/<camera>/motion: ON / OFF, the camera's motion, applied
//     exactly like the contract's motion topic;
//   - <prefix>/events: JSON {"type": new|update|end, "before": {...},
//     "after": {...}}, one object detection, counted once per event id;
//   - <prefix>/stats: JSON, per camera camera_fps, process_fps,
//     skipped_fps and detection_fps (under "cameras" since Frigate 0.14,
//     at the top level before);
//   - <prefix>/available: online, offline (Frigate's last will), stopped.
//
// Everything else Frigate publishes under its prefix (snapshots, zone
// counts, state topics) is not taken from the broker at all.
package frigate

import (
	"bytes"
	"math"
	"strings"
	"time"

	"github.com/valyala/fastjson"

	"villagehub/hub/config"
	"villagehub/hub/event"
	"villagehub/hub/input"
)

func init() {
	input.Register("frigate", func(env input.Env) ([]input.Input, error) {
		var out []input.Input
		for _, c := range env.Config.Frigate {
			out = append(out, New(c))
		}
		return out, nil
	})
}

// MaxPayload bounds a Frigate message: events carry a tracked object's
// whole description (path, attributes, snapshot box) and stats every
// camera, detector and process, far more than the contract's 4 KiB.
const MaxPayload = 256 << 10

// maxZones bounds the zones kept per detection.
const maxZones = 16

// Input is one configured Frigate.
type Input struct {
	name    string // frigate/<name>
	prefix  string // with trailing slash
	site    string
	cameras map[string]string

	p     fastjson.Parser
	det   event.DetectionInfo
	stats []event.Stats
}

// New makes the input for one frigate: entry.
func New(c config.Frigate) *Input {
	prefix := c.TopicPrefix
	if prefix == "" {
		prefix = "frigate"
	}
	return &Input{name: "frigate/" + c.Name, prefix: prefix + "/", site: c.Site, cameras: c.Cameras}
}

// Name is frigate/<name>: the Source of its events.
func (f *Input) Name() string { return f.name }

// Filters are the four topic shapes the hub reads.
func (f *Input) Filters() []string {
	return []string{f.prefix + "available", f.prefix + "events", f.prefix + "stats", f.prefix + "+/motion"}
}

// Match takes the topics of Filters.
func (f *Input) Match(topic string) bool {
	rest, ok := strings.CutPrefix(topic, f.prefix)
	if !ok {
		return false
	}
	switch rest {
	case "available", "events", "stats":
		return true
	}
	cam, ok := strings.CutSuffix(rest, "/motion")
	return ok && cam != "" && !strings.Contains(cam, "/")
}

// camera maps a Frigate camera name to the hub's camera ID.
func (f *Input) camera(name string) (string, event.Reason) {
	if id, ok := f.cameras[name]; ok {
		return id, event.OK
	}
	if !event.ValidID(name) {
		return "", event.BadID
	}
	return name, event.OK
}

// Decode decodes one Frigate message (hub/state's Decoder).
func (f *Input) Decode(topic string, payload []byte, received time.Time, evs []event.Event) ([]event.Event, event.MsgKind, event.Reason) {
	rest := topic[len(f.prefix):]
	kind := event.KindUnknown
	switch rest {
	case "available":
		kind = event.KindInputStatus
	case "events":
		kind = event.KindDetection
	case "stats":
		kind = event.KindCameraStats
	default:
		kind = event.KindMotion
	}
	if len(payload) > MaxPayload {
		return evs, kind, event.TooLarge
	}
	ev := event.Event{Site: f.site, Source: f.name, Time: received, Received: received}
	var r event.Reason
	switch kind {
	case event.KindInputStatus:
		ev.Type = event.InputStatus
		switch string(bytes.TrimSpace(payload)) {
		case "online":
			ev.Online = true
		case "offline", "stopped":
		default:
			return evs, kind, event.BadValue
		}
		return append(evs, ev), kind, event.OK
	case event.KindMotion:
		ev.Type, ev.Kind = event.Motion, event.Camera
		if ev.Device, r = f.camera(strings.TrimSuffix(rest, "/motion")); r != event.OK {
			return evs, kind, r
		}
		switch string(bytes.TrimSpace(payload)) {
		case "ON":
			ev.Active = true
		case "OFF":
		default:
			return evs, kind, event.BadValue
		}
		return append(evs, ev), kind, event.OK
	case event.KindDetection:
		return f.detection(payload, ev, evs)
	default:
		return f.statsEvents(payload, ev, evs)
	}
}

// detection decodes <prefix>/events. The hub reads "after" (the object as
// it is now); "before" is the previous message's "after".
func (f *Input) detection(payload []byte, ev event.Event, evs []event.Event) ([]event.Event, event.MsgKind, event.Reason) {
	const kind = event.KindDetection
	v, err := f.p.ParseBytes(payload)
	if err != nil {
		return evs, kind, event.BadJSON
	}
	d := &f.det
	*d = event.DetectionInfo{Zones: d.Zones[:0]}
	switch string(v.GetStringBytes("type")) {
	case "new":
		d.Phase = event.PhaseNew
	case "update":
		d.Phase = event.PhaseUpdate
	case "end":
		d.Phase = event.PhaseEnd
	default:
		return evs, kind, event.BadValue
	}
	a := v.Get("after")
	if a == nil || a.Type() != fastjson.TypeObject {
		return evs, kind, event.BadValue
	}
	if a.GetBool("false_positive") {
		// Frigate publishes nothing for an object while it is a false
		// positive; should one come, it is not a detection.
		return evs, kind, event.OK
	}
	id, cam, label := a.GetStringBytes("id"), a.GetStringBytes("camera"), a.GetStringBytes("label")
	if len(id) == 0 || len(id) > 64 || len(cam) == 0 || len(label) == 0 {
		return evs, kind, event.BadValue
	}
	var r event.Reason
	if ev.Device, r = f.camera(string(cam)); r != event.OK {
		return evs, kind, r
	}
	d.ID = string(id)
	// A label becomes a metric label: only plain names, others count as
	// "other" (Frigate's labels are COCO names such as person, car).
	if d.Label = string(label); !event.ValidID(d.Label) {
		d.Label = "other"
	}
	d.Score = a.GetFloat64("top_score")
	if d.Score == 0 {
		d.Score = a.GetFloat64("score")
	}
	if math.IsNaN(d.Score) || math.IsInf(d.Score, 0) || d.Score < 0 || d.Score > 1 {
		d.Score = 0
	}
	zones := a.GetArray("entered_zones")
	if len(zones) == 0 {
		zones = a.GetArray("current_zones")
	}
	for _, z := range zones {
		if zb, err := z.StringBytes(); err == nil && len(zb) > 0 && len(zb) <= 64 && len(d.Zones) < maxZones {
			d.Zones = append(d.Zones, string(zb))
		}
	}
	start, ok := unixTime(a.Get("start_time"))
	if !ok {
		return evs, kind, event.BadTS
	}
	d.Start = start
	if end, ok := unixTime(a.Get("end_time")); ok {
		d.End = end
	}
	ev.Type, ev.Kind, ev.Detection = event.Detection, event.Camera, d
	ev.Time, ev.HasTS = d.Start, true
	if !d.End.IsZero() {
		ev.Time = d.End
	}
	if ev.Time.After(ev.Received.Add(24 * time.Hour)) {
		return evs, kind, event.FutureTS
	}
	return append(evs, ev), kind, event.OK
}

// unixTime reads Frigate's float seconds.
func unixTime(v *fastjson.Value) (time.Time, bool) {
	if v == nil || v.Type() != fastjson.TypeNumber {
		return time.Time{}, false
	}
	s, err := v.Float64()
	if err != nil || s <= 0 || s > 1e11 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(s)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
}

// statsEvents decodes <prefix>/stats into one event per camera.
func (f *Input) statsEvents(payload []byte, ev event.Event, evs []event.Event) ([]event.Event, event.MsgKind, event.Reason) {
	const kind = event.KindCameraStats
	v, err := f.p.ParseBytes(payload)
	if err != nil {
		return evs, kind, event.BadJSON
	}
	o, err := v.Object()
	if err != nil {
		return evs, kind, event.BadType
	}
	cams := o
	if c := v.Get("cameras"); c != nil {
		if cams, err = c.Object(); err != nil {
			return evs, kind, event.BadType
		}
	}
	// Collect first (the stats buffer must not move once events point
	// into it), then emit.
	f.stats = f.stats[:0]
	var names [64]string
	n := 0
	r := event.OK
	cams.Visit(func(k []byte, c *fastjson.Value) {
		if c.Type() != fastjson.TypeObject || c.Get("camera_fps") == nil || n == len(names) {
			return // detectors, service, ... (top-level layout before 0.14)
		}
		id, rr := f.camera(string(k))
		if rr != event.OK {
			r = rr
			return
		}
		names[n] = id
		n++
		f.stats = append(f.stats, event.Stats{
			CameraFPS: fps(c, "camera_fps"), ProcessFPS: fps(c, "process_fps"),
			SkippedFPS: fps(c, "skipped_fps"), DetectionFPS: fps(c, "detection_fps"),
		})
	})
	if n == 0 && r != event.OK {
		return evs, kind, r
	}
	for i := 0; i < n; i++ {
		e := ev
		e.Type, e.Kind, e.Device, e.Stats = event.CameraStats, event.Camera, names[i], &f.stats[i]
		evs = append(evs, e)
	}
	return evs, kind, event.OK
}

func fps(v *fastjson.Value, key string) float64 {
	f := v.GetFloat64(key)
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0
	}
	return f
}
