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
func (s *State) applyMessage(m *ingest.Message) { s.applyReceived(m, s.clk.receipts()) }

// applyReceived is applyMessage with the clock read once for the batch.
func (s *State) applyReceived(m *ingest.Message, rc receipts) {
	s.cur = m // for the motion rules' delivery identity
	m.Received = rc.received(m.Received)
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
	if ev.Kind < event.NumKinds {
		if t := s.tables[ev.Kind]; t != nil {
			return t.apply(s, ev)
		}
	}
	if ev.Type == event.InputStatus {
		return s.applyInputStatus(ev)
	}
	return Rejected, event.BadTopic
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

// event records a motion or status event (and its InfluxDB point; n is the
// camera's event count, which keeps the point's time unique).
func (s *State) event(e EventRecord, n uint64) {
	s.batch.Events = append(s.batch.Events, e)
	if s.cfg.InfluxPoints {
		s.eventPoint(&e, n)
	}
}

func dayNumber(t time.Time, loc *time.Location) int32 {
	y, m, d := t.In(loc).Date()
	return int32(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}
