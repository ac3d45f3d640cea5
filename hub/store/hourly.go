package store

import "sync"

// hourlyCache holds the latest committed value of the hourly counts of the
// two newest hours written, so that a busy hub's commit adds to a count
// with one B+tree Put instead of a Get and a Put (the Gets, with the sort
// that kept them in key order, were 5 % of the hub's CPU in the
// embedded-broker bench's profile). Only committed values enter it: a
// transaction that fails empties it, and Prune (which deletes counts)
// empties it too. Its size is bounded by two hours of boards x kinds.
type hourlyCache struct {
	mu    sync.Mutex
	hours map[uint64]map[string]uint64 // hour -> key -> value
	// pending are the values of the transaction in progress.
	pending map[string]uint64
}

// hourOf is the hour in an hourly key (hourKey: ... hour(8) code(1)).
func hourOf(k string) uint64 {
	var h uint64
	for i := len(k) - 9; i < len(k)-1; i++ {
		h = h<<8 | uint64(k[i])
	}
	return h
}

// begin locks the cache for one commit's transaction.
func (c *hourlyCache) begin() {
	c.mu.Lock()
	if c.pending == nil {
		c.pending = map[string]uint64{}
	}
	clear(c.pending)
}

// get is k's committed value, if the cache has it.
func (c *hourlyCache) get(k string) (uint64, bool) {
	v, ok := c.hours[hourOf(k)][k]
	return v, ok
}

// put records the value k will have if the transaction commits.
func (c *hourlyCache) put(k string, v uint64) { c.pending[k] = v }

// end takes the pending values in if the transaction committed, or forgets
// everything if it did not, and unlocks.
func (c *hourlyCache) end(committed bool) {
	defer c.mu.Unlock()
	if !committed {
		c.hours = nil
		return
	}
	if c.hours == nil {
		c.hours = map[uint64]map[string]uint64{}
	}
	for k, v := range c.pending {
		h := hourOf(k)
		m := c.hours[h]
		if m == nil {
			if len(c.hours) == 2 {
				// A third hour: keep the newest two (a late report for an
				// older hour reads the store).
				old := h
				for x := range c.hours {
					old = min(old, x)
				}
				if old == h {
					continue
				}
				delete(c.hours, old)
			}
			m = map[string]uint64{}
			c.hours[h] = m
		}
		m[k] = v
	}
}
