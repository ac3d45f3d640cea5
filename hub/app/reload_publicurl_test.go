package app_test

import (
	"context"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"villagehub/hub/alert"
	"villagehub/hub/app/apptest"
	"villagehub/hub/config"
	"villagehub/hub/testenv"
)

// TestReloadPublicURLLive: a new http.public_url applies with a reload,
// no restart: the printed code at /qr/<board>.png, the dashboard's QR
// sheet PDF, the address the admin area shows and the link in a notice
// all carry the new address, and the reachability warning for it is
// logged. Switching between http and https still needs a restart (the
// session cookies' Secure flag is fixed at start) and is refused naming
// the key.
func TestReloadPublicURLLive(t *testing.T) {
	hook := apptest.NewWebhook(t)
	start, err := config.Parse("public-url.yaml", []byte(`http: { public_url: "http://192.168.1.10:8080" }
sites: [{ id: s1, name: "Thôn 1" }]
qr_boards: [{ id: b1, site: s1, name: "Chợ" }]
`))
	if err != nil {
		t.Fatal(err)
	}
	apptest.Prepare(t, start)
	start.Alerts.Notifiers = []alert.Notifier{{Type: "webhook", Name: "wh", URL: hook.URL}}
	log := testenv.NewLog(t)
	h := apptest.Start(t, start, log.Logger)
	var next *config.Config
	h.SetReloader(func() (*config.Config, error) { return next, nil })
	with := func(public string) *config.Config {
		c := *start
		c.HTTP.PublicURL = public
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		return &c
	}

	// printed reads what the hub prints for b1, from the code itself and
	// from the site's sheet; shown is the admin area's address; link is a
	// test notice's link.
	printed := func() (code, sheet string) {
		t.Helper()
		resp, err := http.Get(h.URL + "/qr/b1.png")
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		code = testenv.DecodeQR(t, img)
		resp, err = http.Get(h.URL + "/api/v1/qr-sheets/s1.pdf")
		if err != nil {
			t.Fatal(err)
		}
		pdf, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("sheet: %s %s", resp.Status, pdf)
		}
		return code, testenv.PDFText(t, pdf)
	}
	shown := func() string {
		var info struct {
			PublicURL string `json:"public_url"`
		}
		getJSON(t, h.URL+"/api/v1/admin/info", &info)
		return info.PublicURL
	}
	link := func() string {
		t.Helper()
		n := len(hook.Notices())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", h.URL+"/api/v1/admin/notifiers/wh/test", nil)
		req.AddCookie(&http.Cookie{Name: "vh_csrf", Value: "public-url-test-csrf"})
		req.Header.Set("X-CSRF-Token", "public-url-test-csrf")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var res struct{ OK bool }
		_ = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if !res.OK {
			t.Fatalf("test notice: %s", resp.Status)
		}
		testenv.WaitFor(t, 10*time.Second, "the test notice", func() bool { return len(hook.Notices()) > n })
		return hook.Notices()[n].URL
	}

	code, sheet := printed()
	if code != "http://192.168.1.10:8080/q/b1" || !strings.Contains(sheet, "http://192.168.1.10:8080/q/b1") || shown() != "http://192.168.1.10:8080" || link() != "http://192.168.1.10:8080/" {
		t.Fatalf("at start: code %q, sheet has the address %v, shown %q", code, strings.Contains(sheet, "http://192.168.1.10:8080/q/b1"), shown())
	}

	// Live: everything that prints or links follows.
	next = with("http://10.0.0.2:8080")
	if code, body := postReload(t, h.URL); code != http.StatusOK {
		t.Fatalf("reload: %d %s", code, body)
	}
	code, sheet = printed()
	if code != "http://10.0.0.2:8080/q/b1" {
		t.Errorf("/qr/b1.png reads %q after the reload", code)
	}
	if !strings.Contains(sheet, "http://10.0.0.2:8080/q/b1") || strings.Contains(sheet, "192.168.1.10") {
		t.Errorf("the QR sheet after the reload:\n%s", sheet)
	}
	if got := shown(); got != "http://10.0.0.2:8080" {
		t.Errorf("admin area shows %q", got)
	}
	if got := link(); got != "http://10.0.0.2:8080/" {
		t.Errorf("a notice links to %q", got)
	}
	if !strings.Contains(log.String(), "http.public_url changed") {
		t.Errorf("the change is not logged:\n%s", log.String())
	}

	// A loopback address: applied, and warned about as at start.
	next = with("http://127.0.0.1:8080")
	if code, body := postReload(t, h.URL); code != http.StatusOK {
		t.Fatalf("reload: %d %s", code, body)
	}
	if code, _ := printed(); code != "http://127.0.0.1:8080/q/b1" {
		t.Errorf("/qr/b1.png reads %q", code)
	}
	if !strings.Contains(log.String(), "http.public_url = http://127.0.0.1:8080: 127.0.0.1 là địa chỉ của chính máy hub") {
		t.Errorf("no reachability warning for the loopback address:\n%s", log.String())
	}

	// http -> https: refused, nothing applied.
	next = with("https://hub.example.vn")
	if code, body := postReload(t, h.URL); code != http.StatusUnprocessableEntity || !strings.Contains(body, "http.public_url") {
		t.Fatalf("reload to https: %d %s, want 422 naming http.public_url", code, body)
	}
	if code, _ := printed(); code != "http://127.0.0.1:8080/q/b1" {
		t.Errorf("a refused reload changed the printed code to %q", code)
	}
}
