package testenv

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// Clock is a fake clock for time-driven logic under test (retry back-off,
// flush intervals, staleness): its time moves only when the test calls
// Advance. Code under test takes its Now and After methods in place of
// time.Now and time.After.
//
// A test advances deterministically by first waiting until the code under
// test is blocked on After (WaitForWaiters), then moving the clock past the
// deadline it waits for: no real time has to pass, and nothing depends on
// how fast the machine is.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*clockWaiter
	// changed is closed (and replaced) whenever a waiter is added, so that
	// WaitForWaiters wakes without polling.
	changed chan struct{}
}

type clockWaiter struct {
	at time.Time
	ch chan time.Time
}

// NewClock returns a fake clock reading start.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start, changed: make(chan struct{})}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After is time.After on the fake clock: the channel receives the clock's
// time once Advance has moved it d or more past now. d <= 0 fires at once.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, &clockWaiter{at: c.now.Add(d), ch: ch})
	close(c.changed)
	c.changed = make(chan struct{})
	return ch
}

// Advance moves the clock forward by d and fires, in deadline order, every
// After whose deadline has been reached.
func (c *Clock) Advance(d time.Duration) {
	if d < 0 {
		panic("testenv.Clock: Advance with a negative duration")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	slices.SortStableFunc(c.waiters, func(a, b *clockWaiter) int { return a.at.Compare(b.at) })
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now // buffered: a waiter that gave up does not block Advance
	}
	clear(c.waiters[len(kept):])
	c.waiters = kept
}

// Waiters returns, in ascending order, how long each pending After still
// has to wait.
func (c *Clock) Waiters() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waitersLocked()
}

func (c *Clock) waitersLocked() []time.Duration {
	left := make([]time.Duration, len(c.waiters))
	for i, w := range c.waiters {
		left[i] = w.at.Sub(c.now)
	}
	slices.Sort(left)
	return left
}

// WaitForWaiters blocks until at least n calls to After are pending (not
// yet fired), failing the test after timeout of real time, and returns how
// long each pending After still has to wait, in ascending order. A pending
// After counts even if the goroutine that called it stopped listening: the
// code under test should not abandon them where a test counts on this.
func (c *Clock) WaitForWaiters(t testing.TB, n int, timeout time.Duration) []time.Duration {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if len(c.waiters) >= n {
			left := c.waitersLocked()
			c.mu.Unlock()
			return left
		}
		changed, have := c.changed, len(c.waiters)
		c.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("testenv.Clock: %d pending After calls after %v, want %d", have, timeout, n)
			return nil
		}
	}
}

// AdvanceToNext waits (up to timeout of real time) until an After is
// pending, then advances the clock exactly to the earliest deadline,
// firing it. It returns the amount the clock moved.
func (c *Clock) AdvanceToNext(t testing.TB, timeout time.Duration) time.Duration {
	t.Helper()
	d := c.WaitForWaiters(t, 1, timeout)[0]
	c.Advance(d)
	return d
}

// NoonZone returns a time zone in which it is now between 11:30 and
// 12:30: one of the IANA zones Etc/GMT+12 .. Etc/GMT-12 (whole-hour
// offsets; the sign is POSIX's, Etc/GMT-7 is UTC+7), so that it can also
// go in a config's timezone key and a browser's Intl. A test that computes
// "today" or "this month" at two moments (before and after scans, across a
// restart) in this zone cannot straddle a day or month boundary, whatever
// the hour it runs at; in the village's own zone it would fail near its
// midnight.
func NoonZone(t testing.TB) *time.Location {
	t.Helper()
	now := time.Now().UTC()
	sinceMidnight := time.Duration(now.Hour())*time.Hour + time.Duration(now.Minute())*time.Minute
	east := int((12*time.Hour - sinceMidnight).Round(time.Hour).Hours()) // -12..+12
	name := "Etc/GMT"
	if east != 0 {
		name = fmt.Sprintf("Etc/GMT%+d", -east)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("loading time zone %s: %v", name, err)
	}
	return loc
}
