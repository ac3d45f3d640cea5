package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"

	"villagehub/hub/state"
)

// HourCount is one count of one board in one hour: scans from a source
// (mqtt, printed), or for printed codes unique scans, bot visits or
// rate-limited visits.
type HourCount struct {
	Hour   time.Time
	Source string
	N      uint64
}

// QRHours returns a board's hourly counts with from <= hour < to, oldest
// first.
func (s *Store) QRHours(site, board string, from, to time.Time) ([]HourCount, error) {
	prefix := make([]byte, 0, len(site)+len(board)+2)
	prefix = append(append(append(append(prefix, site...), 0), board...), 0)
	start := binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(max(from.Unix(), 0)/3600))
	end := uint64(to.Unix()+3599) / 3600
	var out []HourCount
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketHourly).Cursor()
		for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			rest := k[len(prefix):]
			if len(rest) != 9 || len(v) != 8 {
				continue
			}
			h := binary.BigEndian.Uint64(rest)
			if h >= end {
				break
			}
			t := time.Unix(int64(h)*3600, 0).UTC()
			if t.Before(from.Truncate(time.Hour)) || !t.Before(to) {
				continue
			}
			out = append(out, HourCount{Hour: t, Source: sourceName(rest[8]), N: binary.BigEndian.Uint64(v)})
		}
		return nil
	})
	return out, err
}

// EventQuery selects events, newest first.
type EventQuery struct {
	// Cursor continues a previous page (opaque; from EventPage.Next).
	Cursor string
	Limit  int
	// Optional filters.
	Site, Device, Kind, Type string
	Since                    time.Time
}

// EventPage is one page of events.
type EventPage struct {
	Events []state.EventRecord `json:"events"`
	Next   string              `json:"next,omitempty"`
}

// Events returns events newest first, one page at a time. The cursor is
// the key of the last event of the previous page.
func (s *Store) Events(q EventQuery) (EventPage, error) {
	if q.Limit <= 0 || q.Limit > 1000 {
		q.Limit = 100
	}
	var cursor []byte
	if q.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(q.Cursor)
		if err != nil || len(b) != 16 {
			return EventPage{}, fmt.Errorf("bad cursor %q", q.Cursor)
		}
		cursor = b
	}
	page := EventPage{Events: []state.EventRecord{}}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		var k, v []byte
		if cursor == nil {
			k, v = c.Last()
		} else if k, v = c.Seek(cursor); k == nil {
			k, v = c.Last()
		}
		for cursor != nil && k != nil && bytes.Compare(k, cursor) >= 0 {
			k, v = c.Prev()
		}
		var last []byte
		for ; k != nil; k, v = c.Prev() {
			if !q.Since.IsZero() && int64(binary.BigEndian.Uint64(k)) < q.Since.UnixNano() {
				break
			}
			var e state.EventRecord
			if err := json.Unmarshal(v, &e); err != nil {
				continue
			}
			if (q.Site != "" && e.Site != q.Site) || (q.Device != "" && e.Device != q.Device) ||
				(q.Kind != "" && e.Kind != q.Kind) || (q.Type != "" && e.Type != q.Type) {
				continue
			}
			if len(page.Events) == q.Limit {
				page.Next = base64.RawURLEncoding.EncodeToString(last)
				return nil
			}
			page.Events = append(page.Events, e)
			last = bytes.Clone(k)
		}
		return nil
	})
	return page, err
}

// Prune deletes events and hourly counts older than their retention.
func (s *Store) Prune(now time.Time) (events, hours int, err error) {
	evCut := eventKey(now.Add(-s.cfg.EventRetention), 0)
	hourCut := uint64(now.Add(-s.cfg.HourlyRetention).Unix() / 3600)
	// The cache of hourly counts is emptied, under its lock, with the
	// deletes: no commit reads a value deleted here.
	s.hourly.mu.Lock()
	defer s.hourly.mu.Unlock()
	defer func() { s.hourly.hours = nil }()
	err = s.db.Update(func(tx *bolt.Tx) error {
		// Collect, then delete: deleting under a bbolt cursor skips keys.
		var old [][]byte
		evs := tx.Bucket(bucketEvents)
		c := evs.Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k, evCut) < 0; k, _ = c.Next() {
			old = append(old, bytes.Clone(k))
		}
		for _, k := range old {
			if err := evs.Delete(k); err != nil {
				return err
			}
		}
		events, old = len(old), old[:0]
		hourly := tx.Bucket(bucketHourly)
		c = hourly.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) >= 9 && binary.BigEndian.Uint64(k[len(k)-9:]) < hourCut {
				old = append(old, bytes.Clone(k))
			}
		}
		for _, k := range old {
			if err := hourly.Delete(k); err != nil {
				return err
			}
		}
		hours = len(old)
		return nil
	})
	return events, hours, err
}

// Run prunes old history once an hour until ctx ends.
func (s *Store) Run(ctx context.Context, log *slog.Logger) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if e, h, err := s.Prune(time.Now()); err != nil {
			log.Error("pruning old history", "err", err)
		} else if e+h > 0 {
			log.Info("pruned old history", "events", e, "qr_hours", h)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
