package alert

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// alerts.db holds what must survive a restart or a SIGKILL:
//
//	active:   alert ID -> firing Alert (JSON)
//	history:  sequence -> resolved Alert (JSON), oldest first
//	silences: silence ID -> silence made through the API (JSON)
//	outbox:   sequence -> notice not yet delivered (JSON)
//
// Every change is committed (fsync) before the notices it causes are
// handed to the notifiers, so a crash either forgets both or keeps both:
// no alert fires twice, and a resolution is never lost.
var (
	bucketActive   = []byte("active")
	bucketHistory  = []byte("history")
	bucketSilences = []byte("silences")
	bucketOutbox   = []byte("outbox")
)

type db struct{ b *bolt.DB }

func openDB(dir string) (*db, error) {
	if dir == "" {
		return nil, errors.New("alert: the data directory is empty")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("alert: creating data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, "alerts.db")
	b, err := bolt.Open(path, 0o640, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("alert: %s is locked by another process (is another villagehub using this data_dir?)", path)
		}
		return nil, fmt.Errorf("alert: opening %s: %w", path, err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketActive, bucketHistory, bucketSilences, bucketOutbox} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("alert: creating buckets in %s: %w", path, err)
	}
	return &db{b: b}, nil
}

func (d *db) close() error { return d.b.Close() }

func seqKey(n uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], n)
	return k[:]
}

// outboxEntry is a notice waiting for one notifier.
type outboxEntry struct {
	Notifier string       `json:"notifier"`
	N        Notification `json:"n"`
	id       uint64
}

// change is what one evaluation decided about one alert.
type change struct {
	a      Alert // a copy, as it is now
	notice string
}

// commit writes the changed alerts and the notices they cause, in one
// transaction, and returns the outbox entries (with their IDs) to hand to
// the notifiers.
func (d *db) commit(changes []change, notices []outboxEntry, keepHistory int) ([]outboxEntry, error) {
	err := d.b.Update(func(tx *bolt.Tx) error {
		act, hist, out := tx.Bucket(bucketActive), tx.Bucket(bucketHistory), tx.Bucket(bucketOutbox)
		for i := range changes {
			a := &changes[i].a
			v, err := json.Marshal(a)
			if err != nil {
				return err
			}
			if a.State == KindResolved {
				if err := act.Delete([]byte(a.ID)); err != nil {
					return err
				}
				seq, _ := hist.NextSequence()
				if err := hist.Put(seqKey(seq), v); err != nil {
					return err
				}
				continue
			}
			if err := act.Put([]byte(a.ID), v); err != nil {
				return err
			}
		}
		// Trim the history to its newest keepHistory entries.
		if n := hist.Stats().KeyN - keepHistory; n > 0 {
			c := hist.Cursor()
			for k, _ := c.First(); k != nil && n > 0; k, _ = c.Next() {
				if err := c.Delete(); err != nil {
					return err
				}
				n--
			}
		}
		for i := range notices {
			seq, _ := out.NextSequence()
			v, err := json.Marshal(&notices[i])
			if err != nil {
				return err
			}
			if err := out.Put(seqKey(seq), v); err != nil {
				return err
			}
			notices[i].id = seq
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("alert: writing alerts.db: %w", err)
	}
	return notices, nil
}

// done removes delivered (or abandoned) notices, committed before it
// returns: a notice counted as sent is never sent again after a crash
// (the window left is between the receiver's answer and this commit).
// bbolt's Batch coalesces the calls of all notifiers into few
// transactions.
func (d *db) done(id uint64) error {
	return d.b.Batch(func(tx *bolt.Tx) error { return tx.Bucket(bucketOutbox).Delete(seqKey(id)) })
}

func (d *db) loadActive() ([]*Alert, error) {
	var out []*Alert
	err := d.b.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketActive).ForEach(func(k, v []byte) error {
			a := &Alert{}
			if err := json.Unmarshal(v, a); err != nil {
				return fmt.Errorf("alert %s: %w", k, err)
			}
			out = append(out, a)
			return nil
		})
	})
	return out, err
}

func (d *db) loadOutbox() ([]outboxEntry, error) {
	var out []outboxEntry
	err := d.b.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			var e outboxEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("outbox entry: %w", err)
			}
			e.id = binary.BigEndian.Uint64(k)
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// history returns up to limit resolved alerts, newest first, that pass keep.
func (d *db) history(limit int, keep func(*Alert) bool) ([]Alert, error) {
	var out []Alert
	err := d.b.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketHistory).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var a Alert
			if err := json.Unmarshal(v, &a); err != nil {
				return err
			}
			if keep(&a) {
				out = append(out, a)
			}
		}
		return nil
	})
	return out, err
}

func (d *db) putSilence(s *silence) error {
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return d.b.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSilences).Put([]byte(s.ID), v) })
}

func (d *db) deleteSilence(id string) error {
	return d.b.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSilences).Delete([]byte(id)) })
}

func (d *db) loadSilences() ([]*silence, error) {
	var out []*silence
	err := d.b.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSilences).ForEach(func(k, v []byte) error {
			s := &silence{}
			if err := json.Unmarshal(v, s); err != nil {
				return fmt.Errorf("silence %s: %w", k, err)
			}
			out = append(out, s)
			return nil
		})
	})
	return out, err
}
