package state

import (
	"sync"
	"time"
)

// A Raspberry Pi has no real-time clock: after a power cut it boots at an
// old time (1970, or the time fake-hwclock saved at shutdown) until NTP
// answers, which on a village link can take hours; then the clock jumps
// forward. NTP can also step a fast clock back by minutes. docs/time.md
// has the decisions; this is the hub's clock that implements them:
//
//   - it never goes back: a step back holds it at the last time it gave
//     until the wall clock catches up (durations across a step back of d
//     are short by at most d, never negative);
//   - it never runs below its floor: the latest time the store remembers
//     (the devices' last seen/report/motion/status times), and no earlier
//     than MinTrustedTime. Below the floor (the Pi booted at an old time) it
//     runs on from the floor by the monotonic clock, so events keep their
//     order and spacing, dated early by the length of the power cut rather
//     than in 1970;
//   - a step forward (NTP arrives, +years) is taken at once.

// MinTrustedTime is the floor of an empty store: no time the hub uses is
// earlier. (A release older than a year still dates nothing in 1970.)
var MinTrustedTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// hubClock is the clock described above.
type hubClock struct {
	wall func() time.Time     // the system clock (Config.Now)
	mono func() time.Duration // a monotonic clock: time since some start

	mu    sync.Mutex
	floor time.Time     // the store's latest time, or MinTrustedTime
	mono0 time.Duration // mono() when the floor was set
	last  time.Time     // the latest time handed out
	// Step detection: the last wall and monotonic readings, and how many
	// times the wall clock moved by more than stepTolerance against the
	// monotonic clock between two readings.
	lastWall time.Time
	lastMono time.Duration
	steps    uint32
	noMono   bool
}

// stepTolerance separates a clock step (NTP setting the time) from slewing
// and from scheduling delays between two readings.
const stepTolerance = 2 * time.Second

func newHubClock(wall func() time.Time, mono func() time.Duration) *hubClock {
	c := &hubClock{wall: wall, mono: mono}
	if mono == nil {
		// An injected wall clock without a monotonic one (tests): no step
		// detection, and below the floor the time stays at the floor.
		c.noMono = true
		c.mono = func() time.Duration { return 0 }
	}
	c.mono0 = c.mono()
	return c
}

// raiseFloor lifts the floor to t (a time the store remembers).
func (c *hubClock) raiseFloor(t time.Time) {
	c.mu.Lock()
	if t.After(c.floor) {
		c.floor, c.mono0 = t, c.mono()
	}
	c.mu.Unlock()
}

// now is the hub's time.
func (c *hubClock) now() time.Time { return c.trust(c.wall()) }

// receipts is the clock as it stands for one batch of messages. A
// message's time of receipt (taken by the broker from the system clock) is
// trusted as it is above the floor: messages may be applied a little out
// of the order they were received in. Below the floor it is the hub's now.
// Taken once per batch, not per message: the two clock readings and the
// lock per message were 4 % of the hub's CPU in the embedded-broker
// bench's profile (docs/performance.md).
type receipts struct{ now, floor time.Time }

func (c *hubClock) receipts() receipts {
	now := c.now() // also notices a clock step before the batch applies
	c.mu.Lock()
	defer c.mu.Unlock()
	return receipts{now: now, floor: c.floor}
}

// received is t as the hub trusts it.
func (r receipts) received(t time.Time) time.Time {
	if t.Before(r.floor) {
		return r.now
	}
	return t
}

// monoSteps is the monotonic clock now and the number of clock steps seen.
func (c *hubClock) monoSteps() (time.Duration, uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mono(), c.steps
}

// trust turns a wall-clock reading into the hub's time.
func (c *hubClock) trust(t time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.mono()
	if w := t.Round(0); !c.noMono { // Round(0): the wall reading alone
		if !c.lastWall.IsZero() {
			if off := w.Sub(c.lastWall) - (m - c.lastMono); off > stepTolerance || off < -stepTolerance {
				c.steps++
			}
		}
		c.lastWall, c.lastMono = w, m
	}
	if t.Before(c.floor) {
		t = c.floor.Add(m - c.mono0)
	}
	if t.Before(c.last) {
		return c.last
	}
	c.last = t
	return t
}

// raiseFloorFromDevices lifts the clock's floor to the latest time a device
// was seen. Only LastSeen, the hub's own time of receipt, counts: a
// device's ts may be up to a day ahead (MaxFuture) and must not move the
// hub's clock.
func (s *State) raiseFloorFromDevices() {
	for _, t := range s.tables {
		if t != nil {
			t.eachLastSeen(s.clk.raiseFloor)
		}
	}
}

// Now is the hub's time (safe for concurrent use): the alert engine runs on
// it too, so that an alert's `for` and downtime are measured on the same
// clock as the device times they compare with.
func (s *State) Now() time.Time { return s.clk.now() }
