package state

import (
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"villagehub/hub/ingest"
)

// memStore keeps the device records committed to it, so a second State can
// load them as the hub does after a restart.
type memStore struct{ devs map[string][]byte }

func (m *memStore) LoadDevices(fn func(string, []byte) error) error {
	for k, v := range m.devs {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) Commit(b *Batch) error {
	for _, d := range b.Devices {
		m.devs[d.Key] = append([]byte(nil), d.Value...)
	}
	return nil
}

// fakeClocks are an injected wall clock and monotonic clock.
type fakeClocks struct {
	wall time.Time
	mono time.Duration
}

func (f *fakeClocks) advance(d time.Duration) { f.wall, f.mono = f.wall.Add(d), f.mono+d }

func clockState(t *testing.T, st *memStore, f *fakeClocks) *State {
	t.Helper()
	s, err := New(Config{
		Queue: ingest.NewQueue(16), Store: st, Location: time.UTC, InfluxPoints: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:    func() time.Time { return f.wall },
		Mono:   func() time.Duration { return f.mono },
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// clockReport applies one QR report received (by the broker's system clock) at
// the fake wall time, commits it, and returns the batch's scan records.
func clockReport(t *testing.T, s *State, st *memStore, f *fakeClocks, payload string) []ScanRecord {
	t.Helper()
	m := ingest.Message{Topic: "village/cho-ban/qr/market-07/scans", Payload: []byte(payload), QoS: 1, Received: f.wall}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyMessage(&m)
	s.collectDirty()
	scans := append([]ScanRecord(nil), s.batch.Scans...)
	for _, p := range s.batch.Points {
		if p.Time.Before(MinTrustedTime) {
			t.Errorf("InfluxDB point dated %v", p.Time)
		}
	}
	if err := st.Commit(&s.batch); err != nil {
		t.Fatal(err)
	}
	s.batch.reset()
	return scans
}

// TestClockPowerCutThenNTP: the hub ran until T, the power was cut, the Pi
// boots in 1970 and runs for two hours without NTP, then NTP steps the
// clock forward by years, later back by minutes. Scans are counted once,
// never dated before T (nor in 1970), in order; the hub's time never goes
// back; device timestamps are used as given.
func TestClockPowerCutThenNTP(t *testing.T) {
	T := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	st := &memStore{devs: map[string][]byte{}}
	f := &fakeClocks{wall: T}
	s := clockState(t, st, f)
	if got := clockReport(t, s, st, f, `{"total":10,"boot":"b1"}`); len(got) != 1 || got[0].N != 10 || !got[0].Time.Equal(T) {
		t.Fatalf("before the power cut: %+v", got)
	}

	// Power cut (3 hours), boot at the epoch: a new process, a new
	// monotonic clock.
	realBoot := T.Add(3 * time.Hour)
	f = &fakeClocks{wall: time.Unix(0, 0).UTC()}
	s = clockState(t, st, f)
	if now := s.now(); !now.Equal(T) {
		t.Fatalf("hub time at boot with the clock in 1970: %v, want the store's floor %v", now, T)
	}
	f.advance(30 * time.Minute)
	got := clockReport(t, s, st, f, `{"total":15,"boot":"b1"}`)
	if len(got) != 1 || got[0].N != 5 || !got[0].Time.Equal(T.Add(30*time.Minute)) {
		t.Fatalf("without NTP: %+v, want 5 scans dated floor+30m (%v)", got, T.Add(30*time.Minute))
	}
	// The same report again (a QoS 1 redelivery): not counted twice.
	if got := clockReport(t, s, st, f, `{"total":15,"boot":"b1"}`); len(got) != 0 {
		t.Fatalf("redelivery counted: %+v", got)
	}
	f.advance(90 * time.Minute)
	before := s.now()

	// NTP: the clock jumps from 1970+2h to the real time (+56 years).
	f.wall = realBoot.Add(2 * time.Hour)
	got = clockReport(t, s, st, f, `{"total":18,"boot":"b1"}`)
	if len(got) != 1 || got[0].N != 3 || !got[0].Time.Equal(f.wall) {
		t.Fatalf("after NTP: %+v, want 3 scans at %v", got, f.wall)
	}
	if !s.now().After(before) {
		t.Fatalf("time went back across the jump: %v then %v", before, s.now())
	}

	// NTP steps back 5 minutes: the hub's time holds, then moves on.
	high := s.now()
	f.wall = f.wall.Add(-5 * time.Minute)
	if now := s.now(); !now.Equal(high) {
		t.Fatalf("after a step back: %v, want held at %v", now, high)
	}
	f.wall = f.wall.Add(6 * time.Minute)
	if now := s.now(); !now.Equal(high.Add(time.Minute)) {
		t.Fatalf("after catching up: %v, want %v", now, high.Add(time.Minute))
	}

	// A device's own ts is used for its report as given.
	ts := f.wall.Add(-time.Minute).Truncate(time.Millisecond)
	got = clockReport(t, s, st, f, `{"total":20,"boot":"b1","ts":`+strconv.FormatInt(ts.UnixMilli(), 10)+`}`)
	if len(got) != 1 || got[0].N != 2 || !got[0].Time.Equal(ts) {
		t.Fatalf("report with ts: %+v, want 2 scans at %v", got, ts)
	}
}

// TestClockEmptyStoreSystemClock: with the system clock and nothing in the
// store, the floor is MinTrustedTime, never 1970.
func TestClockEmptyStoreSystemClock(t *testing.T) {
	c := newHubClock(func() time.Time { return time.Unix(0, 0) }, func() time.Duration { return time.Minute })
	c.raiseFloor(MinTrustedTime)
	if now := c.now(); !now.Equal(MinTrustedTime) {
		t.Fatalf("now: %v, want %v", now, MinTrustedTime)
	}
	if r := c.receipts().received(time.Unix(60, 0)); r.Before(MinTrustedTime) {
		t.Fatalf("received: %v", r)
	}
	// A receipt time above the floor is kept (messages may be applied a
	// little out of order).
	late := MinTrustedTime.Add(time.Hour)
	if r := c.receipts().received(late); !r.Equal(late) {
		t.Fatalf("received above the floor: %v, want %v", r, late)
	}
}

// TestClockMotionAcrossNTPStep: a motion event that starts before NTP sets
// the clock (+years) and ends after it lasts what the monotonic clock
// says, not the step.
func TestClockMotionAcrossNTPStep(t *testing.T) {
	T := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	st := &memStore{devs: map[string][]byte{}}
	f := &fakeClocks{wall: T}
	s := clockState(t, st, f)
	clockReport(t, s, st, f, `{"total":1,"boot":"b1"}`) // the store now remembers T
	f = &fakeClocks{wall: time.Unix(0, 0).UTC()}
	s = clockState(t, st, f)
	motion := func(v string) {
		m := ingest.Message{Topic: "village/cho-ban/camera/gate/motion", Payload: []byte(v), QoS: 1, Received: f.wall}
		s.mu.Lock()
		s.applyMessage(&m)
		s.collectDirty()
		s.batch.reset()
		s.mu.Unlock()
	}
	f.advance(10 * time.Minute)
	motion("ON")
	f.advance(20 * time.Second)
	f.wall = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) // NTP
	motion("OFF")
	cams := s.Cameras()
	if len(cams) != 1 {
		t.Fatalf("cameras: %+v", cams)
	}
	c := cams[0]
	if c.LastMotionDur != 20 {
		t.Fatalf("motion duration across the step: %v s, want 20 s", c.LastMotionDur)
	}
	if c.LastMotion == nil || c.LastMotion.Before(T) {
		t.Fatalf("motion start %v, before the floor %v", c.LastMotion, T)
	}
}
