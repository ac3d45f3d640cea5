package state

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"villagehub/hub/event"
)

// The camera kind: its state, view and rules (its codec is in codec.go,
// its RTSP health in local.go, its detections in detect.go).

func init() {
	registerKind(kindSpec[*Camera]{
		kind: event.Camera,
		blank: func(site, id string) *Camera {
			return newCamera(site, id, CameraInfo{ID: id, Site: site})
		},
		apply: func(s *State, c *Camera, ev *event.Event) (Result, event.Reason) {
			return s.applyCamera(c, ev), event.OK
		},
		maxAuto: func(cfg *Config) int { return cfg.MaxAutoCameras },
	})
}

// cameras is the cameras' table.
func (s *State) cameras() *devices[*Camera] { return table[*Camera](s, event.Camera) }

func (c *Camera) setAuto(v bool)      { c.Auto = v }
func (c *Camera) lastSeen() time.Time { return c.LastSeen }

// Camera is one camera's live state. Readers get copies (CameraView); only
// the Run goroutine mutates a Camera, under State.mu.
type Camera struct {
	devBase
	info CameraInfo
	cameraPersisted
	// probe is nil until the camera's first RTSP probe: most cameras
	// registered from MQTT have no stream to probe, and it is half a
	// camera's memory.
	probe *Probe
	// stats is nil until an input (Frigate) reports the camera's figures.
	stats *CameraStats
	// motionMono and motionSteps: the monotonic clock and the hub clock's
	// step count when the open motion event started (clock.go), so that a
	// clock step during the event does not become its duration.
	motionMono  time.Duration
	motionSteps uint32
}

func newCamera(site, id string, info CameraInfo) *Camera {
	c := &Camera{devBase: devBase{Site: site, ID: id, key: deviceKey(event.Camera, site, id)}, info: info}
	c.Online = -1
	return c
}

// cameraPersisted is what survives a restart.
type cameraPersisted struct {
	Auto          bool
	Online        int8 // -1 unknown, 0 offline, 1 online
	StatusSince   time.Time
	LastSeen      time.Time
	MotionActive  bool
	MotionStart   time.Time
	MotionEnd     time.Time
	MotionZone    string
	MotionEvents  uint64
	LastMotionDur float64
	// Source is the input the camera's events come from when it is not
	// the camera itself (frigate/<name>).
	Source string
	// Object detections: counts by label and the IDs already counted.
	Dets            detections
	DetectionsTotal uint64
}

// CameraView is a copy of a camera's state for readers.
type CameraView struct {
	ID            string      `json:"id"`
	Site          string      `json:"site"`
	Name          string      `json:"name,omitempty"`
	Location      string      `json:"location,omitempty"`
	RTSPURL       string      `json:"rtsp_url,omitempty"`
	Configured    bool        `json:"configured"`
	Status        string      `json:"status"` // online, offline, unknown
	StatusSince   *time.Time  `json:"status_since,omitempty"`
	LastSeen      *time.Time  `json:"last_seen,omitempty"`
	MotionActive  bool        `json:"motion_active"`
	MotionStart   *time.Time  `json:"motion_start,omitempty"`
	LastMotion    *time.Time  `json:"last_motion,omitempty"`
	LastMotionEnd *time.Time  `json:"last_motion_end,omitempty"`
	LastMotionDur float64     `json:"last_motion_duration_s,omitempty"`
	MotionEvents  uint64      `json:"motion_events"`
	Stream        *StreamView `json:"stream,omitempty"`
	// Source is the input the camera's events come from (frigate/<name>)
	// when it is not the camera itself; MotionUnknown is true while that
	// input says it is offline: motion_active is then the last known
	// value, not "no motion".
	Source        string `json:"source,omitempty"`
	MotionUnknown bool   `json:"motion_unknown,omitempty"`
	// Detections are the object detections counted, by label.
	Detections map[string]uint64 `json:"detections,omitempty"`
	// Stats are the camera's processing figures from its input.
	Stats *StatsView `json:"stats,omitempty"`
}

// StatsView is a camera's processing figures as its input (Frigate) last
// reported them.
type StatsView struct {
	CameraFPS    float64    `json:"camera_fps"`
	ProcessFPS   float64    `json:"process_fps"`
	SkippedFPS   float64    `json:"skipped_fps"`
	DetectionFPS float64    `json:"detection_fps"`
	At           time.Time  `json:"at"`
	FPSZeroSince *time.Time `json:"camera_fps_zero_since,omitempty"`
}

// StreamView is a camera's RTSP stream health, absent until the first
// probe.
type StreamView struct {
	Up                bool              `json:"up"`
	Since             time.Time         `json:"since"`
	Reason            string            `json:"reason,omitempty"`
	Detail            string            `json:"detail,omitempty"`
	Grade             string            `json:"grade"`
	Codec             string            `json:"codec,omitempty"`
	Width             int               `json:"width,omitempty"`
	Height            int               `json:"height,omitempty"`
	FPS               float64           `json:"fps"`
	BitrateBps        float64           `json:"bitrate_bps"`
	KeyframeInterval  int               `json:"keyframe_interval,omitempty"`
	TimeToFirstFrameS float64           `json:"time_to_first_frame_s,omitempty"`
	TimeToFirstKeyS   float64           `json:"time_to_first_keyframe_s,omitempty"`
	ProbeDurationS    float64           `json:"probe_duration_s"`
	LastProbe         time.Time         `json:"last_probe"`
	LastSuccess       *time.Time        `json:"last_success,omitempty"`
	Isolated          bool              `json:"isolated,omitempty"`
	Failures          map[string]uint64 `json:"failures,omitempty"`
}

func (c *Camera) view() CameraView {
	v := CameraView{
		ID: c.ID, Site: c.Site, Name: c.info.Name, Location: c.info.Location,
		RTSPURL: c.info.RTSPURL, Configured: c.Configured,
		Status: statusText(c.Online), StatusSince: tp(c.StatusSince), LastSeen: tp(c.LastSeen),
		MotionActive: c.MotionActive, LastMotion: tp(c.MotionStart), LastMotionEnd: tp(c.MotionEnd),
		LastMotionDur: c.LastMotionDur, MotionEvents: c.MotionEvents,
	}
	if c.MotionActive {
		v.MotionStart = tp(c.MotionStart)
	}
	v.Source = c.Source
	if len(c.Dets.Labels) > 0 {
		v.Detections = make(map[string]uint64, len(c.Dets.Labels))
		for _, l := range c.Dets.Labels {
			v.Detections[l.Label] = l.N
		}
	}
	if st := c.stats; st != nil {
		v.Stats = &StatsView{CameraFPS: st.CameraFPS, ProcessFPS: st.ProcessFPS, SkippedFPS: st.SkippedFPS,
			DetectionFPS: st.DetectionFPS, At: st.At, FPSZeroSince: tp(st.FPSZeroSince)}
	}
	if p := c.probe; p != nil && p.Up >= 0 && !p.LastProbe.IsZero() {
		sv := &StreamView{
			Up: p.Up == 1, Since: p.Since, Reason: p.Reason, Detail: p.Detail, Grade: p.Grade,
			Codec: p.Codec, Width: p.Width, Height: p.Height, FPS: p.FPS, BitrateBps: p.BitrateBps,
			KeyframeInterval: p.KeyframeInterval, TimeToFirstFrameS: p.TTFF.Seconds(), TimeToFirstKeyS: p.TTFK.Seconds(),
			ProbeDurationS: p.Duration.Seconds(), LastProbe: p.LastProbe, LastSuccess: tp(p.LastSuccess), Isolated: p.Isolated,
		}
		for i, n := range p.Failures {
			if n > 0 {
				if sv.Failures == nil {
					sv.Failures = map[string]uint64{}
				}
				sv.Failures[probeReasons[i]] = n
			}
		}
		v.Stream = sv
	}
	return v
}

// camera finds or auto-registers a camera.
func (s *State) camera(site, id string) (*Camera, event.Reason) {
	return s.cameras().lookupOrRegister(s, site, id)
}

func (s *State) applyCamera(c *Camera, ev *event.Event) Result {
	if ev.Received.After(c.LastSeen) {
		c.LastSeen = ev.Received
	}
	if ev.Type == event.CameraStats {
		return s.applyStats(c, ev) // in memory only: nothing to write
	}
	s.cameras().markDirty(c)
	if ev.Source != c.Source {
		c.Source = strings.Clone(ev.Source)
	}
	switch ev.Type {
	case event.Detection:
		return s.applyDetection(c, ev)
	case event.Status:
		return s.applyStatus(&c.Online, &c.StatusSince, event.Camera.String(), c.Site, c.ID, ev)
	case event.Motion:
		// A redelivery of a message whose motion was committed (see
		// delivery.go).
		var delivery uint64
		if s.cur != nil && s.cur.PacketID != 0 {
			delivery = deliveryID(s.cur)
			if s.cur.Dup && s.deliv.has(delivery) {
				return Duplicate
			}
		}
		res := s.applyMotion(c, ev)
		if res == Accepted && delivery != 0 {
			seq := s.deliv.add(delivery)
			if len(s.batch.Deliveries) == 0 {
				s.batch.DeliverySeq = seq
			}
			s.batch.Deliveries = append(s.batch.Deliveries, delivery)
		}
		return res
	}
	return Duplicate
}

// applyMotion applies the contract's motion rules to a camera.
func (s *State) applyMotion(c *Camera, ev *event.Event) Result {
	if ev.Active {
		// A repeated ON while active is not a new event; an ON older
		// than the end of the last event is a redelivered or
		// reordered message.
		if c.MotionActive || (ev.HasTS && !ev.Time.After(c.MotionEnd)) {
			return Duplicate
		}
		c.MotionActive, c.MotionStart, c.MotionZone = true, ev.Time, ev.Zone
		c.motionMono, c.motionSteps = s.clk.monoSteps()
		c.MotionEvents++
		s.event(EventRecord{
			Time: ev.Time, Type: EventMotionStart, Kind: event.Camera.String(), Site: c.Site, Device: c.ID,
			Zone: ev.Zone, Score: ev.Score,
		}, c.MotionEvents)
		return Accepted
	}
	if !c.MotionActive || ev.Time.Before(c.MotionStart) {
		return Duplicate
	}
	d := ev.Time.Sub(c.MotionStart).Seconds()
	if mono, steps := s.clk.monoSteps(); !ev.HasTS && c.motionMono != 0 && steps != c.motionSteps {
		// The hub's clock stepped during the event (NTP arrived): its
		// receipt times are on two different clocks, the monotonic one
		// is not (docs/time.md).
		d = (mono - c.motionMono).Seconds()
	}
	c.MotionActive, c.MotionEnd, c.LastMotionDur = false, ev.Time, d
	zone := ev.Zone
	if zone == "" {
		zone = c.MotionZone
	}
	s.event(EventRecord{
		Time: ev.Time, Type: EventMotionEnd, Kind: event.Camera.String(), Site: c.Site, Device: c.ID,
		Zone: zone, Score: ev.Score, Duration: d,
	}, c.MotionEvents)
	return Accepted
}

// Cameras returns a copy of every camera's state, sorted by site and ID.
func (s *State) Cameras() []CameraView {
	s.mu.RLock()
	cams := s.cameras().m
	out := make([]CameraView, 0, len(cams))
	for _, c := range cams {
		v := c.view()
		v.MotionUnknown = s.sourceDown(c)
		out = append(out, v)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b CameraView) int {
		return cmp.Or(cmp.Compare(a.Site, b.Site), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// CameraSample and BoardSample are the few numbers the metrics collector
// reads per device, without building full views.
type CameraSample struct {
	Site, ID     string
	Online       int8
	StatusSince  time.Time
	MotionActive bool
	MotionEvents uint64
	// Probe is the stream health; nil (or Up -1) until the first probe.
	Probe *Probe
	// MotionUnknown: the input the camera's motion comes from is offline.
	MotionUnknown bool
	// Detections by label (sorted), and the input's processing figures
	// (nil until reported).
	Detections []LabelCount
	Stats      *CameraStats
}

// EachCamera calls fn for every camera under a read lock. fn must not call
// back into the State nor keep the sample's pointers and slices.
func (s *State) EachCamera(fn func(CameraSample)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, c := range s.cameras().m {
		fn(CameraSample{Site: c.Site, ID: c.ID, Online: c.Online, StatusSince: c.StatusSince, MotionActive: c.MotionActive, MotionEvents: c.MotionEvents, Probe: c.probe,
			MotionUnknown: s.sourceDown(c), Detections: c.Dets.Labels, Stats: c.stats})
	}
}

func (c *Camera) configure(info CameraInfo, ok bool) int {
	switch {
	case ok:
		c.info = info
	case c.Configured:
		c.info = CameraInfo{ID: c.ID, Site: c.Site}
	}
	return c.approve(ok, &c.Auto)
}
