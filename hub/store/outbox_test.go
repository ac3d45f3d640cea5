package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"villagehub/hub/influx"
	"villagehub/hub/state"
)

func points(n int, t0 time.Time) []influx.Point {
	pts := make([]influx.Point, n)
	for i := range pts {
		pts[i] = influx.QRScans("s1", fmt.Sprintf("b%d", i%300), "mqtt", 1, t0.Add(time.Duration(i)))
	}
	return pts
}

// TestOutboxForwardsInOrderAndSurvivesReopen: points committed to the
// outbox reach the writer's spool once each, also after the store is
// closed and reopened with points still waiting.
func TestOutboxForwardsInOrderAndSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1795741323, 0)
	for i := range 5 {
		if err := st.Commit(&state.Batch{Points: points(100, t0.Add(time.Duration(i)*time.Second))}); err != nil {
			t.Fatal(err)
		}
	}
	if n := st.OutboxPoints(); n != 500 {
		t.Fatalf("outbox holds %d points, want 500", n)
	}
	st.Close()
	st, err = Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n := st.OutboxPoints(); n != 500 {
		t.Fatalf("after reopening the outbox holds %d points, want 500", n)
	}
	var got []byte
	var lines int
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	all := make(chan struct{})
	go func() {
		done <- st.RunOutbox(ctx, func(b []byte, n int) error {
			got = append(got, b...)
			if lines += n; lines == 500 {
				close(all)
			}
			return nil
		})
	}()
	select {
	case <-all:
	case <-time.After(5 * time.Second):
	}
	cancel()
	<-done
	if lines != 500 || st.OutboxPoints() != 0 {
		t.Fatalf("forwarded %d lines, %d left", lines, st.OutboxPoints())
	}
	want := fmt.Sprintf("qr_scans,board=b0,site=s1,source=mqtt scans=1i %d\n", t0.UnixNano())
	if string(got[:len(want)]) != want {
		t.Fatalf("first line %q, want %q", got[:len(want)], want)
	}
}

// BenchmarkOutboxDrain measures forwarding 200,000 committed points from
// the outbox into a real InfluxDB writer's disk spool (InfluxDB itself is
// not involved: the writer's own benchmark covers sending).
func BenchmarkOutboxDrain(b *testing.B) {
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		st, err := Open(Config{Dir: dir, OutboxMaxBytes: 1 << 30})
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		for i := range 200 {
			if err := st.Commit(&state.Batch{Points: points(1000, t0.Add(time.Duration(i)*time.Second))}); err != nil {
				b.Fatal(err)
			}
		}
		w, err := influx.New(influx.Config{URL: "http://127.0.0.1:9", Bucket: "village/autogen", SpoolDir: filepath.Join(dir, "spool")})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		all, forwarded := make(chan struct{}), 0
		go func() {
			done <- st.RunOutbox(ctx, func(b []byte, n int) error {
				err := w.AppendLines(b, n)
				if forwarded += n; err == nil && forwarded == 200000 {
					close(all)
				}
				return err
			})
		}()
		<-all
		el := time.Since(start)
		cancel()
		<-done
		b.StopTimer()
		b.ReportMetric(200000/el.Seconds(), "points/s")
		w.Close()
		st.Close()
		b.StartTimer()
	}
}
