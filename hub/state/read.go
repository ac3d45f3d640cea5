package state

import (
	"cmp"
	"slices"
	"time"

	"villagehub/hub/event"
)

// Cameras returns a copy of every camera's state, sorted by site and ID.
func (s *State) Cameras() []CameraView {
	s.mu.RLock()
	out := make([]CameraView, 0, len(s.cameras))
	for _, c := range s.cameras {
		v := c.view()
		v.MotionUnknown = s.sourceDown(c)
		out = append(out, v)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b CameraView) int {
		return cmp.Or(cmp.Compare(a.Site, b.Site), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Boards returns a copy of every board's state, sorted by site and ID.
func (s *State) Boards() []BoardView {
	today := dayNumber(s.now(), s.loc)
	s.mu.RLock()
	out := make([]BoardView, 0, len(s.boards))
	for _, b := range s.boards {
		out = append(out, b.view(today))
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b BoardView) int {
		return cmp.Or(cmp.Compare(a.Site, b.Site), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Board returns one board's state. An empty site finds the board with that
// ID in any site (the first by site order when several share it).
func (s *State) Board(site, id string) (BoardView, bool) {
	today := dayNumber(s.now(), s.loc)
	s.mu.RLock()
	defer s.mu.RUnlock()
	b := s.boards[devKey{site, id}]
	if site == "" {
		for k, x := range s.boards {
			if k.id == id && (b == nil || k.site < b.Site) {
				b = x
			}
		}
	}
	if b == nil {
		return BoardView{}, false
	}
	return b.view(today), true
}

// Sites returns the configured sites.
func (s *State) Sites() []Site {
	s.mu.RLock()
	out := make([]Site, 0, len(s.sites))
	for _, st := range s.sites {
		out = append(out, st)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Site) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// CameraSample and BoardSample are the few numbers the metrics collector
// reads per device, without building full views.
type CameraSample struct {
	Site, ID     string
	Online       int8
	StatusSince  time.Time
	MotionActive bool
	MotionEvents uint64
	// Probe is the stream health; nil (or Up -1) until the first probe.
	Probe *Probe
	// MotionUnknown: the input the camera's motion comes from is offline.
	MotionUnknown bool
	// Detections by label (sorted), and the input's processing figures
	// (nil until reported).
	Detections []LabelCount
	Stats      *CameraStats
}

type BoardSample struct {
	Site, ID                         string
	Online                           int8
	LastReport, LastSeen             time.Time
	ScansMQTT, ScansPrnt             uint64
	PrintedUnique, Bots, RateLimited uint64
	// The last battery (percent) and signal (dBm) reported; a zero time:
	// never reported.
	Battery, RSSI     float64
	BatteryAt, RSSIAt time.Time
}

// EachCamera calls fn for every camera under a read lock. fn must not call
// back into the State nor keep the sample's pointers and slices.
func (s *State) EachCamera(fn func(CameraSample)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, c := range s.cameras {
		fn(CameraSample{Site: c.Site, ID: c.ID, Online: c.Online, StatusSince: c.StatusSince, MotionActive: c.MotionActive, MotionEvents: c.MotionEvents, Probe: c.probe,
			MotionUnknown: s.sourceDown(c), Detections: c.Dets.Labels, Stats: c.stats})
	}
}

// EachBoard calls fn for every board under a read lock.
func (s *State) EachBoard(fn func(BoardSample)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, b := range s.boards {
		fn(BoardSample{Site: b.Site, ID: b.ID, Online: b.Online, LastReport: b.LastReport, LastSeen: b.LastSeen, ScansMQTT: b.ScansMQTT, ScansPrnt: b.ScansPrinted,
			PrintedUnique: b.PrintedUnique, Bots: b.Bots, RateLimited: b.RateLimited,
			Battery: b.health.Battery, RSSI: b.health.RSSI, BatteryAt: b.health.BatteryAt, RSSIAt: b.health.RSSIAt})
	}
}

// Counters are the ingest counters.
type Counters struct {
	// Messages[kind][result]
	Messages [event.NumMsgKinds][NumResults]uint64
	// Rejected[kind][reason]
	Rejected   [event.NumMsgKinds][event.NumReasons]uint64
	Commits    uint64
	CommitErrs uint64
	LastCommit time.Time
	StoreErr   error
	// Orphans are visits to /q/ for unknown boards; ScansDropped printed
	// scans lost because the pipeline was full.
	Orphans      uint64
	ScansDropped uint64
	AutoCams     int
	AutoBoards   int
	Cameras      int
	Boards       int
}

// Counters returns a copy of the ingest counters.
func (s *State) Counters() Counters {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Counters{
		Messages: s.msgs, Rejected: s.rejected,
		Commits: s.commits, CommitErrs: s.commitErrs, LastCommit: s.lastCommit, StoreErr: s.storeErr,
		Orphans: s.orphans, ScansDropped: s.dropped.Load(),
		AutoCams: s.autoCams, AutoBoards: s.autoBoards, Cameras: len(s.cameras), Boards: len(s.boards),
	}
}

// Results lists the message results, for metrics.
func Results() []Result { return []Result{Accepted, Rejected, Duplicate} }

// Changed is signalled (without blocking; one pending signal at most)
// after every applied batch, for readers that react to changes rather than
// poll: the alert engine, the dashboard.
func (s *State) Changed() <-chan struct{} { return s.changed }
