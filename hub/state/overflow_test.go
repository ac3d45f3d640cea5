package state

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"villagehub/hub/influx"
	"villagehub/hub/ingest"
	"villagehub/hub/scan"
	"villagehub/hub/testenv"
)

// recordingStore sums what the commits carried; a commit waits while
// stall holds (a disk that stopped answering).
type recordingStore struct {
	nopStore
	stall   sync.RWMutex
	entered chan struct{}

	mu     sync.Mutex
	scans  ScanRecord // the sums of every ScanRecord committed
	points map[string]int64
}

func (r *recordingStore) Commit(b *Batch) error {
	select {
	case r.entered <- struct{}{}:
	default:
	}
	r.stall.RLock()
	defer r.stall.RUnlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, sc := range b.Scans {
		r.scans.N += sc.N
		r.scans.Unique += sc.Unique
		r.scans.Bots += sc.Bots
		r.scans.RateLimited += sc.RateLimited
	}
	for _, p := range b.Points {
		key := p.Measurement
		for _, t := range p.Tags {
			if t.Key == "class" {
				key += "/" + t.Value
			}
		}
		r.points[key] += p.Fields[0].Value().(int64)
	}
	return nil
}

// TestScansTalliedWhileQueueFull: while the store stalls and the queue is
// full, /q/ scans go on being counted (the HTTP path never waits) and none
// is lost: once the store answers, the counts, the committed records and
// the InfluxDB points hold every scan, by class. Only past the tally's
// bound is a scan dropped, and then it is counted as dropped.
func TestScansTalliedWhileQueueFull(t *testing.T) {
	q := ingest.NewQueue(16)
	st := &recordingStore{entered: make(chan struct{}, 1), points: map[string]int64{}}
	s, err := New(Config{Queue: q, Store: st, Location: time.UTC, BatchSize: 1000, InfluxPoints: true,
		Sites: []Site{{ID: "s1", Name: "Site"}}, Boards: []BoardInfo{{ID: "b1", Site: "s1", Name: "Board"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Error(err)
		}
	}()

	st.stall.Lock()
	t0 := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	s.RecordScan(scan.Scan{Board: "b1", Site: "s1", At: t0, Class: scan.ClassHuman, Unique: true})
	select {
	case <-st.entered: // the pipeline is stuck in its commit
	case <-time.After(20 * time.Second):
		t.Fatal("the first scan was not committed")
	}
	// 2,000 visits over 5 seconds while the pipeline is stuck: 16 fit in
	// the queue, the rest must be tallied.
	var want ScanRecord
	want.N, want.Unique = 1, 1
	orphans := 0
	for i := range 2000 {
		sc := scan.Scan{Board: "b1", Site: "s1", At: t0.Add(time.Duration(i) * 2500 * time.Microsecond)}
		switch i % 5 {
		case 0, 1:
			sc.Class = scan.ClassHuman
			want.N++
			if i%5 == 0 {
				sc.Unique = true
				want.Unique++
			}
		case 2:
			sc.Class = scan.ClassBot
			want.Bots++
		case 3:
			sc.Class = scan.ClassRateLimited
			want.RateLimited++
		case 4:
			sc = scan.Scan{Board: "nope", At: sc.At, Class: scan.ClassOrphan}
			orphans++
		}
		s.RecordScan(sc)
	}
	if q.Len() > 16+1 {
		t.Fatalf("queue holds %d: more than its 16 and the tally's one marker", q.Len())
	}
	if d := s.Counters().ScansDropped; d != 0 {
		t.Fatalf("%d scans dropped while the tally had room", d)
	}
	st.stall.Unlock()

	testenv.WaitFor(t, 20*time.Second, "every scan committed", func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.scans == want
	})
	st.mu.Lock()
	gotPoints := st.points
	st.mu.Unlock()
	wantPoints := map[string]int64{influx.MeasurementQRScans: want.N, influx.MeasurementQRVisits + "/unique": want.Unique,
		influx.MeasurementQRVisits + "/bot": want.Bots, influx.MeasurementQRVisits + "/rate_limited": want.RateLimited}
	for k, v := range wantPoints {
		if gotPoints[k] != v {
			t.Errorf("InfluxDB points %s sum to %d, want %d", k, gotPoints[k], v)
		}
	}
	b := s.Boards()[0]
	if b.ScansPrinted != uint64(want.N) || b.PrintedUnique != uint64(want.Unique) || b.Bots != uint64(want.Bots) || b.RateLimited != uint64(want.RateLimited) {
		t.Errorf("board counts %+v, want %s", b, show(want))
	}
	if c := s.Counters(); c.Orphans != uint64(orphans) || c.ScansDropped != 0 {
		t.Errorf("orphans %d, dropped %d: want %d and 0", c.Orphans, c.ScansDropped, orphans)
	}

	// The tally's bound: one key per board, class and second. With the
	// store stalled again and the queue full, maxTallyKeys seconds of
	// human scans are tallied, the next second's scan is dropped and
	// counted, and a scan in a second already tallied is still counted.
	st.stall.Lock()
	select {
	case <-st.entered: // a signal left by an earlier commit
	default:
	}
	s.RecordScan(scan.Scan{Board: "b1", Site: "s1", At: t0, Class: scan.ClassHuman})
	select {
	case <-st.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("no commit")
	}
	for q.Len() < 16 {
		s.RecordScan(scan.Scan{Board: "b1", Site: "s1", At: t0, Class: scan.ClassHuman})
	}
	for i := range maxTallyKeys {
		s.RecordScan(scan.Scan{Board: "b1", Site: "s1", At: t0.Add(time.Duration(i) * time.Second), Class: scan.ClassHuman})
	}
	s.RecordScan(scan.Scan{Board: "b1", Site: "s1", At: t0.Add(maxTallyKeys * time.Second), Class: scan.ClassHuman})
	s.RecordScan(scan.Scan{Board: "b1", Site: "s1", At: t0.Add(time.Second), Class: scan.ClassHuman})
	if d := s.Counters().ScansDropped; d != 1 {
		t.Errorf("%d scans dropped past the tally's bound, want 1", d)
	}
	st.stall.Unlock()
}

func show(r ScanRecord) string {
	return fmt.Sprintf("scans %d, unique %d, bots %d, rate-limited %d", r.N, r.Unique, r.Bots, r.RateLimited)
}
