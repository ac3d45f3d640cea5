package state

import (
	"strings"
	"time"

	"villagehub/hub/event"
)

// The per-kind registry. Each device kind is declared once, in its own
// file (camera.go, board.go): its device type, its codec and view, its
// rules, and one registerKind call in init. The state keeps one devices
// table per registered kind, indexed by event.Kind, and everything that
// is the same for every kind is written once here: finding or
// auto-registering a device under the kind's cap, loading its record,
// writing the changed ones, forgetting a rejected one, counting. A new
// kind therefore touches hub/state in one new file; nothing in state.go,
// apply.go, read.go or run.go names a kind.

// device is what a kind's device type (a pointer: *Camera, *Board) gives
// the registry.
type device interface {
	comparable
	base() *devBase
	// setAuto sets the persisted auto-registered flag.
	setAuto(bool)
	// appendTo and decode are the kind's store codec (codec.go).
	appendTo(b []byte) []byte
	decode(b []byte) error
	// lastSeen is the hub's time of the device's last message (clock.go).
	lastSeen() time.Time
}

// devBase is what every device has, embedded first in each kind's type.
type devBase struct {
	Site, ID   string
	key        string // in the store
	Configured bool
}

func (b *devBase) base() *devBase { return b }

// approve moves the device into the config (ok) or out of it, setting
// Configured and the kind's auto flag; it returns the change in the count
// of self-registered devices (-1, 0 or 1), as each kind's configure does.
func (b *devBase) approve(ok bool, auto *bool) int {
	switch {
	case ok && !b.Configured:
		b.Configured, *auto = true, false
		return -1
	case !ok && b.Configured:
		b.Configured, *auto = false, true
		return 1
	}
	return 0
}

// kindSpec declares a device kind to the registry.
type kindSpec[D device] struct {
	kind event.Kind
	// blank returns a new device without history, not configured.
	blank func(site, id string) D
	// apply applies an event to one of the kind's devices: its rules.
	apply func(s *State, d D, ev *event.Event) (Result, event.Reason)
	// maxAuto is the kind's auto-registration cap in the config; nil or
	// zero: DefaultMaxAuto.
	maxAuto func(cfg *Config) int
}

// DefaultMaxAuto is the auto-registration cap of a kind whose config sets
// none.
const DefaultMaxAuto = 10000

// kindTable is a kind's devices as the kind-blind code sees them.
type kindTable interface {
	apply(s *State, ev *event.Event) (Result, event.Reason)
	load(site, id string, value []byte) error
	// collect appends the records of the devices changed since the last
	// call, encoded into buf.
	collect(buf []byte, recs []DeviceRecord) ([]byte, []DeviceRecord)
	// forget removes an auto-registered device and returns the record of
	// a blank one to overwrite its history in the store.
	forget(site, id string) ([]byte, error)
	// settle removes a device rejected in the store, unless it is
	// configured (then it says so: the rejection is to be lifted).
	settle(site, id string) (configured bool)
	configured(site, id string) bool
	counts() DeviceCount
	eachLastSeen(fn func(time.Time))
}

// DeviceCount is how many devices of a kind the state knows.
type DeviceCount struct {
	Total, Auto int
	// Limit is the kind's auto-registration cap.
	Limit int
}

// kindTables makes a State's tables, one per registered kind.
var kindTables [event.NumKinds]func(cfg *Config) kindTable

// registerKind declares a kind (from its file's init).
func registerKind[D device](spec kindSpec[D]) {
	if kindTables[spec.kind] != nil {
		panic("state: device kind " + spec.kind.String() + " registered twice")
	}
	kindTables[spec.kind] = func(cfg *Config) kindTable {
		limit := 0
		if spec.maxAuto != nil {
			limit = spec.maxAuto(cfg)
		}
		if limit <= 0 {
			limit = DefaultMaxAuto
		}
		return &devices[D]{spec: &spec, m: map[devKey]D{}, dirty: map[D]struct{}{}, limit: limit}
	}
}

// devices is one kind's table.
type devices[D device] struct {
	spec  *kindSpec[D]
	m     map[devKey]D
	auto  int // auto-registered devices, against limit
	limit int
	dirty map[D]struct{} // changed in this batch
}

// table returns a registered kind's typed table.
func table[D device](s *State, k event.Kind) *devices[D] {
	return s.tables[k].(*devices[D])
}

func (t *devices[D]) get(site, id string) (D, bool) {
	d, ok := t.m[devKey{site, id}]
	return d, ok
}

func (t *devices[D]) markDirty(d D) { t.dirty[d] = struct{}{} }

func (t *devices[D]) apply(s *State, ev *event.Event) (Result, event.Reason) {
	d, r := t.lookupOrRegister(s, ev.Site, ev.Device)
	if r != event.OK {
		return Rejected, r
	}
	return t.spec.apply(s, d, ev)
}

// lookupOrRegister finds a device, or registers it while fewer than the
// kind's limit were auto-registered and it was not rejected by an
// administrator.
func (t *devices[D]) lookupOrRegister(s *State, site, id string) (D, event.Reason) {
	if d, ok := t.m[devKey{site, id}]; ok {
		return d, event.OK
	}
	var none D
	if s.isRejected(t.spec.kind, site, id) {
		return none, event.RejectedDevice
	}
	if t.auto >= t.limit {
		return none, event.CapReached
	}
	// Clone: site and id point into the message's topic.
	site, id = strings.Clone(site), strings.Clone(id)
	d := t.spec.blank(site, id)
	d.setAuto(true)
	t.m[devKey{site, id}] = d
	t.auto++
	return d, event.OK
}

func (t *devices[D]) load(site, id string, value []byte) error {
	k := devKey{site, id}
	d, ok := t.m[k]
	if !ok {
		d = t.spec.blank(site, id)
	}
	if err := d.decode(value); err != nil {
		return err
	}
	if !d.base().Configured {
		// Auto-registered, or configured once and no more: it keeps its
		// history and counts against the cap like any other.
		d.setAuto(true)
		t.auto++
	}
	t.m[k] = d
	return nil
}

func (t *devices[D]) collect(buf []byte, recs []DeviceRecord) ([]byte, []DeviceRecord) {
	for d := range t.dirty {
		start := len(buf)
		buf = d.appendTo(buf)
		recs = append(recs, DeviceRecord{Key: d.base().key, Value: buf[start:len(buf):len(buf)]})
	}
	clear(t.dirty)
	return buf, recs
}

func (t *devices[D]) forget(site, id string) ([]byte, error) {
	k := devKey{site, id}
	d, ok := t.m[k]
	switch {
	case !ok:
		return nil, ErrUnknownDevice
	case d.base().Configured:
		return nil, ErrConfigured
	}
	delete(t.m, k)
	delete(t.dirty, d)
	t.auto--
	return t.spec.blank(site, id).appendTo(nil), nil
}

func (t *devices[D]) settle(site, id string) bool {
	k := devKey{site, id}
	d, ok := t.m[k]
	if !ok {
		return false
	}
	if d.base().Configured {
		return true
	}
	delete(t.m, k)
	t.auto--
	return false
}

func (t *devices[D]) configured(site, id string) bool {
	d, ok := t.m[devKey{site, id}]
	return ok && d.base().Configured
}

func (t *devices[D]) counts() DeviceCount {
	return DeviceCount{Total: len(t.m), Auto: t.auto, Limit: t.limit}
}

func (t *devices[D]) eachLastSeen(fn func(time.Time)) {
	for _, d := range t.m {
		fn(d.lastSeen())
	}
}
