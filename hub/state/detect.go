package state

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"villagehub/hub/event"
)

// Object detections (Frigate events), camera processing figures (Frigate
// stats) and the inputs' own availability (Frigate's available topic).

// Event types of detections and of inputs, in EventRecord.Type.
const (
	// EventDetection: an object detection first seen (counted once).
	EventDetection = "detection"
	// EventDetectionEnd: the detection ended; Duration is how long it was
	// tracked.
	EventDetectionEnd = "detection_end"
	// EventInputOnline and EventInputOffline: an input (a Frigate) said it
	// is up or down; Device names it (frigate/<name>).
	EventInputOnline  = "input_online"
	EventInputOffline = "input_offline"
)

// Bounds of what a camera remembers about detections.
const (
	// maxLabels: distinct labels counted per camera; more count as
	// "other" (each is a metric series).
	maxLabels = 32
	// maxTracked: detections whose ID a camera remembers (tracked ones,
	// then the most recent ended ones). A detection forgotten before its
	// end message is not counted twice: every ID that starts no later
	// than the newest forgotten one is taken as seen (horizon).
	maxTracked = 128
)

// LabelCount is one label's detection count.
type LabelCount struct {
	Label string
	N     uint64
}

// tracked is a detection a camera remembers.
type tracked struct {
	ID    string
	Start int64 // unix ns
	Ended bool
}

// detections is what a camera keeps about detections; persisted.
type detections struct {
	Labels  []LabelCount // sorted by label
	Tracked []tracked
	Horizon int64 // unix ns; see maxTracked
}

func (d *detections) count(label string) {
	i, found := slices.BinarySearchFunc(d.Labels, label, func(l LabelCount, s string) int { return cmp.Compare(l.Label, s) })
	if !found {
		if len(d.Labels) >= maxLabels {
			label = "other"
			if i, found = slices.BinarySearchFunc(d.Labels, label, func(l LabelCount, s string) int { return cmp.Compare(l.Label, s) }); found {
				d.Labels[i].N++
				return
			}
		}
		d.Labels = slices.Insert(d.Labels, i, LabelCount{Label: strings.Clone(label)})
	}
	d.Labels[i].N++
}

func (d *detections) find(id string) int {
	for i := range d.Tracked {
		if d.Tracked[i].ID == id {
			return i
		}
	}
	return -1
}

// track remembers a new detection, forgetting one past maxTracked: the
// ended one that started first, else the tracked one that started first.
func (d *detections) track(id string, start int64) int {
	if len(d.Tracked) < maxTracked {
		d.Tracked = append(d.Tracked, tracked{ID: strings.Clone(id), Start: start})
		return len(d.Tracked) - 1
	}
	victim := -1
	for i := range d.Tracked {
		t := &d.Tracked[i]
		if victim < 0 || (t.Ended && !d.Tracked[victim].Ended) ||
			(t.Ended == d.Tracked[victim].Ended && t.Start < d.Tracked[victim].Start) {
			victim = i
		}
	}
	d.Horizon = max(d.Horizon, d.Tracked[victim].Start)
	d.Tracked[victim] = tracked{ID: strings.Clone(id), Start: start}
	return victim
}

// applyDetection counts a detection once per ID, whatever is redelivered
// or repeated (Frigate's update messages), and records its end with the
// time it was tracked.
func (s *State) applyDetection(c *Camera, ev *event.Event) Result {
	det := ev.Detection
	d := &c.Dets
	start := det.Start.UnixNano()
	i := d.find(det.ID)
	res := Accepted
	if i < 0 {
		if start <= d.Horizon {
			return Duplicate // seen and forgotten
		}
		d.count(det.Label)
		i = d.track(det.ID, start)
		c.DetectionsTotal++
		s.detectionEvent(c, EventDetection, det, 0, det.Start)
	} else if d.Tracked[i].Ended {
		return Duplicate // a message about a detection that ended
	} else if det.End.IsZero() {
		return Accepted // an update of a tracked detection: nothing to count
	}
	if !det.End.IsZero() {
		if d.Tracked[i].Ended {
			return Duplicate
		}
		d.Tracked[i].Ended = true
		s.detectionEvent(c, EventDetectionEnd, det, det.End.Sub(det.Start).Seconds(), det.End)
	}
	return res
}

func (s *State) detectionEvent(c *Camera, typ string, det *event.DetectionInfo, dur float64, t time.Time) {
	e := EventRecord{
		Time: t, Type: typ, Kind: event.Camera.String(), Site: c.Site, Device: c.ID,
		Label: det.Label, Score: det.Score, Duration: dur, ID: det.ID, Source: c.Source,
	}
	if len(det.Zones) > 0 {
		e.Zones = slices.Clone(det.Zones)
	}
	s.event(e, c.DetectionsTotal)
}

// CameraStats are a camera's processing figures as its input last
// reported them (in memory only: the next report comes within a minute).
type CameraStats struct {
	event.Stats
	At time.Time
	// FPSZeroSince is when camera_fps was first reported 0 in the current
	// run of zero reports (zero while video flows): evidence of no video
	// beside the hub's own RTSP probe.
	FPSZeroSince time.Time
}

func (s *State) applyStats(c *Camera, ev *event.Event) Result {
	st := c.stats
	if st == nil {
		st = &CameraStats{}
		c.stats = st
	}
	if ev.Stats.CameraFPS > 0 {
		st.FPSZeroSince = time.Time{}
	} else if st.FPSZeroSince.IsZero() {
		st.FPSZeroSince = ev.Time
	}
	st.Stats, st.At = *ev.Stats, ev.Time
	return Accepted
}

// Input is an input's own availability (a Frigate's available topic).
type Input struct {
	Name   string `json:"name"` // frigate/<name>
	Site   string `json:"site,omitempty"`
	Status string `json:"status"` // online, offline, unknown
	// Since is when the status last changed.
	Since *time.Time `json:"since,omitempty"`
}

type inputState struct {
	site   string
	online int8
	since  time.Time
}

func (s *State) applyInputStatus(ev *event.Event) (Result, event.Reason) {
	if ev.Source == "" {
		return Rejected, event.BadValue
	}
	in := s.sources[ev.Source]
	if in == nil {
		if len(s.sources) >= maxSources {
			return Rejected, event.CapReached
		}
		in = &inputState{site: strings.Clone(ev.Site), online: -1}
		s.sources[strings.Clone(ev.Source)] = in
	}
	v, typ := int8(0), EventInputOffline
	if ev.Online {
		v, typ = 1, EventInputOnline
	}
	if in.online == v {
		return Accepted, event.OK // the retained status again
	}
	in.online, in.since = v, ev.Time
	s.event(EventRecord{Time: ev.Time, Type: typ, Kind: "input", Site: in.site, Device: ev.Source}, 0)
	// Persisted beside the devices, so that a Frigate that died while the
	// hub was down is still known to be down after a restart.
	s.batch.Devices = append(s.batch.Devices, DeviceRecord{Key: inputKey(ev.Source), Value: in.appendTo(nil)})
	return Accepted, event.OK
}

// Inputs' records in the store: "i/<input name>".
const inputKeyPrefix = "i/"

func inputKey(name string) string { return inputKeyPrefix + name }

func (in *inputState) appendTo(b []byte) []byte {
	e := enc{append(b, codecVersion)}
	e.s(in.site)
	e.i(int64(in.online))
	e.t(in.since)
	return e.b
}

func (s *State) loadInput(name string, b []byte) error {
	if len(b) == 0 || b[0] < 2 || b[0] > codecVersion || len(s.sources) >= maxSources {
		return errCorrupt
	}
	d := dec{b: b[1:]}
	in := &inputState{site: d.s(), online: int8(d.i()), since: d.t()}
	if d.err != nil {
		return d.err
	}
	s.sources[name] = in
	return nil
}

// maxSources bounds the inputs whose availability is kept (they come from
// the config; the bound only guards against a bug).
const maxSources = 1024

// Inputs returns the availability of every input that reported one,
// sorted by name: what an alert such as FrigateDown watches.
func (s *State) Inputs() []Input {
	s.mu.RLock()
	out := make([]Input, 0, len(s.sources))
	for name, in := range s.sources {
		out = append(out, Input{Name: name, Site: in.site, Status: statusText(in.online), Since: tp(in.since)})
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Input) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// sourceDown reports whether the input a camera's motion comes from says
// it is offline: the camera's motion is then unknown, not "no motion".
// Called with s.mu held.
func (s *State) sourceDown(c *Camera) bool {
	if c.Source == "" {
		return false
	}
	in := s.sources[c.Source]
	return in != nil && in.online == 0
}
