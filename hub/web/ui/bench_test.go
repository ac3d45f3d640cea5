package ui

import (
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"villagehub/hub/state"
)

// fleet is a Source with n cameras (with stream health, as probed ones
// have) and n/4 boards; like state.State it hands out fresh copies.
type fleet struct {
	cams   []state.CameraView
	boards []state.BoardView
}

func newFleet(n int) *fleet {
	f := &fleet{}
	now := time.Now()
	for i := range n {
		last := now.Add(-time.Duration(i) * time.Second)
		f.cams = append(f.cams, state.CameraView{
			ID: fmt.Sprintf("cam-%04d", i), Site: fmt.Sprintf("site-%02d", i%20), Name: fmt.Sprintf("Camera số %d", i),
			Location: "Đầu đường liên thôn", Configured: true, Status: "online", StatusSince: &last, LastSeen: &now,
			LastMotion: &last, MotionEvents: uint64(i * 7),
			Stream: &state.StreamView{Up: true, Since: last, Grade: "good", Codec: "h264", Width: 1920, Height: 1080,
				FPS: 25, BitrateBps: 2.1e6, KeyframeInterval: 50, ProbeDurationS: 0.4, LastProbe: now, LastSuccess: &now},
		})
	}
	for i := range n / 4 {
		f.boards = append(f.boards, state.BoardView{ID: fmt.Sprintf("board-%04d", i), Site: fmt.Sprintf("site-%02d", i%20),
			Name: "Chợ Bản, sạp 7", Status: "online", ScansToday: uint64(i), ScansTotal: uint64(i * 100)})
	}
	return f
}

func (f *fleet) Cameras() []state.CameraView { return append([]state.CameraView(nil), f.cams...) }
func (f *fleet) Boards() []state.BoardView   { return append([]state.BoardView(nil), f.boards...) }
func (f *fleet) Sites() []state.Site {
	return []state.Site{{ID: "site-00", Name: "Thôn Tân Ngữ 2"}}
}

// BenchmarkRefresh is the hub's CPU per dashboard refresh at 1,000
// cameras (and 250 boards): one snapshot per interval, whatever the number
// of viewers, while anyone watches.
func BenchmarkRefresh(b *testing.B) {
	for _, changed := range []int{0, 10, 1000} {
		b.Run(fmt.Sprintf("cameras=1000/changed=%d", changed), func(b *testing.B) {
			src := newFleet(1000)
			f := newFeed(src, time.UTC, time.Second)
			f.refresh()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				for j := range changed {
					src.cams[j].MotionEvents = uint64(i + 1)
				}
				f.refresh()
			}
			b.StopTimer()
			d := f.cur.delta
			if changed == 0 {
				d = nil
			}
			b.ReportMetric(float64(len(d)), "delta-bytes")
		})
	}
}

// BenchmarkNewViewer is the cost of a viewer's first message (the whole
// fleet), built once per snapshot and shared by every viewer that needs it.
func BenchmarkNewViewer(b *testing.B) {
	src := newFleet(1000)
	f := newFeed(src, time.UTC, time.Second)
	f.refresh()
	var n int
	b.ReportAllocs()
	for range b.N {
		fr := &frame{seq: f.cur.seq, now: f.cur.now, sites: f.cur.sites, cams: f.cur.cams, boards: f.cur.boards, days: f.cur.days}
		n = len(fr.fullMessage())
	}
	b.ReportMetric(float64(n), "bytes")
}

// BenchmarkPollingCameras is, for comparison, what polling
// /api/v1/cameras costs the hub per viewer per refresh at 1,000 cameras.
func BenchmarkPollingCameras(b *testing.B) {
	src := newFleet(1000)
	var n int
	b.ReportAllocs()
	for range b.N {
		cw := &countWriter{}
		enc := json.NewEncoder(cw)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(map[string]any{"cameras": src.Cameras()})
		n = cw.n
	}
	b.ReportMetric(float64(n), "bytes")
}

type countWriter struct{ n int }

func (c *countWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

var _ io.Writer = (*countWriter)(nil)
