package store

import (
	"encoding/binary"
	"sync"
	"time"
)

// hourSlot names one hourly count: one kind of count (code) of a board in
// one hour (hours since 1970, UTC). Its strings are the batch's, shared,
// so summing a batch's scans and keeping the newest counts allocates no
// key; the B+tree key (appendKey) is built only for the Put.
type hourSlot struct {
	site, board string
	hour        uint64
	code        byte
}

func slotOf(site, board string, t time.Time, code byte) hourSlot {
	return hourSlot{site: site, board: board, hour: uint64(t.Unix() / 3600), code: code}
}

// appendKey appends the slot's key in the hourly bucket: site 0x00 board
// 0x00 hour(8, big endian) code(1), so a board's hours are contiguous and
// sorted by time.
func (k hourSlot) appendKey(b []byte) []byte {
	b = append(b, k.site...)
	b = append(b, 0)
	b = append(b, k.board...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, k.hour)
	return append(b, k.code)
}

// hourlyCache holds the latest committed value of the hourly counts of the
// two newest hours written, so that a busy hub's commit adds to a count
// with one B+tree Put instead of a Get and a Put (the Gets, with the sort
// that kept them in key order, were 5 % of the hub's CPU in the
// embedded-broker bench's profile). Only committed values enter it: a
// transaction that fails empties it, and Prune (which deletes counts)
// empties it too. Its size is bounded by two hours of boards x kinds.
//
// It also holds one commit's working space, reused from commit to commit
// under its lock: the batch's sums per slot, the keys and values handed to
// bbolt (which must stay valid until the transaction ends), and the values
// the transaction will have written.
type hourlyCache struct {
	mu    sync.Mutex
	hours map[uint64]map[hourSlot]uint64 // hour -> slot -> value

	sums    map[hourSlot]int64
	arena   []byte // keys and values of the transaction's Puts
	pending []slotValue
}

type slotValue struct {
	k hourSlot
	v uint64
}

// begin locks the cache for one commit's transaction.
func (c *hourlyCache) begin() {
	c.mu.Lock()
	if c.sums == nil {
		c.sums = map[hourSlot]int64{}
	}
	clear(c.sums)
	clear(c.pending) // drop the strings of the batch before
	c.pending, c.arena = c.pending[:0], c.arena[:0]
}

// add adds n to the slot's sum in this commit.
func (c *hourlyCache) add(k hourSlot, n int64) {
	if n != 0 {
		c.sums[k] += n
	}
}

// get is k's committed value, if the cache has it.
func (c *hourlyCache) get(k hourSlot) (uint64, bool) {
	v, ok := c.hours[k.hour][k]
	return v, ok
}

// kv returns k's key and v's 8 bytes, in the arena: valid until the next
// begin. (Slices taken before the arena grows keep its older array.)
func (c *hourlyCache) kv(k hourSlot, v uint64) (key, val []byte) {
	n := len(c.arena)
	c.arena = k.appendKey(c.arena)
	m := len(c.arena)
	c.arena = binary.BigEndian.AppendUint64(c.arena, v)
	return c.arena[n:m:m], c.arena[m:len(c.arena):len(c.arena)]
}

// put records the value k will have if the transaction commits.
func (c *hourlyCache) put(k hourSlot, v uint64) { c.pending = append(c.pending, slotValue{k, v}) }

// end takes the pending values in if the transaction committed, or forgets
// everything if it did not, and unlocks.
func (c *hourlyCache) end(committed bool) {
	defer c.mu.Unlock()
	if !committed {
		c.hours = nil
		return
	}
	if c.hours == nil {
		c.hours = map[uint64]map[hourSlot]uint64{}
	}
	// The pending values come grouped by nothing in particular; the last
	// hour's map is kept at hand, most of a busy commit being one hour.
	var (
		lastHour uint64
		last     map[hourSlot]uint64
	)
	for _, p := range c.pending {
		h := p.k.hour
		if last == nil || h != lastHour {
			m := c.hours[h]
			if m == nil {
				if len(c.hours) == 2 {
					// A third hour: keep the newest two (a late report for
					// an older hour reads the store).
					old := h
					for x := range c.hours {
						old = min(old, x)
					}
					if old == h {
						continue
					}
					delete(c.hours, old)
				}
				m = map[hourSlot]uint64{}
				c.hours[h] = m
			}
			last, lastHour = m, h
		}
		last[p.k] = p.v
	}
}
