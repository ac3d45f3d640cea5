package ui_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"villagehub/devices/rtspcam"
	"villagehub/devices/sim"
	"villagehub/hub/app"
	"villagehub/hub/app/apptest"
	"villagehub/hub/config"
	"villagehub/hub/state"
	"villagehub/hub/testenv"
)

const village = `
hub_id: uitest
sites:
  - { id: tan-ngu-2, name: "Thôn Tân Ngữ 2" }
  - { id: ban-chieng, name: "Bản Chiềng" }
qr_boards:
  - { id: market-07, site: tan-ngu-2, name: "Chợ Bản, sạp 7" }
  - { id: bus-stop, site: ban-chieng, name: "Điểm chờ xe buýt" }
  - { id: school-gate, site: ban-chieng, name: "Cổng trường" }
`

// stack is a hub fed by the RTSP camera simulator and the MQTT device
// simulator, and the URL its dashboard is served at.
type stack struct {
	hub  *app.Hub
	url  string // the dashboard
	api  string // the hub's own HTTP address
	cams *rtspcam.Server
	loc  *time.Location // the hub's time zone (testenv.NoonZone)
}

var simCameras = []struct{ site, id, name string }{
	{"tan-ngu-2", "gate", "Cổng làng"},
	{"tan-ngu-2", "market", "Chợ Bản"},
	{"ban-chieng", "school", "Trường tiểu học"},
}

func startStack(t *testing.T) *stack {
	t.Helper()
	cams, err := rtspcam.New(rtspcam.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cams.Close() })
	cfg, err := config.Parse("ui-test.yaml", []byte(village))
	if err != nil {
		t.Fatal(err)
	}
	apptest.Prepare(t, cfg)
	// Dates shown ("today", the last 30 days) are checked against the
	// test's own clock: in a zone where it is now about noon, no day
	// boundary falls between the hub's reading and the test's.
	loc := testenv.NoonZone(t)
	cfg.Timezone, cfg.Location = loc.String(), loc
	for _, c := range simCameras {
		cam, err := cams.AddCamera(c.id, rtspcam.CameraOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Cameras = append(cfg.Cameras, config.Camera{ID: c.id, Site: c.site, Name: c.name, RTSPURL: cam.URL(), ExpectedFPS: 10})
	}
	apptest.EnableProbe(cfg)
	// CameraDown fires 2 s after a camera loses video and resolves on its
	// first good probe, so the alert panel can be seen working.
	cfg.Alerts.Rules.CameraDown.For = config.Duration(2 * time.Second)
	cfg.Alerts.Rules.CameraDown.RecoverFor = 1
	h := apptest.Start(t, cfg, nil)
	s := &stack{hub: h.Hub, api: h.URL, cams: cams, loc: loc}

	var devs []sim.Device
	for _, c := range simCameras {
		devs = append(devs, sim.Device{Site: c.site, ID: c.id})
	}
	fleet, err := sim.NewFleet(sim.Config{
		Broker:  "tcp://" + h.BrokerAddr(),
		Cameras: devs,
		Boards:  []sim.Device{{Site: "tan-ngu-2", ID: "market-07"}, {Site: "ban-chieng", ID: "bus-stop"}},
		Rate:    20, QoS: 1, ClientPrefix: "uitest", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	fctx, stopFleet := context.WithCancel(context.Background())
	fdone := make(chan error, 1)
	go func() { fdone <- fleet.Run(fctx) }()
	t.Cleanup(func() { stopFleet(); <-fdone })

	s.url = s.api
	return s
}

// watchPage records, before any script of the page runs, every Content
// Security Policy violation and uncaught error, so the test can require
// none.
const watchPage = `
window.__vh = {csp: [], errors: []};
document.addEventListener('securitypolicyviolation', e => window.__vh.csp.push(e.violatedDirective + ' ' + e.blockedURI));
window.addEventListener('error', e => window.__vh.errors.push(String(e.message)));
window.addEventListener('unhandledrejection', e => window.__vh.errors.push(String(e.reason)));
`

func run[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// poll waits until js is true in the page. The browser evaluates it on its
// own timer (chromedp.Poll); a poll cut short by a navigation (the page's
// context goes away) is started again on the new page, until the deadline.
func poll(t *testing.T, ctx context.Context, timeout time.Duration, what, js string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			left = time.Millisecond
		}
		ok, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+js+")",
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(left)))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('main') ? document.querySelector('main').innerText.slice(0, 3000) : ''`))
			t.Fatalf("timed out after %v waiting for %s (%v)\npage text:\n%s", timeout, what, err, html)
		}
		if err != nil && ctx.Err() != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", p, len(png))
	if d := os.Getenv("VILLAGEHUB_UI_SCREENSHOTS"); d != "" {
		if err := os.WriteFile(filepath.Join(d, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDashboardInBrowser loads the dashboard in headless Chromium against a
// hub fed by the simulators and checks what a person would see.
func TestDashboardInBrowser(t *testing.T) {
	s := startStack(t)
	// A board that reported once, with a total big enough to show the
	// thousands separator, and no other scans: its CSV is known exactly.
	pub := testenv.MQTT(t, "tcp://"+s.hub.BrokerAddr(), "uitest-school-gate")
	testenv.Publish(t, pub, "village/ban-chieng/qr/school-gate/scans", 1, false, `{"total":1234,"boot":"b1"}`)
	testenv.WaitFor(t, 20*time.Second, "all cameras probed and school-gate counted", func() bool {
		var cs struct{ Cameras []state.CameraView }
		getJSON(t, s.api+"/api/v1/cameras", &cs)
		up := 0
		for _, c := range cs.Cameras {
			if c.Stream != nil && c.Stream.Up && c.Status == "online" {
				up++
			}
		}
		b, _ := s.hub.State().Board("ban-chieng", "school-gate")
		return up == len(simCameras) && b.ScansToday == 1234
	})

	chrome := testenv.StartChromium(t, 1280, 900)
	ctx := chrome.Context()
	artifacts := t.TempDir()
	downloads := t.TempDir()
	do(t, ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: watchPage})
		return err
	}))

	start := time.Now()
	do(t, ctx, chromedp.Navigate(s.url+"/"))
	poll(t, ctx, 15*time.Second, "every camera in the grid", fmt.Sprintf(`document.querySelectorAll('#cam-grid li.cam').length === %d`, len(simCameras)))
	t.Logf("grid rendered %v after navigation started", time.Since(start).Round(time.Millisecond))
	firstRender := run[float64](t, ctx, `performance.getEntriesByName('villagehub-first-render')[0].startTime`)
	t.Logf("time to first render (navigation start to first camera grid, in the page's clock): %.0f ms", firstRender)

	// Vietnamese by default, with its diacritics.
	if lang := run[string](t, ctx, `document.documentElement.lang`); lang != "vi" {
		t.Errorf("default language %q, want vi", lang)
	}
	if h := run[string](t, ctx, `document.querySelector('h1').textContent`); h != "Bảng điều khiển thôn" {
		t.Errorf("h1 = %q", h)
	}
	for _, c := range simCameras {
		key := c.site + "/" + c.id
		name := run[string](t, ctx, fmt.Sprintf(`(document.querySelector('li.cam[data-key=%q] h3')||{}).textContent||''`, key))
		if name != c.name {
			t.Errorf("camera %s shows name %q, want %q", key, name, c.name)
		}
	}
	poll(t, ctx, 10*time.Second, "cameras shown up with fps", `[...document.querySelectorAll('li.cam')].every(li => li.dataset.state === 'up' && li.querySelector('.badge').textContent === 'Hoạt động' && /^\d+(,\d)?$/.test(li.querySelectorAll('dd')[1].textContent))`)
	if since := run[string](t, ctx, `document.querySelector('li.cam .since').textContent`); !strings.HasPrefix(since, "đã ") {
		t.Errorf("how long up: %q", since)
	}
	// Numbers and dates in the Vietnamese way.
	poll(t, ctx, 10*time.Second, "school-gate today in Vietnamese digits", `document.querySelector('#qr-table tr[data-key="ban-chieng/school-gate"] td.num').textContent === '1.234'`)
	vnDate := time.Now().In(s.loc).Format("02/01/2006")
	poll(t, ctx, 10*time.Second, "dates as dd/mm/yyyy", fmt.Sprintf(`document.querySelector('#qr-days tbody th') && document.querySelector('#qr-days tbody th').textContent === %q`, vnDate))

	// The QR chart draws bars (uPlot on a canvas): count pixels of the
	// bar colour.
	poll(t, ctx, 10*time.Second, "QR chart with bars", `(() => {
		const c = document.querySelector('#qr-chart canvas'); if (!c) return false;
		const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
		for (let i = 0; i < d.length; i += 4) if (d[i] === 0x15 && d[i+1] === 0x65 && d[i+2] === 0xc0) n++;
		return n > 50; })()`)
	if sel := run[string](t, ctx, `document.getElementById('qr-board').value`); sel != "ban-chieng/school-gate" {
		t.Errorf("chart shows %q first, want the busiest board ban-chieng/school-gate", sel)
	}

	// Page weight of this first visit (a fresh browser profile, nothing
	// cached): the page and its assets as transferred (gzip), and the JSON
	// the page fetched; the live stream is left out (it stays open).
	weight := run[[]float64](t, ctx, `(() => {
		const nav = performance.getEntriesByType('navigation')[0];
		const res = performance.getEntriesByType('resource').filter(r => !r.name.includes('/ui/stream'));
		const assets = res.filter(r => new URL(r.name).pathname.startsWith('/ui/'));
		const data = res.filter(r => !new URL(r.name).pathname.startsWith('/ui/'));
		const sum = (l, k) => l.reduce((a, r) => a + r[k], 0);
		return [nav.transferSize + sum(assets, 'transferSize'), nav.decodedBodySize + sum(assets, 'decodedBodySize'), assets.length + 1, sum(data, 'transferSize'), data.length];
	})()`)
	t.Logf("page weight, first visit: / and %v assets %v bytes transferred (%v bytes uncompressed); %v API requests %v bytes",
		weight[2]-1, weight[0], weight[1], weight[4], weight[3])

	checkAccessibility(t, ctx)

	// A camera stopped in the simulator turns "down" without a reload.
	run[bool](t, ctx, `window.__sameDocument = true`)
	s.cams.Camera("market").Stop()
	poll(t, ctx, 20*time.Second, "market down", `document.querySelector('li.cam[data-key="tan-ngu-2/market"]').dataset.state === 'down'`)
	if !run[bool](t, ctx, `window.__sameDocument === true`) {
		t.Error("the page reloaded")
	}
	if b := run[string](t, ctx, `document.querySelector('li.cam[data-key="tan-ngu-2/market"] .badge').textContent`); b != "Mất hình" {
		t.Errorf("down badge %q", b)
	}
	if first := run[string](t, ctx, `document.querySelector('#cam-grid li.cam').dataset.key`); first != "tan-ngu-2/market" {
		t.Errorf("first card is %s, want the down camera first", first)
	}
	if r := run[string](t, ctx, `document.querySelector('li.cam[data-key="tan-ngu-2/market"] .reason dd').textContent`); r != "không tìm thấy luồng video" {
		t.Errorf("down reason %q", r)
	}

	checkAlerts(t, ctx, s)
	screenshot(t, ctx, artifacts, "dashboard-desktop.png")

	// English on the toggle, remembered across a reload, then back.
	do(t, ctx, chromedp.Click(chromedp.ID("lang")))
	poll(t, ctx, 5*time.Second, "English", `document.documentElement.lang === 'en' && document.getElementById('h-cameras').textContent === 'Cameras'`)
	if b := run[string](t, ctx, `document.querySelector('li.cam[data-key="tan-ngu-2/market"] .badge').textContent`); b != "No picture" {
		t.Errorf("English down badge %q", b)
	}
	if n := run[string](t, ctx, `document.querySelector('#qr-table tr[data-key="ban-chieng/school-gate"] td.num').textContent`); n != "1,234" {
		t.Errorf("English number %q", n)
	}
	do(t, ctx, chromedp.Reload())
	poll(t, ctx, 15*time.Second, "English after reload", `document.documentElement.lang === 'en' && document.querySelectorAll('#cam-grid li.cam').length === 3 && document.getElementById('lang').textContent === 'Tiếng Việt'`)
	do(t, ctx, chromedp.Click(chromedp.ID("lang")))
	poll(t, ctx, 5*time.Second, "Vietnamese again", `document.documentElement.lang === 'vi' && document.getElementById('h-cameras').textContent === 'Camera' && localStorage.getItem('villagehub.lang') === 'vi'`)

	// The CSV download: 30 village days, today's row holding the scans.
	poll(t, ctx, 10*time.Second, "CSV link", `document.getElementById('qr-csv').href.includes('format=csv')`)
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	progress := chromedp.Events(dctx, browser.DownloadProgress)
	do(t, ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: ptr(true),
		})
		return err
	}), chromedp.Click(chromedp.ID("qr-csv")))
	var file string
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("waiting for the CSV download: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			file = filepath.Join(downloads, ev.GUID)
			break
		}
	}
	checkCSV(t, file, s.loc)

	// Phone width.
	do(t, ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	poll(t, ctx, 5*time.Second, "one column on a phone", `(() => { const g = getComputedStyle(document.getElementById('cam-grid')).gridTemplateColumns; return g.split(' ').length === 1; })()`)
	// The chart follows the width (after its resize debounce): nothing
	// scrolls sideways.
	poll(t, ctx, 5*time.Second, "no horizontal scrolling on a phone", `document.documentElement.scrollWidth <= 390`)
	screenshot(t, ctx, artifacts, "dashboard-phone.png")

	// The camera back: its alert resolves and moves to the history.
	if err := s.cams.Camera("market").Start(); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, 20*time.Second, "CameraDown resolved in the history", `document.querySelector('#alerts-history li.resolved[data-alert="CameraDown"][data-device="tan-ngu-2/market"]') && !document.querySelector('#alerts-firing li[data-alert="CameraDown"]') && document.querySelector('li.cam[data-key="tan-ngu-2/market"]').dataset.state === 'up'`)

	var watch struct{ CSP, Errors []string }
	raw := run[[]byte](t, ctx, `window.__vh`)
	if err := json.Unmarshal(raw, &watch); err != nil {
		t.Fatal(err)
	}
	if len(watch.CSP) > 0 || len(watch.Errors) > 0 {
		t.Errorf("CSP violations %q, script errors %q", watch.CSP, watch.Errors)
	}
}

// checkAlerts: the stopped camera's alert shows as firing; a silence made
// with the form appears and goes with its button.
func checkAlerts(t *testing.T, ctx context.Context, s *stack) {
	t.Helper()
	poll(t, ctx, 10*time.Second, "alerts panel", `!document.getElementById('alerts-body').hidden && document.getElementById('alerts-unavailable').hidden`)
	poll(t, ctx, 20*time.Second, "CameraDown firing for market", `document.querySelector('#alerts-firing li[data-alert="CameraDown"][data-device="tan-ngu-2/market"]')`)
	if txt := run[string](t, ctx, `document.querySelector('#alerts-firing li[data-alert="CameraDown"]').textContent`); !strings.Contains(txt, "Camera mất hình") || !strings.Contains(txt, "Chợ Bản") {
		t.Errorf("firing alert reads %q", txt)
	}
	do(t, ctx,
		chromedp.SetValue(chromedp.ID("silence-device"), "tan-ngu-2/market"),
		chromedp.SetValue(chromedp.ID("silence-alert"), "CameraDown"),
		chromedp.SetValue(chromedp.ID("silence-for"), "4h"),
		chromedp.SendKeys(chromedp.ID("silence-comment"), "Đang sửa điện"),
		chromedp.Click(chromedp.CSS(`#silence-form button[type="submit"]`)),
	)
	poll(t, ctx, 10*time.Second, "the silence listed", `[...document.querySelectorAll('#silences li.silence')].some(li => li.textContent.includes('Đang sửa điện') && li.querySelector('button'))`)
	poll(t, ctx, 10*time.Second, "the alert shown silenced", `document.querySelector('#alerts-firing li.silenced[data-alert="CameraDown"][data-device="tan-ngu-2/market"]')`)
	if e := run[bool](t, ctx, `document.getElementById('silence-error').hidden`); !e {
		t.Errorf("silence form error: %s", run[string](t, ctx, `document.getElementById('silence-error').textContent`))
	}
	var sl struct {
		Silences []struct {
			ID, Comment, State string
			Matchers           struct{ Alert, Site, Device string }
		}
	}
	getJSON(t, s.url+"/api/v1/silences", &sl)
	if len(sl.Silences) != 1 || sl.Silences[0].Matchers.Device != "market" || sl.Silences[0].Matchers.Alert != "CameraDown" || sl.Silences[0].State != "active" {
		t.Fatalf("silences after the form: %+v", sl.Silences)
	}
	do(t, ctx, chromedp.Click(chromedp.CSS(`#silences li.silence button`)))
	poll(t, ctx, 10*time.Second, "the silence removed", `!document.querySelector('#silences li.silence')`)
	getJSON(t, s.url+"/api/v1/silences", &sl)
	if len(sl.Silences) != 1 || sl.Silences[0].State != "expired" {
		t.Errorf("silences after removal: %+v", sl.Silences)
	}
}

// checkAccessibility: one h1, sections with h2 headings, every form
// control labelled, and every piece of visible text at a contrast of at
// least 4.5:1 (WCAG AA) against the background it is drawn on.
func checkAccessibility(t *testing.T, ctx context.Context) {
	t.Helper()
	if n := run[int](t, ctx, `document.querySelectorAll('h1').length`); n != 1 {
		t.Errorf("%d h1 headings", n)
	}
	if got := run[[]string](t, ctx, `[...document.querySelectorAll('main section > h2')].map(h => h.textContent)`); strings.Join(got, "|") != "Camera|Lượt quét mã QR|Cảnh báo|Báo cáo|Quản trị" {
		t.Errorf("section headings %q", got)
	}
	if bad := run[[]string](t, ctx, `[...document.querySelectorAll('select, input, textarea')].filter(e => !e.labels || !e.labels.length).map(e => e.id)`); len(bad) > 0 {
		t.Errorf("form controls without a label: %v", bad)
	}
	low := run[[]string](t, ctx, `(() => {
		const rgb = s => (s.match(/[\d.]+/g) || []).map(Number);
		const lum = c => { const v = c.slice(0, 3).map(x => { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); }); return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
		const bg = e => { for (; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.length === 3 || c[3] > 0) return c; } return [255, 255, 255]; };
		const out = [];
		for (const e of document.querySelectorAll('body *')) {
			if (![...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
			const r = e.getBoundingClientRect(); if (!r.width || !r.height) continue;
			const st = getComputedStyle(e); if (st.visibility === 'hidden') continue;
			const a = lum(rgb(st.color)), b = lum(bg(e));
			const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
			if (ratio < 4.5) out.push(e.tagName + '.' + e.className + ' "' + e.textContent.trim().slice(0, 30) + '" ' + ratio.toFixed(2));
		}
		return out; })()`)
	if len(low) > 0 {
		t.Errorf("text below 4.5:1 contrast: %q", low)
	}
}

func checkCSV(t *testing.T, file string, loc *time.Location) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatalf("downloaded CSV: %v\n%s", err, b)
	}
	if len(rows) != 31 {
		t.Fatalf("CSV has %d rows, want a header and 30 days:\n%s", len(rows), b)
	}
	if got := strings.Join(rows[0][:6], ","); got != "time,total,mqtt,printed,unique,bots" {
		t.Errorf("CSV header %q", got)
	}
	y, m, d := time.Now().In(loc).Date()
	for i, r := range rows[1:] {
		want := time.Date(y, m, d-29+i, 0, 0, 0, 0, loc)
		tm, err := time.Parse(time.RFC3339, r[0])
		if err != nil || !tm.Equal(want) {
			t.Errorf("CSV row %d time %q, want %s", i+1, r[0], want.Format(time.RFC3339))
		}
		wantTotal := "0"
		if i == 29 {
			wantTotal = "1234"
		}
		if r[1] != wantTotal || r[2] != wantTotal {
			t.Errorf("CSV row %d: %v, want total and mqtt %s", i+1, r, wantTotal)
		}
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }
