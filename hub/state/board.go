package state

import (
	"cmp"
	"slices"
	"time"

	"villagehub/hub/event"
)

// The QR board kind: its state, view and rules (its codec is in codec.go,
// its counter in qr.go, printed scans in local.go and gateway.go).

func init() {
	registerKind(kindSpec[*Board]{
		kind: event.Board,
		blank: func(site, id string) *Board {
			return newBoard(site, id, BoardInfo{ID: id, Site: site})
		},
		apply:   (*State).applyBoard,
		maxAuto: func(cfg *Config) int { return cfg.MaxAutoBoards },
	})
}

// boards is the boards' table.
func (s *State) boards() *devices[*Board] { return table[*Board](s, event.Board) }

func (b *Board) setAuto(v bool)      { b.Auto = v }
func (b *Board) lastSeen() time.Time { return b.LastSeen }

func newBoard(site, id string, info BoardInfo) *Board {
	b := &Board{devBase: devBase{Site: site, ID: id, key: deviceKey(event.Board, site, id)}, info: info}
	b.Online = -1
	return b
}

// Board is one QR board's live state.
type Board struct {
	devBase
	info BoardInfo
	boardPersisted
	// health is the last battery and signal the board reported; in memory
	// only (a board that sends them does so with every status and report);
	// nil until the first (most boards send none: it is a fifth of a
	// board's memory).
	health *boardHealth
}

// boardHealth is a board's last battery level (percent) and signal
// strength (dBm), and when each was reported; zero times: never.
type boardHealth struct {
	Battery, RSSI     float64
	BatteryAt, RSSIAt time.Time
}

// takeHealth keeps the event's readings unless they are older than those
// kept (a redelivered report).
func (b *Board) takeHealth(ev *event.Event) {
	if !ev.HasBattery && !ev.HasRSSI {
		return
	}
	if b.health == nil {
		b.health = &boardHealth{}
	}
	h := b.health
	if ev.HasBattery && !ev.Time.Before(h.BatteryAt) {
		h.Battery, h.BatteryAt = ev.Battery, ev.Time
	}
	if ev.HasRSSI && !ev.Time.Before(h.RSSIAt) {
		h.RSSI, h.RSSIAt = ev.RSSI, ev.Time
	}
}

// boardPersisted is what survives a restart. Its fields are in memory
// order, not the codec's (codec.go writes them explicitly): TodayDay
// beside the two small ones fills what would be padding, which keeps a
// Board within the 352-byte allocation class with its health pointer
// (BenchmarkMemoryPerDevice).
type boardPersisted struct {
	Auto         bool
	Online       int8
	TodayDay     int32 // days since 1970-01-01 in the village's zone
	StatusSince  time.Time
	LastSeen     time.Time
	LastReport   time.Time
	ScansMQTT    uint64
	ScansPrinted uint64
	// Printed-code visits that were not counted as scans, and unique scans.
	PrintedUnique, Bots, RateLimited uint64
	Today                            uint64
	Counter                          qrCounter
	// GatewayIDs are the IDs of the latest scans a QR gateway sent down,
	// committed with the counts they added (gateway.go).
	GatewayIDs gatewayIDs
}

// BoardView is a copy of a board's state for readers.
type BoardView struct {
	ID           string     `json:"id"`
	Site         string     `json:"site"`
	Name         string     `json:"name,omitempty"`
	Location     string     `json:"location,omitempty"`
	TargetURL    string     `json:"target_url,omitempty"`
	Configured   bool       `json:"configured"`
	Status       string     `json:"status"`
	StatusSince  *time.Time `json:"status_since,omitempty"`
	LastSeen     *time.Time `json:"last_seen,omitempty"`
	LastReport   *time.Time `json:"last_report,omitempty"`
	ScansToday   uint64     `json:"scans_today"`
	ScansTotal   uint64     `json:"scans_total"`
	ScansMQTT    uint64     `json:"scans_mqtt"`
	ScansPrinted uint64     `json:"scans_printed"`
	// Of the printed-code scans, those from a phone that had not just
	// scanned the same board; and visits not counted: link previews and
	// bots, clients over the rate limit.
	PrintedUnique uint64 `json:"printed_unique"`
	Bots          uint64 `json:"bot_visits"`
	RateLimited   uint64 `json:"rate_limited"`
	Boot          string `json:"boot,omitempty"`
	LastTotal     int64  `json:"last_total"`
	// The last battery level (percent) and signal strength (dBm) the
	// board reported, and when; absent if it never sent them.
	Battery   *float64   `json:"battery,omitempty"`
	BatteryAt *time.Time `json:"battery_at,omitempty"`
	RSSI      *float64   `json:"rssi,omitempty"`
	RSSIAt    *time.Time `json:"rssi_at,omitempty"`
}

func (b *Board) view(today int32) BoardView {
	v := BoardView{
		ID: b.ID, Site: b.Site, Name: b.info.Name, Location: b.info.Location,
		TargetURL: b.info.TargetURL, Configured: b.Configured,
		Status: statusText(b.Online), StatusSince: tp(b.StatusSince), LastSeen: tp(b.LastSeen),
		LastReport: tp(b.LastReport), ScansTotal: b.ScansMQTT + b.ScansPrinted,
		ScansMQTT: b.ScansMQTT, ScansPrinted: b.ScansPrinted,
		PrintedUnique: b.PrintedUnique, Bots: b.Bots, RateLimited: b.RateLimited,
	}
	if b.TodayDay == today {
		v.ScansToday = b.Today
	}
	// The epoch used last is the board's current counter.
	var last *epoch
	for i := range b.Counter.Epochs {
		if last == nil || b.Counter.Epochs[i].Used > last.Used {
			last = &b.Counter.Epochs[i]
		}
	}
	if last != nil {
		v.Boot, v.LastTotal = last.Boot, last.Max
	}
	if b.health != nil {
		h := *b.health // the view must not point into the state
		if !h.BatteryAt.IsZero() {
			v.Battery, v.BatteryAt = &h.Battery, &h.BatteryAt
		}
		if !h.RSSIAt.IsZero() {
			v.RSSI, v.RSSIAt = &h.RSSI, &h.RSSIAt
		}
	}
	return v
}

func (s *State) applyBoard(b *Board, ev *event.Event) (Result, event.Reason) {
	s.boards().markDirty(b)
	if ev.Received.After(b.LastSeen) {
		b.LastSeen = ev.Received
	}
	switch ev.Type {
	case event.Status:
		b.takeHealth(ev)
		return s.applyStatus(&b.Online, &b.StatusSince, event.Board.String(), b.Site, b.ID, ev), event.OK
	case event.QRTotal:
		n, r := b.Counter.applyBounded(ev.BootBytes, ev.Total, ev.Time, ev.HasTS, ev.Received, s.qrBounds)
		if r != event.OK {
			return Rejected, r
		}
		b.takeHealth(ev)
		if ev.Time.After(b.LastReport) {
			b.LastReport = ev.Time
		}
		if n == 0 {
			return Duplicate, event.OK
		}
		b.ScansMQTT += uint64(n)
		s.countToday(b, uint64(n), ev.Time)
		s.batch.Scans = append(s.batch.Scans, ScanRecord{Site: b.Site, Board: b.ID, Source: SourceMQTT, N: n, Time: ev.Time})
		if s.cfg.InfluxPoints {
			t := ev.Time
			if ev.HasTS {
				t = withinMS(t, uint64(ev.Total))
			}
			s.qrPoint(b.Site, b.ID, SourceMQTT, n, t)
		}
		return Accepted, event.OK
	}
	return Duplicate, event.OK
}

// countToday adds n scans that happened at t to the board's count for
// today, in the village's time zone.
func (s *State) countToday(b *Board, n uint64, t time.Time) {
	day := dayNumber(t, s.loc)
	switch {
	case day == b.TodayDay:
		b.Today += n
	case day > b.TodayDay:
		b.TodayDay, b.Today = day, n
	}
	// Scans from an earlier day go to history only.
}

// Boards returns a copy of every board's state, sorted by site and ID.
func (s *State) Boards() []BoardView {
	today := dayNumber(s.now(), s.loc)
	s.mu.RLock()
	brds := s.boards().m
	out := make([]BoardView, 0, len(brds))
	for _, b := range brds {
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
	brds := s.boards().m
	b := brds[devKey{site, id}]
	if site == "" {
		for k, x := range brds {
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

// EachBoard calls fn for every board under a read lock.
func (s *State) EachBoard(fn func(BoardSample)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, b := range s.boards().m {
		bs := BoardSample{Site: b.Site, ID: b.ID, Online: b.Online, LastReport: b.LastReport, LastSeen: b.LastSeen, ScansMQTT: b.ScansMQTT, ScansPrnt: b.ScansPrinted,
			PrintedUnique: b.PrintedUnique, Bots: b.Bots, RateLimited: b.RateLimited}
		if h := b.health; h != nil {
			bs.Battery, bs.RSSI, bs.BatteryAt, bs.RSSIAt = h.Battery, h.RSSI, h.BatteryAt, h.RSSIAt
		}
		fn(bs)
	}
}

func (b *Board) configure(info BoardInfo, ok bool) int {
	switch {
	case ok:
		b.info = info
	case b.Configured:
		b.info = BoardInfo{ID: b.ID, Site: b.Site}
	}
	return b.approve(ok, &b.Auto)
}
