package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"villagehub/hub/ingest"
	"villagehub/hub/state"
)

type rig struct {
	store *Store
	state *state.State
	queue *ingest.Queue
	stop  func()
}

func start(t testing.TB, dir string) *rig {
	t.Helper()
	st, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	q := ingest.NewQueue(1024)
	s, err := state.New(state.Config{
		Queue: q, Store: st, Location: time.UTC,
		Boards: []state.BoardInfo{{ID: "market-07", Site: "s1", Name: "Chợ Bản, sạp 7"}},
		// TestPrune stores a report 500 days old, as a store kept from
		// before the stale_ts horizon (limits.max_past) could hold.
		MaxPast: 1000 * 24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	r := &rig{store: st, state: s, queue: q}
	r.stop = func() { cancel(); <-done; st.Close() }
	return r
}

// send queues messages and waits until each is acknowledged (durable).
func (r *rig) send(t testing.TB, at time.Time, msgs ...[2]string) {
	t.Helper()
	done := make(chan struct{}, len(msgs))
	for _, m := range msgs {
		if err := r.queue.Push(context.Background(), ingest.Message{Topic: m[0], Payload: []byte(m[1]), QoS: 1, Received: at, Done: done}, true); err != nil {
			t.Fatal(err)
		}
	}
	for range msgs {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("message not acknowledged")
		}
	}
}

func qr(board string, total int, boot string, ts time.Time) [2]string {
	return [2]string{"village/s1/qr/" + board + "/scans", fmt.Sprintf(`{"total":%d,"boot":%q,"ts":%d}`, total, boot, ts.UnixMilli())}
}

func boardTotal(t testing.TB, s *state.State, id string) uint64 {
	t.Helper()
	b, ok := s.Board("s1", id)
	if !ok {
		t.Fatalf("board %s unknown", id)
	}
	return b.ScansTotal
}

func TestCountsSurviveRestartAndReplay(t *testing.T) {
	dir := t.TempDir()
	day := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	msgs := [][2]string{
		qr("market-07", 10, "a", day),
		qr("market-07", 15, "a", day.Add(time.Hour)),
		qr("market-07", 3, "b", day.Add(2*time.Hour)),
		qr("auto-1", 4, "x", day.Add(2*time.Hour)),
		{"village/s1/camera/gate/motion", "ON"},
		{"village/s1/camera/gate/motion", "OFF"},
		{"village/s1/camera/gate/status", "online"},
	}
	r := start(t, dir)
	r.send(t, day.Add(3*time.Hour), msgs...)
	if got := boardTotal(t, r.state, "market-07"); got != 18 {
		t.Fatalf("market-07 counted %d, want 18", got)
	}
	r.stop()

	// A new process on the same directory: everything is still there, and
	// a full replay (as a broker redelivering unacknowledged messages
	// would send) counts nothing twice.
	r = start(t, dir)
	defer r.stop()
	if got := boardTotal(t, r.state, "market-07"); got != 18 {
		t.Fatalf("after restart market-07 has %d, want 18", got)
	}
	r.send(t, day.Add(4*time.Hour), msgs[:4]...)
	if got := boardTotal(t, r.state, "market-07"); got != 18 {
		t.Fatalf("replay changed market-07 to %d, want 18", got)
	}
	if got := boardTotal(t, r.state, "auto-1"); got != 4 {
		t.Fatalf("auto-1 has %d, want 4", got)
	}
	r.send(t, day.Add(4*time.Hour), qr("market-07", 5, "b", day.Add(3*time.Hour)))
	if got := boardTotal(t, r.state, "market-07"); got != 20 {
		t.Fatalf("market-07 has %d after 2 new scans, want 20", got)
	}
	cams := r.state.Cameras()
	if len(cams) != 1 || cams[0].MotionEvents != 1 || cams[0].Status != "online" || cams[0].MotionActive {
		t.Fatalf("camera state after restart: %+v", cams)
	}

	// The hourly history sums to the same total, hour by hour.
	hours, err := r.store.QRHours("s1", "market-07", day, day.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]uint64{0: 10, 1: 5, 2: 3, 3: 2}
	got := map[int]uint64{}
	for _, h := range hours {
		got[int(h.Hour.Sub(day)/time.Hour)] += h.N
		if h.Source != state.SourceMQTT {
			t.Errorf("hour %v has source %q", h.Hour, h.Source)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("hourly counts %v, want %v", got, want)
	}

	// Events, newest first, paged.
	p1, err := r.store.Events(EventQuery{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(p1.Events) != 2 || p1.Next == "" {
		t.Fatalf("first page: %+v", p1)
	}
	p2, err := r.store.Events(EventQuery{Limit: 2, Cursor: p1.Next})
	if err != nil {
		t.Fatal(err)
	}
	if len(p2.Events) != 1 || p2.Next != "" || p2.Events[0].Type != state.EventMotionStart {
		t.Fatalf("second page: %+v", p2)
	}
	if p1.Events[0].Time.Before(p1.Events[1].Time) {
		t.Fatalf("events not newest first: %+v", p1.Events)
	}
}

func TestPrune(t *testing.T) {
	r := start(t, t.TempDir())
	defer r.stop()
	now := time.Now()
	old := now.Add(-500 * 24 * time.Hour)
	r.send(t, now, qr("market-07", 1, "a", old), qr("market-07", 2, "a", now), [2]string{"village/s1/camera/c/motion", `{"active":true,"ts":` + strconv.FormatInt(now.Add(-40*24*time.Hour).UnixMilli(), 10) + `}`})
	ev, hrs, err := r.store.Prune(now)
	if err != nil || ev != 1 || hrs != 1 {
		t.Fatalf("Prune = %d events, %d hours, %v; want 1, 1", ev, hrs, err)
	}
	hours, _ := r.store.QRHours("s1", "market-07", old.Add(-time.Hour), now.Add(time.Hour))
	if len(hours) != 1 || hours[0].N != 1 {
		t.Fatalf("after prune: %+v", hours)
	}
}

// BenchmarkPipelineCommit measures applying and durably committing
// messages through the real store, in batches as the pipeline forms them.
func BenchmarkPipelineCommit(b *testing.B) {
	r := start(b, b.TempDir())
	defer r.stop()
	now := time.Now()
	totals := make([]int, 300)
	const batch = 1000
	b.ResetTimer()
	n := 0
	for b.Loop() {
		done := make(chan struct{}, batch)
		for i := range batch {
			bd := (n*batch + i) % 300
			totals[bd]++
			_ = r.queue.Push(context.Background(), ingest.Message{
				Topic:   "village/s1/qr/b" + strconv.Itoa(bd) + "/scans",
				Payload: fmt.Appendf(nil, `{"total":%d,"boot":"a"}`, totals[bd]), QoS: 1, Received: now, Done: done,
			}, true)
		}
		for range batch {
			<-done
		}
		n++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*batch), "ns/msg")
	b.ReportMetric(float64(r.state.Counters().Commits)/float64(n), "commits/batch")
}

// A batch's scan records are summed per board, hour and kind before they
// are stored, and a later batch adds to what is stored.
func TestCommitSumsScansPerHour(t *testing.T) {
	st, err := Open(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	b := &state.Batch{Scans: []state.ScanRecord{
		{Site: "s1", Board: "b1", Source: state.SourceMQTT, N: 2, Time: h0.Add(time.Minute)},
		{Site: "s1", Board: "b1", Source: state.SourceMQTT, N: 3, Time: h0.Add(50 * time.Minute)},
		{Site: "s1", Board: "b1", Source: state.SourcePrinted, N: 1, Unique: 1, Time: h0.Add(2 * time.Minute)},
		{Site: "s1", Board: "b1", Source: state.SourcePrinted, N: 1, Bots: 4, RateLimited: 2, Time: h0.Add(3 * time.Minute)},
		{Site: "s1", Board: "b1", Source: state.SourceMQTT, N: 7, Time: h0.Add(61 * time.Minute)}, // next hour
		{Site: "s1", Board: "b2", Source: state.SourceMQTT, N: 5, Time: h0.Add(time.Minute)},      // another board
	}}
	if err := st.Commit(b); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(&state.Batch{Scans: []state.ScanRecord{{Site: "s1", Board: "b1", Source: state.SourceMQTT, N: 10, Time: h0}}}); err != nil {
		t.Fatal(err)
	}
	got, err := st.QRHours("s1", "b1", h0, h0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{}
	for _, c := range got {
		want[fmt.Sprintf("%02d %s", c.Hour.UTC().Hour(), c.Source)] += c.N
	}
	exp := map[string]uint64{"08 " + state.SourceMQTT: 15, "08 " + state.SourcePrinted: 2, "08 " + CountUnique: 1,
		"08 " + CountBots: 4, "08 " + CountRateLimited: 2, "09 " + state.SourceMQTT: 7}
	if fmt.Sprint(want) != fmt.Sprint(exp) {
		t.Fatalf("hourly counts of b1 %v, want %v", want, exp)
	}
	if got, _ := st.QRHours("s1", "b2", h0, h0.Add(2*time.Hour)); len(got) != 1 || got[0].N != 5 {
		t.Fatalf("hourly counts of b2 %+v", got)
	}
}

// TestHourlyCacheFollowsTheStore: the newest hourly counts are kept in
// memory (hourly.go) and must always equal what the store holds: a failed
// commit's values are not taken, counts Prune deletes start again from
// zero, and an hour pushed out of the cache is read from the store again.
func TestHourlyCacheFollowsTheStore(t *testing.T) {
	dir := t.TempDir()
	// An outbox of one byte: the second batch with points fails, after
	// its hourly counts were written in the transaction.
	st, err := Open(Config{Dir: dir, HourlyRetention: 3 * time.Hour, OutboxMaxBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	h0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	scan := func(hour, n int) state.ScanRecord {
		return state.ScanRecord{Site: "s1", Board: "b1", Source: state.SourceMQTT, N: int64(n), Time: h0.Add(time.Duration(hour)*time.Hour + time.Minute)}
	}
	commit := func(b *state.Batch) {
		t.Helper()
		if err := st.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	check := func(st *Store, want map[int]uint64) {
		t.Helper()
		got, err := st.QRHours("s1", "b1", h0.Add(-time.Hour), h0.Add(5*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		m := map[int]uint64{}
		for _, c := range got {
			m[int(c.Hour.Sub(h0)/time.Hour)] += c.N
		}
		if fmt.Sprint(m) != fmt.Sprint(want) {
			t.Fatalf("counts by hour %v, want %v", m, want)
		}
	}
	commit(&state.Batch{Scans: []state.ScanRecord{scan(0, 1), scan(1, 10)}, Points: points(1, h0)})
	commit(&state.Batch{Scans: []state.ScanRecord{scan(0, 2), scan(1, 20)}})
	check(st, map[int]uint64{0: 3, 1: 30})
	// A commit that fails adds nothing, in the store or in what the next
	// commit adds to.
	bad := &state.Batch{Scans: []state.ScanRecord{scan(0, 100), scan(1, 100)}, Points: points(1, h0)}
	if err := st.Commit(bad); !errors.Is(err, ErrOutboxFull) {
		t.Fatalf("commit with the outbox full: %v", err)
	}
	commit(&state.Batch{Scans: []state.ScanRecord{scan(0, 4), scan(1, 40)}})
	check(st, map[int]uint64{0: 7, 1: 70})
	// Prune at hour 4 with 3 hours kept deletes hour 0 (the cut is hour
	// 1), whose count the cache holds: a count of it starts from zero.
	if _, hours, err := st.Prune(h0.Add(4 * time.Hour)); err != nil || hours != 1 {
		t.Fatalf("prune: %d hours, %v", hours, err)
	}
	commit(&state.Batch{Scans: []state.ScanRecord{scan(0, 2), scan(1, 1)}})
	check(st, map[int]uint64{0: 2, 1: 71})
	// A third hour pushes the oldest out; late reports for it add to
	// what the store holds.
	commit(&state.Batch{Scans: []state.ScanRecord{scan(2, 5)}})
	commit(&state.Batch{Scans: []state.ScanRecord{scan(0, 8), scan(2, 5)}})
	commit(&state.Batch{Scans: []state.ScanRecord{scan(0, 16), scan(1, 1), scan(2, 5)}})
	check(st, map[int]uint64{0: 26, 1: 72, 2: 15})
	// What a reopened store reads is what was counted.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	check(st, map[int]uint64{0: 26, 1: 72, 2: 15})
}
