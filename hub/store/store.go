// Package store is the embedded on-disk store: device state, QR scan counts
// per board per hour, and the motion/status event log, in one bbolt file
// under the data directory.
//
// Why bbolt: it is pure Go (no cgo, one static binary for a village's
// Raspberry Pi), transactional with fsync on commit (a committed batch
// survives kill -9 and power loss), needs no server and no tuning, and its
// sorted keys fit the two queries the hub makes (a board's hours in a time
// range; the newest events). SQLite would give SQL we don't need at the
// cost of a C library or a slower transpiled one.
package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"villagehub/hub/state"
)

var (
	bucketDevices = []byte("devices")
	bucketHourly  = []byte("qr_hourly")
	bucketEvents  = []byte("events")
	bucketMeta    = []byte("meta")
	// Identities of recent QoS 1 deliveries that changed a camera's
	// motion (state.MaxDeliveries of them, by sequence number), so that a
	// redelivery after a crash is not applied twice.
	bucketDeliveries = []byte("deliveries")
)

// Config configures a Store.
type Config struct {
	// Dir is the data directory; the database is Dir/villagehub.db.
	Dir string
	// EventRetention and HourlyRetention bound how long history is kept
	// (30 days and 400 days by default).
	EventRetention  time.Duration
	HourlyRetention time.Duration
	// ReadOnly opens an existing store for reading (reports), sharing it
	// with other readers but not with a running hub.
	ReadOnly bool
	// OutboxMaxBytes bounds the InfluxDB points waiting for the writer's
	// spool (default 64 MiB); past it, commits fail (ErrOutboxFull).
	OutboxMaxBytes int64
	Logger         *slog.Logger
}

// Store is the embedded store. It implements state.Store.
type Store struct {
	cfg  Config
	db   *bolt.DB
	path string
	log  *slog.Logger

	outboxBytes  atomic.Int64
	outboxPoints atomic.Int64
	outboxSignal chan struct{} // 1-buffered: points were committed
	hourly       hourlyCache   // the newest hourly counts (hourly.go)
}

// Open opens (creating if needed) the store in cfg.Dir.
func Open(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("store: data directory is empty")
	}
	if cfg.EventRetention <= 0 {
		cfg.EventRetention = 30 * 24 * time.Hour
	}
	if cfg.HourlyRetention <= 0 {
		cfg.HourlyRetention = 400 * 24 * time.Hour
	}
	if cfg.OutboxMaxBytes <= 0 {
		cfg.OutboxMaxBytes = 64 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	path := filepath.Join(cfg.Dir, "villagehub.db")
	if cfg.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("store: no store in data_dir %s: %w", cfg.Dir, err)
		}
	} else if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: creating data directory %s: %w", cfg.Dir, err)
	}
	db, err := bolt.Open(path, 0o640, &bolt.Options{
		ReadOnly: cfg.ReadOnly,
		// A second hub on the same directory must fail, not wait forever.
		Timeout: 2 * time.Second,
		// The freelist is rebuilt on open instead of written on every
		// commit: less to fsync per batch.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("store: %s is locked by another process (is another villagehub using data_dir %s?)", path, cfg.Dir)
		}
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	st := &Store{cfg: cfg, db: db, path: path, log: cfg.Logger, outboxSignal: make(chan struct{}, 1)}
	if cfg.ReadOnly {
		return st, nil
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketDevices, bucketHourly, bucketEvents, bucketMeta, bucketOutbox, bucketDeliveries} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: creating buckets in %s: %w", path, err)
	}
	if err := st.loadOutboxSize(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: reading the outbox in %s: %w", path, err)
	}
	return st, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// LoadDevices calls fn for every persisted device.
func (s *Store) LoadDevices(fn func(key string, value []byte) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDevices).ForEach(func(k, v []byte) error {
			return fn(string(k), v)
		})
	})
}

// Commit writes a batch in one transaction and fsyncs it.
func (s *Store) Commit(b *state.Batch) error {
	var outboxed, points int
	s.hourly.begin()
	err := s.db.Update(func(tx *bolt.Tx) error {
		devs := tx.Bucket(bucketDevices)
		for _, d := range b.Devices {
			if err := devs.Put([]byte(d.Key), d.Value); err != nil {
				return fmt.Errorf("device %s: %w", d.Key, err)
			}
		}
		// A batch holds one scan record per board report, hundreds per
		// commit under load, mostly for a few boards in the same hour:
		// they are summed per hourly key first, so that each key costs
		// one B+tree Put per commit (and a Get, unless the newest values
		// are in s.hourly) instead of a Get and a Put per report (the
		// pairs were a sixth of the hub's CPU in the embedded-broker
		// bench's profile).
		h := &s.hourly
		for i := range b.Scans {
			sc := &b.Scans[i]
			h.add(slotOf(sc.Site, sc.Board, sc.Time, sourceCode(sc.Source)), sc.N)
			h.add(slotOf(sc.Site, sc.Board, sc.Time, codeUnique), sc.Unique)
			h.add(slotOf(sc.Site, sc.Board, sc.Time, codeBots), sc.Bots)
			h.add(slotOf(sc.Site, sc.Board, sc.Time, codeRateLimited), sc.RateLimited)
		}
		hourly := tx.Bucket(bucketHourly)
		for slot, n := range h.sums {
			cur, ok := h.get(slot)
			k, v := h.kv(slot, 0)
			if !ok {
				if old := hourly.Get(k); len(old) == 8 {
					cur = binary.BigEndian.Uint64(old)
				}
			}
			binary.BigEndian.PutUint64(v, cur+uint64(n))
			if err := hourly.Put(k, v); err != nil {
				return fmt.Errorf("qr hourly count: %w", err)
			}
			h.put(slot, cur+uint64(n))
		}
		evs := tx.Bucket(bucketEvents)
		for i := range b.Events {
			e := &b.Events[i]
			seq, _ := evs.NextSequence()
			v, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := evs.Put(eventKey(e.Time, seq), v); err != nil {
				return fmt.Errorf("event: %w", err)
			}
		}
		if err := putDeliveries(tx.Bucket(bucketDeliveries), b.Deliveries, b.DeliverySeq); err != nil {
			return fmt.Errorf("deliveries: %w", err)
		}
		var err error
		outboxed, points, err = s.putOutbox(tx, b.Points)
		return err
	})
	s.hourly.end(err == nil)
	if err != nil {
		if errors.Is(err, ErrOutboxFull) {
			return err
		}
		return fmt.Errorf("store: committing batch: %w", err)
	}
	if outboxed > 0 {
		s.outboxBytes.Add(int64(outboxed))
		s.outboxPoints.Add(int64(points))
		select {
		case s.outboxSignal <- struct{}{}:
		default:
		}
	}
	return nil
}

// What an hourly count counts: scans by source, and for printed codes the
// unique scans, bot visits and rate-limited visits.
const (
	codeMQTT        = 'm'
	codePrinted     = 'p'
	codeUnique      = 'u'
	codeBots        = 'b'
	codeRateLimited = 'r'
)

// Kinds of hourly count (HourCount.Source).
const (
	CountUnique      = "unique"
	CountBots        = "bots"
	CountRateLimited = "rate_limited"
)

func sourceCode(src string) byte {
	if src == state.SourcePrinted {
		return codePrinted
	}
	return codeMQTT
}

func sourceName(c byte) string {
	switch c {
	case codePrinted:
		return state.SourcePrinted
	case codeUnique:
		return CountUnique
	case codeBots:
		return CountBots
	case codeRateLimited:
		return CountRateLimited
	}
	return state.SourceMQTT
}

// eventKey sorts events by time; seq keeps equal times apart.
func eventKey(t time.Time, seq uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(t.UnixNano()))
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

// putDeliveries stores ids under sequence numbers from seq and forgets
// those older than the last state.MaxDeliveries.
func putDeliveries(bk *bolt.Bucket, ids []uint64, seq uint64) error {
	if len(ids) == 0 {
		return nil
	}
	// bbolt keeps the key and value slices until the commit: one buffer
	// for all, not one reused.
	buf := make([]byte, 16*len(ids))
	for i, id := range ids {
		kv := buf[16*i : 16*i+16]
		binary.BigEndian.PutUint64(kv[:8], seq+uint64(i))
		binary.BigEndian.PutUint64(kv[8:], id)
		if err := bk.Put(kv[:8], kv[8:]); err != nil {
			return err
		}
	}
	end := seq + uint64(len(ids))
	if end <= state.MaxDeliveries {
		return nil
	}
	cut := end - state.MaxDeliveries
	// Back to First after each delete: a bbolt cursor may skip the key
	// after one it deleted.
	c := bk.Cursor()
	for key, _ := c.First(); key != nil && binary.BigEndian.Uint64(key) < cut; key, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// LoadDeliveries calls fn for every stored delivery identity, in sequence
// order (state.DeliveryLoader).
func (s *Store) LoadDeliveries(fn func(seq, id uint64) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketDeliveries)
		if bk == nil { // a store opened read-only before the bucket existed
			return nil
		}
		return bk.ForEach(func(k, v []byte) error {
			if len(k) != 8 || len(v) != 8 {
				return nil
			}
			return fn(binary.BigEndian.Uint64(k), binary.BigEndian.Uint64(v))
		})
	})
}
