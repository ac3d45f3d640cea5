package event

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
	// CapReached is decided by hub/state (auto-registration cap), not by an
	// input; it lives here so every rejection reason is in one list.
	CapReached
	// Implausible and StaleTS are decided by hub/state (QR bounds): a QR
	// report adding more scans than a board can have had, and a report
	// older than the horizon (limits.max_past).
	Implausible
	StaleTS
	// RejectedDevice is decided by hub/state: the device was rejected by an
	// administrator (State.Forget) and is not in the config.
	RejectedDevice
	// NumReasons sizes per-reason arrays. Keep it last.
	NumReasons
)

var reasonNames = [NumReasons]string{
	OK:             "ok",
	TooLarge:       "too_large",
	BadUTF8:        "bad_utf8",
	BadJSON:        "bad_json",
	BadType:        "bad_type",
	BadValue:       "bad_value",
	BadTopic:       "bad_topic",
	BadID:          "bad_id",
	NegativeTotal:  "negative_total",
	FutureTS:       "future_ts",
	BadTS:          "bad_ts",
	CapReached:     "cap_reached",
	Implausible:    "implausible",
	StaleTS:        "stale_ts",
	RejectedDevice: "rejected_device",
}

func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons lists every rejection reason (OK excluded), for metrics that want
// to expose zero-valued series.
func Reasons() []Reason {
	rs := make([]Reason, 0, NumReasons-1)
	for r := Reason(1); r < NumReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}
