package state

import (
	"sync"
	"time"

	"villagehub/hub/ingest"
	"villagehub/hub/scan"
)

// A printed-code scan is counted on the HTTP request path, which must not
// wait for the pipeline (RecordScan). When the ingest queue is full (a
// disk stall, a store that fails, a crowd faster than the commits) the
// scan is not dropped: it is added to a tally of counts per board, class
// and second, which the pipeline applies, in order with the queue, when it
// reaches the one marker message the tally keeps queued. The tally holds
// counts, not scans, so it stays small however many arrive: up to
// maxTallyKeys (board, class, second) keys, about 20 minutes of a full
// queue for a board that gets humans, bots and rate-limited clients every
// second. Only past that is a scan dropped and counted as dropped.
//
// What a tallied scan gives up: its time is kept to the second (the
// hourly counts, today's count and the InfluxDB points are per second or
// coarser), and it is applied after the messages queued before it.

// maxTallyKeys bounds the tally (about 100 bytes a key).
const maxTallyKeys = 4096

type tallyKey struct {
	site, board string
	class       scan.Class
	at          int64 // Unix second
}

type tallyCount struct{ n, unique int64 }

type scanTally struct {
	mu      sync.Mutex
	counts  map[tallyKey]tallyCount
	orphans uint64
	queued  bool // the marker is in the queue
}

// add tallies sc and reports whether it did, and whether the caller must
// queue the marker (the tally was empty).
func (t *scanTally) add(sc *scan.Scan) (ok, mark bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if sc.Class == scan.ClassOrphan {
		t.orphans++
	} else {
		k := tallyKey{sc.Site, sc.Board, sc.Class, sc.At.Unix()}
		c, found := t.counts[k]
		if !found && len(t.counts) >= maxTallyKeys {
			return false, false
		}
		if t.counts == nil {
			t.counts = make(map[tallyKey]tallyCount)
		}
		c.n++
		if sc.Unique {
			c.unique++
		}
		t.counts[k] = c
	}
	mark = !t.queued
	t.queued = true
	return true, mark
}

// take empties the tally: the next add queues a new marker.
func (t *scanTally) take() (map[tallyKey]tallyCount, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, o := t.counts, t.orphans
	t.counts, t.orphans, t.queued = nil, 0, false
	return c, o
}

// tallyScan counts sc in the tally when the queue had no room; false if
// the tally is full too (or sc is a gateway scan, which is counted once
// by its ID and cannot be merged).
func (s *State) tallyScan(sc *scan.Scan) bool {
	if sc.ID != "" {
		return false
	}
	ok, mark := s.tally.add(sc)
	if mark {
		s.cfg.Queue.Force(ingest.Message{Local: &ingest.Local{Call: s.applyTally}, Received: s.now()})
	}
	return ok
}

// applyTally applies the tallied scans (the marker's Call: the pipeline
// runs it with s.mu held).
func (s *State) applyTally() {
	counts, orphans := s.tally.take()
	s.orphans += orphans
	for k, c := range counts {
		s.applyScans(k.site, k.board, k.class, time.Unix(k.at, 0).UTC(), c.n, c.unique, false)
	}
}
