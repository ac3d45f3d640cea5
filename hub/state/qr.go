package state

import "time"

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
