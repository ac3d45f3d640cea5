package state

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// Persisted device records use a small binary encoding rather than JSON:
// they are written for every changed device in every batch, and encoding
// them must not cost more than applying the messages did. The first byte
// is the format version. Version 2 appends to a camera what version 1 did
// not have (source, detections); a version 1 record
// reads as before with those empty.
const codecVersion = 2

var errCorrupt = errors.New("corrupt device record")

type enc struct{ b []byte }

func (e *enc) u(v uint64)  { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) i(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) f(v float64) { e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(v)) }
func (e *enc) s(v string)  { e.u(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) t(v time.Time) {
	if v.IsZero() {
		e.i(0)
		return
	}
	e.i(v.UnixNano())
}
func (e *enc) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) u() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) i() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) f() float64 {
	if len(d.b) < 8 {
		d.err = errCorrupt
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *dec) s() string {
	n := d.u()
	if d.err != nil || uint64(len(d.b)) < n {
		d.err = errCorrupt
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *dec) t() time.Time {
	v := d.i()
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v).UTC()
}

func (d *dec) bool() bool {
	if len(d.b) < 1 {
		d.err = errCorrupt
		return false
	}
	v := d.b[0] == 1
	d.b = d.b[1:]
	return v
}

func (c *Camera) appendTo(b []byte) []byte {
	e := enc{append(b, codecVersion)}
	e.bool(c.Auto)
	e.i(int64(c.Online))
	e.t(c.StatusSince)
	e.t(c.LastSeen)
	e.bool(c.MotionActive)
	e.t(c.MotionStart)
	e.t(c.MotionEnd)
	e.s(c.MotionZone)
	e.u(c.MotionEvents)
	e.f(c.LastMotionDur)
	p := c.probe
	if p == nil {
		p = &Probe{Up: -1}
	}
	e.i(int64(p.Up))
	e.t(p.Since)
	e.t(p.LastProbe)
	e.t(p.LastSuccess)
	e.s(p.Reason)
	// Version 2.
	e.s(c.Source)
	e.u(c.DetectionsTotal)
	e.u(uint64(len(c.Dets.Labels)))
	for _, l := range c.Dets.Labels {
		e.s(l.Label)
		e.u(l.N)
	}
	e.u(uint64(len(c.Dets.Tracked)))
	for _, t := range c.Dets.Tracked {
		e.s(t.ID)
		e.i(t.Start)
		e.bool(t.Ended)
	}
	e.i(c.Dets.Horizon)
	return e.b
}

func (c *Camera) decode(b []byte) error {
	if len(b) == 0 || b[0] < 1 || b[0] > codecVersion {
		return errCorrupt
	}
	version := b[0]
	d := dec{b: b[1:]}
	c.Auto = d.bool()
	c.Online = int8(d.i())
	c.StatusSince = d.t()
	c.LastSeen = d.t()
	c.MotionActive = d.bool()
	c.MotionStart = d.t()
	c.MotionEnd = d.t()
	c.MotionZone = d.s()
	c.MotionEvents = d.u()
	c.LastMotionDur = d.f()
	p := &Probe{}
	p.Up = int8(d.i())
	p.Since = d.t()
	p.LastProbe = d.t()
	p.LastSuccess = d.t()
	p.Reason = d.s()
	if p.Up >= 0 {
		c.probe = p
	}
	if version < 2 || d.err != nil {
		return d.err
	}
	c.Source = d.s()
	c.DetectionsTotal = d.u()
	n := d.u()
	if d.err != nil || n > maxLabels+1 {
		return errCorrupt
	}
	c.Dets.Labels = make([]LabelCount, n)
	for i := range c.Dets.Labels {
		c.Dets.Labels[i] = LabelCount{Label: d.s(), N: d.u()}
	}
	n = d.u()
	if d.err != nil || n > maxTracked {
		return errCorrupt
	}
	c.Dets.Tracked = make([]tracked, n)
	for i := range c.Dets.Tracked {
		c.Dets.Tracked[i] = tracked{ID: d.s(), Start: d.i(), Ended: d.bool()}
	}
	c.Dets.Horizon = d.i()
	return d.err
}

func (p *boardPersisted) appendTo(b []byte) []byte {
	e := enc{append(b, codecVersion)}
	e.bool(p.Auto)
	e.i(int64(p.Online))
	e.t(p.StatusSince)
	e.t(p.LastSeen)
	e.t(p.LastReport)
	e.u(p.ScansMQTT)
	e.u(p.ScansPrinted)
	e.u(p.PrintedUnique)
	e.u(p.Bots)
	e.u(p.RateLimited)
	e.i(int64(p.TodayDay))
	e.u(p.Today)
	e.u(p.Counter.Clock)
	e.u(uint64(len(p.Counter.Epochs)))
	for _, ep := range p.Counter.Epochs {
		e.s(ep.Boot)
		e.i(ep.Max)
		e.t(ep.Start)
		e.t(ep.Last)
		e.u(ep.Used)
	}
	return p.GatewayIDs.appendTo(e.b)
}

func (p *boardPersisted) decode(b []byte) error {
	if len(b) == 0 || b[0] < 1 || b[0] > codecVersion {
		return errCorrupt
	}
	d := dec{b: b[1:]}
	p.Auto = d.bool()
	p.Online = int8(d.i())
	p.StatusSince = d.t()
	p.LastSeen = d.t()
	p.LastReport = d.t()
	p.ScansMQTT = d.u()
	p.ScansPrinted = d.u()
	p.PrintedUnique = d.u()
	p.Bots = d.u()
	p.RateLimited = d.u()
	p.TodayDay = int32(d.i())
	p.Today = d.u()
	p.Counter.Clock = d.u()
	n := d.u()
	if d.err != nil || n > maxBoots {
		return errCorrupt
	}
	p.Counter.Epochs = make([]epoch, n)
	for i := range p.Counter.Epochs {
		ep := &p.Counter.Epochs[i]
		ep.Boot = d.s()
		ep.Max = d.i()
		ep.Start = d.t()
		ep.Last = d.t()
		ep.Used = d.u()
	}
	if d.err != nil {
		return d.err
	}
	return p.GatewayIDs.decode(d.b) // absent in records written before gateways
}
