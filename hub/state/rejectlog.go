package state

import (
	"strings"
	"time"
)

// rejectLog limits "rejected message" log lines to one per device topic per
// interval, with a bounded memory: a flood of distinct bad topics can't
// grow it past max entries (past that, nothing more is logged until the
// interval turns over).
type rejectLog struct {
	interval time.Duration
	max      int
	start    time.Time
	seen     map[string]struct{}
}

func newRejectLog(interval time.Duration, max int) *rejectLog {
	return &rejectLog{interval: interval, max: max, seen: map[string]struct{}{}}
}

func (l *rejectLog) allow(topic string, now time.Time) bool {
	if now.Sub(l.start) >= l.interval {
		clear(l.seen)
		l.start = now
	}
	// One line per device: the topic without its last level.
	if i := strings.LastIndexByte(topic, '/'); i > 0 {
		topic = topic[:i]
	}
	if _, ok := l.seen[topic]; ok || len(l.seen) >= l.max {
		return false
	}
	l.seen[strings.Clone(topic)] = struct{}{}
	return true
}
