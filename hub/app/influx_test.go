package app_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"villagehub/devices/sim"
	"villagehub/hub/config"
	"villagehub/hub/testenv"
)

// influxSums returns sum(scans) and count() of qr_scans per board and
// source, as "board/source" -> value.
func influxSums(t *testing.T, in *testenv.Influx, fn string) map[string]int64 {
	t.Helper()
	rows, err := in.Query(fmt.Sprintf(`from(bucket: "village/autogen")
  |> range(start: -30d, stop: 2d)
  |> filter(fn: (r) => r._measurement == "qr_scans" and r._field == "scans")
  |> group(columns: ["board", "source"])
  |> %s()`, fn))
	if err != nil {
		t.Logf("flux: %v", err)
		return nil
	}
	out := map[string]int64{}
	for _, r := range rows {
		v, _ := r["_value"].(int64)
		out[fmt.Sprint(r["board"])+"/"+fmt.Sprint(r["source"])] = v
	}
	return out
}

func influxCount(t *testing.T, in *testenv.Influx, measurement, field string) int64 {
	t.Helper()
	rows, err := in.Query(fmt.Sprintf(`from(bucket: "village/autogen")
  |> range(start: -30d, stop: 2d)
  |> filter(fn: (r) => r._measurement == %q and r._field == %q)
  |> group() |> count()`, measurement, field))
	if err != nil || len(rows) == 0 {
		return 0
	}
	v, _ := rows[0]["_value"].(int64)
	return v
}

// TestInfluxEndToEnd publishes known messages through the embedded broker
// and scans a printed code, and reads everything back from a real InfluxDB
// with Flux: exact sums and counts per measurement, including two QR
// reports of one board in the same millisecond.
func TestInfluxEndToEnd(t *testing.T) {
	in := testenv.StartInflux(t)
	h := startHub(t, func(c *config.Config) {
		c.Influx.URL, c.Influx.Bucket = in.URL(), "village/autogen"
		c.Influx.FlushInterval = config.Duration(100 * time.Millisecond)
		c.HTTP.PublicURL = "http://" + c.HTTP.Addr
		c.Boards[0].TargetURL = "http://127.0.0.1:1/" // never followed below
	})
	pub := testenv.MQTT(t, "tcp://"+h.BrokerAddr(), "influx-e2e")
	ts := time.Now().Add(-time.Minute).UnixMilli()
	p := func(topic, body string) { testenv.Publish(t, pub, "village/tan-ngu-2/"+topic, 1, false, body) }
	p("qr/market-07/scans", fmt.Sprintf(`{"total":10,"boot":"a","ts":%d}`, ts))
	p("qr/market-07/scans", fmt.Sprintf(`{"total":13,"boot":"a","ts":%d}`, ts)) // same millisecond
	p("qr/market-07/scans", fmt.Sprintf(`{"total":13,"boot":"a","ts":%d}`, ts)) // duplicate: no point
	p("qr/market-07/scans", fmt.Sprintf(`{"total":2,"boot":"b","ts":%d}`, ts+5))
	p("camera/gate/motion", "ON")
	p("camera/gate/motion", "OFF")
	p("camera/gate/status", "online")
	p("qr/market-07/status", "offline")
	req, _ := http.NewRequest("GET", h.URL+"/q/market-07", nil)
	req.Header.Set("User-Agent", phoneA)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := noFollow.Do(req); err != nil || resp.StatusCode != 302 {
		t.Fatalf("printed scan: %v %v", resp, err)
	}

	testenv.WaitFor(t, 30*time.Second, "points in InfluxDB", func() bool {
		s := influxSums(t, in, "sum")
		return s["market-07/mqtt"] == 15 && s["market-07/printed"] == 1 && influxCount(t, in, "device_status", "online") == 2
	})
	if c := influxSums(t, in, "count"); c["market-07/mqtt"] != 3 || c["market-07/printed"] != 1 {
		t.Errorf("qr_scans point counts: %v, want 3 mqtt and 1 printed", c)
	}
	if n := influxCount(t, in, "camera_motion", "active"); n != 2 {
		t.Errorf("camera_motion points: %d, want 2", n)
	}
	if n := influxCount(t, in, "camera_motion", "duration_s"); n != 1 {
		t.Errorf("camera_motion duration points: %d, want 1", n)
	}
	if n := influxCount(t, in, "qr_visits", "visits"); n != 1 {
		t.Errorf("qr_visits (unique) points: %d, want 1", n)
	}
	m := testenv.Scrape(t, h.URL)
	if v, _ := m.Value("villagehub_influx_points_written_total"); v < 9 {
		t.Errorf("points_written_total = %v", v)
	}
}

// TestInfluxOutageKill: InfluxDB stops while devices publish through
// Mosquitto, the hub is killed with SIGKILL during the outage and
// restarted, then InfluxDB comes back: every report is in InfluxDB exactly
// once (sum and count per board equal what the devices published).
func TestInfluxOutageKill(t *testing.T) {
	in := testenv.StartInflux(t)
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	h := newHubProcess(t, mq.URL())
	appendConfig(t, h.cfgPath, fmt.Sprintf("influx: { url: %s, bucket: village/autogen, flush_interval: 200ms, max_retry_interval: 1s }\n", in.URL()))
	h.start()
	fleet, err := sim.NewFleet(sim.Config{
		Broker: mq.URL(), Boards: sim.Devices("board", 40, "s1"),
		Rate: 5000, QoS: 1, RebootProb: 0.01, RepeatProb: 0.05, Seed: 11,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fleet.Run(ctx) }()
	// Each phase lasts a number of reports, not a time: the counts below
	// are checked after the fact, whatever the machine's speed.
	n := waitPublished(t, fleet, 5000, "before the outage")
	in.Stop()
	t.Logf("InfluxDB stopped after %d reports", n)
	n = waitPublished(t, fleet, 5000, "InfluxDB down")
	h.p.Kill()
	t.Logf("hub killed after %d reports", n)
	waitPublished(t, fleet, 2500, "hub down")
	h.start()
	n = waitPublished(t, fleet, 5000, "hub back, InfluxDB still down")
	in.Start()
	t.Logf("InfluxDB back after %d reports", n)
	waitPublished(t, fleet, 5000, "InfluxDB back")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := fleet.Stats()
	if st.Errors > 0 {
		t.Fatalf("fleet published %d with %d errors", st.Published, st.Errors)
	}
	check := func() (bad []string) {
		sums, counts := influxSums(t, in, "sum"), influxSums(t, in, "count")
		for d, n := range st.ExpectedScans {
			k := d.ID + "/mqtt"
			if sums[k] != n || counts[k] != st.ExpectedReports[d] {
				bad = append(bad, fmt.Sprintf("%s: sum %d count %d, want %d and %d", d.ID, sums[k], counts[k], n, st.ExpectedReports[d]))
			}
		}
		return bad
	}
	testenv.WaitFor(t, 90*time.Second, "InfluxDB to hold every report exactly once", func() bool { return len(check()) == 0 })
	// And nothing arrives late to be written twice: a marker report sent
	// now reaches InfluxDB after anything still on its way.
	h.settle()
	testenv.WaitFor(t, 60*time.Second, "the marker in InfluxDB", func() bool {
		for k := range influxSums(t, in, "sum") {
			if strings.HasPrefix(k, "settle-") {
				return true
			}
		}
		return false
	})
	if bad := check(); len(bad) > 0 {
		t.Fatalf("after settling: %v", bad)
	}
}

func appendConfig(t *testing.T, path, extra string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.WriteString(f, extra); err != nil {
		t.Fatal(err)
	}
}

// heldProxy forwards TCP connections to target but holds everything the
// clients send until release is called: an InfluxDB that does not answer
// at all, for as long as the test needs, with no timing involved.
func heldProxy(t *testing.T, target string) (addr string, release func()) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		release()
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			wg.Add(2)
			go func() {
				defer wg.Done()
				defer u.Close()
				<-gate
				io.Copy(u, c)
			}()
			go func() { defer wg.Done(); defer c.Close(); io.Copy(c, u) }()
		}
	}()
	return l.Addr().String(), release
}

// TestInfluxSlowNeverBlocksIngest: while InfluxDB does not answer at all,
// the hub still applies and acknowledges every message; the points arrive
// once it answers again.
func TestInfluxSlowNeverBlocksIngest(t *testing.T) {
	in := testenv.StartInflux(t)
	proxy, release := heldProxy(t, in.Addr())
	h := startHub(t, func(c *config.Config) {
		c.Influx.URL, c.Influx.Bucket = "http://"+proxy, "village/autogen"
		c.Influx.Timeout = config.Duration(30 * time.Second)
	})
	pub := testenv.MQTT(t, "tcp://"+h.BrokerAddr(), "slow")
	const n = 3000
	for i := 1; i <= n; i++ {
		tok := pub.Publish("village/tan-ngu-2/qr/market-07/scans", 1, false, fmt.Sprintf(`{"total":%d,"boot":"s"}`, i))
		if i%100 == 0 || i == n {
			tok.Wait()
		}
	}
	// Every message acknowledged by the hub (QoS 1) and applied, while not
	// one byte has reached InfluxDB.
	waitHandled(t, h.URL, n)
	if got := influxSums(t, in, "sum")["market-07/mqtt"]; got != 0 {
		t.Fatalf("InfluxDB already has %d scans through a proxy that holds everything", got)
	}
	release()
	testenv.WaitFor(t, 60*time.Second, "points once InfluxDB answers", func() bool {
		return influxSums(t, in, "sum")["market-07/mqtt"] == n
	})
}

// TestInfluxDeadLetter: a point InfluxDB refuses (a field type conflict)
// lands in the dead-letter file with its reason and does not stall the
// points after it.
func TestInfluxDeadLetter(t *testing.T) {
	in := testenv.StartInflux(t)
	// camera_motion.duration_s is a string in this week's shard already: the
	// hub's float value for it (the end of a motion event) is refused with
	// a 400 "field type conflict".
	resp, err := http.Post(in.URL()+"/write?db=village", "text/plain",
		strings.NewReader(fmt.Sprintf(`camera_motion,camera=poisoned,site=tan-ngu-2 duration_s="text" %d`, time.Now().Add(-time.Hour).UnixNano())))
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("seeding the conflict: %v %v", resp, err)
	}
	var dataDir string
	h := startHub(t, func(c *config.Config) {
		c.Influx.URL, c.Influx.Bucket = in.URL(), "village/autogen"
		dataDir = c.DataDir
	})
	pub := testenv.MQTT(t, "tcp://"+h.BrokerAddr(), "dl")
	testenv.Publish(t, pub, "village/tan-ngu-2/camera/gate/motion", 1, false, "ON")
	testenv.Publish(t, pub, "village/tan-ngu-2/camera/gate/motion", 1, false, "OFF")
	testenv.Publish(t, pub, "village/tan-ngu-2/qr/market-07/scans", 1, false, `{"total":7,"boot":"x"}`)
	testenv.WaitFor(t, 30*time.Second, "the good point written", func() bool {
		return influxSums(t, in, "sum")["market-07/mqtt"] == 7
	})
	testenv.WaitFor(t, 10*time.Second, "the bad point dead-lettered", func() bool {
		b, _ := os.ReadFile(filepath.Join(dataDir, "influx-spool", "dead-letter.lp"))
		return strings.Contains(string(b), "camera_motion,camera=gate") && strings.Contains(string(b), "field type conflict")
	})
	// The file is written before the counter moves: wait for both.
	testenv.WaitFor(t, 10*time.Second, "the dead-lettered point counted", func() bool {
		v, _ := testenv.Scrape(t, h.URL).Value("villagehub_influx_dead_letter_points_total")
		return v >= 1
	})
	if v, _ := testenv.Scrape(t, h.URL).Value("villagehub_influx_dead_letter_points_total"); v != 1 {
		t.Errorf("dead_letter_points_total = %v", v)
	}
	// The motion start, in the same batch as the refused end, got through.
	if n := influxCount(t, in, "camera_motion", "active"); n != 1 {
		t.Errorf("camera_motion active points: %d, want the start only", n)
	}
}

// TestInfluxSpoolFull: with InfluxDB down and a small spool and outbox, the
// hub fills them, then stops acknowledging; Mosquitto keeps the rest in
// the hub's session. When InfluxDB returns everything drains and nothing
// is lost or doubled.
func TestInfluxSpoolFull(t *testing.T) {
	in := testenv.StartInflux(t)
	in.Stop()
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	h := newHubProcess(t, mq.URL())
	appendConfig(t, h.cfgPath, fmt.Sprintf("influx: { url: %s, bucket: village/autogen, spool_max_bytes: 1048576, outbox_max_bytes: 262144, flush_interval: 200ms, max_retry_interval: 1s }\n", in.URL()))
	h.start()
	fleet, err := sim.NewFleet(sim.Config{Broker: mq.URL(), Boards: sim.Devices("board", 20, "s1"), Rate: 4000, QoS: 1, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fleet.Run(ctx) }()
	// ~100 bytes a point: the spool and outbox hold ~13,000 points.
	testenv.WaitFor(t, 30*time.Second, "the hub to stop acknowledging (outbox full)", func() bool {
		resp, err := http.Get("http://" + h.http + "/readyz")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 503 && strings.Contains(string(b), "outbox is full")
	})
	m := testenv.Scrape(t, "http://"+h.http)
	spooled, _ := m.Value("villagehub_influx_spool_points")
	outbox, _ := m.Value("villagehub_influx_outbox_points")
	t.Logf("full: %v points in the spool, %v in the outbox, %d published", spooled, outbox, fleet.Stats().Published)
	// Devices keep publishing; Mosquitto queues: 5,000 reports past what
	// the spool and outbox hold.
	overflow := uint64(spooled+outbox) + 5000
	testenv.WaitFor(t, 90*time.Second, fmt.Sprintf("%d reports published", overflow), func() bool { return fleet.Stats().Published >= overflow })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := fleet.Stats()
	var want int64
	for _, n := range st.ExpectedScans {
		want += n
	}
	if st.Errors > 0 || float64(st.Published) < spooled+outbox+5000 {
		t.Fatalf("published %d (errors %d): not enough to overflow %v+%v", st.Published, st.Errors, spooled, outbox)
	}
	in.Start()
	testenv.WaitFor(t, 90*time.Second, "everything in InfluxDB", func() bool {
		var got int64
		for _, v := range influxSums(t, in, "sum") {
			got += v
		}
		return got == want
	})
	sums, counts := influxSums(t, in, "sum"), influxSums(t, in, "count")
	for d, n := range st.ExpectedScans {
		if k := d.ID + "/mqtt"; sums[k] != n || counts[k] != st.ExpectedReports[d] {
			t.Errorf("%s: sum %d count %d, want %d and %d", d.ID, sums[k], counts[k], n, st.ExpectedReports[d])
		}
	}
}
