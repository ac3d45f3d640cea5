package ingest

// Reason says why a message was rejected. The set is small and fixed so it
// can be a metric label.
type Reason uint8

const (
	OK Reason = iota
	TooLarge
	BadUTF8
	BadJSON
	BadType
	BadValue
	BadTopic
	BadID
	NegativeTotal
	FutureTS
	BadTS
	// CapReached is decided by hub/state (auto-registration cap), not by the
	// decoder; it lives here so every rejection reason is in one list.
	CapReached
	// Implausible and StaleTS are decided by hub/state (QR bounds): a QR
	// report adding more scans than a board can have had, and a report
	// older than the horizon (limits.max_past).
	Implausible
	StaleTS
	numReasons
)

var reasonNames = [numReasons]string{
	OK:            "ok",
	TooLarge:      "too_large",
	BadUTF8:       "bad_utf8",
	BadJSON:       "bad_json",
	BadType:       "bad_type",
	BadValue:      "bad_value",
	BadTopic:      "bad_topic",
	BadID:         "bad_id",
	NegativeTotal: "negative_total",
	FutureTS:      "future_ts",
	BadTS:         "bad_ts",
	CapReached:    "cap_reached",
	Implausible:   "implausible",
	StaleTS:       "stale_ts",
}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons lists every rejection reason (OK excluded), for metrics that want
// to expose zero-valued series.
func Reasons() []Reason {
	rs := make([]Reason, 0, numReasons-1)
	for r := Reason(1); r < numReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}

// MsgKind classifies a message by its topic, for per-kind counters.
type MsgKind uint8

const (
	KindUnknown MsgKind = iota
	KindMotion
	KindCameraStatus
	KindQRScans
	KindBoardStatus
	numKinds
)

var kindNames = [numKinds]string{
	KindUnknown:      "unknown",
	KindMotion:       "motion",
	KindCameraStatus: "camera_status",
	KindQRScans:      "qr_scans",
	KindBoardStatus:  "board_status",
}

func (k MsgKind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "unknown"
}

// MsgKinds lists every message kind.
func MsgKinds() []MsgKind {
	ks := make([]MsgKind, 0, numKinds)
	for k := MsgKind(0); k < numKinds; k++ {
		ks = append(ks, k)
	}
	return ks
}
