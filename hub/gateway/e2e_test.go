package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"villagehub/hub/app"
	"villagehub/hub/config"
	"villagehub/hub/gateway"
	"villagehub/hub/testenv"
)

// childEnv makes the test binary run `villagehub gateway --config <value>`
// instead of the tests: gateway instances are separate processes that a
// test can kill -9.
const childEnv = "VILLAGEHUB_GATEWAY_CHILD"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		os.Exit(gateway.Command([]string{"--config", cfg, "--log-level", "debug"}, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// Real agents (as in hub/scan's tests): phones, and link previewers.
var phoneAgents = []string{
	"Mozilla/5.0 (Linux; Android 13; SM-A536E Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/125.0.6422.165 Mobile Safari/537.36 Zalo android/12100621 ZaloTheme/light ZaloLanguage/vi",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 12; SM-A125F) AppleWebKit/537.36 (KHTML, like Gecko) coc_coc_browser/117.0.232 Chrome/111.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/480.0]",
	"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
}

var previewAgents = []string{
	"Mozilla/5.0 (compatible; Zalo/1.0)",
	"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
	"Mozilla/5.0 (compatible; ZaloBot/1.0; +http://zalo.me)",
}

// phone is a real HTTP client whose connections come from its own
// loopback address (127.0.1.n), so nginx sees each phone as a different
// client and passes its address on in X-Forwarded-For.
type phone struct {
	ip string
	ua string
	c  *http.Client
}

func newPhone(n int, ua string) *phone {
	ip := fmt.Sprintf("127.0.%d.%d", 1+n/250, 1+n%250)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &phone{ip: ip, ua: ua, c: &http.Client{
		Transport:     &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}}
}

// scan GETs url and returns the status, the Location and the body.
func (p *phone) scan(t *testing.T, url string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("User-Agent", p.ua)
	resp, err := p.c.Do(req)
	if err != nil {
		t.Fatalf("phone %s: %v", p.ip, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location"), string(body)
}

func (p *phone) mustRedirect(t *testing.T, url, want string) {
	t.Helper()
	code, loc, body := p.scan(t, url)
	if code != http.StatusFound || loc != want {
		t.Fatalf("phone %s GET %s: %d %q, want 302 to %s\n%s", p.ip, url, code, loc, want, body)
	}
}

// cutProxy is a TCP forwarder between the village hub and the centre's
// broker that the test can cut (the village's 4G link going down).
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", testenv.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.mu.Unlock()
			go p.pipe(c)
		}
	}()
	return p
}

func (p *cutProxy) pipe(c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[u] = struct{}{}, struct{}{}
	p.mu.Unlock()
	go func() { io.Copy(u, c); u.Close() }()
	io.Copy(c, u)
	c.Close()
}

func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

func (p *cutProxy) URL() string { return "tcp://" + p.ln.Addr().String() }

// startVillage runs a village hub (hub/app, in this process) with three
// boards and a gateway: block pointing at brokerURL; its InfluxDB is the
// central one, to show it writes no second point for gateway scans.
func startVillage(t *testing.T, dataDir, brokerURL, influxURL string) (*app.Hub, func()) {
	return startVillageWith(t, dataDir, brokerURL, influxURL, `
  - { id: market-01, site: tan-ngu-2, name: "Chợ Bản, sạp 1", target_url: "https://example.vn/cho-ban/sap-1" }
  - { id: market-02, site: tan-ngu-2, name: "Chợ Bản, sạp 2", target_url: "https://example.vn/cho-ban/sap-2" }
  - { id: market-03, site: tan-ngu-2, name: "Chợ Bản, sạp 3", target_url: "https://example.vn/cho-ban/sap-3" }`)
}

func startVillageWith(t *testing.T, dataDir, brokerURL, influxURL, boards string) (*app.Hub, func()) {
	t.Helper()
	yaml := fmt.Sprintf(`hub_id: hub-tn2
data_dir: %q
http: { addr: %q, public_url: "http://192.168.1.10:8080" }
broker: { addr: %q, allow_anonymous: true }
probe: { enabled: false }
influx: { url: %q, bucket: %q, flush_interval: 100ms }
sites:
  - { id: tan-ngu-2, name: "Thôn Tân Ngữ 2" }
qr_boards:%s
place: { province: thanh-hoa, district: ngoc-lac, commune: minh-son, village: tan-ngu-2 }
gateway:
  public_url: "https://qr.thanhhoa.gov.vn"
  broker: { url: %q }
`, dataDir, testenv.FreeAddr(t), testenv.FreeAddr(t), influxURL, testenv.InfluxBucket, boards, brokerURL)
	cfg, err := config.Parse(filepath.Join(dataDir, "villagehub.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	villageConfigs[dataDir] = cfg
	h, err := app.New(cfg, app.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ProbeWorker: []string{"/bin/false"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("village hub: %v", err)
		}
	}
	testenv.WaitHTTP(t, "http://"+h.HTTPAddr()+"/healthz", 15*time.Second, nil)
	return h, stop
}

// villageConfigs keeps each village hub's config by data directory, for
// reloads.
var villageConfigs = map[string]*config.Config{}

// gatewayConfig writes one instance's config.
func gatewayConfig(t *testing.T, dir, listen, broker, influxURL, salt string) string {
	t.Helper()
	path := filepath.Join(dir, "gateway.yaml")
	yaml := fmt.Sprintf(`listen: %q
public_url: "https://qr.thanhhoa.gov.vn"
data_dir: %q
instance: %q
broker: { url: %q }
influx: { url: %q, bucket: %q, flush_interval: 100ms, max_retry_interval: 1s }
qr:
  trusted_proxies: [127.0.0.1]
  unique_window: 1h
  rate_per_second: 0.0001
  rate_burst: 4
  salt_file: %q
  request_id_header: X-Request-ID
`, listen, filepath.Join(dir, "data"), filepath.Base(dir), broker, influxURL, testenv.InfluxBucket, salt)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startInstances starts n gateway instances sharing one salt file.
func startInstances(t *testing.T, n int, broker, influxURL string) []*instance {
	t.Helper()
	salt := filepath.Join(t.TempDir(), "salt")
	if code := gateway.Command([]string{"salt", salt}, io.Discard, os.Stderr); code != 0 {
		t.Fatal("salt")
	}
	gws := make([]*instance, n)
	for i := range gws {
		dir := t.TempDir()
		addr := testenv.FreeAddr(t)
		gws[i] = &instance{cfg: gatewayConfig(t, dir, addr, broker, influxURL, salt), addr: addr}
		startInstance(t, gws[i])
	}
	return gws
}

type instance struct {
	cfg, addr string
	p         *testenv.Process
}

func startInstance(t *testing.T, in *instance) {
	t.Helper()
	in.p = testenv.StartProcess(t, os.Args[0], []string{childEnv + "=" + in.cfg}, "-test.run=^$")
	testenv.WaitHTTP(t, "http://"+in.addr+"/healthz", 15*time.Second, in.p)
}

func targetsOf(t *testing.T, addr string) float64 {
	m, err := testenv.TryScrape("http://" + addr)
	if err != nil {
		return -1
	}
	v, _ := m.Value("villagehub_gateway_targets")
	return v
}

// influxCounts sums qr_scans (source=printed) per board and counts
// qr_visits per board and class.
func influxCounts(t *testing.T, in *testenv.Influx) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	rows, err := in.Query(`from(bucket: "` + testenv.InfluxBucket + `") |> range(start: -2d, stop: 2d)
  |> filter(fn: (r) => r._measurement == "qr_scans" and r._field == "scans" and r.source == "printed")
  |> group(columns: ["board"]) |> sum()`)
	if err != nil {
		t.Logf("influx: %v", err)
		return out
	}
	for _, r := range rows {
		out[fmt.Sprint(r["board"])+"/scans"] = r["_value"].(int64)
	}
	rows, err = in.Query(`from(bucket: "` + testenv.InfluxBucket + `") |> range(start: -2d, stop: 2d)
  |> filter(fn: (r) => r._measurement == "qr_visits" and r._field == "visits")
  |> group(columns: ["board", "class"]) |> count()`)
	if err != nil {
		t.Logf("influx: %v", err)
		return out
	}
	for _, r := range rows {
		out[fmt.Sprint(r["board"])+"/"+fmt.Sprint(r["class"])] = r["_value"].(int64)
	}
	return out
}

type boardCounts struct{ scans, unique, bots, limited uint64 }

func villageCounts(h *app.Hub, board string) boardCounts {
	b, ok := h.State().Board("tan-ngu-2", board)
	if !ok {
		return boardCounts{}
	}
	return boardCounts{b.ScansPrinted, b.PrintedUnique, b.Bots, b.RateLimited}
}

// TestTwoGatewaysBehindNginx: two gateway processes behind a real nginx
// (round robin), a real Mosquitto, a real InfluxDB 1.8 and a village hub
// feeding targets. Phones, duplicates, link previews and a rate-limited
// client are counted exactly, in the central InfluxDB and in the village
// hub, across a kill -9 of one instance (restarted while the broker is
// down: it redirects from its cached targets) and a village cut off from
// the centre (its counts arrive once when it returns, even when a count is
// delivered twice).
func TestTwoGatewaysBehindNginx(t *testing.T) {
	start := time.Now()
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	influxDB := testenv.StartInflux(t)
	link := newCutProxy(t, mq.Addr)
	villageDir := t.TempDir()
	village, stopVillage := startVillage(t, villageDir, link.URL(), influxDB.URL())
	defer stopVillage()

	gws := startInstances(t, 2, mq.URL(), influxDB.URL())
	lb := testenv.StartNginx(t, testenv.NginxOptions{Upstreams: []string{gws[0].addr, gws[1].addr}})
	for _, g := range gws {
		testenv.WaitFor(t, 20*time.Second, "targets at "+g.addr, func() bool { return targetsOf(t, g.addr) == 3 })
	}

	// Capture what goes down to the village, to deliver one batch twice.
	var capMu sync.Mutex
	var captured []paho.Message
	spy := testenv.MQTT(t, mq.URL(), "spy")
	if tok := spy.Subscribe("village/_gateway/tan-ngu-2/+/scans", 1, func(_ paho.Client, m paho.Message) {
		capMu.Lock()
		captured = append(captured, m)
		capMu.Unlock()
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal("spy subscribe", tok.Error())
	}

	// The village prints the gateway's address, not its LAN one.
	resp, err := http.Get("http://" + village.HTTPAddr() + "/qr/market-01.png")
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := testenv.DecodeQR(t, img); got != "https://qr.thanhhoa.gov.vn/q/tan-ngu-2/market-01" {
		t.Fatalf("the village's printed code for market-01 reads %q", got)
	}

	url := func(board string) string { return lb.URL() + "/q/tan-ngu-2/" + board }
	target1, target2 := "https://example.vn/cho-ban/sap-1", "https://example.vn/cho-ban/sap-2"
	target3 := "https://example.vn/cho-ban/sap-3"

	// Phase 1, everything up. 20 phones scan market-01 once; 5 of them
	// again (duplicates within the unique window).
	phones := make([]*phone, 100)
	for i := range phones {
		phones[i] = newPhone(i, phoneAgents[i%len(phoneAgents)])
	}
	for i := range 20 {
		phones[i].mustRedirect(t, url("market-01"), target1)
	}
	for i := range 5 {
		phones[i].mustRedirect(t, url("market-01"), target1)
	}
	// Link previews: a villager shares the link in Zalo and Facebook.
	for i := range 6 {
		newPhone(30, previewAgents[i%len(previewAgents)]).mustRedirect(t, url("market-01"), target1)
	}
	// One client hammering market-02: each instance lets 4 through (its
	// burst), the rest are rate limited, and still redirected. Round robin
	// alternates, unless nginx took an instance out for a failed
	// connection: the expectation is per instance, from what each saw.
	seen := func() (n, human [2]float64) {
		for i, g := range gws {
			m := testenv.Scrape(t, "http://"+g.addr)
			h, _ := m.Value("villagehub_gateway_scans_total", "board=market-02", "class=human")
			l, _ := m.Value("villagehub_gateway_scans_total", "board=market-02", "class=rate_limited")
			n[i], human[i] = h+l, h
		}
		return n, human
	}
	for range 12 {
		phones[40].mustRedirect(t, url("market-02"), target2)
	}
	n0, h0 := seen()
	if n0[0]+n0[1] != 12 || h0[0] != min(n0[0], 4) || h0[1] != min(n0[1], 4) {
		t.Errorf("round robin: instances saw %v requests, counted %v human; want min(n, 4) each", n0, h0)
	}
	if n0[0] != 6 {
		t.Logf("round robin was not strict: %v", n0)
	}
	roundRobin := int64(h0[0] + h0[1]) // 8 when nginx alternates
	// The same through a sticky load balancer (nginx's "hash $remote_addr
	// consistent"): the client always meets the same instance, so the
	// limit is the configured one, not two times it.
	sticky := testenv.StartNginx(t, testenv.NginxOptions{Upstreams: []string{gws[0].addr, gws[1].addr}, Balance: "hash $remote_addr consistent;"})
	for range 12 {
		phones[42].mustRedirect(t, sticky.URL()+"/q/tan-ngu-2/market-02", target2)
	}
	n1, h1 := seen()
	if d0, d1 := n1[0]-n0[0], n1[1]-n0[1]; !(d0 == 12 && d1 == 0 || d0 == 0 && d1 == 12) || h1[0]+h1[1]-h0[0]-h0[1] != 4 {
		t.Errorf("sticky: instances saw %v more requests, %v more human; want 12 on one, 4 human", [2]float64{d0, d1}, h1[0]+h1[1]-h0[0]-h0[1])
	}
	scans2 := roundRobin + 4
	// Codes that lead nowhere: the friendly Vietnamese page.
	for _, u := range []string{url("khong-co"), lb.URL() + "/q/lang-khac/market-01", lb.URL() + "/q/market-01", lb.URL() + "/q/tan-ngu-2/market-01/extra"} {
		code, _, body := phones[41].scan(t, u)
		if code != http.StatusNotFound || !strings.Contains(body, "Không tìm thấy bảng tin") {
			t.Fatalf("GET %s: %d\n%s", u, code, body)
		}
	}
	want1 := boardCounts{scans: 25, bots: 6}
	testenv.WaitFor(t, 30*time.Second, "phase 1 counts in the village", func() bool {
		c := villageCounts(village, "market-01")
		return c.scans == want1.scans && c.bots == want1.bots && int64(villageCounts(village, "market-02").scans) == scans2
	})
	testenv.WaitFor(t, 30*time.Second, "phase 1 counts in InfluxDB", func() bool {
		c := influxCounts(t, influxDB)
		return c["market-01/scans"] == 25 && c["market-02/scans"] == scans2 && c["market-02/rate_limited"] == 24-scans2
	})
	c := influxCounts(t, influxDB)
	for k, want := range map[string]int64{"market-01/scans": 25, "market-01/unique": 20, "market-01/bot": 6,
		"market-02/scans": scans2, "market-02/unique": 2, "market-02/rate_limited": 24 - scans2} {
		if c[k] != want {
			t.Errorf("InfluxDB %s = %d, want %d (all: %v)", k, c[k], want, c)
		}
	}
	v1, v2 := villageCounts(village, "market-01"), villageCounts(village, "market-02")
	if v1.bots != 6 || int64(v2.limited) != 24-scans2 || int64(v2.scans) != scans2 {
		t.Errorf("village counts market-01 %+v market-02 %+v", v1, v2)
	}
	// Each instance judges uniqueness in its own window: a repeat that
	// lands on the other instance looks unique there (docs/gateway.md).
	if v1.unique < 20 || v1.unique > 25 {
		t.Errorf("village unique for market-01 = %d, want 20..25", v1.unique)
	}
	var human, bots float64
	for _, g := range gws {
		m := testenv.Scrape(t, "http://"+g.addr)
		h, _ := m.Value("villagehub_gateway_scans_total", "village=tan-ngu-2", "board=market-01", "class=human", "province=thanh-hoa")
		b, _ := m.Value("villagehub_gateway_scans_total", "board=market-01", "class=bot")
		human, bots = human+h, bots+b
		if h == 0 {
			t.Errorf("instance %s took no scans: not load balanced", g.addr)
		}
	}
	// The exposition passes promlint, and no label holds a URL.
	req, _ := http.NewRequest("GET", "http://"+gws[0].addr+"/metrics", nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	mresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	expo, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	problems, err := promlint.New(bytes.NewReader(expo)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if strings.Contains(string(expo), "example.vn") || strings.Contains(string(expo), "https://") {
		t.Error("a URL in the gateway's metrics")
	}
	if human != 25 || bots != 6 {
		t.Errorf("gateway metrics: %v human, %v bot scans of market-01; want 25, 6", human, bots)
	}

	// Phase 2: the village is cut off from the centre.
	link.setCut(true)
	testenv.WaitFor(t, 10*time.Second, "the village link to notice", func() bool { return !village.GatewayConnected() })
	for i := 50; i < 60; i++ {
		phones[i].mustRedirect(t, url("market-03"), target3)
	}
	// The centre's broker goes down too: the gateways keep redirecting
	// and keep the counts in their journals.
	mq.Stop()
	for i := 60; i < 70; i++ {
		phones[i].mustRedirect(t, url("market-03"), target3)
	}
	// kill -9 one instance; nginx sends the phones to the other.
	gws[0].p.Kill()
	for i := 70; i < 74; i++ {
		phones[i].mustRedirect(t, url("market-03"), target3)
	}
	// It restarts while the broker is still down: its targets come from
	// its cache file.
	startInstance(t, gws[0])
	if n := targetsOf(t, gws[0].addr); n != 3 {
		b, _ := os.ReadFile(filepath.Join(filepath.Dir(gws[0].cfg), "data", "targets.json"))
		t.Logf("cache: %s\n%s", b, gws[0].p.Output())
		t.Fatalf("restarted instance has %v targets without a broker, want 3 from its cache", n)
	}
	phones[74].mustRedirect(t, "http://"+gws[0].addr+"/q/tan-ngu-2/market-03", target3)
	if got := villageCounts(village, "market-03").scans; got != 0 {
		t.Fatalf("the cut-off village counted %d scans", got)
	}

	// The broker and the village come back: the counts arrive, once.
	mq.Start()
	link.setCut(false)
	testenv.WaitFor(t, 40*time.Second, "market-03 counts in the village", func() bool {
		return villageCounts(village, "market-03").scans >= 25
	})
	testenv.WaitFor(t, 30*time.Second, "market-03 counts in InfluxDB", func() bool {
		return influxCounts(t, influxDB)["market-03/scans"] >= 25
	})

	// A batch delivered a second time (a redelivery) counts nothing; a new
	// scan published after it counts: once it is in, the duplicate was
	// handled.
	capMu.Lock()
	if len(captured) == 0 {
		capMu.Unlock()
		t.Fatal("no down message captured")
	}
	dup := captured[0]
	capMu.Unlock()
	spy2 := testenv.MQTT(t, mq.URL(), "spy2")
	testenv.Publish(t, spy2, dup.Topic(), 1, false, dup.Payload())
	before := villageCounts(village, "market-01")
	fresh := fmt.Sprintf(`{"scans":[{"id":"%032x","ts":%q,"class":"human"}]}`, time.Now().UnixNano(), time.Now().UTC().Format(time.RFC3339Nano))
	testenv.Publish(t, spy2, "village/_gateway/tan-ngu-2/market-01/scans", 1, false, fresh)
	testenv.WaitFor(t, 20*time.Second, "the fresh scan", func() bool { return villageCounts(village, "market-01").scans == before.scans+1 })

	// Settle: every journal drained, then the exact totals.
	for _, g := range gws {
		testenv.WaitFor(t, 30*time.Second, "journal drained at "+g.addr, func() bool {
			m, err := testenv.TryScrape("http://" + g.addr)
			if err != nil {
				return false
			}
			v, _ := m.Value("villagehub_gateway_journal_pending_bytes", "sink=village")
			w, _ := m.Value("villagehub_gateway_journal_pending_bytes", "sink=influx")
			s, _ := m.Value("villagehub_influx_spool_points")
			return v == 0 && w == 0 && s == 0
		})
	}
	if got := villageCounts(village, "market-03"); got.scans != 25 {
		t.Errorf("village market-03: %+v, want 25 scans", got)
	}
	if got := villageCounts(village, "market-01"); got.scans != 26 || got.bots != 6 {
		t.Errorf("village market-01: %+v, want 26 scans (25 + the fresh one), 6 bots", got)
	}
	c = influxCounts(t, influxDB)
	for k, want := range map[string]int64{"market-01/scans": 25, "market-01/unique": 20, "market-01/bot": 6,
		"market-02/scans": scans2, "market-02/rate_limited": 24 - scans2, "market-03/scans": 25, "market-03/unique": 25} {
		if c[k] != want {
			t.Errorf("InfluxDB %s = %d, want %d (all: %v)", k, c[k], want, c)
		}
	}
	// The village removes a board (a config reload): its retained target
	// is cleared, the gateways forget it, its code gets the friendly page.
	next := *villageConfigs[villageDir]
	next.Boards = slices.DeleteFunc(slices.Clone(next.Boards), func(b config.Board) bool { return b.ID == "market-02" })
	if err := village.Reload(context.Background(), &next); err != nil {
		t.Fatal(err)
	}
	for _, g := range gws {
		testenv.WaitFor(t, 20*time.Second, "market-02 gone at "+g.addr, func() bool { return targetsOf(t, g.addr) == 2 })
	}
	if code, _, body := phones[80].scan(t, url("market-02")); code != http.StatusNotFound || !strings.Contains(body, "Không tìm thấy bảng tin") {
		t.Errorf("a removed board's code: %d\n%s", code, body)
	}
	phones[81].mustRedirect(t, url("market-01"), target1)

	if t.Failed() {
		t.Logf("nginx:\n%s\ngateway 0:\n%s", lb.Output(), gws[0].p.Output())
	}
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}
