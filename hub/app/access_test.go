package app_test

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"villagehub/hub/config"
	"villagehub/hub/web"
)

func hash(t *testing.T, pw string) string {
	t.Helper()
	h, err := web.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestAccessControl: viewers read, only admins change things, cookies
// need the CSRF token, bearer tokens don't, /metrics takes its own token,
// and printed codes and health stay public.
func TestAccessControl(t *testing.T) {
	apiToken, apiSHA := web.NewToken()
	promToken, promSHA := web.NewToken()
	h := startHub(t, func(c *config.Config) {
		c.HTTP.Auth.Users = []config.HTTPUser{
			{Name: "truong-thon", PasswordHash: hash(t, "admin-secret"), Role: "admin"},
			{Name: "bao-ve", PasswordHash: hash(t, "viewer-secret"), Role: "viewer"},
		}
		c.HTTP.Auth.Tokens = []config.HTTPToken{{Name: "script", TokenSHA256: apiSHA, Role: "admin"}}
		c.HTTP.Auth.Metrics.Tokens = []config.HTTPToken{{Name: "prometheus", TokenSHA256: promSHA}}
		c.HTTP.PublicURL = "http://" + c.HTTP.Addr
	})
	silence := `{"site":"tan-ngu-2","device":"gate","duration":"1h","comment":"sửa camera"}`
	do := func(c *http.Client, method, path, body string, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, h.URL+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	browser := func() (*http.Client, func(string) string) {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		cookie := func(name string) string {
			u, _ := url.Parse(h.URL)
			for _, ck := range jar.Cookies(u) {
				if ck.Name == name {
					return ck.Value
				}
			}
			return ""
		}
		return c, cookie
	}
	login := func(user, pw string) (*http.Client, string) {
		c, cookie := browser()
		do(c, "GET", "/login", "")
		form := url.Values{"username": {user}, "password": {pw}, "csrf": {cookie("vh_csrf")}}
		resp, err := c.PostForm(h.URL+"/login", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if cookie("vh_session") == "" {
			t.Fatalf("login as %s: no session (%s)", user, resp.Status)
		}
		do(c, "GET", "/", "") // the dashboard gives the CSRF cookie
		return c, cookie("vh_csrf")
	}

	anon := &http.Client{}
	if r := do(anon, "GET", "/api/v1/cameras", ""); r.StatusCode != 200 {
		t.Errorf("anonymous viewer: GET cameras %s", r.Status)
	}
	if r := do(anon, "POST", "/api/v1/silences", silence); r.StatusCode != 401 {
		t.Errorf("anonymous: POST silence %s, want 401", r.Status)
	}
	viewer, csrf := login("bao-ve", "viewer-secret")
	if r := do(viewer, "POST", "/api/v1/silences", silence, "X-CSRF-Token", csrf); r.StatusCode != 403 {
		t.Errorf("viewer: POST silence %s, want 403", r.Status)
	}
	admin, csrf := login("truong-thon", "admin-secret")
	if r := do(admin, "POST", "/api/v1/silences", silence, "X-CSRF-Token", csrf); r.StatusCode/100 != 2 {
		t.Errorf("admin: POST silence %s", r.Status)
	}
	if r := do(admin, "POST", "/api/v1/silences", silence); r.StatusCode != 403 {
		t.Errorf("admin without the CSRF token: %s, want 403", r.Status)
	}
	// A form on another site posting with the admin's cookie.
	if r := do(admin, "POST", "/api/v1/silences", "site=tan-ngu-2", "Content-Type", "application/x-www-form-urlencoded",
		"Sec-Fetch-Site", "cross-site", "Origin", "http://evil.example"); r.StatusCode != 403 {
		t.Errorf("cross-site form post: %s, want 403", r.Status)
	}
	if r := do(admin, "POST", "/api/v1/silences", silence, "X-CSRF-Token", "forged-token-value-1234", "Sec-Fetch-Site", "same-origin"); r.StatusCode != 403 {
		t.Errorf("wrong CSRF token: %s, want 403", r.Status)
	}
	if r := do(anon, "POST", "/api/v1/silences", silence, "Authorization", "Bearer "+apiToken); r.StatusCode/100 != 2 {
		t.Errorf("admin bearer token: %s", r.Status)
	}
	if r := do(anon, "POST", "/api/v1/silences", silence, "Authorization", "Bearer not-the-token"); r.StatusCode != 401 {
		t.Errorf("wrong bearer token: %s, want 401", r.Status)
	}
	if c, _ := browser(); true {
		resp, _ := c.PostForm(h.URL+"/login", url.Values{"username": {"truong-thon"}, "password": {"guess"}})
		resp.Body.Close()
		if resp.StatusCode != 403 && resp.StatusCode != 401 {
			t.Errorf("login without CSRF / wrong password: %s", resp.Status)
		}
	}
	// /metrics has its own token.
	if r := do(anon, "GET", "/metrics", ""); r.StatusCode != 401 {
		t.Errorf("/metrics without its token: %s, want 401", r.Status)
	}
	if r := do(anon, "GET", "/metrics", "", "Authorization", "Bearer wrong"); r.StatusCode != 401 {
		t.Errorf("/metrics with a wrong token: %s, want 401", r.Status)
	}
	if r := do(anon, "GET", "/metrics", "", "Authorization", "Bearer "+promToken); r.StatusCode != 200 {
		t.Errorf("/metrics with its token: %s", r.Status)
	}
	for _, p := range []string{"/healthz", "/qr/market-07.svg"} {
		if r := do(anon, "GET", p, ""); r.StatusCode != 200 {
			t.Errorf("public %s: %s", p, r.Status)
		}
	}
	// Oversized bodies are cut off.
	if r := do(anon, "POST", "/api/v1/silences", `{"comment":"`+strings.Repeat("x", 2<<20)+`"}`, "Authorization", "Bearer "+apiToken); r.StatusCode < 400 {
		t.Errorf("2 MiB body: %s", r.Status)
	}
	// Security headers.
	req, _ := http.NewRequest("GET", h.URL+"/", nil)
	resp, err := anon.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("security headers: %v", resp.Header)
	}
}

// TestAccessAnonymousNone: with anonymous: none, the dashboard sends
// visitors to the login page and the API wants credentials, while printed
// codes and health checks still work.
func TestAccessAnonymousNone(t *testing.T) {
	h := startHub(t, func(c *config.Config) {
		c.HTTP.Auth.Anonymous = "none"
		c.HTTP.Auth.Users = []config.HTTPUser{{Name: "a", PasswordHash: hash(t, "admin-secret"), Role: "admin"}}
	})
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(h.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/login" {
		t.Errorf("GET / = %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	for path, want := range map[string]int{"/api/v1/cameras": 401, "/metrics": 401, "/healthz": 200, "/login": 200} {
		resp, err := http.Get(h.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %s, want %d", path, resp.Status, want)
		}
	}
	req, _ := http.NewRequest("GET", h.URL+"/q/market-07", nil)
	req.Header.Set("User-Agent", phoneA)
	resp, err = noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 {
		t.Errorf("printed code: %s", resp.Status)
	}
}

// adminPost posts JSON as the dashboard does: with the CSRF cookie from
// the page and the same value in the X-CSRF-Token header.
func adminPost(t *testing.T, base, path, body string) (*http.Response, error) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(base + "/")
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	u, _ := url.Parse(base)
	var csrf string
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "vh_csrf" {
			csrf = ck.Value
		}
	}
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", csrf)
	return c.Do(req)
}
