package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"villagehub/hub/influx"
)

// The outbox holds InfluxDB points between the commit that made them and
// the InfluxDB writer's spool. Points are written in the same transaction
// as the state they describe, so a point exists if and only if its change
// was committed: no crash can lose one or make one twice. The forwarder
// (RunOutbox) hands them to the writer and deletes them after the writer
// has them on disk; a crash in between hands the same lines over again,
// with the same timestamps, which InfluxDB takes as an overwrite.

var bucketOutbox = []byte("influx_outbox")

// ErrOutboxFull is returned by Commit when more than Config.OutboxMaxBytes
// of points wait for the InfluxDB writer (InfluxDB down long enough to fill
// the writer's spool too). The pipeline then stops acknowledging messages,
// and brokers hold them, until the backlog drains.
var ErrOutboxFull = errors.New("InfluxDB outbox is full: points are waiting for the InfluxDB spool")

// encodePoints appends the batch's points as line protocol; points that
// cannot be encoded are logged and left out (they could never be written).
func (s *Store) encodePoints(pts []influx.Point) ([]byte, int) {
	buf := make([]byte, 4, 4+len(pts)*96)
	n := 0
	for i := range pts {
		var err error
		b, err := influx.AppendLine(buf, &pts[i])
		if err != nil {
			s.log.Error("dropping an InfluxDB point that cannot be encoded", "measurement", pts[i].Measurement, "err", err)
			continue
		}
		buf = b
		n++
	}
	binary.BigEndian.PutUint32(buf, uint32(n))
	return buf, n
}

// putOutbox adds the points to the outbox, returning the bytes and points
// added.
func (s *Store) putOutbox(tx *bolt.Tx, pts []influx.Point) (int, int, error) {
	if len(pts) == 0 {
		return 0, 0, nil
	}
	if s.outboxBytes.Load() > s.cfg.OutboxMaxBytes {
		return 0, 0, ErrOutboxFull
	}
	v, n := s.encodePoints(pts)
	if n == 0 {
		return 0, 0, nil
	}
	b := tx.Bucket(bucketOutbox)
	seq, _ := b.NextSequence()
	if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
		return 0, 0, err
	}
	return len(v), n, nil
}

// OutboxPoints is the number of points waiting in the outbox.
func (s *Store) OutboxPoints() int64 { return s.outboxPoints.Load() }

// loadOutboxSize counts what a previous process left in the outbox.
func (s *Store) loadOutboxSize() error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			s.outboxBytes.Add(int64(len(v)))
			if len(v) >= 4 {
				s.outboxPoints.Add(int64(binary.BigEndian.Uint32(v)))
			}
			return nil
		})
	})
}

// RunOutbox forwards outbox points to sink (the InfluxDB writer's
// AppendLines) in commit order until ctx ends. A sink error (the writer's
// spool is full) is retried with backoff; nothing is lost meanwhile.
func (s *Store) RunOutbox(ctx context.Context, sink func(lines []byte, n int) error) error {
	backoff := 100 * time.Millisecond
	var lines []byte
	for {
		keys, n, more, err := s.readOutbox(lines[:0], 256, 1<<20)
		lines = keys.lines
		if err != nil {
			return fmt.Errorf("reading the InfluxDB outbox: %w", err)
		}
		if n > 0 {
			if err := sink(lines, n); err != nil {
				if backoff == 100*time.Millisecond {
					s.log.Warn("InfluxDB spool does not take points; they wait in the outbox", "err", err, "points", s.outboxPoints.Load())
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, 5*time.Second)
				continue
			}
			backoff = 100 * time.Millisecond
			if err := s.deleteOutbox(keys.keys, keys.bytes, n); err != nil {
				return fmt.Errorf("clearing the InfluxDB outbox: %w", err)
			}
		}
		if more {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.outboxSignal:
		case <-time.After(time.Second):
		}
	}
}

type outboxRead struct {
	keys  [][]byte
	lines []byte
	bytes int64
}

// readOutbox reads the oldest entries, up to maxEntries or maxBytes.
func (s *Store) readOutbox(buf []byte, maxEntries, maxBytes int) (r outboxRead, n int, more bool, err error) {
	r.lines = buf
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if len(r.keys) == maxEntries || len(r.lines) >= maxBytes {
				more = true
				return nil
			}
			if len(v) < 4 {
				continue
			}
			r.keys = append(r.keys, bytes.Clone(k))
			r.lines = append(r.lines, v[4:]...)
			r.bytes += int64(len(v))
			n += int(binary.BigEndian.Uint32(v))
		}
		return nil
	})
	return r, n, more, err
}

func (s *Store) deleteOutbox(keys [][]byte, size int64, points int) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		s.outboxBytes.Add(-size)
		s.outboxPoints.Add(-int64(points))
	}
	return err
}
