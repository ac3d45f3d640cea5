package state

import (
	"time"

	"villagehub/hub/influx"
)

// Batch is what one commit makes durable. The slices are reused between
// commits: a Store must not keep references after Commit returns.
type Batch struct {
	// Devices are the persisted states of devices changed in this batch.
	Devices []DeviceRecord
	// Scans are QR scan increases, one per board report or printed scan.
	Scans []ScanRecord
	// Events are motion and status events, for history and /api/v1/events.
	Events []EventRecord
	// Health are RTSP probe results, for InfluxDB's camera_health (the
	// embedded store keeps only up/down changes, as Events).
	Health []HealthRecord
	// Points are the batch's InfluxDB points (Config.InfluxPoints).
	Points []influx.Point
	// Deliveries are identities of QoS 1 messages whose motion was
	// applied, numbered from DeliverySeq (delivery.go); the store keeps
	// the last MaxDeliveries.
	Deliveries  []uint64
	DeliverySeq uint64

	arena []byte // backing store of Devices[i].Value
}

func (b *Batch) reset() {
	clear(b.Devices)
	b.Devices = b.Devices[:0]
	b.Scans = b.Scans[:0]
	b.Events = b.Events[:0]
	b.Health = b.Health[:0]
	clear(b.Points)
	b.Points = b.Points[:0]
	b.Deliveries = b.Deliveries[:0]
}

// Empty reports whether the batch changes nothing.
func (b *Batch) Empty() bool {
	return len(b.Devices) == 0 && len(b.Scans) == 0 && len(b.Events) == 0 && len(b.Health) == 0 && len(b.Points) == 0
}

// DeviceRecord is one device's persisted state, opaque to the store.
type DeviceRecord struct {
	Key   string
	Value []byte
}

// Scan sources.
const (
	SourceMQTT    = "mqtt"
	SourcePrinted = "printed"
)

// ScanRecord is the increase counted from one report (or one printed-code
// visit): summing N over any time range gives exactly the scans in it.
// Printed-code visits also say whether the scan was unique, or was a bot
// or a rate-limited client (which count apart, N = 0).
type ScanRecord struct {
	Site   string
	Board  string
	Source string
	N      int64
	Time   time.Time

	Unique, Bots, RateLimited int64
}

// Event types in EventRecord.Type.
const (
	EventMotionStart = "motion_start"
	EventMotionEnd   = "motion_end"
	EventOnline      = "online"
	EventOffline     = "offline"
	// From the RTSP prober: the stream stopped or came back.
	EventCameraDown = "camera_down"
	EventCameraUp   = "camera_up"
)

// EventRecord is one motion or status event.
type EventRecord struct {
	Time     time.Time `json:"time"`
	Type     string    `json:"type"`
	Kind     string    `json:"kind"` // camera, board
	Site     string    `json:"site"`
	Device   string    `json:"device"`
	Zone     string    `json:"zone,omitempty"`
	Score    float64   `json:"score,omitempty"`
	Duration float64   `json:"duration_s,omitempty"` // motion_end, detection_end: how long it lasted
	Reason   string    `json:"reason,omitempty"`     // camera_down: why (timeout, unauthorized, ...)
	// Detections: the object's label, the zones it entered and its ID at
	// the source; Source is the input it came from (frigate/<name>).
	Label  string   `json:"label,omitempty"`
	Zones  []string `json:"zones,omitempty"`
	ID     string   `json:"id,omitempty"`
	Source string   `json:"source,omitempty"`
}

// HealthRecord is one RTSP probe result.
type HealthRecord struct {
	Time             time.Time
	Site, Camera     string
	Up               bool
	Reason           string
	FPS, BitrateBps  float64
	Width, Height    int
	Codec            string
	KeyframeInterval int
	ProbeSeconds     float64
	// Sample says the stream figures were measured by this probe (a
	// handshake only checks reachability).
	Sample bool
}
