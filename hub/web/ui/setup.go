package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"

	"villagehub/hub/qrcode"
	"villagehub/hub/web"
)

// First-run setup: while no administrator exists, /setup lets whoever
// installed the hub create one, set the public URL and add the first
// camera, instead of editing YAML. So that a visitor on the village LAN
// cannot claim the hub first, the page answers only requests from the
// hub's own machine (loopback), or carrying the one-time token the hub
// logs at start. Once an administrator exists the page is gone (404).
// Behind a reverse proxy on the same machine every request looks like
// loopback: use the token there (docs/security.md).

type setup struct {
	mu    sync.Mutex
	token string // "" once used or when not needed
}

func newSetupToken() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// needsSetup: no administrator in the config file (users with role admin
// or admin tokens).
func (u *UI) needsSetup() bool {
	if u.cfg.NeedsSetup != nil {
		return u.cfg.NeedsSetup()
	}
	if u.cfgFile == nil {
		return false
	}
	c, err := u.cfgFile.load()
	if err != nil {
		return false
	}
	for _, us := range c.HTTP.Auth.Users {
		if us.Role == "admin" {
			return false
		}
	}
	for _, t := range c.HTTP.Auth.Tokens {
		if t.Role == "admin" {
			return false
		}
	}
	return true
}

func isLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// setupAllowed: loopback, or the right one-time token (query or form).
func (u *UI) setupAllowed(r *http.Request) bool {
	if isLoopback(r) {
		return true
	}
	tok := r.URL.Query().Get("token")
	if tok == "" {
		tok = r.PostFormValue("token")
	}
	u.setup.mu.Lock()
	want := u.setup.token
	u.setup.mu.Unlock()
	return want != "" && tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1
}

const setupCookie = "vh_setup"

type setupPage struct {
	Token, CSRF, Error, PublicURL, SiteID, SiteName string
	CamID, CamName, CamURL, AdminName               string
	Warnings                                        []string
	Done, Restart                                   bool
}

func (u *UI) serveSetup(w http.ResponseWriter, r *http.Request) {
	if !u.needsSetup() {
		http.NotFound(w, r)
		return
	}
	if !u.setupAllowed(r) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		_ = setupTmpl.Execute(w, setupPage{Error: "Chỉ mở được trang cài đặt trên chính máy chạy hub, hoặc với mã cài đặt in trong nhật ký (log) của hub. Only from the hub's own machine, or with the setup token printed in the hub's log."})
		return
	}
	p := setupPage{Token: r.URL.Query().Get("token"), CSRF: u.setupCSRF(w, r), PublicURL: u.publicURL(), SiteID: "thon-1", CamID: "cong-lang"}
	for _, s := range u.cfg.Source.Sites() {
		p.SiteID, p.SiteName = s.ID, s.Name
		break
	}
	u.renderSetup(w, http.StatusOK, p)
}

func (u *UI) setupCSRF(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(setupCookie); err == nil && len(c.Value) >= 16 {
		return c.Value
	}
	v := newSetupToken()
	http.SetCookie(w, &http.Cookie{Name: setupCookie, Value: v, Path: "/setup", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return v
}

func (u *UI) renderSetup(w http.ResponseWriter, code int, p setupPage) {
	p.Warnings = qrcode.URLWarnings(p.PublicURL)
	if p.PublicURL == "" {
		p.Warnings = nil
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = setupTmpl.Execute(w, p)
}

func (u *UI) postSetup(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, "form too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if !u.needsSetup() {
		http.NotFound(w, r)
		return
	}
	if !u.setupAllowed(r) {
		http.Error(w, "setup only from the hub's machine or with its setup token", http.StatusForbidden)
		return
	}
	f := r.PostFormValue
	p := setupPage{Token: f("token"), CSRF: u.setupCSRF(w, r), PublicURL: strings.TrimSpace(f("public_url")),
		SiteID: strings.TrimSpace(f("site_id")), SiteName: strings.TrimSpace(f("site_name")),
		CamID: strings.TrimSpace(f("camera_id")), CamName: strings.TrimSpace(f("camera_name")),
		CamURL: strings.TrimSpace(f("camera_url")), AdminName: strings.TrimSpace(f("username"))}
	c, err := r.Cookie(setupCookie)
	if site := r.Header.Get("Sec-Fetch-Site"); err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(f("csrf"))) != 1 ||
		(site != "" && site != "same-origin" && site != "none") {
		p.Error = "Phiên đã cũ, hãy gửi lại (the form expired: send it again)."
		u.renderSetup(w, http.StatusForbidden, p)
		return
	}
	fail := func(msg string) {
		p.Error = msg
		p.CamURL = "" // it may carry the camera's password: not sent back
		u.renderSetup(w, http.StatusUnprocessableEntity, p)
	}
	if !idPattern.MatchString(p.AdminName) {
		fail("Tên đăng nhập chỉ gồm chữ thường không dấu, số, - và _ (username: lowercase letters, digits, - and _).")
		return
	}
	pw := f("password")
	if pw != f("password2") {
		fail("Hai mật khẩu không giống nhau (the passwords differ).")
		return
	}
	hash, err := web.HashPassword(pw)
	if err != nil {
		fail("Mật khẩu cần ít nhất 8 ký tự (use at least 8 characters).")
		return
	}
	if pu, err := url.Parse(p.PublicURL); p.PublicURL != "" && (err != nil || pu.Host == "" || (pu.Scheme != "http" && pu.Scheme != "https")) {
		fail("Địa chỉ công khai phải có dạng http://192.168.1.10:8080 (public URL must be http(s)://host:port).")
		return
	}
	if p.CamID != "" && (!idPattern.MatchString(p.CamID) || !idPattern.MatchString(p.SiteID)) {
		fail("Mã thôn và mã camera chỉ gồm chữ thường không dấu, số, - và _.")
		return
	}
	// The first camera first, applied by a reload; then the administrator
	// (live through CreateAdmin; written into the config file it waits for
	// a restart, access control being built at start) and the public URL
	// (live, unless the hub cannot take it without a restart: then the
	// done page says so).
	if p.CamID != "" {
		err = u.applyEdit(r.Context(), func(root *yaml.Node) error {
			if err := ensureSite(root, p.SiteID, p.SiteName); err != nil {
				return err
			}
			return addDevice(root, newDevice{Kind: "camera", Site: p.SiteID, ID: p.CamID, Name: p.CamName, URL: p.CamURL})
		})
		var sna *savedNotApplied
		if err != nil && !errors.As(err, &sna) {
			fail("Không lưu được camera (could not save the camera): " + err.Error())
			return
		}
	}
	if u.cfg.CreateAdmin != nil {
		// Live: the users file, which the running hub rereads.
		if err := u.cfg.CreateAdmin(p.AdminName, pw); err != nil {
			fail("Không tạo được quản trị viên (could not create the administrator): " + err.Error())
			return
		}
	}
	err = u.cfgFile.edit(func(root *yaml.Node) error {
		if u.cfg.CreateAdmin == nil {
			if err := addAdmin(root, p.AdminName, hash); err != nil {
				return err
			}
		}
		if p.PublicURL != "" {
			return setPublicURL(root, p.PublicURL)
		}
		return nil
	})
	if err != nil {
		fail("Không lưu được (could not save): " + err.Error())
		return
	}
	done := setupPage{Done: true, PublicURL: p.PublicURL}
	if err := u.cfg.Reload(r.Context()); err != nil {
		u.log.Info("first-run setup saved; the administrator and public URL take effect at the next start", "reload", err)
		done.Restart = true
	}
	u.setup.mu.Lock()
	u.setup.token = ""
	u.setup.mu.Unlock()
	u.log.Info("first-run setup done from the dashboard", "admin", p.AdminName)
	u.renderSetup(w, http.StatusOK, done)
}

var setupTmpl = template.Must(template.New("setup").Parse(`<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cài đặt lần đầu · villagehub</title><link rel="stylesheet" href="/ui/app.css"></head>
<body><header class="top"><h1>Cài đặt lần đầu</h1></header><main class="setup" id="main">
{{if .Done}}<p role="status" class="ok" id="setup-done">Đã lưu vào tệp cấu hình. Hub đã có quản trị viên; trang này không mở được nữa.</p>
{{if .Restart}}<p id="setup-restart">Tài khoản quản trị và địa chỉ công khai có hiệu lực khi hub khởi động lại (ví dụ khi máy khởi động lại, hoặc <code>systemctl restart villagehub</code>). Đến lúc đó, chính máy này vẫn quản trị được hub. The administrator and public URL take effect when the hub restarts.</p>{{end}}
<p><a href="/">Bảng điều khiển</a> · <a href="/login">Đăng nhập</a></p>
{{else}}
<p>Hub chưa có quản trị viên. Tạo tài khoản quản trị, đặt địa chỉ điện thoại dùng để tới hub và thêm camera đầu tiên. Mọi thứ được ghi vào tệp cấu hình (kiểm tra được bằng <code>villagehub check-config</code>).</p>
{{if .Error}}<p role="alert" class="error" id="setup-error">{{.Error}}</p>{{end}}
{{if .CSRF}}<form method="post" action="/setup" id="setup-form">
<input type="hidden" name="csrf" value="{{.CSRF}}"><input type="hidden" name="token" value="{{.Token}}">
<fieldset><legend>Quản trị viên (administrator)</legend>
<div class="field"><label for="s-user">Tên đăng nhập</label><input id="s-user" name="username" type="text" autocomplete="username" required value="{{.AdminName}}"></div>
<div class="field"><label for="s-pw">Mật khẩu (ít nhất 8 ký tự)</label><input id="s-pw" name="password" type="password" autocomplete="new-password" minlength="8" required></div>
<div class="field"><label for="s-pw2">Nhập lại mật khẩu</label><input id="s-pw2" name="password2" type="password" autocomplete="new-password" minlength="8" required></div>
</fieldset>
<fieldset><legend>Địa chỉ công khai (public URL)</legend>
<div class="field"><label for="s-url">Điện thoại trong thôn mở hub bằng địa chỉ này; mã QR in ra mang nó</label><input id="s-url" name="public_url" type="text" inputmode="url" placeholder="http://192.168.1.10:8080" value="{{.PublicURL}}"></div>
{{range .Warnings}}<p class="warn">{{.}}</p>{{end}}
</fieldset>
<fieldset><legend>Camera đầu tiên (có thể bỏ trống)</legend>
<div class="field"><label for="s-site">Mã thôn, bản</label><input id="s-site" name="site_id" type="text" value="{{.SiteID}}"></div>
<div class="field"><label for="s-sitename">Tên thôn, bản</label><input id="s-sitename" name="site_name" type="text" value="{{.SiteName}}"></div>
<div class="field"><label for="s-cam">Mã camera</label><input id="s-cam" name="camera_id" type="text" value="{{.CamID}}"></div>
<div class="field"><label for="s-camname">Tên camera</label><input id="s-camname" name="camera_name" type="text" value="{{.CamName}}"></div>
<div class="field"><label for="s-camurl">Địa chỉ RTSP</label><input id="s-camurl" name="camera_url" type="text" placeholder="rtsp://user:pass@192.168.1.20:554/stream1" value="{{.CamURL}}"></div>
</fieldset>
<p><button type="submit">Lưu và bắt đầu</button></p>
</form>{{end}}{{end}}
</main></body></html>`))
