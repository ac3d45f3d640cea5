package uplink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"villagehub/hub/testenv"
	"villagehub/hub/uplink"
)

// BenchmarkProvince measures the figures in docs/province.md; it is not
// part of `make test` (it takes a few minutes and most of the machine):
//
//	go test -run '^$' -bench BenchmarkProvince -benchtime 1x -timeout 30m ./hub/uplink/
//
// PROVINCE_VILLAGES (default 1000) and PROVINCE_LOAD_SECONDS (default 60)
// size the central load part.
//
//  1. Uplink volume: a hub with 10 cameras (real RTSP streams, probed) and
//     10 QR boards (simulated reports) pushes at default settings except
//     interval 5s (the request size does not depend on the interval); the
//     bytes of several pushes are measured and extrapolated to a day at
//     the default 15 s interval.
//  2. Catch-up: an hour of that hub's gathers (240 at 15 s, timestamps from
//     a fake clock an hour back) queued on disk, then sent at the default
//     32 KiB/s limit into Prometheus: how long until the queue is empty.
//  3. Central load: the hub's payload replayed as N villages (each with its
//     own place labels and hub ID) pushing every 15 s into one Prometheus,
//     then into one VictoriaMetrics, then as fast as the engine takes it:
//     CPU, memory, samples/s, active series.
func BenchmarkProvince(b *testing.B) {
	villages := envInt("PROVINCE_VILLAGES", 1000)
	loadSeconds := envInt("PROVINCE_LOAD_SECONDS", 60)

	// 1. A hub with 10 cameras and 10 boards, pushing through a byte
	// counting proxy into Prometheus.
	prom := testenv.StartPrometheus(b, "storage: { tsdb: { out_of_order_time_window: 2h } }\n", nil, "--web.enable-remote-write-receiver")
	proxy := startCountingProxy(b, strings.TrimPrefix(prom.URL, "http://"))
	h, cfg, stopVillage := startTenCameraVillage(b, "bench", `
uplink:
  interval: 5s
  remote_write: [ { name: central, url: "http://`+proxy.addr+`/api/v1/write", batch_send_deadline: 0s } ]
`, 2)
	testenv.WaitFor(b, 60*time.Second, "10 cameras probed up", func() bool {
		v, _ := testenv.Scrape(b, h.URL).Value("villagehub_camera_up")
		return v == 10
	})
	up := h.Uplink()
	startGathers := up.Gathers()
	testenv.WaitFor(b, 30*time.Second, "two pushes after warm-up", func() bool { return up.Gathers() >= startGathers+2 })
	st0, in0, out0, g0 := up.Stats("central"), proxy.in.Load(), proxy.out.Load(), up.Gathers()
	testenv.WaitFor(b, 60*time.Second, "six more pushes", func() bool {
		return up.Gathers() >= g0+6 && up.Stats("central").QueueSamples == 0
	})
	st1, in1, out1, g1 := up.Stats("central"), proxy.in.Load(), proxy.out.Load(), up.Gathers()
	pushes := float64(g1 - g0)
	perDay := 86400.0 / 15
	body := (st1.BytesSent - st0.BytesSent) / pushes
	wire := float64(in1-in0+out1-out0) / pushes
	series := (st1.Sent - st0.Sent) / pushes
	b.ReportMetric(series, "series/push")
	b.ReportMetric(body, "body-bytes/push")
	b.ReportMetric(wire, "tcp-bytes/push")
	b.ReportMetric(body*perDay/1e6, "body-MB/day@15s")
	b.ReportMetric(wire*perDay/1e6, "tcp-MB/day@15s")
	logf("uplink: %.0f series per push, %.0f bytes of snappy body, %.0f bytes on TCP (HTTP both ways, no TLS) per push: %.1f MB/day body, %.1f MB/day TCP at 15 s",
		series, body, wire, body*perDay/1e6, wire*perDay/1e6)

	fams := map[string]int{}
	for _, smp := range mustGather(b, scrapeGatherer(h.URL+"/metrics")) {
		n := string(smp.Metric[model.MetricNameLabel])
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			n = strings.TrimSuffix(n, suf)
		}
		fams[n]++
	}
	var top []string
	for n, c := range fams {
		top = append(top, fmt.Sprintf("%4d %s", c, n))
	}
	sort.Sort(sort.Reverse(sort.StringSlice(top)))
	logf("largest families (of %d): %s", len(fams), strings.Join(top[:min(8, len(top))], ", "))

	// 2. Batching: the same hour of gathers sent in requests of 1, 2, 4,
	// 20 and 60 gathers (unlimited rate), and the catch-up after a 1-hour
	// cut at the default rate limit and request size.
	gather := scrapeGatherer(h.URL + "/metrics")
	perGather := map[int]float64{}
	for _, batch := range []int{1, 2, 4, 20, 60, 0} {
		var fake atomic.Int64
		start := time.Now().Add(-time.Hour)
		rw := uplink.RemoteWrite{Name: "central", URL: prom.URL + "/api/v1/write", BatchSendDeadline: new(uplink.Duration(0))}
		if batch > 0 {
			rw.MaxSamplesPerSend, rw.MaxBytesPerSecond = batch*int(series), -1
		}
		ucfg := uplink.Config{RemoteWrite: []uplink.RemoteWrite{rw}}
		ucfg.ApplyDefaults(b.TempDir())
		hubID := fmt.Sprintf("batch-%d", batch)
		cu, err := uplink.New(uplink.Options{Config: ucfg, Place: cfg.Place, HubID: hubID, Gatherer: gather,
			Now: func() time.Time { return time.Unix(0, fake.Load()) }})
		if err != nil {
			b.Fatal(err)
		}
		for i := range 240 {
			fake.Store(start.Add(time.Duration(i) * 15 * time.Second).UnixNano())
			if err := cu.GatherOnce(); err != nil {
				b.Fatal(err)
			}
		}
		queuedBytes := cu.Stats("central").QueueBytes
		fake.Store(time.Now().UnixNano())
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		t0 := time.Now()
		go func() { _ = cu.Run(ctx); close(done) }()
		testenv.WaitFor(b, 10*time.Minute, "the hour's queue sent", func() bool {
			fake.Store(time.Now().UnixNano())
			return cu.Stats("central").QueueSamples == 0
		})
		took := time.Since(t0)
		stop()
		<-done
		cst := cu.Stats("central")
		got := prom.Query(b, `count_over_time(villagehub_place_info{hub="`+hubID+`"}[2h])`)
		if len(got) != 1 || got[0].Value < 240 {
			b.Errorf("batch %d: centre has %v heartbeat samples, want 240+", batch, got)
		}
		// Run's own first gather went up too: 241 gathers.
		pg := cst.BytesSent / float64(cu.Gathers())
		if batch > 0 {
			perGather[batch] = pg
			logf("batch of %2d gathers: %5.0f bytes per gather: %5.1f MB/day at 15 s, %4.1f MB/day at 60 s", batch, pg, pg*5760/1e6, pg*1440/1e6)
			continue
		}
		b.ReportMetric(took.Seconds(), "catchup-s/1h-cut")
		logf("catch-up: 240 gathers (1 h at 15 s) queued in %d bytes on disk, sent in %v as %.0f bytes (default 32 KiB/s, %d samples a request)",
			queuedBytes, took.Round(100*time.Millisecond), cst.BytesSent, uplink.DefaultMaxSamplesPerSend)
	}
	b.ReportMetric(perGather[4]*5760/1e6, "MB/day@15s-batch1m")
	b.ReportMetric(perGather[20]*5760/1e6, "MB/day@15s-batch5m")

	// 3. Central load: the hub's payload as N villages.
	tmpl := mustGather(b, gather)
	stopVillage()
	logf("central load: %d villages x %d series = %d series, one push per village every 15 s", villages, len(tmpl), villages*len(tmpl))
	for _, eng := range []string{"prometheus", "victoriametrics"} {
		var url string
		var pid int
		switch eng {
		case "prometheus":
			p := testenv.StartPrometheus(b, "storage: { tsdb: { out_of_order_time_window: 1h } }\n", nil, "--web.enable-remote-write-receiver")
			url, pid = p.URL, p.Pid()
		default:
			v := testenv.StartVictoriaMetrics(b)
			url, pid = v.URL, v.Pid()
		}
		w := loadRun(b, url, pid, tmpl, villages, 0, true)
		logf("%s first push of every village (creates the series): %.0f samples/s, %.0f%% CPU, RSS %.0f MB, %d failed",
			eng, w.samplesPerSec, w.cpu*100, w.rssMB, w.failures)
		r := loadRun(b, url, pid, tmpl, villages, time.Duration(loadSeconds)*time.Second, false)
		logf("%s steady (%d villages every 15 s, %ds): %.0f samples/s, %.0f%% CPU (of one core), RSS %.0f MB, %d failed requests, p99 push %v",
			eng, villages, loadSeconds, r.samplesPerSec, r.cpu*100, r.rssMB, r.failures, r.p99)
		b.ReportMetric(r.samplesPerSec, eng+"-samples/s")
		b.ReportMetric(r.cpu*100, eng+"-cpu%")
		b.ReportMetric(r.rssMB, eng+"-rss-MB")
		m := loadRun(b, url, pid, tmpl, villages, 20*time.Second, true)
		logf("%s flat out (32 senders, 20s): %.0f samples/s, %.0f%% CPU, RSS %.0f MB, %d failed: about %.0f villages at 15 s on this machine",
			eng, m.samplesPerSec, m.cpu*100, m.rssMB, m.failures, m.samplesPerSec*15/float64(len(tmpl)))
		b.ReportMetric(m.samplesPerSec, eng+"-max-samples/s")
		series := activeSeries(b, url)
		logf("%s active series: %d", eng, series)
		b.ReportMetric(float64(series), eng+"-series")
	}
}

type loadResult struct {
	samplesPerSec, cpu, rssMB float64
	failures                  int64
	p99                       time.Duration
}

type rawBody []byte

func (r rawBody) Size() int                                  { return len(r) }
func (r rawBody) MarshalToSizedBuffer(b []byte) (int, error) { return copy(b, r), nil }

// loadRun pushes the template as n villages: every 15 s each (steady), or
// as fast as 32 senders can (flat out, timestamps still 15 s apart per
// village, moving ahead of real time).
func loadRun(b *testing.B, url string, pid int, tmpl model.Vector, n int, d time.Duration, flat bool) loadResult {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
	api, err := remote.NewAPI(url, remote.WithAPIHTTPClient(client), remote.WithAPIBackoff(remote.BackoffConfig{Min: time.Millisecond, Max: time.Millisecond, MaxRetries: -1}))
	if err != nil {
		b.Fatal(err)
	}
	type job struct{ village, round int }
	jobs := make(chan job, 1024)
	var sent, failures atomic.Int64
	var latMu sync.Mutex
	var lats []time.Duration
	var wg sync.WaitGroup
	base := time.Now().Add(-time.Minute)
	for w := range 32 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for j := range jobs {
				vec := make(model.Vector, len(tmpl))
				ts := model.TimeFromUnixNano(base.Add(time.Duration(j.round) * 15 * time.Second).UnixNano())
				for i, s := range tmpl {
					c := *s
					c.Timestamp = ts
					if strings.HasSuffix(string(s.Metric[model.MetricNameLabel]), "_total") || strings.HasSuffix(string(s.Metric[model.MetricNameLabel]), "_count") {
						c.Value += model.SampleValue(j.round * rng.IntN(5))
					}
					vec[i] = &c
				}
				place := uplink.Place{Province: "thanh-hoa", District: fmt.Sprintf("d%02d", j.village%27), Commune: fmt.Sprintf("c%03d", j.village%400), Village: fmt.Sprintf("v%04d", j.village)}
				body := uplink.EncodeWriteRequest(vec, place, fmt.Sprintf("load-%04d", j.village))
				t0 := time.Now()
				if _, err := api.Write(context.Background(), remote.WriteV1MessageType, rawBody(body)); err != nil {
					failures.Add(1)
				} else {
					sent.Add(int64(len(vec)))
				}
				latMu.Lock()
				lats = append(lats, time.Since(t0))
				latMu.Unlock()
			}
		})
	}
	cpu0 := procCPU(b, pid)
	t0 := time.Now()
	if flat && d == 0 {
		for v := range n {
			jobs <- job{v, 0}
		}
	} else if flat {
		for round := 1000; time.Since(t0) < d; round++ {
			for v := 0; v < n && time.Since(t0) < d; v++ {
				jobs <- job{v, round}
			}
		}
	} else {
		// Villages spread evenly over each 15 s (rounds after the first).
		step := 15 * time.Second / time.Duration(n)
		next := time.Now()
		for k := 0; time.Since(t0) < d; k++ {
			<-time.After(time.Until(next))
			jobs <- job{k % n, 1 + k/n}
			next = next.Add(step)
		}
	}
	close(jobs)
	wg.Wait()
	el := time.Since(t0)
	cpu := (procCPU(b, pid) - cpu0) / el.Seconds()
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	p99 := time.Duration(0)
	if len(lats) > 0 {
		p99 = lats[len(lats)*99/100]
	}
	return loadResult{samplesPerSec: float64(sent.Load()) / el.Seconds(), cpu: cpu, rssMB: procRSSMB(b, pid), failures: failures.Load(), p99: p99.Round(time.Millisecond)}
}

// procCPU is a process's user+system CPU seconds so far.
func procCPU(b *testing.B, pid int) float64 {
	s, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(s[strings.LastIndexByte(string(s), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// procRSSMB is a process's resident memory now.
func procRSSMB(b *testing.B, pid int) float64 {
	s, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(s), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
			return kb / 1024
		}
	}
	return 0
}

func activeSeries(b *testing.B, url string) int {
	resp, err := http.Get(url + `/api/v1/query?query=count(%7Bhub%3D~%22load-.%2A%22%7D)`)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Data.Result) != 1 {
		b.Fatalf("count of series: %v %+v", err, r)
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	n, _ := strconv.Atoi(s)
	return n
}

// scrapeGatherer gathers what a hub's /metrics serves.
func scrapeGatherer(url string) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		resp, err := http.Get(url)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		p := expfmt.NewTextParser(model.UTF8Validation)
		m, err := p.TextToMetricFamilies(resp.Body)
		if err != nil {
			return nil, err
		}
		out := make([]*dto.MetricFamily, 0, len(m))
		for _, f := range m {
			out = append(out, f)
		}
		return out, nil
	})
}

func mustGather(b *testing.B, g prometheus.Gatherer) model.Vector {
	mfs, err := g.Gather()
	if err != nil {
		b.Fatal(err)
	}
	vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.Now()}, mfs...)
	if err != nil {
		b.Fatal(err)
	}
	return vec
}

// logf prints a figure in full (benchmark logs are cut short).
func logf(format string, args ...any) { fmt.Printf(format+"\n", args...) }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// countingProxy forwards TCP to an upstream and counts the bytes each way.
type countingProxy struct {
	addr    string
	in, out atomic.Int64
}

func startCountingProxy(tb testing.TB, upstream string) *countingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	p := &countingProxy{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(counter{u, &p.in}, c); u.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(counter{c, &p.out}, u)
			}()
		}
	}()
	return p
}

type counter struct {
	w io.Writer
	n *atomic.Int64
}

func (c counter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}
