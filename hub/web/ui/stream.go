package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"villagehub/hub/state"
)

// cameraItem is what the page shows of a camera: the API's CameraView
// without the fields that change on every message (last_seen) or that the
// page does not use, so an unchanged camera produces no update.
type cameraItem struct {
	ID           string      `json:"id"`
	Site         string      `json:"site"`
	Name         string      `json:"name,omitempty"`
	Location     string      `json:"location,omitempty"`
	Configured   bool        `json:"configured"`
	Status       string      `json:"status"`
	StatusSince  *time.Time  `json:"status_since,omitempty"`
	MotionActive bool        `json:"motion_active"`
	LastMotion   *time.Time  `json:"last_motion,omitempty"`
	MotionEvents uint64      `json:"motion_events"`
	Stream       *streamItem `json:"stream,omitempty"`
}

type streamItem struct {
	Up         bool       `json:"up"`
	Since      time.Time  `json:"since"`
	Reason     string     `json:"reason,omitempty"`
	Grade      string     `json:"grade"`
	FPS        float64    `json:"fps"`
	BitrateBps float64    `json:"bitrate_bps"`
	LastProbe  *time.Time `json:"last_probe,omitempty"`
}

type boardItem struct {
	ID          string     `json:"id"`
	Site        string     `json:"site"`
	Name        string     `json:"name,omitempty"`
	Location    string     `json:"location,omitempty"`
	Configured  bool       `json:"configured"`
	Status      string     `json:"status"`
	StatusSince *time.Time `json:"status_since,omitempty"`
	LastReport  *time.Time `json:"last_report,omitempty"`
	ScansToday  uint64     `json:"scans_today"`
	ScansTotal  uint64     `json:"scans_total"`
	// Battery (%) and RSSI (dBm) only when the board sends them, rounded
	// to whole units so that jitter does not make every snapshot a change.
	Battery   *float64   `json:"battery,omitempty"`
	BatteryAt *time.Time `json:"battery_at,omitempty"`
	RSSI      *float64   `json:"rssi,omitempty"`
	RSSIAt    *time.Time `json:"rssi_at,omitempty"`
}

func newCameraItem(c *state.CameraView) cameraItem {
	it := cameraItem{
		ID: c.ID, Site: c.Site, Name: c.Name, Location: c.Location, Configured: c.Configured,
		Status: c.Status, StatusSince: c.StatusSince,
		MotionActive: c.MotionActive, LastMotion: c.LastMotion, MotionEvents: c.MotionEvents,
	}
	if s := c.Stream; s != nil {
		// Rounded so that measurement jitter between probes does not
		// make every camera "changed" on every snapshot.
		it.Stream = &streamItem{
			Up: s.Up, Since: s.Since, Reason: s.Reason, Grade: s.Grade,
			FPS:        math.Round(s.FPS*10) / 10,
			BitrateBps: math.Round(s.BitrateBps/1000) * 1000,
		}
		if s.LastSuccess != nil {
			it.Stream.LastProbe = s.LastSuccess
		}
	}
	return it
}

func newBoardItem(b *state.BoardView) boardItem {
	return boardItem{
		ID: b.ID, Site: b.Site, Name: b.Name, Location: b.Location, Configured: b.Configured,
		Status: b.Status, StatusSince: b.StatusSince, LastReport: b.LastReport,
		ScansToday: b.ScansToday, ScansTotal: b.ScansTotal,
		Battery: rounded(b.Battery), BatteryAt: b.BatteryAt, RSSI: rounded(b.RSSI), RSSIAt: b.RSSIAt,
	}
}

func rounded(v *float64) *float64 {
	if v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) {
		return nil
	}
	r := math.Round(*v)
	return &r
}

// frame is one snapshot: every item encoded on its own so the next
// snapshot can tell which changed. Frames are immutable once published.
type frame struct {
	seq    uint64
	now    time.Time
	sites  []byte
	cams   map[string][]byte // "site/id" -> JSON
	boards map[string][]byte
	// delta is the SSE message taking a viewer from seq-1 to seq.
	delta []byte

	fullOnce sync.Once
	full     []byte
	days     dayRange
}

// dayRange tells the page which village days the QR figures cover, so the
// page need not do time-zone arithmetic: from30 and from7 are the starts of
// the days 29 and 6 days before today, to the start of tomorrow.
type dayRange struct {
	Today  time.Time `json:"today"`
	From7  time.Time `json:"from7"`
	From30 time.Time `json:"from30"`
	To     time.Time `json:"to"`
}

func days(now time.Time, loc *time.Location) dayRange {
	y, m, d := now.In(loc).Date()
	return dayRange{
		Today:  time.Date(y, m, d, 0, 0, 0, 0, loc),
		From7:  time.Date(y, m, d-6, 0, 0, 0, 0, loc),
		From30: time.Date(y, m, d-29, 0, 0, 0, 0, loc),
		To:     time.Date(y, m, d+1, 0, 0, 0, 0, loc),
	}
}

// feed turns the live state into frames and tells streams about new ones.
type feed struct {
	src      Source
	loc      *time.Location
	interval time.Duration

	mu      sync.Mutex
	cur     *frame
	checked time.Time     // when cur was last compared with the state
	notify  chan struct{} // closed when cur changes
	subs    int
	done    chan struct{} // closed by close()
	closed  bool
}

func newFeed(src Source, loc *time.Location, interval time.Duration) *feed {
	return &feed{src: src, loc: loc, interval: interval, notify: make(chan struct{}), done: make(chan struct{})}
}

func (f *feed) watched() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subs > 0
}

func (f *feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.done)
	}
}

// refresh takes a snapshot and publishes a new frame if anything changed.
func (f *feed) refresh() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refreshLocked()
}

func (f *feed) refreshLocked() {
	now := time.Now()
	f.checked = now
	cams := f.src.Cameras()
	boards := f.src.Boards()
	sites, _ := json.Marshal(f.src.Sites())
	nf := &frame{
		now: now, sites: sites, days: days(now, f.loc),
		cams:   make(map[string][]byte, len(cams)),
		boards: make(map[string][]byte, len(boards)),
	}
	for i := range cams {
		b, _ := json.Marshal(newCameraItem(&cams[i]))
		nf.cams[cams[i].Site+"/"+cams[i].ID] = b
	}
	for i := range boards {
		b, _ := json.Marshal(newBoardItem(&boards[i]))
		nf.boards[boards[i].Site+"/"+boards[i].ID] = b
	}
	old := f.cur
	if old == nil {
		nf.seq = 1
	} else {
		d := delta(old, nf)
		if d == nil {
			return
		}
		nf.seq, nf.delta = old.seq+1, d
	}
	f.cur = nf
	close(f.notify)
	f.notify = make(chan struct{})
}

// delta is the SSE message from a to b, or nil when nothing changed.
func delta(a, b *frame) []byte {
	var buf bytes.Buffer
	changed := false
	buf.WriteString("event: delta\ndata: {")
	header(&buf, b)
	if !bytes.Equal(a.sites, b.sites) {
		buf.WriteString(`,"sites":`)
		buf.Write(b.sites)
		changed = true
	}
	for _, part := range []struct {
		name     string
		old, new map[string][]byte
	}{{"cameras", a.cams, b.cams}, {"boards", a.boards, b.boards}} {
		n := 0
		for _, k := range sortedKeys(part.new) {
			if v := part.new[k]; !bytes.Equal(part.old[k], v) {
				if n == 0 {
					fmt.Fprintf(&buf, `,%q:[`, part.name)
				} else {
					buf.WriteByte(',')
				}
				buf.Write(v)
				n++
			}
		}
		if n > 0 {
			buf.WriteByte(']')
			changed = true
		}
		n = 0
		for _, k := range sortedKeys(part.old) {
			if _, ok := part.new[k]; !ok {
				if n == 0 {
					fmt.Fprintf(&buf, `,"removed_%s":[`, part.name)
				} else {
					buf.WriteByte(',')
				}
				kb, _ := json.Marshal(k)
				buf.Write(kb)
				n++
			}
		}
		if n > 0 {
			buf.WriteByte(']')
			changed = true
		}
	}
	if !changed {
		return nil
	}
	buf.WriteString("}\n\n")
	return buf.Bytes()
}

// header writes the fields every message carries: the hub's clock (the
// page computes "for how long" against it, not against the phone's clock)
// and the village days.
func header(buf *bytes.Buffer, fr *frame) {
	now, _ := json.Marshal(fr.now)
	d, _ := json.Marshal(fr.days)
	buf.WriteString(`"now":`)
	buf.Write(now)
	buf.WriteString(`,"days":`)
	buf.Write(d)
}

// fullMessage is the SSE message with the whole frame, for a new viewer or
// one that missed a delta; built at most once per frame.
func (fr *frame) fullMessage() []byte {
	fr.fullOnce.Do(func() {
		var buf bytes.Buffer
		buf.WriteString("event: full\ndata: {")
		header(&buf, fr)
		buf.WriteString(`,"sites":`)
		buf.Write(fr.sites)
		for _, part := range []struct {
			name  string
			items map[string][]byte
		}{{"cameras", fr.cams}, {"boards", fr.boards}} {
			fmt.Fprintf(&buf, `,%q:[`, part.name)
			for i, k := range sortedKeys(part.items) {
				if i > 0 {
					buf.WriteByte(',')
				}
				buf.Write(part.items[k])
			}
			buf.WriteByte(']')
		}
		buf.WriteString("}\n\n")
		fr.full = buf.Bytes()
	})
	return fr.full
}

func sortedKeys(m map[string][]byte) []string {
	return slices.Sorted(maps.Keys(m))
}

// subscribe registers a viewer and returns the current frame (fresh: taken
// now if the last snapshot is older than the interval, as it is when nobody
// was watching) and the channel closed when the next one is published.
func (f *feed) subscribe(max int) (*frame, chan struct{}, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.subs >= max {
		return nil, nil, false
	}
	f.subs++
	if f.cur == nil || time.Since(f.checked) >= f.interval {
		f.refreshLocked()
	}
	return f.cur, f.notify, true
}

func (f *feed) unsubscribe() {
	f.mu.Lock()
	f.subs--
	f.mu.Unlock()
}

func (f *feed) current() (*frame, chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur, f.notify
}

// streamWriteTimeout bounds one write to a viewer: a phone that stopped
// reading loses its stream instead of holding a goroutine forever.
const streamWriteTimeout = 10 * time.Second

func (u *UI) serveStream(w http.ResponseWriter, r *http.Request) {
	fr, notify, ok := u.feed.subscribe(u.cfg.MaxStreams)
	if !ok {
		w.Header().Set("Retry-After", "10")
		http.Error(w, "too many live dashboards open", http.StatusServiceUnavailable)
		return
	}
	defer u.feed.unsubscribe()
	rc := http.NewResponseController(w)
	// The server's ReadTimeout would otherwise end a long-lived stream
	// (its background read times out and cancels the request).
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx in front: do not buffer
	w.WriteHeader(http.StatusOK)

	send := func(msg []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := w.Write(msg); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(append([]byte("retry: 3000\n\n"), fr.fullMessage()...)) {
		return
	}
	last := fr.seq
	hb := time.NewTicker(u.cfg.Heartbeat)
	defer hb.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-u.feed.done:
			return
		case <-notify:
			fr, notify = u.feed.current()
			msg := fr.delta
			if fr.seq != last+1 || msg == nil {
				msg = fr.fullMessage()
			}
			if !send(msg) {
				return
			}
			last = fr.seq
			hb.Reset(u.cfg.Heartbeat)
		case <-hb.C:
			var buf bytes.Buffer
			buf.WriteString("event: ping\ndata: {")
			header(&buf, &frame{now: time.Now(), days: days(time.Now(), u.cfg.Location)})
			buf.WriteString("}\n\n")
			if !send(buf.Bytes()) {
				return
			}
		}
	}
}
