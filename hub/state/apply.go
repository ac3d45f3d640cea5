package state

import (
	"strings"
	"time"

	"villagehub/hub/event"
	"villagehub/hub/ingest"
)

// applyMessage decodes and applies one MQTT message through the input
// whose topics it belongs to. Called with s.mu held for writing, from the
// Run goroutine only.
func (s *State) applyMessage(m *ingest.Message) {
	s.cur = m // for the motion rules' delivery identity
	m.Received = s.clk.received(m.Received)
	kind, r := event.KindUnknown, event.BadTopic
	evs := s.evs[:0]
	for _, in := range s.inputs {
		if in.Match(m.Topic) {
			evs, kind, r = in.Decode(m.Topic, m.Payload, m.Received, evs)
			break
		}
	}
	if r == event.OK {
		// A message is accepted if any of its events changed something,
		// a duplicate if none did, rejected if one was.
		res := Accepted
		if len(evs) > 0 {
			res = Duplicate
		}
		for i := range evs {
			er, rr := s.apply(&evs[i])
			if rr != event.OK {
				r = rr
				continue
			}
			if er == Accepted {
				res = Accepted
			}
		}
		s.evs = evs[:0]
		if r == event.OK {
			s.msgs[kind][res]++
			return
		}
	}
	s.msgs[kind][Rejected]++
	s.rejected[kind][r]++
	if s.rejects.allow(m.Topic, r, m.Received) {
		s.log.Warn("rejected MQTT message", "topic", logTopic(m.Topic), "reason", r.String(), "expected", expected(kind, r), "bytes", len(m.Payload))
	}
}

// logTopic keeps a rejected topic printable and short in the log.
func logTopic(t string) string {
	if len(t) > 128 {
		t = t[:128] + "…"
	}
	return strings.ToValidUTF8(t, "�")
}

// apply applies a decoded event.
func (s *State) apply(ev *event.Event) (Result, event.Reason) {
	switch ev.Kind {
	case event.Camera:
		c, r := s.camera(ev.Site, ev.Device)
		if r != event.OK {
			return Rejected, r
		}
		return s.applyCamera(c, ev), event.OK
	case event.Board:
		b, r := s.board(ev.Site, ev.Device)
		if r != event.OK {
			return Rejected, r
		}
		return s.applyBoard(b, ev)
	}
	if ev.Type == event.InputStatus {
		return s.applyInputStatus(ev)
	}
	return Rejected, event.BadTopic
}

// camera finds or auto-registers a camera.
func (s *State) camera(site, id string) (*Camera, event.Reason) {
	return lookupOrRegister(s, event.Camera, s.cameras, &s.autoCams, s.cfg.MaxAutoCameras, site, id, func(site, id string) *Camera {
		c := newCamera(site, id, CameraInfo{ID: id, Site: site})
		c.Auto = true
		return c
	})
}

// board finds or auto-registers a QR board.
func (s *State) board(site, id string) (*Board, event.Reason) {
	return lookupOrRegister(s, event.Board, s.boards, &s.autoBoards, s.cfg.MaxAutoBoards, site, id, func(site, id string) *Board {
		b := newBoard(site, id, BoardInfo{ID: id, Site: site})
		b.Auto = true
		return b
	})
}

// lookupOrRegister finds a device, or registers it with mk while fewer than
// limit devices were auto-registered (counted in *auto) and the device
// was not rejected by an administrator.
func lookupOrRegister[D any](s *State, kind event.Kind, m map[devKey]*D, auto *int, limit int, site, id string, mk func(site, id string) *D) (*D, event.Reason) {
	if d := m[devKey{site, id}]; d != nil {
		return d, event.OK
	}
	if s.isRejected(kind, site, id) {
		return nil, event.RejectedDevice
	}
	if *auto >= limit {
		return nil, event.CapReached
	}
	// Clone: site and id point into the message's topic.
	site, id = strings.Clone(site), strings.Clone(id)
	d := mk(site, id)
	m[devKey{site, id}] = d
	*auto++
	return d, event.OK
}

func (s *State) applyCamera(c *Camera, ev *event.Event) Result {
	if ev.Received.After(c.LastSeen) {
		c.LastSeen = ev.Received
	}
	if ev.Type == event.CameraStats {
		return s.applyStats(c, ev) // in memory only: nothing to write
	}
	s.dirtyCams[c] = struct{}{}
	if ev.Source != c.Source {
		c.Source = strings.Clone(ev.Source)
	}
	switch ev.Type {
	case event.Detection:
		return s.applyDetection(c, ev)
	case event.Status:
		return s.applyStatus(&c.Online, &c.StatusSince, event.Camera.String(), c.Site, c.ID, ev)
	case event.Motion:
		// A redelivery of a message whose motion was committed (see
		// delivery.go).
		var delivery uint64
		if s.cur != nil && s.cur.PacketID != 0 {
			delivery = deliveryID(s.cur)
			if s.cur.Dup && s.deliv.has(delivery) {
				return Duplicate
			}
		}
		res := s.applyMotion(c, ev)
		if res == Accepted && delivery != 0 {
			seq := s.deliv.add(delivery)
			if len(s.batch.Deliveries) == 0 {
				s.batch.DeliverySeq = seq
			}
			s.batch.Deliveries = append(s.batch.Deliveries, delivery)
		}
		return res
	}
	return Duplicate
}

// applyMotion applies the contract's motion rules to a camera.
func (s *State) applyMotion(c *Camera, ev *event.Event) Result {
	if ev.Active {
		// A repeated ON while active is not a new event; an ON older
		// than the end of the last event is a redelivered or
		// reordered message.
		if c.MotionActive || (ev.HasTS && !ev.Time.After(c.MotionEnd)) {
			return Duplicate
		}
		c.MotionActive, c.MotionStart, c.MotionZone = true, ev.Time, ev.Zone
		c.motionMono, c.motionSteps = s.clk.monoSteps()
		c.MotionEvents++
		s.event(EventRecord{
			Time: ev.Time, Type: EventMotionStart, Kind: event.Camera.String(), Site: c.Site, Device: c.ID,
			Zone: ev.Zone, Score: ev.Score,
		}, c.MotionEvents)
		return Accepted
	}
	if !c.MotionActive || ev.Time.Before(c.MotionStart) {
		return Duplicate
	}
	d := ev.Time.Sub(c.MotionStart).Seconds()
	if mono, steps := s.clk.monoSteps(); !ev.HasTS && c.motionMono != 0 && steps != c.motionSteps {
		// The hub's clock stepped during the event (NTP arrived): its
		// receipt times are on two different clocks, the monotonic one
		// is not (docs/time.md).
		d = (mono - c.motionMono).Seconds()
	}
	c.MotionActive, c.MotionEnd, c.LastMotionDur = false, ev.Time, d
	zone := ev.Zone
	if zone == "" {
		zone = c.MotionZone
	}
	s.event(EventRecord{
		Time: ev.Time, Type: EventMotionEnd, Kind: event.Camera.String(), Site: c.Site, Device: c.ID,
		Zone: zone, Score: ev.Score, Duration: d,
	}, c.MotionEvents)
	return Accepted
}

func (s *State) applyStatus(online *int8, since *time.Time, kind, site, id string, ev *event.Event) Result {
	v := int8(0)
	typ := EventOffline
	if ev.Online {
		v, typ = 1, EventOnline
	}
	if *online == v {
		return Accepted // retained status re-sent on reconnect: state, not an event
	}
	*online, *since = v, ev.Time
	s.event(EventRecord{Time: ev.Time, Type: typ, Kind: kind, Site: site, Device: id}, 0)
	return Accepted
}

func (s *State) applyBoard(b *Board, ev *event.Event) (Result, event.Reason) {
	s.dirtyBrds[b] = struct{}{}
	if ev.Received.After(b.LastSeen) {
		b.LastSeen = ev.Received
	}
	switch ev.Type {
	case event.Status:
		b.health.take(ev)
		return s.applyStatus(&b.Online, &b.StatusSince, event.Board.String(), b.Site, b.ID, ev), event.OK
	case event.QRTotal:
		n, r := b.Counter.applyBounded(ev.BootBytes, ev.Total, ev.Time, ev.HasTS, ev.Received, s.qrBounds)
		if r != event.OK {
			return Rejected, r
		}
		b.health.take(ev)
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

// event records a motion or status event (and its InfluxDB point; n is the
// camera's event count, which keeps the point's time unique).
func (s *State) event(e EventRecord, n uint64) {
	s.batch.Events = append(s.batch.Events, e)
	if s.cfg.InfluxPoints {
		s.eventPoint(&e, n)
	}
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

func dayNumber(t time.Time, loc *time.Location) int32 {
	y, m, d := t.In(loc).Date()
	return int32(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}
