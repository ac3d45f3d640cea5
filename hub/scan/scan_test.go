package scan

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"villagehub/hub/fastlane"
	"villagehub/hub/testenv"
)

// boardTable is a BoardLookup over a map the test can change, standing in
// for the config the integrator feeds in.
type boardTable struct {
	mu sync.RWMutex
	m  map[string]Board
}

func (t *boardTable) Board(id string) (Board, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	b, ok := t.m[id]
	return b, ok
}

func (t *boardTable) set(b Board) {
	t.mu.Lock()
	t.m[b.ID] = b
	t.mu.Unlock()
}

// memRecorder keeps what the handler hands on.
type memRecorder struct {
	mu    sync.Mutex
	scans []Scan
}

func (r *memRecorder) RecordScan(s Scan) {
	r.mu.Lock()
	r.scans = append(r.scans, s)
	r.mu.Unlock()
}

type tally struct{ human, unique, bot, orphan, limited int }

func (r *memRecorder) tally(board string) tally {
	r.mu.Lock()
	defer r.mu.Unlock()
	var t tally
	for _, s := range r.scans {
		if s.Board != board {
			continue
		}
		switch s.Class {
		case ClassHuman:
			t.human++
			if s.Unique {
				t.unique++
			}
		case ClassBot:
			t.bot++
		case ClassOrphan:
			t.orphan++
		case ClassRateLimited:
			t.limited++
		}
		if s.Unique && s.Class != ClassHuman {
			panic("unique set on a non-human scan")
		}
	}
	return t
}

func (r *memRecorder) all() []Scan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Scan(nil), r.scans...)
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Real phone agents: every one of these is a person and must count.
var humanAgents = map[string]string{
	"zalo-android":   "Mozilla/5.0 (Linux; Android 13; SM-A536E Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/125.0.6422.165 Mobile Safari/537.36 Zalo android/12100621 ZaloTheme/light ZaloLanguage/vi",
	"zalo-ios":       "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Zalo iOS/536 ZaloTheme/light ZaloLanguage/vn",
	"facebook-ios":   "Mozilla/5.0 (iPhone; CPU iPhone OS 18_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/480.0]",
	"messenger":      "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/MessengerForiOS;FBAV/440.0]",
	"instagram":      "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 300.0.0.0",
	"coccoc-browser": "Mozilla/5.0 (Linux; Android 12; SM-A125F) AppleWebKit/537.36 (KHTML, like Gecko) coc_coc_browser/117.0.232 Chrome/111.0.0.0 Mobile Safari/537.36",
	"chrome-android": "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
	"safari-ios":     "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
	"samsung":        "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-A536E) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
	"google-app":     "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/320.0.648265226 Mobile/15E148 Safari/604.1",
	"tiktok":         "Mozilla/5.0 (Linux; Android 12; SM-A125F) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0 Mobile Safari/537.36 trill_320000 JsSdk/1.0 NetType/WIFI Channel/googleplay AppName/trill app_version/32.0 ByteLocale/vi ByteFullLocale/vi Region/VN BytedanceWebview/d8a21c6",
	"line":           "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Safari Line/13.0.0",
	"firefox-linux":  "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
}

// Link previewers, crawlers and scripts: none of these is a person.
var botAgents = map[string]string{
	"zalo-preview":         "Mozilla/5.0 (compatible; Zalo/1.0)",
	"zalobot":              "Mozilla/5.0 (compatible; ZaloBot/1.0; +http://zalo.me)",
	"facebookexternalhit":  "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
	"imessage-via-fb":      "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0",
	"facebot":              "Facebot",
	"meta-externalagent":   "meta-externalagent/1.1 (+https://developers.facebook.com/docs/sharing/webmasters/crawler)",
	"telegram":             "TelegramBot (like TwitterBot)",
	"whatsapp":             "WhatsApp/2.23.20.0 A",
	"slack":                "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
	"discord":              "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
	"twitter":              "Twitterbot/1.0",
	"linkedin":             "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
	"skype":                "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 skype-url-preview@microsoft.com",
	"googlebot":            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	"googlebot-smartphone": "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.126 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	"bingbot":              "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
	"coccocbot":            "Mozilla/5.0 (compatible; coccocbot-web/1.0; +http://help.coccoc.com/searchengine)",
	"curl":                 "curl/8.1.2",
	"wget":                 "Wget/1.21.3",
	"python-requests":      "python-requests/2.31.0",
	"go-http-client":       "Go-http-client/1.1",
	"empty":                "",
	// Only the maintained crawler list knows this one: it exercises the
	// slow path and its cache.
	"mj12bot": "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)",
}

type hub struct {
	h      *Handler
	srv    *httptest.Server
	rec    *memRecorder
	boards *boardTable
	clock  *clock
	target *httptest.Server
	hits   *sync.Map // path → *atomic.Int64: landings on the target server
}

func newHub(t *testing.T, mod func(*Config)) *hub {
	t.Helper()
	x := &hub{rec: &memRecorder{}, hits: &sync.Map{}}
	x.target = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := x.hits.LoadOrStore(r.URL.Path, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		fmt.Fprintf(w, "trang của bảng tin %s", r.URL.Path)
	}))
	t.Cleanup(x.target.Close)
	x.boards = &boardTable{m: map[string]Board{
		"market-07": {ID: "market-07", Site: "tan-ngu-2", Name: "Chợ Bản, sạp 7", TargetURL: x.target.URL + "/cho-ban/sap-7"},
		"gate":      {ID: "gate", Site: "tan-ngu-2", Name: "Cổng làng", TargetURL: x.target.URL + "/cong-lang"},
		"no-page":   {ID: "no-page", Site: "tan-ngu-2", Name: "Nhà văn hoá thôn", TargetURL: ""},
	}}
	// 10:00 in Vietnam: far from the daily salt change.
	x.clock = &clock{t: time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)}
	cfg := Config{
		PublicURL:      "http://hub.example.vn",
		TrustedProxies: []string{"127.0.0.1"},
		Now:            x.clock.Now,
	}
	if mod != nil {
		mod(&cfg)
	}
	var err error
	x.h, err = NewHandler(cfg, x.boards, x.rec)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	x.h.Register(mux)
	x.srv = serveLanes(t, mux, x.h)
	return x
}

// serveLanes serves mux as the hub and the gateway do on a plain listener:
// /q/ through fasthttp (hub/fastlane, ServeFastBoard), everything else,
// /qr/ images included, through net/http. TestServeParity holds net/http's
// own /q/ (the TLS case) to the same answers.
func serveLanes(t *testing.T, mux *http.ServeMux, h *Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(mux)
	lane := fastlane.New(srv.Listener, fastlane.Config{Routes: []fastlane.Route{{Prefix: "/q/", Serve: h.ServeFastBoard}}})
	srv.Listener = lane.Slow()
	srv.Start()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lane.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("fastlane: %v", err)
		}
		srv.Close()
	})
	return srv
}

func (x *hub) landings(path string) int {
	n, ok := x.hits.Load(path)
	if !ok {
		return 0
	}
	return int(n.(*atomic.Int64).Load())
}

// noFollow is a client that shows the redirect instead of following it.
var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// scan sends one request to /q/<board> as a phone behind a trusted proxy:
// ip goes into X-Forwarded-For (addresses from the documentation ranges; no
// traffic goes to them).
func (x *hub) scan(t *testing.T, c *http.Client, method, board, ip, ua string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, x.srv.URL+"/q/"+board, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", ua) // an empty value makes Go send no agent at all
	if ip != "" {
		req.Header.Set("X-Forwarded-For", ip)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("scan %s %s: %v", method, board, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp
}

func expectRedirect(t *testing.T, resp *http.Response, want string) {
	t.Helper()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d, want 302", resp.StatusCode)
	}
	if got := resp.Header.Get("Location"); got != want {
		t.Fatalf("Location %q, want %q", got, want)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control %q: a cached redirect would skip counting", cc)
	}
}

func expectTally(t *testing.T, got, want tally) {
	t.Helper()
	if got != want {
		t.Fatalf("counts %+v, want %+v", got, want)
	}
}

func TestScanFollowsRedirectToTargetAndRetargets(t *testing.T) {
	x := newHub(t, nil)
	resp := x.scan(t, http.DefaultClient, "GET", "market-07", "203.0.113.10", humanAgents["zalo-android"], nil)
	if resp.StatusCode != 200 || resp.Request.URL.String() != x.target.URL+"/cho-ban/sap-7" {
		t.Fatalf("landed on %s with %d, want the board's page", resp.Request.URL, resp.StatusCode)
	}
	if body, _ := io.ReadAll(resp.Body); string(body) != "trang của bảng tin /cho-ban/sap-7" {
		t.Fatalf("body %q is not the target page", body)
	}
	if n := x.landings("/cho-ban/sap-7"); n != 1 {
		t.Fatalf("target saw %d requests, want 1", n)
	}
	expectTally(t, x.rec.tally("market-07"), tally{human: 1, unique: 1})
	s := x.rec.all()[0]
	if s.Site != "tan-ngu-2" || !s.At.Equal(x.clock.Now()) {
		t.Fatalf("scan %+v: wrong site or time", s)
	}

	// The village changes the board's page in the config: the same printed
	// code now leads to the new page.
	b, _ := x.boards.Board("market-07")
	b.TargetURL = x.target.URL + "/cho-ban/sap-7-moi"
	x.boards.set(b)
	resp = x.scan(t, http.DefaultClient, "GET", "market-07", "203.0.113.11", humanAgents["safari-ios"], nil)
	if resp.Request.URL.Path != "/cho-ban/sap-7-moi" || x.landings("/cho-ban/sap-7-moi") != 1 {
		t.Fatalf("after retargeting, landed on %s", resp.Request.URL)
	}
	expectTally(t, x.rec.tally("market-07"), tally{human: 2, unique: 2})
}

func TestPhonesCountAsHumans(t *testing.T) {
	x := newHub(t, nil)
	i := 0
	for name, ua := range humanAgents {
		i++
		resp := x.scan(t, noFollow, "GET", "market-07", fmt.Sprintf("198.51.100.%d", i), ua, nil)
		expectRedirect(t, resp, x.target.URL+"/cho-ban/sap-7")
		if got := x.rec.all()[i-1]; got.Class != ClassHuman || !got.Unique {
			t.Fatalf("%s (%q) counted as %s unique=%v, want a unique human scan", name, ua, got.Class, got.Unique)
		}
	}
	expectTally(t, x.rec.tally("market-07"), tally{human: len(humanAgents), unique: len(humanAgents)})
}

func TestPreviewersBotsHeadAndPrefetchAreNotScans(t *testing.T) {
	x := newHub(t, func(c *Config) { c.BotAgents = []string{"VillageMonitor"} })
	want := x.target.URL + "/cho-ban/sap-7"
	n := 0
	for name, ua := range botAgents {
		n++
		// Each from its own address, so nothing here can be a rate limit.
		resp := x.scan(t, noFollow, "GET", "market-07", fmt.Sprintf("192.0.2.%d", n), ua, nil)
		expectRedirect(t, resp, want) // a bot still gets where it asked to go
		if got := x.rec.all()[n-1]; got.Class != ClassBot || got.Unique {
			t.Fatalf("%s (%q) counted as %s, want bot", name, ua, got.Class)
		}
	}
	// An operator-added agent.
	n++
	expectRedirect(t, x.scan(t, noFollow, "GET", "market-07", "192.0.2.200", "VillageMonitor/2.0 (uptime)", nil), want)
	// A phone's own agent, but the request is a HEAD or a prefetch.
	phone := humanAgents["chrome-android"]
	resp := x.scan(t, noFollow, "HEAD", "market-07", "192.0.2.201", phone, nil)
	expectRedirect(t, resp, want)
	n++
	for _, h := range []map[string]string{
		{"Sec-Purpose": "prefetch"},
		{"Sec-Purpose": "prefetch;prerender"},
		{"Purpose": "prefetch"},
		{"X-Moz": "prefetch"},
		{"X-Purpose": "preview"},
	} {
		n++
		expectRedirect(t, x.scan(t, noFollow, "GET", "market-07", "192.0.2.202", phone, h), want)
	}
	expectTally(t, x.rec.tally("market-07"), tally{bot: n})

	// The same phone then really scans: that one counts.
	x.scan(t, noFollow, "GET", "market-07", "192.0.2.202", phone, nil)
	expectTally(t, x.rec.tally("market-07"), tally{bot: n, human: 1, unique: 1})
}

func TestUniqueWithinWindow(t *testing.T) {
	x := newHub(t, nil)
	a := humanAgents["zalo-android"]
	step := func(d time.Duration, board, ip, ua string) {
		x.clock.Add(d)
		x.scan(t, noFollow, "GET", board, ip, ua, nil)
	}
	step(0, "market-07", "203.0.113.7", a)                                   // t=0: unique
	step(10*time.Second, "market-07", "203.0.113.7", a)                      // t=10: same phone: not unique
	step(time.Second, "gate", "203.0.113.7", a)                              // t=11: another board: unique
	step(time.Second, "market-07", "203.0.113.7", humanAgents["safari-ios"]) // t=12: another phone, same address: unique
	expectTally(t, x.rec.tally("market-07"), tally{human: 3, unique: 2})
	// The window slides from the phone's last scan of the board (t=10).
	step(29*time.Second, "market-07", "203.0.113.7", a) // t=41, 31 s after t=10: unique
	expectTally(t, x.rec.tally("market-07"), tally{human: 4, unique: 3})
	step(29*time.Second, "market-07", "203.0.113.7", a) // t=70, 29 s after t=41: not unique
	expectTally(t, x.rec.tally("market-07"), tally{human: 5, unique: 3})
	step(30*time.Second, "market-07", "203.0.113.7", a) // t=100, exactly the window: unique
	expectTally(t, x.rec.tally("market-07"), tally{human: 6, unique: 4})
	expectTally(t, x.rec.tally("gate"), tally{human: 1, unique: 1})
}

func TestUniqueWindowIsConfigurable(t *testing.T) {
	x := newHub(t, func(c *Config) { c.UniqueWindow = 5 * time.Minute })
	a := humanAgents["samsung"]
	for i := 0; i < 4; i++ {
		x.scan(t, noFollow, "GET", "market-07", "203.0.113.8", a, nil)
		x.clock.Add(time.Minute)
	}
	expectTally(t, x.rec.tally("market-07"), tally{human: 4, unique: 1})
	x.clock.Add(5 * time.Minute)
	x.scan(t, noFollow, "GET", "market-07", "203.0.113.8", a, nil)
	expectTally(t, x.rec.tally("market-07"), tally{human: 5, unique: 2})
}

func TestSaltRotatesAtLocalMidnight(t *testing.T) {
	x := newHub(t, nil)
	// 23:59:50 in Vietnam.
	x.clock.t = time.Date(2026, 11, 27, 16, 59, 50, 0, time.UTC)
	a := humanAgents["zalo-ios"]
	x.scan(t, noFollow, "GET", "market-07", "203.0.113.9", a, nil)
	oldSalt := x.h.salt.cur.Load()
	keysBefore := x.h.mem.seenKeys()
	x.clock.Add(15 * time.Second) // 00:00:05 the next day
	x.scan(t, noFollow, "GET", "market-07", "203.0.113.9", a, nil)
	newSalt := x.h.salt.cur.Load()
	if newSalt == oldSalt || newSalt.value == oldSalt.value {
		t.Fatal("salt did not change at midnight")
	}
	if want := time.Date(2026, 11, 29, 0, 0, 0, 0, vietnam); !newSalt.until.Equal(want) {
		t.Fatalf("new salt valid until %v, want %v", newSalt.until, want)
	}
	keysAfter := x.h.mem.seenKeys()
	if len(keysBefore) != 1 || len(keysAfter) != 1 || keysBefore[0] == keysAfter[0] {
		t.Fatalf("keys before %x after %x: the old day's keys must be forgotten and the new key differ", keysBefore, keysAfter)
	}
	// Same phone 15 s apart, but across the salt change: a new day's unique
	// (documented: a day boundary starts uniqueness afresh).
	expectTally(t, x.rec.tally("market-07"), tally{human: 2, unique: 2})
}

func TestUnknownBoardIsOrphanNeverRegistered(t *testing.T) {
	x := newHub(t, nil)
	for i := 0; i < 3; i++ {
		resp := x.scan(t, noFollow, "GET", "cho-cu", "203.0.113.20", humanAgents["chrome-android"], nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("unknown board: status %d, want 404", resp.StatusCode)
		}
		body, _ := io.ReadAll(resp.Body)
		for _, want := range []string{"Không tìm thấy bảng tin", "trưởng thôn", "cho-cu", "does not lead to any of the village's boards", `lang="vi"`} {
			if !strings.Contains(string(body), want) {
				t.Fatalf("404 page lacks %q:\n%s", want, body)
			}
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Fatalf("Content-Type %q", ct)
		}
	}
	// A bot on an unknown board is an orphan too, not a scan of anything.
	x.scan(t, noFollow, "GET", "cho-cu", "203.0.113.21", botAgents["facebookexternalhit"], nil)
	expectTally(t, x.rec.tally("cho-cu"), tally{orphan: 4})
	if _, ok := x.boards.Board("cho-cu"); ok {
		t.Fatal("an orphan visit registered a board")
	}
	// A malformed id is counted without its text, and escaped on the page.
	resp := x.scan(t, noFollow, "GET", "%3Cscript%3EX", "203.0.113.22", humanAgents["chrome-android"], nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 404 || strings.Contains(string(body), "<script>") {
		t.Fatalf("malformed id: %d\n%s", resp.StatusCode, body)
	}
	expectTally(t, x.rec.tally(""), tally{orphan: 1})
	for _, s := range x.rec.all() {
		if s.Site != "" {
			t.Fatalf("orphan with a site: %+v", s)
		}
	}
	expectTally(t, x.rec.tally("market-07"), tally{})
}

func TestBoardWithoutTargetStillCounts(t *testing.T) {
	x := newHub(t, nil)
	resp := x.scan(t, noFollow, "GET", "no-page", "203.0.113.30", humanAgents["safari-ios"], nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "Nhà văn hoá thôn") || resp.Header.Get("Location") != "" {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
	expectTally(t, x.rec.tally("no-page"), tally{human: 1, unique: 1})
	for _, bad := range []string{"", "javascript:alert(1)", "//evil.example", `/\evil`, "http://", "https:///x", "ftp://x", "http://a b"} {
		if validTarget(bad) {
			t.Fatalf("target %q accepted", bad)
		}
	}
	for _, good := range []string{"https://example.vn/cho-ban", "HTTP://example.vn", "/boards/market-07"} {
		if !validTarget(good) {
			t.Fatalf("target %q refused", good)
		}
	}
}

func TestRateLimitedStillRedirects(t *testing.T) {
	x := newHub(t, func(c *Config) { c.RatePerSecond = 1.0 / 60; c.RateBurst = 3 })
	want := x.target.URL + "/cho-ban/sap-7"
	agents := []string{humanAgents["chrome-android"], humanAgents["safari-ios"], humanAgents["samsung"], humanAgents["zalo-ios"], humanAgents["line"]}
	// A script from one address, inventing a new agent each time to look
	// like new phones: three pass (the burst), two are visibly rate limited.
	for _, a := range agents {
		expectRedirect(t, x.scan(t, noFollow, "GET", "market-07", "203.0.113.40", a, nil), want)
	}
	expectTally(t, x.rec.tally("market-07"), tally{human: 3, unique: 3, limited: 2})
	// A person behind the limited address still lands on the page.
	resp := x.scan(t, http.DefaultClient, "GET", "market-07", "203.0.113.40", humanAgents["messenger"], nil)
	if resp.StatusCode != 200 || resp.Request.URL.String() != want {
		t.Fatalf("rate-limited person landed on %s (%d)", resp.Request.URL, resp.StatusCode)
	}
	expectTally(t, x.rec.tally("market-07"), tally{human: 3, unique: 3, limited: 3})
	// Another address is not affected.
	x.scan(t, noFollow, "GET", "market-07", "203.0.113.41", agents[0], nil)
	expectTally(t, x.rec.tally("market-07"), tally{human: 4, unique: 4, limited: 3})
	// A minute later one token is back.
	x.clock.Add(time.Minute)
	x.scan(t, noFollow, "GET", "market-07", "203.0.113.40", humanAgents["instagram"], nil)
	x.scan(t, noFollow, "GET", "market-07", "203.0.113.40", humanAgents["tiktok"], nil)
	expectTally(t, x.rec.tally("market-07"), tally{human: 5, unique: 5, limited: 4})
	// Bots don't spend the limit and are still bots.
	x.scan(t, noFollow, "GET", "market-07", "203.0.113.40", botAgents["facebookexternalhit"], nil)
	expectTally(t, x.rec.tally("market-07"), tally{human: 5, unique: 5, limited: 4, bot: 1})
}

func TestProxyHeadersOnlyFromTrustedPeers(t *testing.T) {
	// The test server's peer is 127.0.0.1; here it is not trusted, so the
	// forged X-Forwarded-For must not make one client into many.
	x := newHub(t, func(c *Config) { c.TrustedProxies = nil; c.RateBurst = 2; c.RatePerSecond = 1.0 / 3600 })
	for i := 0; i < 4; i++ {
		x.scan(t, noFollow, "GET", "market-07", fmt.Sprintf("203.0.113.%d", 50+i), humanAgents["chrome-android"], nil)
	}
	expectTally(t, x.rec.tally("market-07"), tally{human: 2, unique: 1, limited: 2})
}

func TestClientAddr(t *testing.T) {
	trusted, err := parseProxies([]string{"10.0.0.1", "172.16.0.0/12", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, remote, xff, xrip, want string
		p                             proxies
	}{
		{"direct", "203.0.113.5:4000", "", "", "203.0.113.5", trusted},
		{"untrusted peer's XFF ignored", "203.0.113.5:4000", "198.51.100.1", "198.51.100.2", "203.0.113.5", trusted},
		{"trusted proxy", "10.0.0.1:5000", "198.51.100.1", "", "198.51.100.1", trusted},
		{"spoofed left entry", "10.0.0.1:5000", "1.2.3.4, 198.51.100.1", "", "198.51.100.1", trusted},
		{"two trusted hops", "10.0.0.1:5000", "198.51.100.1, 172.16.3.4", "", "198.51.100.1", trusted},
		{"all trusted", "10.0.0.1:5000", "172.16.3.4", "", "172.16.3.4", trusted},
		{"garbage left of a trusted hop", "10.0.0.1:5000", "bogus, 172.16.3.4", "", "172.16.3.4", trusted},
		{"X-Real-IP", "10.0.0.1:5000", "", "198.51.100.9", "198.51.100.9", trusted},
		{"IPv6 per /64", "[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:443", "", "", "2001:db8:1:2::/64", trusted},
		{"IPv4-mapped", "[::ffff:203.0.113.5]:1", "", "", "203.0.113.5", trusted},
		{"IPv6 proxy", "[::1]:1", "2001:db8::1", "", "2001:db8::/64", trusted},
		{"no proxies configured", "10.0.0.1:5000", "198.51.100.1", "", "10.0.0.1", nil},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/q/x", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if c.xrip != "" {
			r.Header.Set("X-Real-IP", c.xrip)
		}
		v := httpVisit(r, "")
		if got := c.p.clientAddr(&v); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
		// The same request as fasthttp sees it (hub/fastlane).
		ctx := fastRequest(t, c.remote, "GET /q/x", map[string]string{"X-Forwarded-For": c.xff, "X-Real-IP": c.xrip})
		v = fastVisit(ctx, "")
		if got := c.p.clientAddr(&v); got != c.want {
			t.Errorf("%s (fasthttp): got %q, want %q", c.name, got, c.want)
		}
	}
	if _, err := parseProxies([]string{"10.0.0.0/33"}); err == nil {
		t.Fatal("bad CIDR accepted")
	}
	if _, err := parseProxies([]string{"proxy.local"}); err == nil {
		t.Fatal("host name accepted as a proxy")
	}
}

func TestConcurrentScansCountExactly(t *testing.T) {
	x := newHub(t, nil)
	const phones, each = 16, 8
	var wg sync.WaitGroup
	for p := 0; p < phones; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				x.scan(t, noFollow, "GET", "market-07", fmt.Sprintf("198.51.100.%d", p), humanAgents["chrome-android"], nil)
			}
		}()
	}
	wg.Wait()
	expectTally(t, x.rec.tally("market-07"), tally{human: phones * each, unique: phones})
}

func TestNewHandlerValidates(t *testing.T) {
	b, r := &boardTable{m: map[string]Board{}}, &memRecorder{}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "public URL"},
		{Config{PublicURL: "hub.example.vn"}, "absolute"},
		{Config{PublicURL: "http://h", UniqueWindow: -1}, "negative"},
		{Config{PublicURL: "http://h", RateBurst: -1}, "negative"},
		{Config{PublicURL: "http://h", TrustedProxies: []string{"x"}}, "trusted proxy"},
	} {
		if _, err := NewHandler(c.cfg, b, r); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: want error with %q, got %v", c.cfg, c.want, err)
		}
	}
	if _, err := NewHandler(Config{PublicURL: "http://h"}, nil, r); err == nil {
		t.Error("nil lookup accepted")
	}
}

func TestQRImages(t *testing.T) {
	x := newHub(t, nil)
	get := func(path string, hdr map[string]string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", x.srv.URL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, body := get("/qr/market-07.png?size=256&ec=Q", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("png: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	img, err := png.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() != 256 {
		t.Fatalf("size %d, want 256", img.Bounds().Dx())
	}
	if got := testenv.DecodeQR(t, img); got != "http://hub.example.vn/q/market-07" {
		t.Fatalf("code carries %q", got)
	}
	etag := resp.Header.Get("ETag")
	if etag == "" || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age") {
		t.Fatalf("not cacheable: ETag %q Cache-Control %q", etag, resp.Header.Get("Cache-Control"))
	}
	resp, body = get("/qr/market-07.png?size=256&ec=Q", map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Fatalf("revalidation: %d with %d bytes, want 304 and none", resp.StatusCode, len(body))
	}
	resp, _ = get("/qr/market-07.png?size=256&ec=H", map[string]string{"If-None-Match": etag})
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == etag {
		t.Fatalf("other options must have another ETag: %d %s", resp.StatusCode, resp.Header.Get("ETag"))
	}

	resp, body = get("/qr/gate.svg?margin=2", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/svg+xml" {
		t.Fatalf("svg: %d %s", resp.StatusCode, body)
	}
	var doc struct {
		XMLName xml.Name `xml:"svg"`
		ViewBox string   `xml:"viewBox,attr"`
	}
	if err := xml.Unmarshal(body, &doc); err != nil || !strings.HasPrefix(doc.ViewBox, "0 0 ") {
		t.Fatalf("svg: %v viewBox %q", err, doc.ViewBox)
	}

	for path, want := range map[string]int{
		"/qr/market-07.png?size=100000": 400,
		"/qr/market-07.svg?ec=Z":        400,
		"/qr/cho-cu.png":                404,
		"/qr/market-07.gif":             404,
		"/qr/market-07":                 404,
	} {
		if resp, body := get(path, nil); resp.StatusCode != want {
			t.Errorf("%s: %d (%s), want %d", path, resp.StatusCode, body, want)
		}
	}
	if len(x.rec.all()) != 0 {
		t.Fatal("drawing a code counted a scan")
	}
}
