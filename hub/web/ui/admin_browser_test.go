package ui_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"villagehub/hub/app"
	"villagehub/hub/config"
	"villagehub/hub/testenv"
	"villagehub/hub/web"
	"villagehub/hub/web/ui"
)

func noEnv(string) string { return "" }

// fileHub is a hub started from a config file the test wrote, with the
// reloader cmd/villagehub gives it, so the admin area's edits of the file
// take effect as they would in production.
type fileHub struct {
	*app.Hub
	url, path string
	stop      func() // ends the hub and waits for it (also at cleanup)
}

// startFileHub writes body (a YAML config whose {{http}}, {{broker}} and
// {{data}} are filled with free loopback addresses and a temporary data
// directory) and runs a hub from it.
func startFileHub(t *testing.T, body string) *fileHub {
	t.Helper()
	dir := t.TempDir()
	httpAddr, brokerAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	body = strings.NewReplacer("{{http}}", httpAddr, "{{broker}}", brokerAddr, "{{data}}", filepath.Join(dir, "data")).Replace(body)
	path := filepath.Join(dir, "villagehub.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return startFileHubAt(t, path)
}

// startFileHubAt runs a hub from the config file at path, as a restart
// of the hub would.
func startFileHubAt(t *testing.T, path string) *fileHub {
	t.Helper()
	cfg, err := config.Load(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	h, err := app.New(cfg, app.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h.SetReloader(func() (*config.Config, error) { return config.Load(path, noEnv) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	fh := &fileHub{Hub: h, url: "http://" + h.HTTPAddr(), path: path, stop: stop}
	testenv.WaitHTTP(t, fh.url+"/readyz", 15*time.Second, nil)
	return fh
}

// shots saves a full-page screenshot at desktop width and at a 390 px
// phone width (checking nothing scrolls sideways there), then goes back
// to the desktop size.
func shots(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	do(t, ctx, chromedp.EmulateViewport(1280, 900))
	screenshot(t, ctx, dir, name+"-desktop.png")
	do(t, ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(1), chromedp.EmulateMobile))
	poll(t, ctx, 5*time.Second, name+": no horizontal scrolling at 390 px", `document.documentElement.scrollWidth <= 390`)
	// Nor inside the tables: every cell of the QR and device tables is
	// within the screen (they become one card per row).
	if off := run[[]string](t, ctx, `[...document.querySelectorAll('#qr-table td, #dev-table td, #dev-table th')].filter(c => c.getClientRects().length && c.getBoundingClientRect().right > 391).map(c => c.textContent.slice(0, 20))`); len(off) > 0 {
		t.Errorf("%s: cells beyond the 390 px screen: %q", name, off)
	}
	screenshot(t, ctx, dir, name+"-phone.png")
	do(t, ctx, chromedp.EmulateViewport(1280, 900))
}

func httpGet(t *testing.T, c *http.Client, u string) ([]byte, http.Header) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", u, resp.Status, b)
	}
	return b, resp.Header
}

// TestAdminAreaInBrowser walks the village head's path with no shell: a
// visitor sees the dashboard read-only with a login link; after logging
// in, the admin area adds a board, approves a self-registered (mistyped)
// board, renames one, and the reports and QR sheets download; logging out
// makes the page read-only again. Every change lands in the config file,
// which check-config still accepts.
func TestAdminAreaInBrowser(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("mat-khau-123"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	h := startFileHub(t, `
hub_id: uiadmin
data_dir: {{data}}
http:
  addr: {{http}}
  public_url: http://192.168.1.10:8080
  auth:
    anonymous: viewer
    users:
      - { name: truong-thon, password_hash: "`+string(hash)+`", role: admin }
broker: { addr: {{broker}}, allow_anonymous: true, publish_rate: 1000, publish_burst: 1000 }
probe: { enabled: false }
sites:
  - { id: tan-ngu-2, name: "Thôn Tân Ngữ 2" }
  - { id: ban-chieng, name: "Bản Chiềng" }
cameras:
  - { id: gate, site: tan-ngu-2, name: "Cổng làng" }
qr_boards:
  - { id: market-07, site: tan-ngu-2, name: "Chợ Bản, sạp 7" }
`)
	// The market board's device reports 5 scans and is online; a phone
	// scans the printed code once; a board with a mistyped ID reports too
	// and is auto-registered.
	pub := testenv.MQTT(t, "tcp://"+h.BrokerAddr(), "uiadmin-dev")
	testenv.Publish(t, pub, "village/tan-ngu-2/qr/market-07/status", 1, true, "online")
	testenv.Publish(t, pub, "village/tan-ngu-2/qr/market-07/scans", 1, false, `{"total":5,"boot":"b1"}`)
	testenv.Publish(t, pub, "village/tan-ngu-2/qr/market-7/scans", 1, false, `{"total":2,"boot":"x"}`)
	req, _ := http.NewRequest("GET", h.url+"/q/market-07", nil)
	req.Header.Set("User-Agent", "Mozilla/5.0 (Linux; Android 13; SM-A145F) AppleWebKit/537.36 Chrome/119.0 Mobile Safari/537.36")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := noRedirect.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	testenv.WaitFor(t, 15*time.Second, "scans counted", func() bool {
		b, ok := h.State().Board("tan-ngu-2", "market-07")
		_, typo := h.State().Board("tan-ngu-2", "market-7")
		return ok && typo && b.ScansMQTT == 5 && b.ScansPrinted == 1 && b.Status == "online"
	})

	chrome := testenv.StartChromium(t, 1280, 900)
	ctx := chrome.Context()
	dir := t.TempDir()
	do(t, ctx, chromedp.Navigate(h.url+"/"))
	poll(t, ctx, 15*time.Second, "the dashboard loaded", `document.body.dataset.ready === 'true'`)

	// A viewer: a login link, no silence form, no admin area; a line
	// saying how to silence.
	if r := run[string](t, ctx, `document.body.dataset.role`); r != "viewer" {
		t.Fatalf("anonymous role %q", r)
	}
	for sel, want := range map[string]bool{"#login": true, "#silence-form": false, "#admin": false, "#silence-login": true, "#logout": false} {
		got := run[bool](t, ctx, fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.getClientRects().length > 0; })()`, sel))
		if got != want {
			t.Errorf("viewer: %s visible %v, want %v", sel, got, want)
		}
	}
	if txt := run[string](t, ctx, `document.getElementById('login').textContent`); txt != "Đăng nhập" {
		t.Errorf("login link %q", txt)
	}

	// QR board health: online, last report, device / paper / unique.
	poll(t, ctx, 15*time.Second, "market-07's health and split", `(() => {
		const r = document.querySelector('#qr-table tr[data-key="tan-ngu-2/market-07"]'); if (!r) return false;
		return r.dataset.status === 'online' && r.querySelector('.bst').textContent === 'Hoạt động' &&
			r.querySelector('td.mqtt').textContent === '5' && r.querySelector('td.printed').textContent === '1' &&
			r.querySelector('td.unique').textContent === '1' && r.querySelector('td.last').textContent !== 'chưa có'; })()`)
	// The mistyped board: flagged, status unknown, unique "—" (it only
	// counts on the device).
	poll(t, ctx, 10*time.Second, "the mistyped board flagged", `(() => {
		const r = document.querySelector('#qr-table tr[data-key="tan-ngu-2/market-7"]'); if (!r) return false;
		return r.querySelector('.auto') && r.querySelector('.auto').textContent === 'chưa duyệt' && r.querySelector('td.unique').textContent === '—'; })()`)
	// Five meanings; battery and signal only once a board sends them.
	if n := run[int](t, ctx, `[...document.querySelectorAll('#qr-legend dd')].filter(d => d.getClientRects().length).length`); n != 5 {
		t.Errorf("%d one-line meanings under the QR table, want 5", n)
	}
	shots(t, ctx, dir, "dashboard-viewer")

	// Log in from the link.
	do(t, ctx, chromedp.Click(chromedp.ID("login")))
	poll(t, ctx, 10*time.Second, "the login page", `location.pathname === '/login' && document.getElementById('u')`)
	shots(t, ctx, dir, "login")
	do(t, ctx,
		chromedp.SendKeys(chromedp.ID("u"), "truong-thon"),
		chromedp.SendKeys(chromedp.ID("p"), "mat-khau-123"),
		chromedp.Submit(chromedp.ID("p")),
	)
	poll(t, ctx, 15*time.Second, "logged in as admin", `location.pathname === '/' && document.body.dataset.role === 'admin' && document.getElementById('who-name') && document.getElementById('who-name').textContent === 'truong-thon' && document.body.dataset.ready === 'true'`)
	for sel, want := range map[string]bool{"#logout": true, "#login": false, "#silence-form": true, "#admin": true, "#silence-login": false} {
		got := run[bool](t, ctx, fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.getClientRects().length > 0; })()`, sel))
		if got != want {
			t.Errorf("admin: %s visible %v, want %v", sel, got, want)
		}
	}
	poll(t, ctx, 10*time.Second, "the admin area ready", `!document.getElementById('device-form').hidden && document.querySelectorAll('#dev-site option').length === 2 && document.querySelector('#notifiers li')`)
	if txt := run[string](t, ctx, `document.querySelector('#notifiers li').textContent`); txt != "Hub này chưa cấu hình kênh gửi thông báo." {
		t.Errorf("notifiers without alerting wired: %q", txt)
	}

	// Add a board from the form.
	do(t, ctx,
		chromedp.SetValue(chromedp.ID("dev-kind"), "board"),
		chromedp.SetValue(chromedp.ID("dev-site"), "ban-chieng"),
		chromedp.SendKeys(chromedp.ID("dev-id"), "ben-xe"),
		chromedp.SendKeys(chromedp.ID("dev-name"), "Bến xe khách"),
		chromedp.Click(chromedp.CSS(`#device-form button[type="submit"]`)),
	)
	poll(t, ctx, 15*time.Second, "the new board listed", `document.getElementById('device-msg').className === 'ok' && document.querySelector('#qr-table tr[data-key="ban-chieng/ben-xe"] th') && document.querySelector('#qr-table tr[data-key="ban-chieng/ben-xe"] th').textContent === 'Bến xe khách'`)

	// Approve the mistyped board under a proper name, typed in the row
	// (no window.prompt, which in-app browsers block), and rename market-07.
	do(t, ctx, chromedp.Click(chromedp.CSS(`#dev-table tr[data-key="board/tan-ngu-2/market-7"] button[data-act="approve"]`)))
	poll(t, ctx, 5*time.Second, "the inline editor", `document.querySelector('#dev-table tr[data-key="board/tan-ngu-2/market-7"] #dev-edit-name')`)
	shots(t, ctx, dir, "admin-approve")
	do(t, ctx,
		chromedp.SendKeys(chromedp.ID("dev-edit-name"), "Bảng gõ nhầm"),
		chromedp.Click(chromedp.CSS(`#dev-edit button[type="submit"]`)),
	)
	poll(t, ctx, 15*time.Second, "the board approved", `document.querySelector('#dev-table tr[data-key="board/tan-ngu-2/market-7"]').dataset.configured === 'true' && !document.querySelector('#qr-table tr[data-key="tan-ngu-2/market-7"] .auto') && !document.getElementById('dev-edit')`)
	do(t, ctx, chromedp.Click(chromedp.CSS(`#dev-table tr[data-key="board/tan-ngu-2/market-07"] button[data-act="rename"]`)))
	poll(t, ctx, 5*time.Second, "the inline editor with the current name", `document.getElementById('dev-edit-name') && document.getElementById('dev-edit-name').value === 'Chợ Bản, sạp 7'`)
	run[bool](t, ctx, `document.getElementById('dev-edit-name').value = ''; true`)
	do(t, ctx,
		chromedp.SendKeys(chromedp.ID("dev-edit-name"), "Chợ Bản, sạp 7 (mới)"),
		chromedp.Click(chromedp.CSS(`#dev-edit button[type="submit"]`)),
	)
	poll(t, ctx, 15*time.Second, "the board renamed", `document.querySelector('#qr-table tr[data-key="tan-ngu-2/market-07"] th').textContent === 'Chợ Bản, sạp 7 (mới)'`)

	// Everything is in the config file, which check-config accepts.
	cfg, err := config.Load(h.path, noEnv)
	if err != nil {
		t.Fatalf("the edited config file no longer loads: %v", err)
	}
	names := map[string]string{}
	for _, b := range cfg.Boards {
		names[b.Site+"/"+b.ID] = b.Name
	}
	if names["ban-chieng/ben-xe"] != "Bến xe khách" || names["tan-ngu-2/market-7"] != "Bảng gõ nhầm" || names["tan-ngu-2/market-07"] != "Chợ Bản, sạp 7 (mới)" {
		t.Errorf("boards in the file: %v", names)
	}
	if len(cfg.HTTP.Auth.Users) != 1 || cfg.HTTP.PublicURL != "http://192.168.1.10:8080" {
		t.Errorf("the edit lost other settings: users %d, public_url %q", len(cfg.HTTP.Auth.Users), cfg.HTTP.PublicURL)
	}
	if st, _ := os.Stat(h.path); st.Mode().Perm() != 0o600 {
		t.Errorf("config file mode %v after the edit, want 0600 (it holds password hashes)", st.Mode().Perm())
	}

	// Reports and sheets, from the links the page shows.
	csvHref := run[string](t, ctx, `document.getElementById('report-csv').href`)
	pdfHref := run[string](t, ctx, `document.getElementById('report-pdf').href`)
	poll(t, ctx, 10*time.Second, "sheet links", `document.querySelector('#sheets a[data-site="tan-ngu-2"]')`)
	sheetHref := run[string](t, ctx, `document.querySelector('#sheets a[data-site="tan-ngu-2"]').href`)
	c := &http.Client{Timeout: 30 * time.Second}
	csvBody, hdr := httpGet(t, c, csvHref)
	if !bytes.HasPrefix(csvBody, []byte("\ufeffThôn/bản,")) || !strings.Contains(string(csvBody), `"Chợ Bản, sạp 7 (mới)",6,5,1,1,`) {
		t.Errorf("monthly CSV (%s):\n%s", hdr.Get("Content-Type"), csvBody)
	}
	pdfBody, _ := httpGet(t, c, pdfHref)
	if txt := testenv.PDFText(t, pdfBody); !strings.Contains(txt, "Lượt quét mã QR tháng") || !strings.Contains(txt, "Chợ Bản, sạp 7 (mới)") {
		t.Errorf("monthly PDF text:\n%s", txt)
	}
	sheetBody, _ := httpGet(t, c, sheetHref)
	if txt := testenv.PDFText(t, sheetBody); !strings.Contains(txt, "Thôn Tân Ngữ 2") || !strings.Contains(txt, "http://192.168.1.10:8080/q/market-07") || !strings.Contains(txt, "Bảng gõ nhầm") {
		t.Errorf("QR sheet text:\n%s", txt)
	}
	do(t, ctx, chromedp.Navigate(h.url+"/#admin"))
	poll(t, ctx, 15*time.Second, "reloaded", `document.body.dataset.ready === 'true' && document.querySelector('#notifiers li')`)
	shots(t, ctx, dir, "dashboard-admin")

	// Log out: read-only again.
	do(t, ctx, chromedp.Click(chromedp.CSS(`#logout button`)))
	poll(t, ctx, 10*time.Second, "logged out to the login page", `location.pathname === '/login'`)
	do(t, ctx, chromedp.Navigate(h.url+"/"))
	poll(t, ctx, 10*time.Second, "viewer again", `document.body.dataset.role === 'viewer' && document.getElementById('login')`)

	// An anonymous change is refused in Vietnamese first.
	resp, err := http.Post(h.url+"/api/v1/admin/devices", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(b), "Hãy đăng nhập bằng tài khoản quản trị") {
		t.Errorf("anonymous change: %s %s", resp.Status, b)
	}
	// An oversized body is 413, as documented, not 400.
	big, _ := http.NewRequest("POST", h.url+"/api/v1/admin/devices", strings.NewReader(`{"name":"`+strings.Repeat("x", 2<<20)+`"}`))
	big.SetBasicAuth("truong-thon", "mat-khau-123")
	big.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(big); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("oversized body: %s, want 413", resp.Status)
		}
	}
}

// telegramStandIn answers like Telegram's sendMessage: 400 "chat not
// found" for an unknown chat, ok otherwise.
func telegramStandIn(t *testing.T) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(string(b), `"chat_id":"-1"`) {
			w.WriteHeader(400)
			io.WriteString(w, `{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}`)
			return
		}
		io.WriteString(w, `{"ok":true,"result":{"message_id":42}}`)
	})}
	addr := testenv.FreeAddr(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + addr
}

// webhookNotifiers implements ui.Notifiers the way a webhook notifier
// does: POST the message and report the channel's answer verbatim. It
// stands in for hub/alert's engine, which will provide the interface.
type webhookNotifiers struct {
	base string
	mu   sync.Mutex
	last map[string]string
}

var chats = map[string]string{"telegram-sai": "-1", "telegram": "-1001234567890"}

func (n *webhookNotifiers) NotifierStatus() []ui.NotifierStatus {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []ui.NotifierStatus
	for _, name := range []string{"telegram", "telegram-sai"} {
		out = append(out, ui.NotifierStatus{Name: name, Type: "webhook", Healthy: n.last[name] == "", LastError: n.last[name]})
	}
	return out
}

func (n *webhookNotifiers) TestNotifier(ctx context.Context, name string) (ui.TestResult, error) {
	chat, ok := chats[name]
	if !ok {
		return ui.TestResult{}, errors.New("no notifier " + name)
	}
	body := fmt.Sprintf(`{"chat_id":"%s","text":"Tin thử từ villagehub"}`, chat)
	req, _ := http.NewRequestWithContext(ctx, "POST", n.base+"/botTOKEN/sendMessage", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ui.TestResult{Answer: err.Error()}, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	n.mu.Lock()
	if resp.StatusCode >= 300 {
		n.last[name] = resp.Status
	} else {
		delete(n.last, name)
	}
	n.mu.Unlock()
	return ui.TestResult{OK: resp.StatusCode < 300, Status: resp.StatusCode, Answer: string(b)}, nil
}

// uiServer serves the dashboard through the hub's access control, with
// loopback visitors as administrators (the default with no users), and
// lets a test hold or fail the live stream and the readiness checks.
type uiServer struct {
	url        string
	holdStream chan struct{} // closed = the stream flows
	failStream atomic.Bool
	brokerDown atomic.Bool
	// hubDegraded makes /api/v1/alerts (as hub/alert answers it) report
	// a firing HubDegraded alert.
	hubDegraded atomic.Bool
}

func startUIServer(t *testing.T, cfg ui.Config) *uiServer {
	t.Helper()
	s := &uiServer{holdStream: make(chan struct{})}
	close(s.holdStream)
	u, err := ui.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hold := func(mux *http.ServeMux) {
		inner := http.NewServeMux()
		u.Mount(inner)
		mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/api/v1/alerts" && s.hubDegraded.Load() {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"firing":[{"alert":"HubDegraded","state":"firing","site":"","device":"hub","reason":"queue_saturated","since":"2026-12-01T08:00:00Z"}],"silenced":[],"pending":[],"resolved":[]}`)
				return
			}
			if r.URL.Path == "/ui/stream" {
				if s.failStream.Load() {
					http.Error(w, "unavailable", http.StatusServiceUnavailable)
					return
				}
				select {
				case <-s.holdStream:
				case <-r.Context().Done():
					return
				}
			}
			inner.ServeHTTP(w, r)
		}))
	}
	srv, err := web.New(web.Config{
		Addr:   testenv.FreeAddr(t),
		Access: web.AccessConfig{Anonymous: web.RoleViewer, LoopbackAdmin: true},
		Ready: []web.Check{{Name: "broker", Fn: func() error {
			if s.brokerDown.Load() {
				return errors.New("not connected to the MQTT broker")
			}
			return nil
		}}},
		Mount:  []func(*http.ServeMux){hold},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { srv.Run(ctx); done <- struct{}{} }()
	go func() { u.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	s.url = "http://" + srv.Addr()
	return s
}

// TestNotifierTestButton: "Gửi thử" sends through the channel and shows
// its exact answer, a refusal as well as an acceptance.
func TestNotifierTestButton(t *testing.T) {
	n := &webhookNotifiers{base: telegramStandIn(t), last: map[string]string{}}
	s := startUIServer(t, ui.Config{Source: &source{}, Notifiers: n, Interval: 200 * time.Millisecond})
	chrome := testenv.StartChromium(t, 1280, 900)
	ctx := chrome.Context()
	do(t, ctx, chromedp.Navigate(s.url+"/#admin"))
	poll(t, ctx, 15*time.Second, "two notifiers listed", `document.querySelectorAll('#notifiers li[data-notifier]').length === 2`)
	do(t, ctx, chromedp.Click(chromedp.CSS(`#notifiers li[data-notifier="telegram-sai"] button`)))
	poll(t, ctx, 15*time.Second, "Telegram's refusal shown verbatim", `(() => { const a = document.querySelector('#notifiers li[data-notifier="telegram-sai"] .answer');
		return a.dataset.ok === 'false' && a.querySelector('pre').textContent === '{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}' && a.textContent.includes('Kênh từ chối tin thử. (HTTP 400)'); })()`)
	do(t, ctx, chromedp.Click(chromedp.CSS(`#notifiers li[data-notifier="telegram"] button`)))
	poll(t, ctx, 15*time.Second, "the acceptance shown", `(() => { const a = document.querySelector('#notifiers li[data-notifier="telegram"] .answer');
		return a.dataset.ok === 'true' && a.querySelector('pre').textContent === '{"ok":true,"result":{"message_id":42}}' && a.textContent.includes('Kênh đã nhận tin thử.'); })()`)
	shots(t, ctx, t.TempDir(), "notifier-test")
}

// TestLoadingEmptyErrorStates: while the first data is on its way the
// page shows a skeleton and "Đang tải…", never "no cameras"; a stream
// that fails says so; a truly empty hub shows the empty state with an
// "add a camera" link; a hub that lost its broker shows a banner.
func TestLoadingEmptyErrorStates(t *testing.T) {
	s := startUIServer(t, ui.Config{Source: &source{}, Interval: 200 * time.Millisecond})
	s.holdStream = make(chan struct{}) // a slow link: the stream does not answer yet
	chrome := testenv.StartChromium(t, 1280, 900)
	ctx := chrome.Context()
	dir := t.TempDir()
	do(t, ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(1), chromedp.EmulateMobile))
	do(t, ctx, chromedp.Navigate(s.url+"/"))
	poll(t, ctx, 10*time.Second, "loading skeleton", `document.querySelectorAll('#cam-grid .skeleton').length === 3 && document.getElementById('cam-summary').textContent === 'Đang tải…' && document.querySelectorAll('#qr-table .skeleton-row').length === 2`)
	// Nothing says "no cameras" while loading.
	if txt := run[string](t, ctx, `document.querySelector('main').innerText`); strings.Contains(txt, "Chưa có camera") || strings.Contains(txt, "Chưa có bảng") || strings.Contains(txt, "Chưa có thiết bị") {
		t.Errorf("loading page claims emptiness:\n%s", txt)
	}
	screenshot(t, ctx, dir, "loading-phone.png")

	// The stream fails: an error, still no claim of emptiness.
	s.failStream.Store(true)
	do(t, ctx, chromedp.Reload())
	poll(t, ctx, 15*time.Second, "load error shown", `document.getElementById('cam-summary').textContent === 'Chưa tải được dữ liệu từ hub, đang thử lại…' && !document.getElementById('banner').hidden && document.getElementById('cam-empty').hidden`)
	screenshot(t, ctx, dir, "error-phone.png")

	// The stream works and the hub has nothing: the empty state, with a
	// link to add a camera (this visitor administers from loopback).
	s.failStream.Store(false)
	close(s.holdStream)
	s.brokerDown.Store(true)
	do(t, ctx, chromedp.Reload())
	poll(t, ctx, 15*time.Second, "empty state", `!document.getElementById('cam-empty').hidden && document.querySelectorAll('#cam-grid .skeleton').length === 0 && document.querySelector('#qr-table tr.empty') && document.querySelector('#qr-table tr.empty').textContent === 'Chưa có bảng mã QR nào.'`)
	if link := run[string](t, ctx, `(() => { const a = document.querySelector('#cam-empty a'); return a && a.getClientRects().length ? a.textContent : ''; })()`); link != "Thêm camera" {
		t.Errorf("empty state link %q", link)
	}
	// The broker is down: the banner says what that means.
	poll(t, ctx, 15*time.Second, "broker banner", `!document.getElementById('banner').hidden && document.getElementById('banner').textContent.includes('không kết nối được với máy chủ MQTT')`)
	shots(t, ctx, dir, "empty-broker-down")
	s.brokerDown.Store(false)
	do(t, ctx, chromedp.Reload())
	poll(t, ctx, 15*time.Second, "banner gone with the broker back", `document.body.dataset.ready === 'true' && document.getElementById('banner').hidden`)
	// The hub's own HubDegraded alert shows in the banner with its reason.
	s.hubDegraded.Store(true)
	do(t, ctx, chromedp.Reload())
	poll(t, ctx, 15*time.Second, "HubDegraded in the banner", `!document.getElementById('banner').hidden && document.getElementById('banner').textContent === 'Hub gặp sự cố: hàng đợi gần đầy'`)
}

// TestFirstRunSetup: a hub without an administrator offers /setup on its
// own machine; the form creates the admin (in the users file, live), sets
// the public URL and adds the first camera in the config file; then the
// page is gone. From
// another address it needs the one-time token from the log.
func TestFirstRunSetup(t *testing.T) {
	h := startFileHub(t, `
hub_id: uisetup
data_dir: {{data}}
http: { addr: {{http}} }
broker: { addr: {{broker}}, allow_anonymous: true }
probe: { enabled: false }
`)
	chrome := testenv.StartChromium(t, 1280, 900)
	ctx := chrome.Context()
	dir := t.TempDir()
	do(t, ctx, chromedp.Navigate(h.url+"/"))
	poll(t, ctx, 15*time.Second, "setup offered on the dashboard", `document.querySelector('#setup-banner a')`)
	do(t, ctx, chromedp.Click(chromedp.CSS(`#setup-banner a`)))
	poll(t, ctx, 10*time.Second, "the setup form", `location.pathname === '/setup' && document.getElementById('setup-form')`)
	shots(t, ctx, dir, "setup")
	do(t, ctx,
		chromedp.SendKeys(chromedp.ID("s-user"), "truong-thon"),
		chromedp.SendKeys(chromedp.ID("s-pw"), "mat-khau-123"),
		chromedp.SendKeys(chromedp.ID("s-pw2"), "mat-khau-123"),
		chromedp.SendKeys(chromedp.ID("s-url"), "http://192.168.1.10:8080"),
		chromedp.SetValue(chromedp.ID("s-site"), "tan-ngu-2"),
		chromedp.SendKeys(chromedp.ID("s-sitename"), "Thôn Tân Ngữ 2"),
		chromedp.SetValue(chromedp.ID("s-cam"), "gate"),
		chromedp.SendKeys(chromedp.ID("s-camname"), "Cổng làng"),
		chromedp.SendKeys(chromedp.ID("s-camurl"), "rtsp://127.0.0.1:8554/gate"),
		chromedp.Submit(chromedp.ID("s-user")),
	)
	poll(t, ctx, 15*time.Second, "setup done", `document.getElementById('setup-done')`)
	shots(t, ctx, dir, "setup-done")
	cfg, err := config.Load(h.path, noEnv)
	if err != nil {
		t.Fatalf("config after setup: %v", err)
	}
	// The administrator is in the users file (as `villagehub user add`
	// writes it), live: no restart, and not in the config file.
	if len(cfg.HTTP.Auth.Users) != 0 {
		t.Errorf("admin written into the config file: %+v", cfg.HTTP.Auth.Users)
	}
	if h.NeedsFirstUser() {
		t.Error("the hub still needs a first user after setup")
	}
	status := func(pw string) int {
		req, _ := http.NewRequest("GET", h.url+"/api/v1/status", nil)
		req.SetBasicAuth("truong-thon", pw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status("mat-khau-123"); got != 200 {
		t.Errorf("the new admin's password at once: %d, want 200", got)
	}
	if got := status("sai-mat-khau"); got != 401 {
		t.Errorf("a wrong password: %d, want 401", got)
	}
	if cfg.HTTP.PublicURL != "http://192.168.1.10:8080" || len(cfg.Cameras) != 1 || cfg.Cameras[0].Name != "Cổng làng" || len(cfg.Sites) != 1 || cfg.Sites[0].Name != "Thôn Tân Ngữ 2" {
		t.Errorf("after setup: public_url %q, cameras %+v, sites %+v", cfg.HTTP.PublicURL, cfg.Cameras, cfg.Sites)
	}
	// The camera is on the dashboard (the hub reloaded the file).
	testenv.WaitFor(t, 10*time.Second, "the first camera in the hub", func() bool {
		for _, c := range h.State().Cameras() {
			if c.Site == "tan-ngu-2" && c.ID == "gate" && c.Name == "Cổng làng" && c.Configured {
				return true
			}
		}
		return false
	})
	// The page is gone now.
	resp, err := http.Get(h.url + "/setup")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("/setup after setup: %s", resp.Status)
	}
}

// TestSetupOnlyFromLoopbackOrWithToken: a LAN visitor cannot claim the
// hub; the token from the log lets the installer in from a phone.
func TestSetupOnlyFromLoopbackOrWithToken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "v.yaml")
	if err := os.WriteFile(path, []byte("sites: [{ id: s1, name: \"Thôn 1\" }]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var mu sync.Mutex
	u, err := ui.New(ui.Config{Source: &source{}, ConfigFile: path, Reload: func(context.Context) error { return nil },
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	u.Mount(mux)
	mu.Lock()
	m := regexp.MustCompile(`/setup\?token=([A-Za-z0-9_-]+)`).FindStringSubmatch(logs.String())
	mu.Unlock()
	if m == nil {
		t.Fatalf("no setup token in the log:\n%s", logs.String())
	}
	get := func(remote, target string) (int, string) {
		r := httptest.NewRequest("GET", target, nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	if code, body := get("192.168.1.50:40000", "/setup"); code != 403 || strings.Contains(body, "<form") {
		t.Errorf("LAN visitor without token: %d, form shown %v", code, strings.Contains(body, "<form"))
	}
	if code, _ := get("192.168.1.50:40000", "/setup?token=wrong"); code != 403 {
		t.Errorf("LAN visitor with a wrong token: %d", code)
	}
	if code, body := get("192.168.1.50:40000", "/setup?token="+m[1]); code != 200 || !strings.Contains(body, `id="setup-form"`) {
		t.Errorf("LAN visitor with the token: %d", code)
	}
	if code, body := get("127.0.0.1:40000", "/setup"); code != 200 || !strings.Contains(body, `id="setup-form"`) {
		t.Errorf("loopback: %d", code)
	}
	// A POST from the LAN without the token is refused before anything
	// is written.
	form := url.Values{"username": {"ke-la"}, "password": {"12345678"}, "password2": {"12345678"}}
	r := httptest.NewRequest("POST", "/setup", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = "192.168.1.50:40000"
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	if w.Code != 403 {
		t.Errorf("LAN POST without token: %d", w.Code)
	}
	if b, _ := os.ReadFile(path); strings.Contains(string(b), "ke-la") {
		t.Error("a LAN visitor created an admin")
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestWrongBrokerURLIsVisible: a hub pointed at a broker that does not
// answer (issue 17, item 2) says so in its log within seconds, with the
// reason, and the dashboard shows the broker banner; when the broker comes
// up, the banner goes.
func TestWrongBrokerURLIsVisible(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	m.Stop()
	dir := t.TempDir()
	path := filepath.Join(dir, "v.yaml")
	body := fmt.Sprintf("hub_id: uibroker\ndata_dir: %s\nhttp: { addr: %s }\nmqtt: { url: %q }\nprobe: { enabled: false }\nsites: [{ id: s1, name: \"Thôn 1\" }]\n",
		filepath.Join(dir, "data"), testenv.FreeAddr(t), m.URL())
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var mu sync.Mutex
	h, err := app.New(cfg, app.Options{Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	url := "http://" + h.HTTPAddr()
	testenv.WaitHTTP(t, url+"/healthz", 15*time.Second, nil)

	chrome := testenv.StartChromium(t, 1280, 900)
	cctx := chrome.Context()
	do(t, cctx, chromedp.Navigate(url+"/"))
	poll(t, cctx, 20*time.Second, "broker banner", `!document.getElementById('banner').hidden && document.getElementById('banner').dataset.problems.includes('broker') && document.getElementById('banner').textContent.includes('Hub không kết nối được với máy chủ MQTT')`)
	testenv.WaitFor(t, 20*time.Second, "the log names the broker and the reason", func() bool {
		mu.Lock()
		defer mu.Unlock()
		out := logs.String()
		return strings.Contains(out, "cannot reach the MQTT broker") && strings.Contains(out, "connection refused") && strings.Contains(out, m.Addr)
	})
	m.Start()
	do(t, cctx, chromedp.Reload())
	poll(t, cctx, 40*time.Second, "banner gone once the broker answers", `document.body.dataset.ready === 'true' && document.getElementById('banner').hidden`)
}

// TestEditSavedForNextStart: when the running hub cannot take the edited
// file (another change waiting in it needs a restart), the edit is kept
// in the file and the answer says so (202, applied false), rather than
// "could not save" for a change that was saved.
func TestEditSavedForNextStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "v.yaml")
	if err := os.WriteFile(path, []byte("sites: [{ id: s1, name: \"Thôn 1\" }]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startUIServer(t, ui.Config{Source: &source{}, ConfigFile: path,
		Reload: func(context.Context) error { return errors.New("http.public_url: needs a restart") }})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(s.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	u, _ := url.Parse(s.url)
	var csrf string
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "vh_csrf" {
			csrf = ck.Value
		}
	}
	req, _ := http.NewRequest("POST", s.url+"/api/v1/admin/devices", strings.NewReader(`{"kind":"board","site":"s1","id":"cho","name":"Chợ"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", csrf)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(string(b), `"applied":false`) {
		t.Errorf("edit not applied by the running hub: %s %s", resp.Status, b)
	}
	cfg, err := config.Load(path, noEnv)
	if err != nil || len(cfg.Boards) != 1 || cfg.Boards[0].Name != "Chợ" {
		t.Errorf("the board is not in the file: %v %+v", err, cfg)
	}
}
