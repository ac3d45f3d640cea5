package state

import (
	"time"

	"villagehub/hub/event"
)

// Bounds on what one QR board report may add (issue 12): a total of
// 9223372036854775807 under a new boot once added 9.2e18 scans, and a
// report stamped 2020 added scans to January 2020. A QR board is scanned
// by people with phones; tens of thousands of scans an hour would be a
// queue of people scanning non-stop, so the defaults are far above any
// real board and far below anything that overflows.
const (
	DefaultMaxQRPerReport = 10_000
	DefaultMaxQRPerHour   = 360_000
	DefaultMaxPast        = 48 * time.Hour
)

// qrBounds are the limits applied to QR reports.
type qrBounds struct {
	perReport, perHour int64
	maxPast            time.Duration
}

// applyBounded is apply within the bounds: a report whose ts is older than
// maxPast before it was received is stale (it would rewrite a period the
// village may already have reported), and one that would add more than
// perReport scans, or take the board over perHour scans in the hour it was
// received, is implausible. Either is rejected and changes nothing: the
// counter is restored, so a forged huge total cannot raise a boot's
// largest total and swallow the board's real counts after it.
func (c *qrCounter) applyBounded(boot []byte, total int64, ts time.Time, hasTS bool, received time.Time, b qrBounds) (int64, event.Reason) {
	if hasTS && ts.Before(received.Add(-b.maxPast)) {
		return 0, event.StaleTS
	}
	var saved [maxBoots]epoch
	n, clock := copy(saved[:], c.Epochs), c.Clock
	inc := c.apply(boot, total, ts, hasTS)
	hour := received.Unix() / 3600
	if hour != c.hour {
		c.hour, c.hourN = hour, 0
	}
	if inc > b.perReport || inc > b.perHour-c.hourN {
		c.Epochs = c.Epochs[:n]
		copy(c.Epochs, saved[:n])
		c.Clock = clock
		return 0, event.Implausible
	}
	c.hourN += inc
	return inc, event.OK
}

// maxBoots is how many boots (or, for boards that send no boot, counting
// epochs) a board remembers. The contract asks for at least 8.
const maxBoots = 8

// epoch is one run of a board's counter: a boot, or for a board that sends
// no boot, the span between two resets.
type epoch struct {
	Boot  string
	Max   int64
	Start time.Time // first ts (boot-less epochs)
	Last  time.Time // newest ts seen (boot-less epochs)
	Used  uint64    // LRU clock: larger = used more recently
}

// qrCounter applies the contract's idempotent-count rules to one board's
// cumulative totals. It is the persisted part of a board's QR state.
type qrCounter struct {
	Epochs []epoch
	Clock  uint64
	// Scans added in the hour (unix hours, by time received) hour; not
	// persisted: a restart starts a new allowance.
	hour, hourN int64
}

// apply returns how many new scans a report adds. boot is empty for boards
// that send none; hasTS says whether ts came from the payload.
//
// Rules (CONTRACT.md, "QR counts are idempotent"):
//   - within a boot, count the increase over the largest total seen in it;
//   - a boot not seen before is a counter reset: its total counts from zero;
//   - a late message from an earlier (remembered) boot counts only its
//     increase over that boot's largest total;
//   - without a boot, a smaller total with a newer ts starts a new epoch (a
//     reset); a smaller total with an older or equal ts, or no ts, adds
//     nothing. A late message whose ts falls in an earlier epoch counts
//     against that epoch, so reordering around a reset never double counts.
func (c *qrCounter) apply(boot []byte, total int64, ts time.Time, hasTS bool) int64 {
	c.Clock++
	if len(boot) > 0 {
		for i := range c.Epochs {
			e := &c.Epochs[i]
			if e.Boot == string(boot) { // no allocation: compiler-optimised comparison
				e.Used = c.Clock
				return e.raise(total)
			}
		}
		c.add(epoch{Boot: string(boot), Max: total, Used: c.Clock})
		return total
	}
	if !hasTS {
		ts = time.Time{} // the time received says nothing about the board's counter
	}
	cur := c.currentBootless()
	if cur < 0 {
		c.add(epoch{Max: total, Start: ts, Last: ts, Used: c.Clock})
		return total
	}
	e := &c.Epochs[cur]
	if hasTS && !e.Start.IsZero() && ts.Before(e.Start) {
		// A late report from before the current epoch began: count it
		// against the epoch it belongs to, never as a reset.
		if old := c.bootlessAt(ts); old >= 0 {
			c.Epochs[old].Used = c.Clock
			return c.Epochs[old].raise(total)
		}
		return 0 // from an epoch we no longer remember
	}
	e.Used = c.Clock
	switch {
	case total > e.Max:
		if hasTS && ts.After(e.Last) {
			e.Last = ts
		}
		return e.raise(total)
	case total < e.Max && hasTS && ts.After(e.Last):
		c.add(epoch{Max: total, Start: ts, Last: ts, Used: c.Clock})
		return total
	default:
		if hasTS && ts.After(e.Last) {
			e.Last = ts
		}
		return 0
	}
}

func (e *epoch) raise(total int64) int64 {
	if total <= e.Max {
		return 0
	}
	inc := total - e.Max
	e.Max = total
	return inc
}

// currentBootless is the boot-less epoch that began last, or -1.
func (c *qrCounter) currentBootless() int {
	best := -1
	for i := range c.Epochs {
		e := &c.Epochs[i]
		if e.Boot != "" {
			continue
		}
		if best < 0 || e.Start.After(c.Epochs[best].Start) ||
			(e.Start.Equal(c.Epochs[best].Start) && e.Used > c.Epochs[best].Used) {
			best = i
		}
	}
	return best
}

// bootlessAt is the boot-less epoch whose span holds ts: the latest one
// that began at or before ts.
func (c *qrCounter) bootlessAt(ts time.Time) int {
	best := -1
	for i := range c.Epochs {
		e := &c.Epochs[i]
		if e.Boot != "" || e.Start.After(ts) {
			continue
		}
		if best < 0 || e.Start.After(c.Epochs[best].Start) {
			best = i
		}
	}
	return best
}

// add appends e, evicting the least recently used epoch past maxBoots.
func (c *qrCounter) add(e epoch) {
	if len(c.Epochs) < maxBoots {
		c.Epochs = append(c.Epochs, e)
		return
	}
	lru := 0
	for i := range c.Epochs {
		if c.Epochs[i].Used < c.Epochs[lru].Used {
			lru = i
		}
	}
	c.Epochs[lru] = e
}
