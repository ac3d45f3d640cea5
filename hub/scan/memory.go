package scan

import (
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// memory is what the handler remembers about clients: the last human scan
// per phone+board (uniqueness) and a token bucket per client (rate limit),
// each capped at MaxClients, least recently seen forgotten first.
//
// It is split into shards by key, each with its own lock and LRUs, because
// one lock and one LRU list, written by every request, made the requests
// of two CPUs wait on each other and pass the same cache lines back and
// forth: in process, two CPUs scanned no faster than one
// (BenchmarkGatewayScan/fasthttp-parallel, docs/performance.md). Keys are
// salted SHA-256 hashes, so their first byte spreads them evenly. Below
// shardMin clients per shard there is one shard, and "least recently seen
// first" holds exactly; above, it holds per shard, each shard keeping its
// share of MaxClients.
type memory struct {
	shards []memShard
	mask   byte
}

type memShard struct {
	mu      sync.Mutex
	seen    *simplelru.LRU[clientKey, int64] // last human scan, unix ns, per phone+board
	buckets *simplelru.LRU[clientKey, *rate.Limiter]
	_       [64]byte // its own cache line: the next shard's lock is another CPU's
}

const (
	memShards = 16
	shardMin  = 1024
)

func newMemory(maxClients int) (*memory, error) {
	n := 1
	if maxClients >= memShards*shardMin {
		n = memShards
	}
	m := &memory{shards: make([]memShard, n), mask: byte(n - 1)}
	per := (maxClients + n - 1) / n
	for i := range m.shards {
		var err error
		s := &m.shards[i]
		if s.seen, err = simplelru.NewLRU[clientKey, int64](per, nil); err != nil {
			return nil, err
		}
		if s.buckets, err = simplelru.NewLRU[clientKey, *rate.Limiter](per, nil); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *memory) shard(k clientKey) *memShard { return &m.shards[k[0]&m.mask] }

// bucket returns k's token bucket, made with limit and burst if k has none.
func (m *memory) bucket(k clientKey, limit rate.Limit, burst int) *rate.Limiter {
	s := m.shard(k)
	s.mu.Lock()
	lim, ok := s.buckets.Get(k)
	if !ok {
		lim = rate.NewLimiter(limit, burst)
		s.buckets.Add(k, lim)
	}
	s.mu.Unlock()
	return lim
}

// swapSeen records t as k's last scan and returns the previous one.
func (m *memory) swapSeen(k clientKey, t int64) (last int64, ok bool) {
	s := m.shard(k)
	s.mu.Lock()
	last, ok = s.seen.Get(k)
	s.seen.Add(k, t)
	s.mu.Unlock()
	return last, ok
}

// purge forgets everything.
func (m *memory) purge() {
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		s.seen.Purge()
		s.buckets.Purge()
		s.mu.Unlock()
	}
}

// lens says how many phone+board pairs and clients are remembered.
func (m *memory) lens() (seen, buckets int) {
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		seen += s.seen.Len()
		buckets += s.buckets.Len()
		s.mu.Unlock()
	}
	return seen, buckets
}
