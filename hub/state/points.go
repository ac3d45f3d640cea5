package state

import (
	"strings"
	"time"

	"villagehub/hub/influx"
)

// InfluxDB points. With Config.InfluxPoints set, every change that belongs
// in InfluxDB's history also becomes a point in the batch, and the store
// commits those points to its outbox in the same transaction as the change
// itself: a point exists exactly when its change was committed, whatever
// crashes, and the outbox's forwarder repeats a point only with its
// timestamp unchanged, which InfluxDB treats as an overwrite.
//
// Timestamps must be unique per series, or InfluxDB keeps only the last of
// two points (two QR reports in one millisecond would lose a scan). Device
// timestamps have millisecond precision, so the nanoseconds below the
// millisecond are free: a QR report's point takes its total there, a
// motion event its camera's event count; and within this process a point
// that would land on the time of the series' previous point moves to the
// next nanosecond.

type seriesKey struct {
	m, site, device, tag string
}

// maxSeriesTimes bounds the remembered series; past it the memory starts
// afresh (a collision then becomes possible only for two points in the
// same nanosecond).
const maxSeriesTimes = 200000

func (s *State) addPoint(k seriesKey, p influx.Point) {
	t := p.Time.UnixNano()
	if last, ok := s.lastTS[k]; ok && t <= last && last-t < int64(time.Millisecond) {
		t = last + 1
		p.Time = time.Unix(0, t)
	}
	if len(s.lastTS) >= maxSeriesTimes {
		clear(s.lastTS)
	}
	s.lastTS[k] = t
	s.batch.Points = append(s.batch.Points, p)
}

// withinMS puts n into the sub-millisecond nanoseconds of a device time.
func withinMS(t time.Time, n uint64) time.Time {
	return t.Truncate(time.Millisecond).Add(time.Duration(n % 1000000))
}

func (s *State) qrPoint(site, board, source string, n int64, t time.Time) {
	s.addPoint(seriesKey{influx.MeasurementQRScans, site, board, source}, influx.QRScans(site, board, source, n, t))
}

func (s *State) visitPoint(site, board, class string, n int64, t time.Time) {
	s.addPoint(seriesKey{influx.MeasurementQRVisits, site, board, class}, influx.QRVisits(site, board, class, n, t))
}

func (s *State) eventPoint(e *EventRecord, count uint64) {
	switch e.Type {
	case EventMotionStart:
		s.addPoint(seriesKey{m: influx.MeasurementCameraMotion, site: e.Site, device: e.Device},
			influx.MotionStart(e.Site, e.Device, e.Zone, scoreOrNone(e.Score), withinMS(e.Time, count)))
	case EventMotionEnd:
		s.addPoint(seriesKey{m: influx.MeasurementCameraMotion, site: e.Site, device: e.Device},
			influx.MotionEnd(e.Site, e.Device, time.Duration(e.Duration*float64(time.Second)), withinMS(e.Time, count)))
	case EventOnline, EventOffline:
		s.addPoint(seriesKey{influx.MeasurementDeviceStatus, e.Site, e.Device, e.Kind},
			influx.DeviceStatus(e.Site, e.Kind, e.Device, e.Type == EventOnline, e.Time))
	case EventDetection, EventDetectionEnd:
		s.addPoint(seriesKey{influx.MeasurementCameraDetections, e.Site, e.Device, e.Label},
			influx.CameraDetection(e.Site, e.Device, e.Label, e.Type == EventDetection, e.Score, strings.Join(e.Zones, ","),
				time.Duration(e.Duration*float64(time.Second)), withinMS(e.Time, count)))
	case EventInputOnline, EventInputOffline:
		s.addPoint(seriesKey{influx.MeasurementInputStatus, e.Site, e.Device, ""},
			influx.InputStatus(e.Site, e.Device, e.Type == EventInputOnline, e.Time))
	}
}

func scoreOrNone(f float64) float64 {
	if f == 0 {
		return -1 // no score reported
	}
	return f
}

func (s *State) healthPoint(h *HealthRecord, d time.Duration) {
	s.addPoint(seriesKey{m: influx.MeasurementCameraHealth, site: h.Site, device: h.Camera},
		influx.CameraHealth(h.Site, h.Camera, influx.Health{
			Up: h.Up, FPS: h.FPS, BitrateBPS: h.BitrateBps, Width: h.Width, Height: h.Height,
			KeyframeInterval: h.KeyframeInterval, Codec: h.Codec, ProbeDuration: d, Reason: h.Reason,
		}, h.Time))
}
