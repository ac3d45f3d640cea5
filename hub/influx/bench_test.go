package influx_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"villagehub/hub/influx"
	"villagehub/hub/testenv"
)

// benchPoints returns n points of the hub's schema: QR reports of 1,000
// boards and stream health samples of 200 cameras, 4:1.
func benchPoints(start, n int) []influx.Point {
	pts := make([]influx.Point, n)
	for i := range pts {
		k := start + i
		if k%5 == 4 {
			pts[i] = influx.CameraHealth("site-"+strconv.Itoa(k%7), "cam-"+strconv.Itoa(k%200), influx.Health{
				Up: true, FPS: 25, BitrateBPS: 2_048_000, Width: 1920, Height: 1080, KeyframeInterval: 50,
				Codec: "H264", ProbeDuration: 820 * time.Millisecond,
			}, time.Time{})
			continue
		}
		pts[i] = influx.QRScans("site-"+strconv.Itoa(k%7), "board-"+strconv.Itoa(k%1000), "mqtt", int64(1+k%3), time.Time{})
	}
	return pts
}

// BenchmarkInflux measures, in one run against a real InfluxDB 1.8 on this
// machine: the server's raw ceiling (one writer, 5,000-point batches), the
// sustained Append rate with fsync while the writer forwards, and the drain
// rate of a 1,000,000-point spool, plus disk bytes per spooled point. Run:
//
//	go test ./hub/influx -run '^$' -bench Influx -benchtime 1x
func BenchmarkInflux(b *testing.B) {
	in := testenv.StartInflux(b)
	b.ResetTimer()

	// 1. Raw ceiling: line protocol posted directly with WriteAPIBlocking.
	{
		const total, batch = 500_000, 5000
		client := influxdb2.NewClientWithOptions(in.URL(), "", influxdb2.DefaultOptions().SetLogLevel(0))
		api := client.WriteAPIBlocking("", testenv.InfluxBucket)
		bodies := make([]string, 0, total/batch)
		base := time.Now().Add(-time.Hour).UnixNano()
		for i := 0; i < total; i += batch {
			var buf []byte
			for j := range batch {
				k := i + j
				buf = fmt.Appendf(buf, "raw_qr_scans,board=board-%d,site=site-%d,source=mqtt scans=%di %d\n", k%1000, k%7, 1+k%3, base+int64(k))
			}
			bodies = append(bodies, string(buf))
		}
		start := time.Now()
		for _, body := range bodies {
			if err := api.WriteRecord(context.Background(), body); err != nil {
				b.Fatalf("raw write: %v", err)
			}
		}
		el := time.Since(start)
		client.Close()
		rate := float64(total) / el.Seconds()
		b.ReportMetric(rate, "raw_points/s")
		fmt.Printf("InfluxDB raw ceiling: %d points in %s = %.0f points/s (one writer, %d-point batches)\n", total, el.Round(time.Millisecond), rate, batch)
	}

	// 2. Append with fsync while Run forwards to InfluxDB.
	// Batches of 1 show what an ingest pipeline that appends message by
	// message would get: one fsync per call, shared only between
	// concurrent callers.
	for _, c := range []struct{ goroutines, batch int }{{1, 1000}, {1, 100}, {4, 100}, {1, 1}, {16, 1}} {
		dir := b.TempDir()
		w, err := influx.New(influx.Config{URL: in.URL(), Bucket: testenv.InfluxBucket, SpoolDir: dir, FlushInterval: 100 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		perG := 200_000
		if c.batch == 1 {
			perG = 10_000
		}
		batches := make([][]influx.Point, 0, perG/c.batch)
		for i := 0; i < perG; i += c.batch {
			batches = append(batches, benchPoints(i, c.batch))
		}
		var wg sync.WaitGroup
		start := time.Now()
		for range c.goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, pts := range batches {
					if err := w.Append(pts); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		drainStart := time.Now()
		waitDrained(b, w, 10*time.Minute)
		cancel()
		<-done
		w.Close()
		rate := float64(perG*c.goroutines) / el.Seconds()
		b.ReportMetric(rate, fmt.Sprintf("append_%dx%d_points/s", c.goroutines, c.batch))
		fmt.Printf("Append with fsync, %d goroutine(s), batches of %d, forwarding at the same time: %.0f points/s (%d points in %s; spool empty %s later)\n",
			c.goroutines, c.batch, rate, perG*c.goroutines, el.Round(time.Millisecond), time.Since(drainStart).Round(time.Millisecond))
	}

	// 3. Drain a 1,000,000-point spool (InfluxDB was "down": Run not
	// started), then again while new appends flow at 10,000 points/s.
	for _, flowing := range []bool{false, true} {
		const total = 1_000_000
		dir := b.TempDir()
		w, err := influx.New(influx.Config{URL: in.URL(), Bucket: testenv.InfluxBucket, SpoolDir: dir, SpoolMaxBytes: 4 << 30})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < total; i += 1000 {
			if err := w.Append(benchPoints(i, 1000)); err != nil {
				b.Fatal(err)
			}
		}
		bytesPerPoint := metricValue(b, w, "villagehub_influx_spool_bytes") / float64(total)
		if !flowing {
			// Restart cost: reopening checks every record's CRC.
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			w, err = influx.New(influx.Config{URL: in.URL(), Bucket: testenv.InfluxBucket, SpoolDir: dir, SpoolMaxBytes: 4 << 30})
			if err != nil {
				b.Fatal(err)
			}
			fmt.Printf("Reopening a %d-point spool (recovery scan): %s\n", w.Waiting(), time.Since(start).Round(time.Millisecond))
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		stopFlow := make(chan struct{})
		flowDone := make(chan int)
		go func() {
			n := 0
			if flowing {
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
			loop:
				for {
					select {
					case <-stopFlow:
						break loop
					case <-tick.C:
						if err := w.Append(benchPoints(n, 100)); err != nil {
							b.Error(err)
							break loop
						}
						n += 100
					}
				}
			}
			flowDone <- n
		}()
		start := time.Now()
		go func() { done <- w.Run(ctx) }()
		// Forwarding is in order: the backlog is drained once InfluxDB
		// confirmed as many points as it held.
		testenv.WaitFor(b, 10*time.Minute, "the backlog to be confirmed", func() bool {
			return metricValue(b, w, "villagehub_influx_points_written_total") >= total
		})
		el := time.Since(start)
		close(stopFlow)
		extra := <-flowDone
		cancel()
		<-done
		w.Close()
		rate := float64(total) / el.Seconds()
		if flowing {
			b.ReportMetric(rate, "drain_with_appends_points/s")
			fmt.Printf("Drain of a %d-point spool while 10,000 points/s keep arriving: backlog confirmed in %s = %.0f points/s (%d new points appended meanwhile)\n", total, el.Round(time.Millisecond), rate, extra)
		} else {
			b.ReportMetric(rate, "drain_points/s")
			b.ReportMetric(bytesPerPoint, "spool_bytes/point")
			fmt.Printf("Drain of a %d-point spool: %s = %.0f points/s; spool on disk %.1f bytes a point\n", total, el.Round(time.Millisecond), rate, bytesPerPoint)
		}
	}
}
