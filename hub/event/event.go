// Package event holds the typed events that flow from the edges of the hub
// (MQTT ingest, the RTSP prober, printed QR scans) into hub/state. Parsing
// happens once, at the edge; nothing downstream looks at topics or JSON again.
package event

import (
	"time"
)

// Kind is the kind of device an event is about.
type Kind uint8

const (
	Camera Kind = iota + 1
	Board
)

func (k Kind) String() string {
	switch k {
	case Camera:
		return "camera"
	case Board:
		return "board"
	}
	return "unknown"
}

// Type says what happened.
type Type uint8

const (
	// Motion: a camera's motion started (Active) or ended.
	Motion Type = iota + 1
	// Status: a device said it is online or offline (MQTT status topic).
	Status
	// QRTotal: a QR board reported its cumulative scan count since Boot.
	QRTotal
)

func (t Type) String() string {
	switch t {
	case Motion:
		return "motion"
	case Status:
		return "status"
	case QRTotal:
		return "qr_total"
	}
	return "unknown"
}

// Event is one decoded device message. It is a plain value (no interface,
// no pointers besides strings) so that passing it around costs no allocation.
//
// Site and Device usually point into the MQTT topic string; whoever keeps
// them beyond the life of the message must clone them.
type Event struct {
	Type   Type
	Kind   Kind
	Site   string
	Device string

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
