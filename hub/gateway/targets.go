package gateway

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"villagehub/hub/scan"
)

// Place is where a village hub sits (the hub's place: IDs and display
// names). The IDs label the gateway's metrics and InfluxDB points.
type Place struct {
	Province string            `json:"province,omitempty" yaml:"province"`
	District string            `json:"district,omitempty" yaml:"district"`
	Commune  string            `json:"commune,omitempty" yaml:"commune"`
	Village  string            `json:"village,omitempty" yaml:"village"`
	Names    map[string]string `json:"names,omitempty" yaml:"names"`
}

// TargetMessage is what a village hub publishes, retained, on
// <prefix>/_gateway/<village>/<board> for each of its boards; an empty
// retained message removes the board.
type TargetMessage struct {
	Target string `json:"target"`
	Name   string `json:"name,omitempty"`
	Site   string `json:"site"`
	Hub    string `json:"hub,omitempty"`
	Place  Place  `json:"place"`
	// Updated is when the hub published it (informational).
	Updated time.Time `json:"updated,omitzero"`
}

// Target is one board the gateway redirects for.
type Target struct {
	Village, Board string
	TargetMessage
	m *targetMetrics // nil in the cache file
}

func (t *Target) key() string { return t.Village + "/" + t.Board }

// validate checks a target message for village/board. Everything that
// becomes a label, a tag or a topic is an ID; the target is an absolute
// http(s) URL.
func (m *TargetMessage) validate(village, board string) error {
	if !idRe.MatchString(village) || !idRe.MatchString(board) {
		return fmt.Errorf("village and board must be IDs")
	}
	if !idRe.MatchString(m.Site) {
		return fmt.Errorf("site %q is not an ID", m.Site)
	}
	if m.Hub != "" && !idRe.MatchString(m.Hub) {
		return fmt.Errorf("hub is not an ID")
	}
	if m.Place.Village != "" && m.Place.Village != village {
		return fmt.Errorf("place.village %q is not the topic's village %q", m.Place.Village, village)
	}
	for _, id := range []string{m.Place.Province, m.Place.District, m.Place.Commune} {
		if id != "" && !idRe.MatchString(id) {
			return fmt.Errorf("place ID %q is not an ID", id)
		}
	}
	lt := strings.ToLower(m.Target)
	if !(strings.HasPrefix(lt, "https://") || strings.HasPrefix(lt, "http://")) || strings.ContainsAny(m.Target, "\r\n\t ") ||
		len(m.Target) > 2048 || strings.HasPrefix(m.Target[strings.Index(m.Target, "://")+3:], "/") {
		return fmt.Errorf("target must be an absolute http(s) URL")
	}
	if len(m.Name) > 256 {
		return fmt.Errorf("name longer than 256 bytes")
	}
	return nil
}

// targets is the gateway's table of boards: last known from the broker,
// kept on local disk so the gateway redirects while the broker or a
// village is away and after its own restart.
type targets struct {
	path string
	max  int
	log  *slog.Logger
	mk   func(t *Target) *targetMetrics
	drop func(t *Target)

	// byKey is the table, <village>/<board> -> *Target. A sync.Map, so
	// that the request path's lookups take no lock: an RWMutex's reader
	// count is a shared write, a cache line every scan passed between
	// CPUs (twice: the lookup and the record).
	byKey sync.Map
	mu    sync.Mutex // serialises set and remove; guards n
	n     int        // targets in byKey
	dirty atomic.Bool
	save  chan struct{}
}

func newTargets(path string, max int, log *slog.Logger, mk func(*Target) *targetMetrics, drop func(*Target)) *targets {
	return &targets{path: path, max: max, log: log, mk: mk, drop: drop, save: make(chan struct{}, 1)}
}

type cacheFile struct {
	Targets []*Target `json:"targets"`
}

// load reads the cache file written by an earlier run.
func (ts *targets) load() (int, error) {
	b, err := os.ReadFile(ts.path)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var cf cacheFile
	if err := json.Unmarshal(b, &cf); err != nil {
		return 0, fmt.Errorf("target cache %s: %w", ts.path, err)
	}
	n := 0
	for _, t := range cf.Targets {
		if t == nil || t.validate(t.Village, t.Board) != nil {
			continue
		}
		if ts.set(t.Village, t.Board, t.TargetMessage) == nil {
			n++
		}
	}
	ts.dirty.Store(false)
	return n, nil
}

// set adds or replaces a board's target.
func (ts *targets) set(village, board string, m TargetMessage) error {
	if err := m.validate(village, board); err != nil {
		return err
	}
	if m.Place.Village == "" {
		m.Place.Village = village
	}
	t := &Target{Village: village, Board: board, TargetMessage: m}
	ts.mu.Lock()
	old := ts.get(t.key())
	if old == nil && ts.n >= ts.max {
		ts.mu.Unlock()
		return fmt.Errorf("max_boards (%d) reached", ts.max)
	}
	if old != nil && old.Place.Province == m.Place.Province && old.Place.District == m.Place.District &&
		old.Place.Commune == m.Place.Commune && old.Site == m.Site {
		t.m = old.m // same labels: keep the counters
	} else {
		if old != nil {
			ts.drop(old)
		}
		t.m = ts.mk(t)
	}
	if old == nil {
		ts.n++
	}
	ts.byKey.Store(t.key(), t)
	ts.mu.Unlock()
	ts.changed()
	return nil
}

// remove forgets a board (an empty retained message).
func (ts *targets) remove(village, board string) {
	ts.mu.Lock()
	old, ok := ts.byKey.LoadAndDelete(village + "/" + board)
	if ok {
		ts.n--
	}
	ts.mu.Unlock()
	if ok {
		ts.drop(old.(*Target))
		ts.changed()
	}
}

func (ts *targets) changed() {
	ts.dirty.Store(true)
	select {
	case ts.save <- struct{}{}:
	default:
	}
}

func (ts *targets) get(key string) *Target {
	if t, ok := ts.byKey.Load(key); ok {
		return t.(*Target)
	}
	return nil
}

// Board is scan.BoardLookup over <village>/<board> keys. The board's ID
// is the key, so that uniqueness is per village and board.
func (ts *targets) Board(key string) (scan.Board, bool) {
	t := ts.get(key)
	if t == nil {
		return scan.Board{}, false
	}
	return scan.Board{ID: key, Site: t.Site, Name: t.Name, TargetURL: t.Target}, true
}

func (ts *targets) len() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.n
}

// flush writes the cache file if the table changed (atomic replace).
func (ts *targets) flush() error {
	if !ts.dirty.Swap(false) {
		return nil
	}
	cf := cacheFile{Targets: make([]*Target, 0, ts.len())}
	ts.byKey.Range(func(_, t any) bool {
		cf.Targets = append(cf.Targets, t.(*Target))
		return true
	})
	b, err := json.Marshal(cf)
	if err == nil {
		err = writeFileAtomic(ts.path, b, true)
	}
	if err != nil {
		ts.dirty.Store(true)
	}
	return err
}
