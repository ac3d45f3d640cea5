package state

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"villagehub/hub/event"
)

func detection(id string, start int, end int) *event.Event {
	d := &event.DetectionInfo{ID: id, Label: "person", Score: 0.9, Start: t1.Add(time.Duration(start) * time.Second)}
	if end > 0 {
		d.End = t1.Add(time.Duration(end) * time.Second)
	}
	return &event.Event{Type: event.Detection, Kind: event.Camera, Site: "s1", Device: "gate", Source: "frigate/nvr", Detection: d, Time: d.Start, Received: d.Start}
}

// TestDetectionsOncePerID: a detection counts once whatever repeats, its
// end is recorded once, and an ID forgotten past the bound is not counted
// again (the horizon).
func TestDetectionsOncePerID(t *testing.T) {
	s := newRulesState(t, Config{})
	apply := func(ev *event.Event) Result {
		s.mu.Lock()
		defer s.mu.Unlock()
		r, reason := s.apply(ev)
		if reason != event.OK {
			t.Fatalf("rejected: %v", reason)
		}
		events := len(s.batch.Events)
		s.batch.reset()
		if r == Accepted && events == 0 && ev.Detection.End.IsZero() && s.camMust(t).DetectionsTotal == 0 {
			t.Fatal("accepted without an event")
		}
		return r
	}
	want := []Result{Accepted, Accepted, Accepted, Duplicate, Duplicate}
	got := []Result{apply(detection("a", 1, 0)), apply(detection("a", 1, 0)), apply(detection("a", 1, 9)), apply(detection("a", 1, 9)), apply(detection("a", 1, 0))}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("results %v, want %v", got, want)
	}
	// Fill past the bound: the first ones are forgotten, not recounted.
	for i := range maxTracked + 10 {
		apply(detection(fmt.Sprintf("x%d", i), 10+i, 11+i))
	}
	if r := apply(detection("x0", 10, 11)); r != Duplicate {
		t.Fatalf("a forgotten id came back as %v", r)
	}
	if r := apply(detection("late-new", 10000, 0)); r != Accepted {
		t.Fatalf("a new id after the horizon: %v", r)
	}
	c := s.camMust(t)
	if c.DetectionsTotal != maxTracked+12 || len(c.Dets.Labels) != 1 || c.Dets.Labels[0].N != maxTracked+12 {
		t.Fatalf("counted %d (%v), want %d", c.DetectionsTotal, c.Dets.Labels, maxTracked+12)
	}
}

func (s *State) camMust(t *testing.T) *Camera {
	t.Helper()
	c := s.cameras().m[devKey{"s1", "gate"}]
	if c == nil {
		t.Fatal("no camera")
	}
	return c
}

func TestLabelsBounded(t *testing.T) {
	var d detections
	for i := range maxLabels + 5 {
		d.count(fmt.Sprintf("l%02d", i))
	}
	d.count("l00")
	if len(d.Labels) != maxLabels+1 || d.Labels[0].N != 2 {
		t.Fatalf("%d labels: %v", len(d.Labels), d.Labels)
	}
	var other uint64
	for _, l := range d.Labels {
		if l.Label == "other" {
			other = l.N
		}
	}
	if other != 5 {
		t.Fatalf("other = %d, want 5", other)
	}
}

// TestCameraCodec: a camera's record round-trips, and a record written by
// the previous version (1) still reads.
func TestCameraCodec(t *testing.T) {
	c := newCamera("s1", "gate", CameraInfo{})
	c.Online, c.MotionEvents, c.MotionActive, c.MotionStart, c.Source = 1, 7, true, t1, "frigate/nvr"
	c.Dets = detections{Labels: []LabelCount{{"car", 2}, {"person", 3}}, Tracked: []tracked{{"a", 5, true}, {"b", 6, false}}, Horizon: 4}
	c.DetectionsTotal = 5
	c.probe = &Probe{Up: 1, Since: t1, LastProbe: t1, LastSuccess: t1, Reason: ""}
	b := c.appendTo(nil)
	d := newCamera("s1", "gate", CameraInfo{})
	if err := d.decode(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.cameraPersisted, d.cameraPersisted) {
		t.Fatalf("round trip:\n%+v\n%+v", c.cameraPersisted, d.cameraPersisted)
	}
	// Version 1: the same fields up to the probe's reason.
	v1 := append([]byte{1}, b[1:]...)
	cut := len(v1) - len(b) + len(c.appendV1Tail(b))
	e := newCamera("s1", "gate", CameraInfo{})
	if err := e.decode(v1[:cut]); err != nil {
		t.Fatal(err)
	}
	if e.MotionEvents != 7 || e.Source != "" || len(e.Dets.Labels) != 0 {
		t.Fatalf("version 1 record read as %+v", e.cameraPersisted)
	}
	for _, bad := range [][]byte{nil, {9}, b[:len(b)-3]} {
		if err := newCamera("s1", "x", CameraInfo{}).decode(bad); err == nil {
			t.Errorf("decoded a bad record %x", bad)
		}
	}
}

// appendV1Tail returns the prefix of a version 2 record that version 1
// wrote: everything before the source.
func (c *Camera) appendV1Tail(v2 []byte) []byte {
	tail := enc{}
	tail.s(c.Source)
	tail.u(c.DetectionsTotal)
	tail.u(uint64(len(c.Dets.Labels)))
	for _, l := range c.Dets.Labels {
		tail.s(l.Label)
		tail.u(l.N)
	}
	tail.u(uint64(len(c.Dets.Tracked)))
	for _, tr := range c.Dets.Tracked {
		tail.s(tr.ID)
		tail.i(tr.Start)
		tail.bool(tr.Ended)
	}
	tail.i(c.Dets.Horizon)
	return v2[:len(v2)-len(tail.b)]
}

// TestDeliveryLogRing: the log forgets exactly the identities more than
// MaxDeliveries behind, also after it was loaded from the store.
func TestDeliveryLogRing(t *testing.T) {
	var l = newDeliveryLog()
	for i := range uint64(MaxDeliveries + 100) {
		l.add(i + 1)
	}
	fresh := newDeliveryLog()
	for seq := uint64(100); seq < MaxDeliveries+100; seq++ {
		fresh.load(seq, seq+1)
	}
	for _, lg := range []*deliveryLog{l, fresh} {
		if lg.has(100) || !lg.has(101) || !lg.has(MaxDeliveries+100) || len(lg.set) != MaxDeliveries {
			t.Fatalf("has(100)=%v has(101)=%v has(last)=%v size %d", lg.has(100), lg.has(101), lg.has(MaxDeliveries+100), len(lg.set))
		}
		seq := lg.add(999999)
		if seq != MaxDeliveries+100 || lg.has(101) || !lg.has(102) {
			t.Fatalf("after one more: seq %d has(101)=%v has(102)=%v", seq, lg.has(101), lg.has(102))
		}
	}
}
