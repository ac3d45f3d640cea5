package state

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"villagehub/hub/ingest"
)

// nopStore keeps nothing: the benchmarks below measure decoding and state,
// not the disk (BenchmarkPipelineCommit in store measures that).
type nopStore struct{}

func (nopStore) LoadDevices(func(string, []byte) error) error { return nil }
func (nopStore) Commit(*Batch) error                          { return nil }

func newBenchState(b *testing.B) *State {
	s, err := New(Config{Queue: ingest.NewQueue(16), Store: nopStore{}, Location: time.UTC})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkApply measures the in-process cost per message of decoding and
// applying a realistic mix (QR reports from 300 boards, motion from 50
// cameras), including encoding each batch's changed devices for the store,
// in batches of 1,000.
func BenchmarkApply(b *testing.B) {
	s := newBenchState(b)
	const batch = 1000
	msgs := make([]ingest.Message, batch)
	totals := make([]int64, 300)
	now := time.Now()
	var on [50]bool
	fill := func(round int) {
		for i := range msgs {
			if i%4 == 0 {
				c := (i / 4) % 50
				on[c] = !on[c]
				p := []byte("OFF")
				if on[c] {
					p = []byte("ON")
				}
				msgs[i] = ingest.Message{Topic: "village/tan-ngu-2/camera/cam-" + strconv.Itoa(c) + "/motion", Payload: p, QoS: 1, Received: now}
				continue
			}
			bd := (i + round) % 300
			totals[bd] += 2
			msgs[i] = ingest.Message{
				Topic:    "village/tan-ngu-2/qr/board-" + strconv.Itoa(bd) + "/scans",
				Payload:  fmt.Appendf(nil, `{"total":%d,"boot":"7f3a","ts":%d}`, totals[bd], now.UnixMilli()),
				QoS:      1,
				Received: now,
			}
		}
	}
	// Prepare the inputs outside the timer: they are the network's work.
	rounds := make([][]ingest.Message, 8)
	for r := range rounds {
		fill(r)
		rounds[r] = append([]ingest.Message(nil), msgs...)
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		ms := rounds[n%len(rounds)]
		s.mu.Lock()
		for i := range ms {
			s.applyMessage(&ms[i])
		}
		s.collectDirty()
		s.mu.Unlock()
		s.batch.reset()
		n++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*batch), "ns/msg")
}

// BenchmarkMemoryPerDevice registers 10,000 cameras and 10,000 boards (as
// auto-registration from MQTT does) and reports the heap per device.
func BenchmarkMemoryPerDevice(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := newBenchState(b)
		now := time.Now()
		s.mu.Lock()
		for i := range 10000 {
			id := "device-" + strconv.Itoa(i)
			m := ingest.Message{Topic: "village/site-" + strconv.Itoa(i%20) + "/camera/" + id + "/motion", Payload: []byte("ON"), Received: now}
			s.applyMessage(&m)
			m = ingest.Message{Topic: "village/site-" + strconv.Itoa(i%20) + "/qr/" + id + "/scans",
				Payload: fmt.Appendf(nil, `{"total":%d,"boot":"b%d","ts":%d}`, i, i, now.UnixMilli()), Received: now}
			s.applyMessage(&m)
		}
		s.collectDirty()
		s.batch.reset()
		s.mu.Unlock()
		runtime.GC()
		runtime.ReadMemStats(&after)
		if c := s.Counters(); c.Cameras != 10000 || c.Boards != 10000 {
			b.Fatalf("registered %d cameras, %d boards", c.Cameras, c.Boards)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/20000, "B/device")
		runtime.KeepAlive(s)
	}
}
