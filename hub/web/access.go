package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"
)

// Role is what a request may do.
type Role int

const (
	RoleNone   Role = iota // public paths only
	RoleViewer             // read everything
	RoleAdmin              // also change things (silences, reload)
)

// ParseRole reads "none", "viewer" or "admin".
func ParseRole(s string) (Role, error) {
	switch s {
	case "none":
		return RoleNone, nil
	case "viewer":
		return RoleViewer, nil
	case "admin":
		return RoleAdmin, nil
	}
	return RoleNone, fmt.Errorf("%q is not none, viewer or admin", s)
}

func (r Role) String() string { return [...]string{"none", "viewer", "admin"}[r] }

// User logs in with a password, kept as a bcrypt hash.
type User struct {
	Name         string
	PasswordHash string
	Role         Role
}

// Token is an API bearer token, kept as its SHA-256 (tokens are random and
// long, so a fast hash is enough; passwords get bcrypt).
type Token struct {
	Name   string
	SHA256 string // hex
	Role   Role
}

// AccessConfig says who may do what. The zero value lets everyone view and,
// from the hub's own machine (loopback), administer: a hub with no users
// configured is only administered from where it runs.
type AccessConfig struct {
	Users  []User
	Tokens []Token
	// Anonymous is the role of a request without credentials (default
	// viewer). LoopbackAdmin makes anonymous requests from loopback admins
	// (the default while no user or token is configured).
	Anonymous     Role
	LoopbackAdmin bool
	// MetricsTokens, if any, guard /metrics with a bearer token (as
	// Prometheus' authorization scrape setting sends), and MetricsUsers
	// with basic auth. Without either, /metrics is for viewers.
	MetricsTokens []Token
	MetricsUsers  []User
	// SessionTTL is how long a login lasts (default 12h).
	SessionTTL time.Duration
	// SecureCookies marks cookies Secure (the hub serves HTTPS).
	SecureCookies bool
	// Pprof serves /debug/pprof/ to admins (debug.pprof: true); off,
	// it is not served at all.
	Pprof bool
	// UsersFile holds users made by `villagehub user add` (and the
	// first-run page), besides Users.
	UsersFile string
	// LoopbackUntilUsers limits LoopbackAdmin to while no user exists:
	// a fresh hub is administered from its own machine until its first
	// administrator is made.
	LoopbackUntilUsers bool
}

const (
	sessionCookie = "vh_session"
	csrfCookie    = "vh_csrf"
	csrfHeader    = "X-CSRF-Token"
	maxSessions   = 4096
)

// access is the authentication and authorisation middleware.
type access struct {
	cfg      AccessConfig
	mu       sync.Mutex
	sessions map[string]*session
	logins   map[string]*rate.Limiter // per client address, bounded
	// badAuth holds failed logins per account ("u:<name>") and per
	// address ("a:<ip>") over every path: the login form, HTTP Basic
	// and bearer tokens. Bounded like logins.
	badAuth  map[string]*rate.Limiter
	failures [numFailures]atomic.Uint64
	// bcryptSem bounds concurrent bcrypt checks to half the CPUs, so
	// password guessing cannot take the CPU from other requests.
	bcryptSem chan struct{}
	// verified remembers a password that passed its bcrypt check (as an
	// HMAC under macKey, per user), so a client sending Basic auth on
	// every request (a Prometheus scrape) costs a hash, not a bcrypt run.
	macKey   []byte
	verified sync.Map // user name -> verifiedPW
	file     usersFromFile
}

// users is every user: the config's, then the users file's (the config
// wins a name both have).
func (a *access) users() []User {
	a.mu.Lock()
	fu := a.file.current(time.Now())
	a.mu.Unlock()
	if len(fu) == 0 {
		return a.cfg.Users
	}
	out := make([]User, 0, len(a.cfg.Users)+len(fu))
	out = append(out, a.cfg.Users...)
	for _, u := range fu {
		dup := false
		for _, c := range a.cfg.Users {
			dup = dup || c.Name == u.Name
		}
		if !dup {
			out = append(out, u)
		}
	}
	return out
}

func (a *access) hasUsers() bool { return len(a.users()) > 0 }

// Failed logins: each account and each address may fail badAuthBurst
// times, then once per badAuthEvery; past that, checks that would cost a
// bcrypt run (or a token guess) are answered 429 without one. A user whose
// right password is already verified is never held back, so guessing a
// user's password cannot lock that user out.
const (
	badAuthBurst = 5
	badAuthEvery = 10 * time.Second
	// How long a request may wait for a bcrypt slot before 503.
	bcryptWait = 2 * time.Second
)

type session struct {
	user    string
	role    Role
	expires time.Time
}

// Failure reasons, counted in villagehub_http_auth_failures_total.
const (
	failLogin = iota
	failToken
	failCSRF
	failForbidden
	failUnauthenticated
	failLoginRate
	failBusy
	numFailures
)

var failureNames = [numFailures]string{"bad_password", "bad_token", "csrf", "forbidden", "unauthenticated", "login_rate_limited", "busy"}

func newAccess(cfg AccessConfig) *access {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &access{cfg: cfg, sessions: map[string]*session{}, logins: map[string]*rate.Limiter{},
		badAuth: map[string]*rate.Limiter{}, bcryptSem: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)), macKey: key,
		file: usersFromFile{path: cfg.UsersFile}}
}

// authLimited reports whether the address or the user (if any) has no
// failed logins left.
func (a *access) authLimited(ip, user string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	keys := []string{"a:" + ip}
	if user != "" {
		keys = append(keys, "u:"+user)
	}
	for _, k := range keys {
		if l := a.badAuth[k]; l != nil && l.Tokens() < 1 {
			return true
		}
	}
	return false
}

// authFailed takes a failed login from the address's and the user's
// allowance.
func (a *access) authFailed(ip, user string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.badAuth) >= 2*maxSessions {
		for k, l := range a.badAuth {
			if l.Tokens() >= badAuthBurst {
				delete(a.badAuth, k)
			}
		}
		if len(a.badAuth) >= 2*maxSessions {
			clear(a.badAuth)
		}
	}
	keys := []string{"a:" + ip}
	if user != "" {
		keys = append(keys, "u:"+user)
	}
	for _, k := range keys {
		l := a.badAuth[k]
		if l == nil {
			l = rate.NewLimiter(rate.Every(badAuthEvery), badAuthBurst)
			a.badAuth[k] = l
		}
		l.Allow()
	}
}

func (a *access) mac(name, password string) [32]byte {
	m := hmac.New(sha256.New, a.macKey)
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var out [32]byte
	m.Sum(out[:0])
	return out
}

// Results of checkUser besides a match.
const (
	userBad     = iota // wrong name or password
	userLimited        // too many failures: not checked
	userBusy           // no bcrypt slot in time: not checked
	userOK
)

// checkUser checks a name and password from list, with the failure
// limits and the bcrypt bound every password path shares.
func (a *access) checkUser(r *http.Request, list []User, name, password string) (User, int) {
	ip := clientIP(r)
	if len(name) > 128 || len(password) > 1024 {
		a.authFailed(ip, "")
		return User{}, userBad
	}
	sum := a.mac(name, password)
	if v, ok := a.verified.Load(name); ok {
		if want := v.(verifiedPW); hmac.Equal(want.sum[:], sum[:]) {
			for _, u := range list {
				// Only against the hash it was verified with: a new
				// password (villagehub user passwd) voids the old one.
				if u.Name == name && u.PasswordHash == want.hash {
					return u, userOK
				}
			}
		}
	}
	if a.authLimited(ip, name) {
		return User{}, userLimited
	}
	t := time.NewTimer(bcryptWait)
	defer t.Stop()
	select {
	case a.bcryptSem <- struct{}{}:
	case <-t.C:
		return User{}, userBusy
	case <-r.Context().Done():
		return User{}, userBusy
	}
	u, ok := matchUser(list, name, password)
	<-a.bcryptSem
	if !ok {
		a.authFailed(ip, name)
		return User{}, userBad
	}
	a.verified.Store(name, verifiedPW{sum: sum, hash: u.PasswordHash})
	return u, userOK
}

type verifiedPW struct {
	sum  [32]byte
	hash string
}

// checkToken checks a bearer token, with the address's failure limit.
func (a *access) checkToken(r *http.Request, list []Token, tok string) (Token, int) {
	ip := clientIP(r)
	if a.authLimited(ip, "") {
		return Token{}, userLimited
	}
	t, ok := matchToken(list, tok)
	if !ok {
		a.authFailed(ip, "")
		return Token{}, userBad
	}
	return t, userOK
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

type userCtxKey struct{}

// UserName is who made a request, as access control saw it: a user's or
// token's name, "loopback" or "anonymous".
func UserName(r *http.Request) string {
	s, _ := r.Context().Value(userCtxKey{}).(string)
	return s
}

// WithUserName makes a middleware that passes UserName to set, e.g.
// alert.WithUser, so that what a handler records (a silence's
// created_by) is the authenticated user, never what the body claims.
func WithUserName(set func(context.Context, string) context.Context) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(set(r.Context(), UserName(r))))
		})
	}
}

// publicPath is reachable without any role: printed QR codes, health, the
// login page and the dashboard's static files.
func publicPath(p string) bool {
	return strings.HasPrefix(p, "/q/") || strings.HasPrefix(p, "/qr/") || p == "/healthz" || p == "/readyz" ||
		p == "/login" || p == "/logout" || p == "/setup" || (strings.HasPrefix(p, "/ui/") && p != "/ui/stream")
}

func readOnly(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func loopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func hashToken(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}

func matchToken(list []Token, tok string) (Token, bool) {
	h := hashToken(tok)
	for _, t := range list {
		if subtle.ConstantTimeCompare([]byte(strings.ToLower(t.SHA256)), []byte(h)) == 1 {
			return t, true
		}
	}
	return Token{}, false
}

func matchUser(list []User, name, password string) (User, bool) {
	for _, u := range list {
		if u.Name == name && bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) == nil {
			return u, true
		}
	}
	// Spend the same time on unknown users as on wrong passwords.
	_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
	return User{}, false
}

var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("not a password"), bcrypt.DefaultCost)
	return h
})

// who works out the role of a request and whether it came with ambient
// credentials (a cookie, or none at all), which need CSRF protection.
func (a *access) who(r *http.Request) (role Role, ambient bool, name string, bad int) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		if tok, ok := strings.CutPrefix(auth, "Bearer "); ok {
			t, res := a.checkToken(r, a.cfg.Tokens, tok)
			switch res {
			case userOK:
				return t.Role, false, "token:" + t.Name, -1
			case userLimited:
				return RoleNone, false, "", failLoginRate
			}
			return RoleNone, false, "", failToken
		}
		if name, pw, ok := r.BasicAuth(); ok {
			u, res := a.checkUser(r, a.users(), name, pw)
			switch res {
			case userOK:
				return u.Role, false, u.Name, -1
			case userLimited:
				return RoleNone, false, "", failLoginRate
			case userBusy:
				return RoleNone, false, "", failBusy
			}
			return RoleNone, false, "", failLogin
		}
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		a.mu.Lock()
		s := a.sessions[c.Value]
		if s != nil && time.Now().After(s.expires) {
			delete(a.sessions, c.Value)
			s = nil
		}
		a.mu.Unlock()
		if s != nil && a.userExists(s.user) {
			return s.role, true, s.user, -1
		}
	}
	role, name = a.cfg.Anonymous, "anonymous"
	if a.cfg.LoopbackAdmin && loopback(r) && !(a.cfg.LoopbackUntilUsers && a.hasUsers()) {
		role, name = RoleAdmin, "loopback"
	}
	return role, true, name, -1
}

// userExists reports whether a session's user is still a user (one
// removed with `villagehub user remove` loses its sessions at once).
func (a *access) userExists(name string) bool {
	for _, u := range a.users() {
		if u.Name == name {
			return true
		}
	}
	return false
}

// metricsAllowed checks /metrics' own credentials, when configured.
func (a *access) metricsAllowed(r *http.Request) (guarded, ok bool) {
	if len(a.cfg.MetricsTokens) == 0 && len(a.cfg.MetricsUsers) == 0 {
		return false, false
	}
	auth := r.Header.Get("Authorization")
	if tok, isBearer := strings.CutPrefix(auth, "Bearer "); isBearer {
		_, res := a.checkToken(r, a.cfg.MetricsTokens, tok)
		return true, res == userOK
	}
	if name, pw, isBasic := r.BasicAuth(); isBasic {
		_, res := a.checkUser(r, a.cfg.MetricsUsers, name, pw)
		return true, res == userOK
	}
	return true, false
}

// csrfOK checks the double-submit token: a custom header (or, for the
// login form, a form field) equal to the csrf cookie. A cross-site page can
// neither read the cookie nor set the header.
func csrfOK(r *http.Request, formValue string) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || len(c.Value) < 16 {
		return false
	}
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = formValue
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(c.Value)) == 1
}

// sameOrigin reports whether a browser says the request comes from the
// hub's own pages: Sec-Fetch-Site same-origin, or (browsers without it)
// an Origin naming this host. Neither header: not shown to be.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host
	}
	return false
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ensureCSRFCookie gives a browser its CSRF cookie on its first page load.
func (a *access) ensureCSRFCookie(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 16 {
		return c.Value
	}
	v := randomToken(24)
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: v, Path: "/", SameSite: http.SameSiteStrictMode, Secure: a.cfg.SecureCookies})
	return v
}

func (a *access) fail(w http.ResponseWriter, code, reason int, msg string) {
	a.failures[reason].Add(1)
	switch reason {
	case failLoginRate:
		code, msg = http.StatusTooManyRequests, "too many failed logins; try again later"
		w.Header().Set("Retry-After", strconv.Itoa(int(badAuthEvery.Seconds())))
	case failBusy:
		code, msg = http.StatusServiceUnavailable, "busy checking passwords; try again"
		w.Header().Set("Retry-After", "1")
	}
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="villagehub"`)
	}
	writeError(w, code, msg)
}

// wrap enforces the rules around every handler.
// maxBody bounds a request body (the login form, the JSON API).
const maxBody = 1 << 20

func (a *access) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && !readOnly(r.Method) {
			// A body announced over the limit is 413 at once, whatever
			// handler (login form, JSON API) would have read it.
			if r.ContentLength > maxBody {
				writeError(w, http.StatusRequestEntityTooLarge, "request body over 1 MiB")
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		p := r.URL.Path
		if publicPath(p) {
			if p == "/login" || p == "/logout" {
				a.ensureCSRFCookie(w, r)
			}
			h.ServeHTTP(w, r)
			return
		}
		if p == "/metrics" {
			if guarded, ok := a.metricsAllowed(r); guarded {
				if !ok {
					reason := failToken
					if a.authLimited(clientIP(r), "") {
						reason = failLoginRate
					}
					a.fail(w, http.StatusUnauthorized, reason, "/metrics needs its bearer token or basic auth")
					return
				}
				h.ServeHTTP(w, r)
				return
			}
		}
		role, ambient, name, bad := a.who(r)
		if bad < 0 {
			// The dashboard shows the login or logout link and the admin
			// area from this (see RequestRole).
			r = r.WithContext(context.WithValue(r.Context(), roleKey{}, reqRole{role: role, user: a.userOf(r)}))
		}
		if bad >= 0 {
			a.fail(w, http.StatusUnauthorized, bad, "wrong credentials")
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), userCtxKey{}, name))
		if strings.HasPrefix(p, "/debug/pprof/") {
			// Profiles show the command line and can load the CPU for
			// 30 s at a time: administrators only, and only when
			// debug.pprof is on (otherwise the path does not exist).
			if role < RoleAdmin {
				a.fail(w, http.StatusForbidden, failForbidden, "only an administrator may do this")
				return
			}
		}
		if readOnly(r.Method) {
			if role < RoleViewer {
				if p == "/" {
					http.Redirect(w, r, "/login", http.StatusSeeOther)
					return
				}
				a.fail(w, http.StatusUnauthorized, failUnauthenticated, "Hãy đăng nhập trước (log in first)")
				return
			}
			if p == "/" {
				a.ensureCSRFCookie(w, r)
			}
			h.ServeHTTP(w, r)
			return
		}
		if role < RoleAdmin {
			if _, err := r.Cookie(sessionCookie); err != nil && r.Header.Get("Authorization") == "" {
				a.fail(w, http.StatusUnauthorized, failUnauthenticated, "Hãy đăng nhập bằng tài khoản quản trị trước (log in as an administrator first)")
			} else {
				a.fail(w, http.StatusForbidden, failForbidden, "Chỉ quản trị viên được làm việc này (only an administrator may do this)")
			}
			return
		}
		if ambient && !csrfOK(r, "") {
			a.fail(w, http.StatusForbidden, failCSRF, "Phiên đã cũ, hãy tải lại trang (missing or wrong CSRF token: reload the page)")
			return
		}
		h.ServeHTTP(w, r)
	})
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Đăng nhập · villagehub</title><link rel="stylesheet" href="/ui/app.css"></head>
<body><main class="login"><h1>Đăng nhập</h1>
{{if .Error}}<p role="alert" class="error">{{.Error}}</p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<p><label for="u">Tên đăng nhập (username)</label><br><input id="u" name="username" autocomplete="username" required></p>
<p><label for="p">Mật khẩu (password)</label><br><input id="p" name="password" type="password" autocomplete="current-password" required></p>
<p><button type="submit">Đăng nhập · Log in</button></p>
</form><p><a href="/">Bảng điều khiển · Dashboard</a></p></main></body></html>`))

func (a *access) loginLimiter(r *http.Request) *rate.Limiter {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.logins[host]
	if l == nil {
		if len(a.logins) >= maxSessions {
			clear(a.logins)
		}
		l = rate.NewLimiter(rate.Every(10*time.Second), 5)
		a.logins[host] = l
	}
	return l
}

// routes adds /login and /logout.
func (a *access) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = loginPage.Execute(w, map[string]string{"CSRF": a.ensureCSRFCookie(w, r)})
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		show := func(code int, msg string) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(code)
			_ = loginPage.Execute(w, map[string]string{"CSRF": a.ensureCSRFCookie(w, r), "Error": msg})
		}
		if !a.loginLimiter(r).Allow() {
			a.failures[failLoginRate].Add(1)
			show(http.StatusTooManyRequests, "Thử lại sau ít phút (too many attempts).")
			return
		}
		if err := r.ParseForm(); err != nil || !csrfOK(r, r.PostFormValue("csrf")) {
			a.failures[failCSRF].Add(1)
			show(http.StatusForbidden, "Phiên đã hết hạn, hãy thử lại (reload and try again).")
			return
		}
		u, res := a.checkUser(r, a.users(), r.PostFormValue("username"), r.PostFormValue("password"))
		switch res {
		case userLimited:
			a.failures[failLoginRate].Add(1)
			show(http.StatusTooManyRequests, "Thử lại sau ít phút (too many attempts).")
			return
		case userBusy:
			a.failures[failBusy].Add(1)
			show(http.StatusServiceUnavailable, "Máy bận, hãy thử lại (busy, try again).")
			return
		case userBad:
			a.failures[failLogin].Add(1)
			show(http.StatusUnauthorized, "Sai tên đăng nhập hoặc mật khẩu (wrong username or password).")
			return
		}
		id := randomToken(32)
		a.mu.Lock()
		if len(a.sessions) >= maxSessions {
			now := time.Now()
			for k, s := range a.sessions {
				if now.After(s.expires) {
					delete(a.sessions, k)
				}
			}
			if len(a.sessions) >= maxSessions {
				a.mu.Unlock()
				show(http.StatusServiceUnavailable, "Quá nhiều phiên đăng nhập (too many sessions).")
				return
			}
		}
		a.sessions[id] = &session{user: u.Name, role: u.Role, expires: time.Now().Add(a.cfg.SessionTTL)}
		a.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode, Secure: a.cfg.SecureCookies, MaxAge: int(a.cfg.SessionTTL.Seconds())})
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		// A cross-site page must not be able to log a user out: the CSRF
		// token, or the browser's word that the form is the hub's own
		// (Sec-Fetch-Site, else Origin), as the dashboard's plain logout
		// form sends.
		_ = r.ParseForm()
		if !csrfOK(r, r.PostFormValue("csrf")) && !sameOrigin(r) {
			a.failures[failCSRF].Add(1)
			writeError(w, http.StatusForbidden, "missing or wrong CSRF token (reload the page)")
			return
		}
		if c, err := r.Cookie(sessionCookie); err == nil {
			a.mu.Lock()
			delete(a.sessions, c.Value)
			a.mu.Unlock()
		}
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	})
}

// HashPassword makes a bcrypt hash for a user's password_hash.
func HashPassword(pw string) (string, error) {
	if len(pw) < 8 {
		return "", errors.New("use at least 8 characters")
	}
	b, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	return string(b), err
}

// NewToken makes a random API token and the SHA-256 to put in the config.
func NewToken() (token, sha string) {
	token = randomToken(32)
	return token, hashToken(token)
}

// Describe and Collect make the access counters a Prometheus collector.
var descAuthFailures = prometheus.NewDesc("villagehub_http_auth_failures_total",
	"HTTP requests refused by access control, by reason.", []string{"reason"}, nil)

func (a *access) Describe(ch chan<- *prometheus.Desc) { ch <- descAuthFailures }

func (a *access) Collect(ch chan<- prometheus.Metric) {
	for i, n := range failureNames {
		ch <- prometheus.MustNewConstMetric(descAuthFailures, prometheus.CounterValue, float64(a.failures[i].Load()), n)
	}
}

// roleKey carries a request's role to the handlers (the dashboard uses it
// to show the login or logout link and the admin area).
type roleKey struct{}

type reqRole struct {
	role Role
	user string
}

// RequestRole is the role access control gave r and the logged-in user's
// name ("" for a token, basic auth or an anonymous visitor). ok is false
// for public paths, where no role is worked out.
func RequestRole(r *http.Request) (role Role, user string, ok bool) {
	v, ok := r.Context().Value(roleKey{}).(reqRole)
	return v.role, v.user, ok
}

// userOf is the name of the user whose session cookie r carries.
func (a *access) userOf(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.sessions[c.Value]; s != nil {
		return s.user
	}
	return ""
}
