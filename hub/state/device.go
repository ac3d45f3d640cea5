package state

import (
	"time"

	"villagehub/hub/event"
)

// Camera is one camera's live state. Readers get copies (CameraView); only
// the Run goroutine mutates a Camera, under State.mu.
type Camera struct {
	Site, ID   string
	key        string // in the store
	Configured bool
	info       CameraInfo
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
	c := &Camera{Site: site, ID: id, key: deviceKey(event.Camera, site, id), info: info}
	c.Online = -1
	return c
}

func newBoard(site, id string, info BoardInfo) *Board {
	b := &Board{Site: site, ID: id, key: deviceKey(event.Board, site, id), info: info}
	b.Online = -1
	return b
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

// Board is one QR board's live state.
type Board struct {
	Site, ID   string
	key        string
	Configured bool
	info       BoardInfo
	boardPersisted
	// health is the last battery and signal the board reported; in memory
	// only (a board that sends them does so with every status and report).
	health boardHealth
}

// boardHealth is a board's last battery level (percent) and signal
// strength (dBm), and when each was reported; zero times: never.
type boardHealth struct {
	Battery, RSSI     float64
	BatteryAt, RSSIAt time.Time
}

// take keeps the event's readings unless they are older than those kept
// (a redelivered report).
func (h *boardHealth) take(ev *event.Event) {
	if ev.HasBattery && !ev.Time.Before(h.BatteryAt) {
		h.Battery, h.BatteryAt = ev.Battery, ev.Time
	}
	if ev.HasRSSI && !ev.Time.Before(h.RSSIAt) {
		h.RSSI, h.RSSIAt = ev.RSSI, ev.Time
	}
}

type boardPersisted struct {
	Auto         bool
	Online       int8
	StatusSince  time.Time
	LastSeen     time.Time
	LastReport   time.Time
	ScansMQTT    uint64
	ScansPrinted uint64
	// Printed-code visits that were not counted as scans, and unique scans.
	PrintedUnique, Bots, RateLimited uint64
	TodayDay                         int32 // days since 1970-01-01 in the village's zone
	Today                            uint64
	Counter                          qrCounter
	// GatewayIDs are the IDs of the latest scans a QR gateway sent down,
	// committed with the counts they added (gateway.go).
	GatewayIDs gatewayIDs
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

// BoardView is a copy of a board's state for readers.
type BoardView struct {
	ID           string     `json:"id"`
	Site         string     `json:"site"`
	Name         string     `json:"name,omitempty"`
	Location     string     `json:"location,omitempty"`
	TargetURL    string     `json:"target_url,omitempty"`
	Configured   bool       `json:"configured"`
	Status       string     `json:"status"`
	StatusSince  *time.Time `json:"status_since,omitempty"`
	LastSeen     *time.Time `json:"last_seen,omitempty"`
	LastReport   *time.Time `json:"last_report,omitempty"`
	ScansToday   uint64     `json:"scans_today"`
	ScansTotal   uint64     `json:"scans_total"`
	ScansMQTT    uint64     `json:"scans_mqtt"`
	ScansPrinted uint64     `json:"scans_printed"`
	// Of the printed-code scans, those from a phone that had not just
	// scanned the same board; and visits not counted: link previews and
	// bots, clients over the rate limit.
	PrintedUnique uint64 `json:"printed_unique"`
	Bots          uint64 `json:"bot_visits"`
	RateLimited   uint64 `json:"rate_limited"`
	Boot          string `json:"boot,omitempty"`
	LastTotal     int64  `json:"last_total"`
	// The last battery level (percent) and signal strength (dBm) the
	// board reported, and when; absent if it never sent them.
	Battery   *float64   `json:"battery,omitempty"`
	BatteryAt *time.Time `json:"battery_at,omitempty"`
	RSSI      *float64   `json:"rssi,omitempty"`
	RSSIAt    *time.Time `json:"rssi_at,omitempty"`
}

func statusText(online int8) string {
	switch online {
	case 1:
		return "online"
	case 0:
		return "offline"
	}
	return "unknown"
}

func tp(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
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

func (b *Board) view(today int32) BoardView {
	v := BoardView{
		ID: b.ID, Site: b.Site, Name: b.info.Name, Location: b.info.Location,
		TargetURL: b.info.TargetURL, Configured: b.Configured,
		Status: statusText(b.Online), StatusSince: tp(b.StatusSince), LastSeen: tp(b.LastSeen),
		LastReport: tp(b.LastReport), ScansTotal: b.ScansMQTT + b.ScansPrinted,
		ScansMQTT: b.ScansMQTT, ScansPrinted: b.ScansPrinted,
		PrintedUnique: b.PrintedUnique, Bots: b.Bots, RateLimited: b.RateLimited,
	}
	if b.TodayDay == today {
		v.ScansToday = b.Today
	}
	// The epoch used last is the board's current counter.
	var last *epoch
	for i := range b.Counter.Epochs {
		if last == nil || b.Counter.Epochs[i].Used > last.Used {
			last = &b.Counter.Epochs[i]
		}
	}
	if last != nil {
		v.Boot, v.LastTotal = last.Boot, last.Max
	}
	if h := b.health; !h.BatteryAt.IsZero() {
		v.Battery, v.BatteryAt = &h.Battery, &h.BatteryAt
	}
	if h := b.health; !h.RSSIAt.IsZero() {
		v.RSSI, v.RSSIAt = &h.RSSI, &h.RSSIAt
	}
	return v
}
