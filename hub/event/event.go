// Package event holds the typed events that flow from the hub's inputs
// (hub/input: the MQTT contract, Frigate, ...) into hub/state, and the
// tables of kinds (kind.go) and rejection reasons (reason.go) that every
// package counting per kind or per reason is sized from. An input decodes
// a message once; nothing downstream looks at topics or JSON again.
package event

import (
	"time"
)

// Type says what happened.
type Type uint8

const (
	// Motion: a camera's motion started (Active) or ended.
	Motion Type = iota + 1
	// Status: a device said it is online or offline (MQTT status topic).
	Status
	// QRTotal: a QR board reported its cumulative scan count since Boot.
	QRTotal
	// Detection: an object detection on a camera (Detection is set).
	Detection
	// CameraStats: a camera's processing figures (Stats is set).
	CameraStats
	// InputStatus: an input itself (a Frigate) went online or offline;
	// Source names it, Online says which.
	InputStatus
)

func (t Type) String() string {
	switch t {
	case Motion:
		return "motion"
	case Status:
		return "status"
	case QRTotal:
		return "qr_total"
	case Detection:
		return "detection"
	case CameraStats:
		return "camera_stats"
	case InputStatus:
		return "input_status"
	}
	return "unknown"
}

// Event is one decoded device message. It is a plain value (no interface;
// the rare large payloads behind pointers) so that passing it around costs
// no allocation.
//
// Site, Device and the payload pointers usually point into the MQTT topic
// and the input's buffers; whoever keeps them beyond the life of the
// message must copy them.
type Event struct {
	Type   Type
	Kind   Kind
	Site   string
	Device string
	// Source names the input instance that produced the event when it is
	// not the device itself ("frigate/nvr"); "" for the MQTT contract.
	Source string

	// Time is when the event happened: the payload's ts if it had one,
	// otherwise Received. HasTS tells which.
	Time     time.Time
	Received time.Time
	HasTS    bool

	// Motion
	Active bool
	Zone   string
	Score  float64

	// Status
	Online bool

	// QRTotal. Boot is empty for boards that send none. BootBytes holds the
	// decoder's view of it without an allocation; it is valid only while the
	// event is being applied.
	Total     int64
	BootBytes []byte

	// A board's health, from its status or scans payload when it sent
	// them: battery level in percent (0-100) and signal strength in dBm
	// (-150..0). HasBattery and HasRSSI say whether it did.
	Battery, RSSI       float64
	HasBattery, HasRSSI bool

	// Detection and CameraStats payloads.
	Detection *DetectionInfo
	Stats     *Stats
}

// Phase is where a detection is in its life.
type Phase uint8

const (
	PhaseNew Phase = iota + 1
	PhaseUpdate
	PhaseEnd
)

// DetectionInfo is one object detection (a Frigate event): new when first
// seen, updated while tracked, ended with its end time.
type DetectionInfo struct {
	// ID identifies the detection at its source; the hub counts each ID
	// once, whatever is redelivered.
	ID    string
	Phase Phase
	Label string // person, car, ...
	// Score is the best score seen (Frigate's top_score, else score).
	Score float64
	// Zones are the zones the object entered.
	Zones      []string
	Start, End time.Time // End is zero until the detection ended
}

// Stats are a camera's processing figures, frames per second.
type Stats struct {
	CameraFPS, ProcessFPS, SkippedFPS, DetectionFPS float64
}

// ValidID reports whether s is a valid site, camera or board ID:
// ^[a-z0-9][a-z0-9_-]{0,63}$. Everything else is rejected at the edge so it
// never becomes a metric label or a store key.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}
