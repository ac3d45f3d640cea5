// Package state is the one owner of live device state. It decodes the
// queued MQTT messages with the input each belongs to (hub/input), applies
// the typed events in order together with the hub's own traffic (probe
// results, printed scans, events of inputs that run on their own), keeps
// the idempotent QR counts and exactly-once motion, makes the effects
// durable through a Store before messages are acknowledged, and serves
// consistent snapshots to everything that reads (metrics, API, web,
// alerts).
package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"villagehub/hub/event"
	"villagehub/hub/ingest"
)

// Store makes a batch of changes durable. Commit must not return before the
// batch survives a crash (fsync): the hub acknowledges MQTT messages only
// after Commit returned nil.
type Store interface {
	LoadDevices(fn func(key string, value []byte) error) error
	Commit(b *Batch) error
}

// Site, CameraInfo and BoardInfo describe configured devices.
type Site struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type CameraInfo struct {
	ID, Site, Name, Location string
	// RTSPURL is the camera's stream address with any password removed.
	RTSPURL string
}

type BoardInfo struct {
	ID, Site, Name, Location string
	TargetURL                string
}

// Config configures a State.
type Config struct {
	Sites   []Site
	Cameras []CameraInfo
	Boards  []BoardInfo
	// MaxAutoCameras and MaxAutoBoards cap how many devices not in the
	// config are auto-registered (DefaultMaxAuto each if zero: kinds.go).
	MaxAutoCameras int
	MaxAutoBoards  int
	// Location is the village's time zone, for "today" (Asia/Ho_Chi_Minh
	// if nil).
	Location *time.Location
	// Inputs decode the MQTT messages of the queue: each message goes to
	// the first whose Match takes its topic (hub/input builds them from
	// the config). Empty: the MQTT contract alone, configured by Decoder.
	Inputs  []Decoder
	Decoder ingest.DecoderConfig
	Queue   *ingest.Queue
	Store   Store
	// BatchSize is the most messages applied and committed at once.
	BatchSize int
	// CommitGap spaces commits: a batch that comes less than CommitGap
	// after the previous commit began waits out the rest of the gap and
	// takes what queued meanwhile. A steady stream (a district's hundreds
	// of messages a second, a flood of scans) then pays two fdatasyncs per
	// CommitGap instead of per message or small batch, for at most
	// CommitGap more latency; a message after a quiet spell (a village)
	// commits at once. Zero means DefaultCommitGap; negative, never wait.
	CommitGap time.Duration
	// Wait sleeps d or until ctx ends (nil: a timer); tests set it and
	// Mono (below), which measures the gap.
	Wait   func(ctx context.Context, d time.Duration)
	Logger *slog.Logger
	// ObserveLatency, if set, is called with the seconds from receiving a
	// message to its acknowledgement.
	ObserveLatency func(seconds float64)
	// ObserveProbe, if set, is called with each RTSP probe's duration.
	ObserveProbe func(site string, seconds float64)
	// InfluxPoints makes every batch carry its InfluxDB points.
	InfluxPoints bool
	// Now is the clock (time.Now if nil); tests set it. The hub's time is
	// derived from it (clock.go, docs/time.md).
	Now func() time.Time
	// Mono is a monotonic clock (time since any fixed start; nil: the
	// runtime's), which the hub runs on while Now is below the floor.
	Mono func() time.Duration
	// MaxQRPerReport and MaxQRPerHour bound the scans one QR report, and
	// one board in an hour, may add; MaxPast is how old a report's ts may
	// be. Past them a report is rejected (implausible, stale_ts). Zero
	// means the defaults (DefaultMaxQRPerReport, ...).
	MaxQRPerReport int64
	MaxQRPerHour   int64
	MaxPast        time.Duration
}

// Decoder turns an MQTT message into typed events (hub/input.MQTT). State
// calls it from its one pipeline goroutine only, so a decoder may reuse
// its buffers: the events it appends are valid until its next call.
type Decoder interface {
	// Match says whether topic is this input's.
	Match(topic string) bool
	// Decode appends the events the message carries to evs, or says why
	// it is rejected; kind classifies the message for the per-kind
	// counters, also when it is rejected.
	Decode(topic string, payload []byte, received time.Time, evs []event.Event) ([]event.Event, event.MsgKind, event.Reason)
}

type devKey struct{ site, id string }

// State holds every device's live state.
type State struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	mono    func() time.Duration // spaces commits (CommitGap)
	clk     *hubClock
	loc     *time.Location
	inputs  []Decoder
	evs     []event.Event   // decoded events of one message, reused
	cur     *ingest.Message // the message being applied (nil: the hub's own traffic)
	rejects *rejectLog

	mu    sync.RWMutex
	sites map[string]Site
	// tables holds each device kind's devices (kinds.go).
	tables     [event.NumKinds]kindTable
	msgs       [event.NumMsgKinds][NumResults]uint64
	rejected   [event.NumMsgKinds][event.NumReasons]uint64
	commits    uint64
	commitErrs uint64
	orphans    uint64        // visits to /q/ for unknown boards
	dropped    atomic.Uint64 // printed scans dropped: the queue and the tally were full
	tally      scanTally     // printed scans counted while the queue was full (overflow.go)
	lastCommit time.Time
	storeErr   error

	// Only the Run goroutine touches these.
	batch Batch

	changed   chan struct{}
	killAfter int // test failpoint (run.go)
	deliv     *deliveryLog
	lastTS    map[seriesKey]int64 // InfluxDB series -> last timestamp used
	sources   map[string]*inputState
	// rejectedDevs are the devices an administrator rejected (forget.go).
	rejectedDevs map[rejectKey]struct{}

	qrBounds qrBounds
}

// Result of one message, for villagehub_mqtt_messages_total.
type Result uint8

const (
	Accepted Result = iota
	Rejected
	Duplicate
	// NumResults sizes per-result arrays. Keep it last.
	NumResults
)

func (r Result) String() string {
	return [...]string{"accepted", "rejected", "duplicate"}[r]
}

// New builds the state from the config and the store's persisted devices.
func New(cfg Config) (*State, error) {
	if cfg.Queue == nil || cfg.Store == nil {
		return nil, errors.New("state: Queue and Store are required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 2048
	}
	if cfg.CommitGap == 0 {
		cfg.CommitGap = DefaultCommitGap
	}
	if cfg.Wait == nil {
		cfg.Wait = func(ctx context.Context, d time.Duration) {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
			}
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	systemClock := cfg.Now == nil
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxQRPerReport <= 0 {
		cfg.MaxQRPerReport = DefaultMaxQRPerReport
	}
	if cfg.MaxQRPerHour <= 0 {
		cfg.MaxQRPerHour = DefaultMaxQRPerHour
	}
	if cfg.MaxPast <= 0 {
		cfg.MaxPast = DefaultMaxPast
	}
	loc := cfg.Location
	if loc == nil {
		var err error
		if loc, err = time.LoadLocation("Asia/Ho_Chi_Minh"); err != nil {
			return nil, fmt.Errorf("state: loading time zone: %w", err)
		}
	}
	s := &State{
		qrBounds:     qrBounds{perReport: cfg.MaxQRPerReport, perHour: cfg.MaxQRPerHour, maxPast: cfg.MaxPast},
		cfg:          cfg,
		log:          cfg.Logger,
		now:          cfg.Now,
		loc:          loc,
		inputs:       cfg.Inputs,
		rejects:      newRejectLog(time.Minute, 4096),
		sites:        map[string]Site{},
		changed:      make(chan struct{}, 1),
		lastTS:       map[seriesKey]int64{},
		sources:      map[string]*inputState{},
		rejectedDevs: map[rejectKey]struct{}{},
		killAfter:    failpointFromEnv(),
		deliv:        newDeliveryLog(),
	}
	for k, mk := range kindTables {
		if mk != nil {
			s.tables[k] = mk(&cfg)
		}
	}
	if len(s.inputs) == 0 {
		s.inputs = []Decoder{ingest.NewDecoder(cfg.Decoder)}
	}
	// The configured devices first; the store then adds what it remembers
	// (history of configured devices, and auto-registered ones).
	s.applyDevices(&deviceList{cfg.Sites, cfg.Cameras, cfg.Boards})
	if err := cfg.Store.LoadDevices(s.loadDevice); err != nil {
		return nil, fmt.Errorf("state: loading devices from the store: %w", err)
	}
	s.settleRejected()
	// The hub's clock (clock.go): floored at what the store remembers.
	mono := cfg.Mono
	if mono == nil && systemClock {
		start := time.Now()
		mono = func() time.Duration { return time.Since(start) }
	}
	s.clk = newHubClock(cfg.Now, mono)
	s.mono = mono
	if s.mono == nil {
		start := time.Now()
		s.mono = func() time.Duration { return time.Since(start) }
	}
	if systemClock {
		s.clk.raiseFloor(MinTrustedTime)
	}
	s.raiseFloorFromDevices()
	s.now = s.clk.now
	if dl, ok := cfg.Store.(DeliveryLoader); ok {
		if err := dl.LoadDeliveries(func(seq, id uint64) error { s.deliv.load(seq, id); return nil }); err != nil {
			return nil, fmt.Errorf("state: loading delivery identities from the store: %w", err)
		}
	}
	return s, nil
}

// Device keys in the store: "<kind's store key>/<site>/<id>" ("c/..." for
// cameras, "b/..." for boards: event.KindInfo.StoreKey).
func deviceKey(k event.Kind, site, id string) string {
	return string(k.Info().StoreKey) + "/" + site + "/" + id
}

func (s *State) loadDevice(key string, value []byte) error {
	if name, ok := strings.CutPrefix(key, inputKeyPrefix); ok {
		if err := s.loadInput(name, value); err != nil {
			return fmt.Errorf("decoding input %s: %w", key, err)
		}
		return nil
	}
	if strings.HasPrefix(key, rejectKeyPrefix) {
		return s.loadRejected(key, value)
	}
	if len(key) < 2 || key[1] != '/' {
		return fmt.Errorf("bad device key %q", key)
	}
	site, id, ok := cutSlash(key[2:])
	if !ok {
		return fmt.Errorf("bad device key %q", key)
	}
	kind, ok := event.KindByStoreKey(key[0])
	if !ok || s.tables[kind] == nil {
		return fmt.Errorf("bad device key %q", key)
	}
	if err := s.tables[kind].load(site, id, value); err != nil {
		return fmt.Errorf("decoding %s %s: %w", kind, key, err)
	}
	return nil
}

func cutSlash(s string) (a, b string, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}
