package scan

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
)

// countingRecorder is the cheapest honest Recorder: what a queue hand-off
// costs at least.
type countingRecorder struct{ n [4]atomic.Int64 }

func (c *countingRecorder) RecordScan(s Scan) {
	switch s.Class {
	case ClassHuman:
		c.n[0].Add(1)
	case ClassBot:
		c.n[1].Add(1)
	case ClassOrphan:
		c.n[2].Add(1)
	case ClassRateLimited:
		c.n[3].Add(1)
	}
}

// discardWriter is a ResponseWriter that keeps only the header map, so the
// benchmark measures the handler, not a recorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }

// BenchmarkScanHandler measures one GET /q/<board> through the ServeMux as a
// human scan: address from X-Forwarded-For behind a trusted proxy (1,024
// phones in turn), a phone agent (cached verdict), rate-limit bucket and
// uniqueness look-ups, one RecordScan, the 302.
func BenchmarkScanHandler(b *testing.B) {
	for _, c := range []struct {
		name string
		ua   string
	}{
		{"human", humanAgents["zalo-android"]},
		{"bot", botAgents["facebookexternalhit"]},
	} {
		b.Run(c.name, func(b *testing.B) {
			rec := &countingRecorder{}
			boards := &boardTable{m: map[string]Board{
				"market-07": {ID: "market-07", Site: "tan-ngu-2", TargetURL: "https://example.vn/cho-ban/sap-7"},
			}}
			h, err := NewHandler(Config{
				PublicURL:      "http://hub.example.vn",
				TrustedProxies: []string{"127.0.0.1"},
				RatePerSecond:  1e9, // measure the full human path, not the limited one
			}, boards, rec)
			if err != nil {
				b.Fatal(err)
			}
			mux := http.NewServeMux()
			h.Register(mux)
			reqs := make([]*http.Request, 1024)
			for i := range reqs {
				r, _ := http.NewRequest("GET", "http://hub.example.vn/q/market-07", nil)
				r.RemoteAddr = "127.0.0.1:40000"
				r.Header.Set("User-Agent", c.ua)
				r.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
				reqs[i] = r
			}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				clear(w.h)
				mux.ServeHTTP(w, reqs[i&1023])
				i++
			}
			b.StopTimer()
			if w.code != http.StatusFound {
				b.Fatalf("status %d", w.code)
			}
			total := rec.n[0].Load() + rec.n[1].Load()
			if total != int64(i) {
				b.Fatalf("recorded %d of %d", total, i)
			}
		})
	}
}

// BenchmarkAgentSlowPath is what one never-seen agent costs (the full
// crawler list), which is why verdicts are cached and the rate limiter runs
// before it.
func BenchmarkAgentSlowPath(b *testing.B) {
	a, err := newAgentClassifier(nil, 16)
	if err != nil {
		b.Fatal(err)
	}
	ua := humanAgents["chrome-android"]
	for b.Loop() {
		a.slow(ua)
	}
}
