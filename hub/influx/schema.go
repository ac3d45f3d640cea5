package influx

import (
	"time"

	"villagehub/hub/event"
)

// Constructors for the hub's measurements (docs/influxdb.md has the schema
// with an example line each). Tags are sorted by key and hold only IDs and
// small fixed sets; everything else is a field.

// Measurement names, declared with the kinds in hub/event.
const (
	MeasurementQRScans      = event.MeasurementQRScans
	MeasurementCameraMotion = event.MeasurementCameraMotion
	MeasurementDeviceStatus = event.MeasurementDeviceStatus
	MeasurementCameraHealth = event.MeasurementCameraHealth
)

// QRScans is the increase of one board's scan count from one report
// (source "mqtt") or one printed-code scan (source "printed"), so that
// sum(scans) over any range is exactly the scans in it. Never the board's
// cumulative total.
func QRScans(site, board, source string, n int64, t time.Time) Point {
	return Point{
		Measurement: MeasurementQRScans,
		Tags:        []Tag{{"board", board}, {"site", site}, {"source", source}},
		Fields:      []Field{Int("scans", n)},
		Time:        t,
	}
}

// MotionStart is the start of a motion event. zone "" and a negative score
// (unknown) are left out.
func MotionStart(site, camera, zone string, score float64, t time.Time) Point {
	f := make([]Field, 1, 3)
	f[0] = Bool("active", true)
	if zone != "" {
		f = append(f, String("zone", zone))
	}
	if score >= 0 {
		f = append(f, Float("score", score))
	}
	return Point{
		Measurement: MeasurementCameraMotion,
		Tags:        []Tag{{"camera", camera}, {"site", site}},
		Fields:      f,
		Time:        t,
	}
}

// MotionEnd is the end of a motion event with its duration.
func MotionEnd(site, camera string, d time.Duration, t time.Time) Point {
	return Point{
		Measurement: MeasurementCameraMotion,
		Tags:        []Tag{{"camera", camera}, {"site", site}},
		Fields:      []Field{Bool("active", false), Float("duration_s", d.Seconds())},
		Time:        t,
	}
}

// DeviceStatus is a change of a device's MQTT status; kind is "camera" or
// "qr_board".
func DeviceStatus(site, kind, device string, online bool, t time.Time) Point {
	v := int64(0)
	if online {
		v = 1
	}
	return Point{
		Measurement: MeasurementDeviceStatus,
		Tags:        []Tag{{"device", device}, {"kind", kind}, {"site", site}},
		Fields:      []Field{Int("online", v)},
		Time:        t,
	}
}

// Health is one RTSP probe result of a camera.
type Health struct {
	Up               bool
	FPS              float64
	BitrateBPS       float64
	Width, Height    int
	KeyframeInterval int // frames between keyframes
	Codec            string
	ProbeDuration    time.Duration
	// Reason is the failure reason from the probe's fixed set (timeout,
	// refused, unauthorized, not_found, no_video, protocol); "" when up.
	Reason string
}

// CameraHealth is one stream health sample. Stream figures are written only
// when the probe saw video.
func CameraHealth(site, camera string, h Health, t time.Time) Point {
	f := make([]Field, 0, 9)
	up := int64(0)
	if h.Up {
		up = 1
	}
	f = append(f, Int("up", up), Float("probe_duration_s", h.ProbeDuration.Seconds()))
	if h.Up {
		f = append(f,
			Float("fps", h.FPS),
			Float("bitrate_bps", h.BitrateBPS),
			Int("width", int64(h.Width)),
			Int("height", int64(h.Height)),
			Int("keyframe_interval", int64(h.KeyframeInterval)),
		)
		if h.Codec != "" {
			f = append(f, String("codec", h.Codec))
		}
	}
	if h.Reason != "" {
		f = append(f, String("reason", h.Reason))
	}
	return Point{
		Measurement: MeasurementCameraHealth,
		Tags:        []Tag{{"camera", camera}, {"site", site}},
		Fields:      f,
		Time:        t,
	}
}

// MeasurementQRVisits counts visits to a printed code that are not plain
// scans, and unique scans: class "unique" (a scan by a phone that had not
// just scanned the board; also counted in qr_scans), "bot" (link previews,
// crawlers) and "rate_limited".
const MeasurementQRVisits = event.MeasurementQRVisits

// QRVisits is one such visit.
func QRVisits(site, board, class string, n int64, t time.Time) Point {
	return Point{
		Measurement: MeasurementQRVisits,
		Tags:        []Tag{{"board", board}, {"class", class}, {"site", site}},
		Fields:      []Field{Int("visits", n)},
		Time:        t,
	}
}

// Measurements of detections and inputs, declared with the kinds in
// hub/event.
const (
	MeasurementCameraDetections = event.MeasurementCameraDetections
	MeasurementInputStatus      = event.MeasurementInputStatus
)

// CameraDetection is an object detection (a Frigate event): at its start
// detections=1 (so sum(detections) counts them), at its end duration_s;
// both carry the score and the zones entered (comma-separated).
func CameraDetection(site, camera, label string, start bool, score float64, zones string, d time.Duration, t time.Time) Point {
	f := make([]Field, 0, 4)
	if start {
		f = append(f, Int("detections", 1))
	} else {
		f = append(f, Float("duration_s", d.Seconds()))
	}
	if score > 0 {
		f = append(f, Float("score", score))
	}
	if zones != "" {
		f = append(f, String("zones", zones))
	}
	return Point{
		Measurement: MeasurementCameraDetections,
		Tags:        []Tag{{"camera", camera}, {"label", label}, {"site", site}},
		Fields:      f,
		Time:        t,
	}
}

// InputStatus is a change of an input's own availability (a Frigate's
// available topic); input is frigate/<name>.
func InputStatus(site, input string, online bool, t time.Time) Point {
	v := int64(0)
	if online {
		v = 1
	}
	return Point{
		Measurement: MeasurementInputStatus,
		Tags:        []Tag{{"input", input}, {"site", site}},
		Fields:      []Field{Int("online", v)},
		Time:        t,
	}
}
