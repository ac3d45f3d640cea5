package alert_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"villagehub/hub/alert"
	"villagehub/hub/ingest"
	"villagehub/hub/probe"
	"villagehub/hub/state"
	"villagehub/hub/store"
	"villagehub/hub/testenv"
)

// benchState is a real state (with the bbolt store) holding n cameras,
// each probed up, and n boards, each with a report.
func benchState(b *testing.B, n int) *state.State {
	b.Helper()
	q := ingest.NewQueue(4096)
	st, err := store.Open(store.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	cfg := state.Config{Queue: q, Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Decoder: ingest.DecoderConfig{Prefix: "village"}, MaxAutoBoards: n}
	for i := range n {
		site := fmt.Sprintf("site-%d", i%50)
		cfg.Cameras = append(cfg.Cameras, state.CameraInfo{ID: fmt.Sprintf("cam-%d", i), Site: site, Name: fmt.Sprintf("Camera %d", i)})
	}
	s, err := state.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	now := time.Now()
	for i := range n {
		site := fmt.Sprintf("site-%d", i%50)
		res := probe.Result{Camera: fmt.Sprintf("cam-%d", i), Site: site, Mode: probe.ModeSample, Up: true, FPS: 10, BitrateBps: 60000, Grade: "good", At: now}
		if err := s.Submit(ctx, res); err != nil {
			b.Fatal(err)
		}
		m := ingest.Message{Topic: fmt.Sprintf("village/%s/qr/board-%d/scans", site, i), Payload: fmt.Appendf(nil, `{"total":%d,"boot":"b"}`, i), Received: now}
		if err := q.Push(ctx, m, true); err != nil {
			b.Fatal(err)
		}
	}
	testenv.WaitFor(b, time.Minute, "the setup applied", func() bool {
		c := s.Counters()
		return q.Len() == 0 && c.Cameras == n && c.Boards == n
	})
	if c := s.Counters(); c.Cameras != n || c.Boards != n {
		b.Fatalf("state has %d cameras and %d boards", c.Cameras, c.Boards)
	}
	return s
}

// BenchmarkEvaluate measures one evaluation tick of every rule over 10,000
// cameras and 10,000 QR boards (all healthy, the steady state), on a clock
// that advances one second per tick: the boards are looked at every 10th
// tick by default ("default"), or on every tick ("boards-every-tick").
func BenchmarkEvaluate(b *testing.B) {
	const n = 10000
	st := benchState(b, n)
	for _, bc := range []struct {
		name  string
		check time.Duration
	}{{"default", 0}, {"boards-every-tick", time.Second}} {
		b.Run(bc.name, func(b *testing.B) {
			clock := time.Now()
			var rules alert.Rules
			rules.QRBoardSilent.CheckInterval = dur(bc.check)
			e, err := alert.New(alert.Config{Rules: rules}, alert.Deps{State: st, DataDir: b.TempDir(),
				Now: func() time.Time { return clock }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				BrokerConnected: func() bool { return true }, IngestQueue: func() (int, int) { return 0, 10000 }, SpoolPoints: func() int64 { return 0 }})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			if err := e.Evaluate(); err != nil { // first look: builds the tracks
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				clock = clock.Add(time.Second)
				if err := e.Evaluate(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/tick")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/camera")
			if len(e.Firing()) != 0 {
				b.Fatalf("%d alerts fire in a healthy village", len(e.Firing()))
			}
		})
	}
}

// BenchmarkFireBurst measures the tick on which 1,000 of 10,000 cameras go
// down at once (a village's power cut): evaluation, naming, the bbolt
// commit of 1,000 alerts and their outbox entries for one notifier.
func BenchmarkFireBurst(b *testing.B) {
	const n = 10000
	st := benchState(b, n)
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		clock := time.Now()
		var rules alert.Rules
		rules.CameraDown.For = dur(time.Second)
		e, err := alert.New(alert.Config{Rules: rules, Notifiers: []alert.Notifier{{Type: "webhook", URL: "http://127.0.0.1:1/", QueueSize: 5000}}},
			alert.Deps{State: st, DataDir: b.TempDir(), Now: func() time.Time { return clock }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		_ = e.Evaluate()
		at := time.Now()
		for i := range 1000 {
			res := probe.Result{Camera: fmt.Sprintf("cam-%d", i*10), Site: fmt.Sprintf("site-%d", (i*10)%50), Up: false, Reason: "timeout", At: at}
			if err := st.Submit(ctx, res); err != nil {
				b.Fatal(err)
			}
		}
		testenv.WaitFor(b, 30*time.Second, "the failed probes applied", func() bool { return downCameras(st) == 1000 })
		clock = clock.Add(500 * time.Millisecond)
		_ = e.Evaluate() // pending
		clock = clock.Add(2 * time.Second)
		b.StartTimer()
		if err := e.Evaluate(); err != nil { // 1,000 fire
			b.Fatal(err)
		}
		b.StopTimer()
		if k := len(e.Firing()); k != 1000 {
			b.Fatalf("%d firing", k)
		}
		e.Close()
		for i := range 1000 {
			res := probe.Result{Camera: fmt.Sprintf("cam-%d", i*10), Site: fmt.Sprintf("site-%d", (i*10)%50), Up: true, FPS: 10, Grade: "good", Mode: probe.ModeSample, At: time.Now()}
			_ = st.Submit(ctx, res)
		}
		testenv.WaitFor(b, 30*time.Second, "the good probes applied", func() bool { return downCameras(st) == 0 })
		b.StartTimer()
	}
}

// downCameras counts cameras whose last probe failed.
func downCameras(st *state.State) int {
	n := 0
	st.EachCamera(func(c state.CameraSample) {
		if c.Probe != nil && c.Probe.Up == 0 {
			n++
		}
	})
	return n
}
