package state

import (
	"strings"
	"time"

	"villagehub/hub/event"
)

// rejectLog limits "rejected message" log lines to one per device and
// reason per interval (four different mistakes of one device in a minute
// are four lines; the same mistake repeated is one), with a bounded memory:
// a flood of distinct bad topics can't grow it past max entries (past
// that, nothing more is logged until the interval turns over).
type rejectLog struct {
	interval time.Duration
	max      int
	start    time.Time
	seen     map[string]struct{}
}

func newRejectLog(interval time.Duration, max int) *rejectLog {
	return &rejectLog{interval: interval, max: max, seen: map[string]struct{}{}}
}

func (l *rejectLog) allow(topic string, r event.Reason, now time.Time) bool {
	if now.Sub(l.start) >= l.interval {
		clear(l.seen)
		l.start = now
	}
	// The device: the topic without its last level.
	if i := strings.LastIndexByte(topic, '/'); i > 0 {
		topic = topic[:i]
	}
	key := topic + "\x00" + r.String()
	if _, ok := l.seen[key]; ok || len(l.seen) >= l.max {
		return false
	}
	l.seen[key] = struct{}{}
	return true
}

// expected says, for a rejected message of kind, what the hub expected
// instead, so the log line tells a firmware author what to fix (the
// payload formats are in README's topic table).
func expected(kind event.MsgKind, r event.Reason) string {
	switch r {
	case event.TooLarge:
		return "payload too large (limits.max_payload_bytes)"
	case event.BadUTF8:
		return "payload must be UTF-8 text"
	case event.BadTopic:
		return "topic must be <prefix>/<site>/camera/<id>/motion|status or <prefix>/<site>/qr/<id>/scans|status"
	case event.BadID:
		return "site and device IDs must match ^[a-z0-9][a-z0-9_-]{0,63}$"
	case event.FutureTS:
		return "ts must not be in the future (check the device's clock)"
	case event.BadTS:
		return "ts must be RFC 3339 text or unix milliseconds"
	case event.RejectedDevice:
		return "an administrator rejected this device: add it to the config to accept it"
	case event.CapReached:
		return "too many auto-registered devices: add this one to the config"
	case event.NegativeTotal:
		return "total must be a non-negative integer"
	}
	switch kind {
	case event.KindQRScans:
		switch r {
		case event.BadJSON:
			return `payload must be JSON like {"total":5,"boot":"b1"}`
		case event.BadType:
			return "total must be a non-negative integer, boot a string or number, the payload a JSON object"
		case event.BadValue:
			return "total is required; boot at most 64 bytes; battery 0-100, rssi -150..0"
		}
	case event.KindMotion:
		switch r {
		case event.BadJSON, event.BadValue:
			return `payload must be ON, OFF or JSON like {"active":true,"zone":"yard","score":0.9}`
		case event.BadType:
			return "active must be true or false, zone a string, score a number"
		}
	case event.KindCameraStatus:
		return "payload must be online or offline"
	case event.KindBoardStatus:
		return `payload must be online, offline or JSON like {"status":"online","battery":87,"rssi":-67} (battery 0-100, rssi -150..0)`
	}
	return "see the payload formats in README's topic table"
}
