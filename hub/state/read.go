package state

import (
	"cmp"
	"slices"
	"time"

	"villagehub/hub/event"
)

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
	// scans lost because the pipeline and its tally were full.
	Orphans      uint64
	ScansDropped uint64
	// Devices are the devices known, by kind; Cameras, Boards and the
	// Auto counts repeat those of the two first kinds.
	Devices    [event.NumKinds]DeviceCount
	AutoCams   int
	AutoBoards int
	Cameras    int
	Boards     int
}

// Counters returns a copy of the ingest counters.
func (s *State) Counters() Counters {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := Counters{
		Messages: s.msgs, Rejected: s.rejected,
		Commits: s.commits, CommitErrs: s.commitErrs, LastCommit: s.lastCommit, StoreErr: s.storeErr,
		Orphans: s.orphans, ScansDropped: s.dropped.Load(),
	}
	for k, t := range s.tables {
		if t != nil {
			c.Devices[k] = t.counts()
		}
	}
	cams, brds := c.Devices[event.Camera], c.Devices[event.Board]
	c.Cameras, c.AutoCams, c.Boards, c.AutoBoards = cams.Total, cams.Auto, brds.Total, brds.Auto
	return c
}

// Results lists the message results, for metrics.
func Results() []Result { return []Result{Accepted, Rejected, Duplicate} }

// Changed is signalled (without blocking; one pending signal at most)
// after every applied batch, for readers that react to changes rather than
// poll: the alert engine, the dashboard.
func (s *State) Changed() <-chan struct{} { return s.changed }

func statusText(online int8) string {
	switch online {
	case 1:
		return "online"
	case 0:
		return "offline"
	}
	return "unknown"
}

func tp(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
