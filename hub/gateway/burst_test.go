package gateway_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"villagehub/hub/testenv"
)

// TestChoBanMarketDayBurst: the Chợ Bản market, 300 stalls each with its
// own printed code, on a market day: 1,500 phones (5 per stall) and 150
// link previews arrive at once, 64 at a time, at one gateway instance
// behind nginx. Every phone is redirected to its stall's page, and the
// counts are exact per stall in the central InfluxDB and in the village
// hub. Bounded: 1,650 requests.
func TestChoBanMarketDayBurst(t *testing.T) {
	const stalls, perStall, previews, parallel = 300, 5, 150, 64
	start := time.Now()
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	influxDB := testenv.StartInflux(t)
	var boards strings.Builder
	for i := 1; i <= stalls; i++ {
		fmt.Fprintf(&boards, "\n  - { id: sap-%03d, site: tan-ngu-2, name: \"Chợ Bản, sạp %d\", target_url: \"https://example.vn/cho-ban/sap-%d\" }", i, i, i)
	}
	village, stop := startVillageWith(t, t.TempDir(), mq.URL(), influxDB.URL(), boards.String())
	defer stop()
	gw := startInstances(t, 1, mq.URL(), influxDB.URL())[0]
	lb := testenv.StartNginx(t, testenv.NginxOptions{Upstreams: []string{gw.addr}})
	testenv.WaitFor(t, 30*time.Second, "300 targets at the gateway", func() bool { return targetsOf(t, gw.addr) == stalls })

	type job struct {
		n     int
		stall int
		ua    string
	}
	var jobs []job
	for i := range stalls * perStall {
		jobs = append(jobs, job{i, i%stalls + 1, phoneAgents[i%len(phoneAgents)]})
	}
	for i := range previews {
		jobs = append(jobs, job{stalls*perStall + i%10, i%stalls + 1, previewAgents[i%len(previewAgents)]})
	}
	var mu sync.Mutex
	var lat []time.Duration
	var bad []string
	ch := make(chan job)
	var wg sync.WaitGroup
	burst := time.Now()
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				p := newPhone(j.n, j.ua)
				req, _ := http.NewRequest("GET", fmt.Sprintf("%s/q/tan-ngu-2/sap-%03d", lb.URL(), j.stall), nil)
				req.Header.Set("User-Agent", j.ua)
				t0 := time.Now()
				resp, err := p.c.Do(req)
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				want := fmt.Sprintf("https://example.vn/cho-ban/sap-%d", j.stall)
				if err != nil {
					bad = append(bad, err.Error())
				} else if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != want {
					bad = append(bad, fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("Location")))
				}
				mu.Unlock()
				if err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	took := time.Since(burst)
	if len(bad) > 0 {
		t.Fatalf("%d of %d requests not redirected right, e.g. %q", len(bad), len(jobs), bad[0])
	}
	slices.Sort(lat)
	t.Logf("burst: %d requests in %v (%.0f/s), p50 %v, p99 %v, max %v", len(jobs), took.Round(time.Millisecond),
		float64(len(jobs))/took.Seconds(), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])

	testenv.WaitFor(t, 60*time.Second, "every stall's counts in the village", func() bool {
		for i := 1; i <= stalls; i++ {
			if villageCounts(village, fmt.Sprintf("sap-%03d", i)).scans != perStall {
				return false
			}
		}
		return true
	})
	// Scans, unique and bot points reach InfluxDB in separate batches:
	// wait for all three totals before checking each stall.
	testenv.WaitFor(t, 60*time.Second, "the counts in InfluxDB", func() bool {
		c := influxCounts(t, influxDB)
		var n, u, b int64
		for k, v := range c {
			switch {
			case strings.HasSuffix(k, "/scans"):
				n += v
			case strings.HasSuffix(k, "/unique"):
				u += v
			case strings.HasSuffix(k, "/bot"):
				b += v
			}
		}
		return n == stalls*perStall && u >= stalls*perStall && b >= previews
	})
	c := influxCounts(t, influxDB)
	var bots, uniques int64
	for i := 1; i <= stalls; i++ {
		b := fmt.Sprintf("sap-%03d", i)
		if c[b+"/scans"] != perStall {
			t.Errorf("InfluxDB %s: %d scans, want %d", b, c[b+"/scans"], perStall)
		}
		bots += c[b+"/bot"]
		uniques += c[b+"/unique"]
		v := villageCounts(village, b)
		if v.scans != perStall || v.unique != perStall {
			t.Errorf("village %s: %+v", b, v)
		}
	}
	if bots != previews || uniques != stalls*perStall {
		t.Errorf("InfluxDB: %d bot visits (want %d), %d unique (want %d)", bots, previews, uniques, stalls*perStall)
	}
	t.Logf("took %v in all", time.Since(start).Round(time.Millisecond))
}
