package state

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"villagehub/hub/event"
	"villagehub/hub/ingest"
)

// Table-driven tests of every rule of the MQTT contract (CONTRACT.md,
// README "How the hub counts"), applied through the state as the
// pipeline applies them: decode, apply, count.

var t1 = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

// step is one message and what the hub must answer.
type step struct {
	topic, payload string
	at             int    // seconds after t1 the message is received
	want           string // accepted, duplicate, or the rejection reason
	pid            uint16 // QoS 1 packet ID (0: none)
	dup            bool
	session        string
}

func newRulesState(t *testing.T, cfg Config) *State {
	t.Helper()
	cfg.Queue, cfg.Store, cfg.Location = ingest.NewQueue(16), nopStore{}, time.UTC
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	now := t1
	cfg.Now = func() time.Time { return now }
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// play applies steps one by one and checks each answer from the counters.
func play(t *testing.T, s *State, steps []step) {
	t.Helper()
	for i, st := range steps {
		before := s.Counters()
		m := ingest.Message{Topic: st.topic, Payload: []byte(st.payload), QoS: 1, Received: t1.Add(time.Duration(st.at) * time.Second),
			PacketID: st.pid, Dup: st.dup, Session: st.session}
		s.mu.Lock()
		s.applyMessage(&m)
		s.collectDirty()
		s.batch.reset()
		s.mu.Unlock()
		got := answer(before, s.Counters())
		if got != st.want {
			t.Errorf("step %d %s %q: %s, want %s", i, st.topic, st.payload, got, st.want)
		}
	}
}

// answer is what changed in the counters: a result, or the reason.
func answer(a, b Counters) string {
	for k := range b.Messages {
		for r := range b.Messages[k] {
			if b.Messages[k][r] == a.Messages[k][r] {
				continue
			}
			if Result(r) != Rejected {
				return Result(r).String()
			}
			for reason := range b.Rejected[k] {
				if b.Rejected[k][reason] != a.Rejected[k][reason] {
					return event.Reason(reason).String()
				}
			}
		}
	}
	return "nothing counted"
}

func camera(t *testing.T, s *State, id string) CameraView {
	for _, c := range s.Cameras() {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("camera %s unknown", id)
	return CameraView{}
}

const (
	motion = "village/s1/camera/gate/motion"
	cstat  = "village/s1/camera/gate/status"
	scans  = "village/s1/qr/b1/scans"
	bstat  = "village/s1/qr/b1/status"
)

func ms(sec int) int64 { return t1.Add(time.Duration(sec) * time.Second).UnixMilli() }

func qrp(total int, boot string, ts int) string {
	p := fmt.Sprintf(`{"total":%d`, total)
	if boot != "" {
		p += fmt.Sprintf(`,"boot":%q`, boot)
	}
	if ts >= 0 {
		p += fmt.Sprintf(`,"ts":%d`, ms(ts))
	}
	return p + "}"
}

func TestQRRulesThroughState(t *testing.T) {
	cases := []struct {
		name  string
		steps []step
		total uint64
	}{
		{"increase within a boot", []step{{topic: scans, payload: qrp(10, "a", 1), want: "accepted"}, {topic: scans, payload: qrp(15, "a", 2), want: "accepted"}}, 15},
		{"repeated total is a duplicate", []step{{topic: scans, payload: qrp(10, "a", 1), want: "accepted"}, {topic: scans, payload: qrp(10, "a", 1), want: "duplicate"}}, 10},
		{"smaller total in the same boot adds nothing", []step{{topic: scans, payload: qrp(15, "a", 2), want: "accepted"}, {topic: scans, payload: qrp(12, "a", 1), want: "duplicate"}}, 15},
		{"a new boot counts from zero", []step{{topic: scans, payload: qrp(10, "a", 1), want: "accepted"}, {topic: scans, payload: qrp(3, "b", 2), want: "accepted"}}, 13},
		{"late report of an earlier boot counts its increase", []step{{topic: scans, payload: qrp(10, "a", 1), want: "accepted"},
			{topic: scans, payload: qrp(3, "b", 3), want: "accepted"}, {topic: scans, payload: qrp(12, "a", 2), want: "accepted"}}, 15},
		{"late repeat of an earlier boot adds nothing", []step{{topic: scans, payload: qrp(10, "a", 1), want: "accepted"},
			{topic: scans, payload: qrp(3, "b", 3), want: "accepted"}, {topic: scans, payload: qrp(10, "a", 1), want: "duplicate"}}, 13},
		{"numeric boot", []step{{topic: scans, payload: `{"total":4,"boot":17}`, want: "accepted"}, {topic: scans, payload: `{"total":4,"boot":17}`, want: "duplicate"}}, 4},
		{"no boot: smaller total with a newer ts is a reset", []step{{topic: scans, payload: qrp(7, "", 2), want: "accepted"}, {topic: scans, payload: qrp(2, "", 3), want: "accepted"}}, 9},
		{"no boot: smaller total with an older ts adds nothing", []step{{topic: scans, payload: qrp(7, "", 3), want: "accepted"}, {topic: scans, payload: qrp(6, "", 2), want: "duplicate"}}, 7},
		{"no boot: smaller total with an equal ts adds nothing", []step{{topic: scans, payload: qrp(7, "", 3), want: "accepted"}, {topic: scans, payload: qrp(6, "", 3), want: "duplicate"}}, 7},
		{"no boot: smaller total without ts adds nothing", []step{{topic: scans, payload: qrp(7, "", 3), want: "accepted"}, {topic: scans, payload: qrp(6, "", -1), want: "duplicate"}}, 7},
		{"no boot, no ts: only increases count", []step{{topic: scans, payload: qrp(3, "", -1), want: "accepted"}, {topic: scans, payload: qrp(5, "", -1), want: "accepted"},
			{topic: scans, payload: qrp(4, "", -1), want: "duplicate"}}, 5},
		{"no boot: a late pre-reset report counts against its own epoch", []step{{topic: scans, payload: qrp(100, "", 1), want: "accepted"},
			{topic: scans, payload: qrp(5, "", 3), want: "accepted"}, {topic: scans, payload: qrp(150, "", 2), want: "accepted"}}, 155},
		{"a device without a clock (ts in 1970) counts with the time received", []step{{topic: scans, payload: `{"total":5,"boot":"x","ts":1000}`, want: "accepted"}}, 5},
		{"total zero is accepted and counts nothing", []step{{topic: scans, payload: qrp(0, "a", 1), want: "duplicate"}, {topic: scans, payload: qrp(1, "a", 2), want: "accepted"}}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newRulesState(t, Config{})
			play(t, s, c.steps)
			b, ok := s.Board("s1", "b1")
			if !ok || b.ScansTotal != c.total || b.ScansMQTT != c.total {
				t.Fatalf("board total %d (mqtt %d), want %d", b.ScansTotal, b.ScansMQTT, c.total)
			}
		})
	}
}

func TestMotionRules(t *testing.T) {
	ts := func(sec int, active bool, zone string) string {
		return fmt.Sprintf(`{"active":%v,"ts":%d,"zone":%q,"score":0.5}`, active, ms(sec), zone)
	}
	cases := []struct {
		name   string
		steps  []step
		events uint64
		active bool
		dur    float64
	}{
		{"ON starts an event, OFF ends it with its duration", []step{{topic: motion, payload: "ON", at: 10, want: "accepted"}, {topic: motion, payload: "OFF", at: 25, want: "accepted"}}, 1, false, 15},
		{"a repeated ON while active is not a new event", []step{{topic: motion, payload: "ON", want: "accepted"}, {topic: motion, payload: "ON", at: 1, want: "duplicate"}}, 1, true, 0},
		{"OFF while idle is a duplicate", []step{{topic: motion, payload: "OFF", want: "duplicate"}}, 0, false, 0},
		{"JSON with ts: durations from the device's times", []step{{topic: motion, payload: ts(100, true, "gate"), at: 200, want: "accepted"},
			{topic: motion, payload: ts(130, false, ""), at: 201, want: "accepted"}}, 1, false, 30},
		{"an ON whose ts is not after the last end is a redelivery", []step{{topic: motion, payload: ts(100, true, ""), want: "accepted"},
			{topic: motion, payload: ts(130, false, ""), want: "accepted"}, {topic: motion, payload: ts(100, true, ""), want: "duplicate"},
			{topic: motion, payload: ts(130, true, ""), want: "duplicate"}, {topic: motion, payload: ts(131, true, ""), want: "accepted"}}, 2, true, 30},
		{"an OFF from before the start is a duplicate", []step{{topic: motion, payload: ts(100, true, ""), want: "accepted"},
			{topic: motion, payload: ts(90, false, ""), want: "duplicate"}}, 1, true, 0},
		{"a plain ON redelivered (DUP) after its commit is a duplicate", []step{
			{topic: motion, payload: "ON", pid: 1, session: "cam", want: "accepted"}, {topic: motion, payload: "OFF", pid: 2, session: "cam", at: 5, want: "accepted"},
			{topic: motion, payload: "ON", pid: 1, session: "cam", dup: true, at: 6, want: "duplicate"}, {topic: motion, payload: "OFF", pid: 2, session: "cam", dup: true, at: 7, want: "duplicate"}}, 1, false, 5},
		{"a DUP never applied before is applied", []step{{topic: motion, payload: "ON", pid: 9, session: "cam", dup: true, want: "accepted"}}, 1, true, 0},
		{"another client's packet ID is another delivery", []step{
			{topic: motion, payload: "ON", pid: 1, session: "cam", want: "accepted"}, {topic: motion, payload: "OFF", pid: 2, session: "cam", want: "accepted"},
			{topic: motion, payload: "ON", pid: 1, session: "bridge", dup: true, want: "accepted"}}, 2, true, 0},
		{"a reused packet ID without DUP is a new message", []step{
			{topic: motion, payload: "ON", pid: 1, session: "cam", want: "accepted"}, {topic: motion, payload: "OFF", pid: 2, session: "cam", want: "accepted"},
			{topic: motion, payload: "ON", pid: 1, session: "cam", want: "accepted"}}, 2, true, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newRulesState(t, Config{})
			play(t, s, c.steps)
			v := camera(t, s, "gate")
			if v.MotionEvents != c.events || v.MotionActive != c.active || v.LastMotionDur != c.dur {
				t.Fatalf("events %d active %v last duration %v, want %d %v %v", v.MotionEvents, v.MotionActive, v.LastMotionDur, c.events, c.active, c.dur)
			}
		})
	}
}

func TestTimestampRules(t *testing.T) {
	s := newRulesState(t, Config{})
	play(t, s, []step{
		{topic: scans, payload: fmt.Sprintf(`{"total":1,"boot":"a","ts":%d}`, t1.Add(25*time.Hour).UnixMilli()), want: "future_ts"},
		{topic: scans, payload: fmt.Sprintf(`{"total":1,"boot":"a","ts":%d}`, t1.Add(23*time.Hour).UnixMilli()), want: "accepted"},
		{topic: scans, payload: `{"total":2,"boot":"a","ts":"2026-11-27T09:00:00+07:00"}`, want: "accepted"},
		{topic: scans, payload: `{"total":3,"boot":"a","ts":"yesterday"}`, want: "bad_ts"},
		{topic: scans, payload: `{"total":3,"boot":"a","ts":true}`, want: "bad_type"},
		{topic: motion, payload: `{"active":true,"ts":"9999-01-01T00:00:00Z"}`, want: "future_ts"},
		{topic: motion, payload: `{"active":true,"ts":0}`, at: 50, want: "accepted"}, // no clock: time received
	})
	if v := camera(t, s, "gate"); v.MotionStart == nil || !v.MotionStart.Equal(t1.Add(50*time.Second)) {
		t.Fatalf("a 1970 ts was not replaced by the time received: %v", v.MotionStart)
	}
	if b, _ := s.Board("s1", "b1"); !b.LastReport.Equal(t1.Add(23 * time.Hour)) {
		t.Fatalf("last report %v", b.LastReport)
	}
}

func TestRejections(t *testing.T) {
	s := newRulesState(t, Config{})
	play(t, s, []step{
		{topic: scans, payload: `{"total":1,"pad":"` + strings.Repeat("x", 4100) + `"}`, want: "too_large"},
		{topic: scans, payload: "\xff\xfe", want: "bad_utf8"},
		{topic: scans, payload: `{"total":`, want: "bad_json"},
		{topic: scans, payload: `{"total":"12"}`, want: "bad_type"},
		{topic: scans, payload: `{"total":1.5}`, want: "bad_type"},
		{topic: scans, payload: `{"boot":"a"}`, want: "bad_value"},
		{topic: scans, payload: `{"total":-1}`, want: "negative_total"},
		{topic: scans, payload: `[1]`, want: "bad_type"},
		{topic: motion, payload: "MAYBE", want: "bad_value"},
		{topic: motion, payload: `{"active":"yes"}`, want: "bad_type"},
		{topic: motion, payload: `{"zone":"gate"}`, want: "bad_value"},
		{topic: motion, payload: `{"active":true,"score":"high"}`, want: "bad_type"},
		{topic: cstat, payload: "up", want: "bad_value"},
		{topic: "village/s1/camera/gate/zoom", payload: "ON", want: "bad_topic"},
		{topic: "village/s1/camera/Gate/motion", payload: "ON", want: "bad_id"},
		{topic: "village/s1/camera/gate/motion/x", payload: "ON", want: "bad_topic"},
		{topic: "elsewhere/s1/camera/gate/motion", payload: "ON", want: "bad_topic"},
	})
	c := s.Counters()
	if n := c.Rejected[event.KindQRScans][event.TooLarge]; n != 1 {
		t.Errorf("rejected{kind=qr_scans,reason=too_large} = %d", n)
	}
	// A topic of the wrong shape is of no known kind.
	if n, u := c.Messages[event.KindMotion][Rejected], c.Messages[event.KindUnknown][Rejected]; n != 5 || u != 3 {
		t.Errorf("messages{result=rejected}: kind=motion %d, kind=unknown %d; want 5 and 3", n, u)
	}
	if c.Cameras != 0 || c.Boards != 0 {
		t.Errorf("a rejected message registered a device: %d cameras, %d boards", c.Cameras, c.Boards)
	}
}

func TestStatusRules(t *testing.T) {
	s := newRulesState(t, Config{})
	play(t, s, []step{
		{topic: cstat, payload: "online", at: 1, want: "accepted"},
		{topic: cstat, payload: "online", at: 2, want: "accepted"}, // retained, re-sent: state, not an event
		{topic: cstat, payload: "offline\n", at: 3, want: "accepted"},
		{topic: bstat, payload: "online", at: 4, want: "accepted"},
	})
	v := camera(t, s, "gate")
	if v.Status != "offline" || v.StatusSince == nil || !v.StatusSince.Equal(t1.Add(3*time.Second)) {
		t.Fatalf("camera status %s since %v", v.Status, v.StatusSince)
	}
	if b, _ := s.Board("s1", "b1"); b.Status != "online" {
		t.Fatalf("board status %s", b.Status)
	}
}

func TestAutoRegistrationCap(t *testing.T) {
	s := newRulesState(t, Config{
		Sites: []Site{{ID: "s1"}}, Cameras: []CameraInfo{{ID: "gate", Site: "s1"}},
		MaxAutoCameras: 2, MaxAutoBoards: 1,
	})
	cam := func(id string) string { return "village/s1/camera/" + id + "/motion" }
	play(t, s, []step{
		{topic: cam("gate"), payload: "ON", want: "accepted"}, // configured: not counted against the cap
		{topic: cam("a"), payload: "ON", want: "accepted"},
		{topic: cam("b"), payload: "ON", want: "accepted"},
		{topic: cam("c"), payload: "ON", want: "cap_reached"},
		{topic: cam("a"), payload: "OFF", want: "accepted"}, // known ones keep working
		{topic: "village/s1/qr/x/scans", payload: qrp(1, "a", 1), want: "accepted"},
		{topic: "village/s1/qr/y/status", payload: "online", want: "cap_reached"},
	})
	c := s.Counters()
	if c.Cameras != 3 || c.AutoCams != 2 || c.Boards != 1 || c.AutoBoards != 1 {
		t.Fatalf("cameras %d (auto %d), boards %d (auto %d)", c.Cameras, c.AutoCams, c.Boards, c.AutoBoards)
	}
	// A camera taken out of the config keeps its history and counts as
	// auto-registered; one put into it stops counting.
	s.mu.Lock()
	s.applyDevices(&deviceList{sites: []Site{{ID: "s1"}}, cameras: []CameraInfo{{ID: "a", Site: "s1"}}})
	s.mu.Unlock()
	if c := s.Counters(); c.AutoCams != 2 || !camera(t, s, "a").Configured || camera(t, s, "gate").Configured || camera(t, s, "gate").MotionEvents != 1 {
		t.Fatalf("after the reload: auto %d, a configured %v, gate configured %v", c.AutoCams, camera(t, s, "a").Configured, camera(t, s, "gate").Configured)
	}
}

// TestKindTablesSizeTheCounters: every message kind and reason has a
// label, and the counters are sized from the tables (a kind added to the
// table can be counted without touching hub/state).
func TestKindTablesSizeTheCounters(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range event.MsgKinds() {
		l := k.String()
		if l == "" || seen[l] {
			t.Errorf("kind %d: label %q empty or repeated", k, l)
		}
		seen[l] = true
	}
	var c Counters
	if len(c.Messages) != len(event.MsgKinds()) || len(c.Rejected[0]) != len(event.Reasons())+1 {
		t.Fatalf("counters sized %d x %d for %d kinds and %d reasons", len(c.Messages), len(c.Rejected[0]), len(event.MsgKinds()), len(event.Reasons()))
	}
	for _, k := range event.Kinds() {
		if k.String() == "unknown" || k.Info().StoreKey == 0 {
			t.Errorf("device kind %d has no name or store key", k)
		}
		if got, ok := event.KindByStoreKey(k.Info().StoreKey); !ok || got != k {
			t.Errorf("store key of %v does not find it", k)
		}
	}
}

// TestBoardHealth: a board's battery and signal, from its status or its
// reports, are kept with the time of the message; out of range is
// rejected and changes nothing; an older reading (a redelivered report)
// does not replace a newer one; a board that never sent them has none.
func TestBoardHealth(t *testing.T) {
	s := newRulesState(t, Config{})
	play(t, s, []step{
		{topic: bstat, payload: `{"status":"online","battery":87,"rssi":-67}`, at: 1, want: "accepted"},
		{topic: bstat, payload: `{"status":"online","battery":101}`, at: 2, want: "bad_value"},
		{topic: bstat, payload: `{"status":"online","rssi":-151}`, at: 2, want: "bad_value"},
		{topic: bstat, payload: `{"status":"online","rssi":"-60"}`, at: 2, want: "bad_type"},
		{topic: scans, payload: `{"total":4,"boot":"a","battery":80,"ts":` + fmt.Sprint(ms(5)) + `}`, at: 5, want: "accepted"},
		{topic: scans, payload: `{"total":3,"boot":"a","battery":90,"ts":` + fmt.Sprint(ms(4)) + `}`, at: 6, want: "duplicate"},
		{topic: "village/s1/qr/quiet/status", payload: "online", at: 7, want: "accepted"},
	})
	b, _ := s.Board("s1", "b1")
	if b.Battery == nil || *b.Battery != 80 || !b.BatteryAt.Equal(t1.Add(5*time.Second)) {
		t.Errorf("battery %v at %v, want 80 at +5s", b.Battery, b.BatteryAt)
	}
	if b.RSSI == nil || *b.RSSI != -67 || !b.RSSIAt.Equal(t1.Add(time.Second)) {
		t.Errorf("rssi %v at %v, want -67 at +1s", b.RSSI, b.RSSIAt)
	}
	if b, _ := s.Board("s1", "quiet"); b.Battery != nil || b.RSSI != nil || b.BatteryAt != nil {
		t.Errorf("a board that sent no health has %v %v", b.Battery, b.RSSI)
	}
}
