package testenv

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// FakeZalo is a stand-in for Zalo's OAuth and Official Account APIs,
// following what Zalo's pages document (cited in docs/alerting.md):
//
//   - POST /v4/oa/access_token (oauth.zaloapp.com): header secret_key, form
//     app_id, refresh_token, grant_type=refresh_token; answers
//     {"access_token", "refresh_token", "expires_in": "<seconds>"} (a
//     string, as Zalo sends it). A refresh token is single-use: using it
//     again is refused, as is an unknown one (hexasync.vn: "Refresh token
//     chỉ có thể sử dụng 1 lần"). The refusal's exact shape is not in the
//     pages found; it is modelled as HTTP 200 with a non-zero "error".
//   - POST /v3.0/oa/group/message (GMF) and /v3.0/oa/message/cs: header
//     access_token; body {"recipient":{"group_id"|"user_id"},"message":{"text"}}.
//     Failures are HTTP 200 with {"error": <negative>, "message"}: -216
//     for an invalid or expired token (the issue's observation), -32 for
//     the per-OA quota, -230 for an unknown recipient, -204 for text over
//     2000 characters; success is {"error":0,"message":"Success","data":{"message_id"}}.
//
// Tokens expire after TokenTTL on the fake's own clock (Now), so tests
// can run months of rotation on a fake clock.
type FakeZalo struct {
	URL string

	AppID, Secret string
	// TokenTTL is the access token's life (expires_in).
	TokenTTL time.Duration
	// Quota messages per QuotaWindow per OA (0: no quota).
	Quota       int
	QuotaWindow time.Duration
	// Groups and Users that exist.
	Groups, Users map[string]bool
	// Now is the fake's clock (time.Now if nil).
	Now func() time.Time

	mu        sync.Mutex
	refresh   map[string]bool      // refresh token -> still usable
	access    map[string]time.Time // access token -> expiry
	down      bool
	windowAt  time.Time
	inWindow  int
	messages  []FakeZaloMessage
	refreshes int
	refused   int
	invalid   int
	quotaHits int
}

// FakeZaloMessage is one message the fake accepted.
type FakeZaloMessage struct {
	Group, User, Text string
	At                time.Time
}

// NewFakeZalo starts a fake on a loopback port with one group "g1" and
// users "u1", "u2"; it returns the fake and the first refresh token.
func NewFakeZalo(t testing.TB) (*FakeZalo, string) {
	t.Helper()
	z := &FakeZalo{AppID: "1234567890", Secret: "app-secret-" + rand.Text(), TokenTTL: 25 * time.Hour,
		Groups: map[string]bool{"g1": true}, Users: map[string]bool{"u1": true, "u2": true},
		refresh: map[string]bool{}, access: map[string]time.Time{}}
	srv := httptest.NewServer(z)
	t.Cleanup(srv.Close)
	z.URL = srv.URL
	first := "rt-" + rand.Text()
	z.refresh[first] = true
	return z, first
}

func (z *FakeZalo) now() time.Time {
	if z.Now != nil {
		return z.Now()
	}
	return time.Now()
}

// SetDown makes every request answer 503 (Zalo down) until cleared.
func (z *FakeZalo) SetDown(d bool) {
	z.mu.Lock()
	z.down = d
	z.mu.Unlock()
}

// Messages returns the accepted messages, oldest first.
func (z *FakeZalo) Messages() []FakeZaloMessage {
	z.mu.Lock()
	defer z.mu.Unlock()
	return append([]FakeZaloMessage(nil), z.messages...)
}

// Counts: refreshes granted, refreshes refused, sends refused for a bad
// token, sends refused for the quota.
func (z *FakeZalo) Counts() (refreshes, refused, invalidToken, quota int) {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.refreshes, z.refused, z.invalid, z.quotaHits
}

// IssueRefreshToken makes a new valid refresh token, as a person
// re-authorising the app would get one.
func (z *FakeZalo) IssueRefreshToken() string {
	z.mu.Lock()
	defer z.mu.Unlock()
	tok := "rt-" + rand.Text()
	z.refresh[tok] = true
	return tok
}

// ValidAccessToken reports whether tok is a live access token now.
func (z *FakeZalo) ValidAccessToken(tok string) bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	exp, ok := z.access[tok]
	return ok && z.now().Before(exp)
}

// Secrets returns every token the fake ever issued and the app secret,
// for tests that look for leaks.
func (z *FakeZalo) Secrets() []string {
	z.mu.Lock()
	defer z.mu.Unlock()
	out := []string{z.Secret}
	for t := range z.refresh {
		out = append(out, t)
	}
	for t := range z.access {
		out = append(out, t)
	}
	return out
}

func (z *FakeZalo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.down {
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch r.URL.Path {
	case "/v4/oa/access_token":
		z.token(w, r)
	case "/v3.0/oa/group/message", "/v3.0/oa/message/cs":
		z.message(w, r)
	default:
		http.NotFound(w, r)
	}
}

func answer(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (z *FakeZalo) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		answer(w, map[string]any{"error": -14000, "error_name": "Invalid parameter"})
		return
	}
	if r.Header.Get("secret_key") != z.Secret || r.PostForm.Get("app_id") != z.AppID {
		z.refused++
		answer(w, map[string]any{"error": -14002, "error_name": "Invalid app", "error_description": "app_id or secret_key is invalid"})
		return
	}
	rt := r.PostForm.Get("refresh_token")
	if r.PostForm.Get("grant_type") != "refresh_token" || !z.refresh[rt] {
		z.refused++
		answer(w, map[string]any{"error": -14014, "error_name": "Invalid refresh token", "error_description": "refresh token is invalid or was already used"})
		return
	}
	z.refresh[rt] = false // single use
	at, nrt := "at-"+rand.Text(), "rt-"+rand.Text()
	z.refresh[nrt] = true
	z.access[at] = z.now().Add(z.TokenTTL)
	z.refreshes++
	answer(w, map[string]any{"access_token": at, "refresh_token": nrt, "expires_in": strconv.Itoa(int(z.TokenTTL / time.Second))})
}

func (z *FakeZalo) message(w http.ResponseWriter, r *http.Request) {
	exp, ok := z.access[r.Header.Get("access_token")]
	if !ok || !z.now().Before(exp) {
		z.invalid++
		answer(w, map[string]any{"error": -216, "message": "Access token is invalid"})
		return
	}
	var body struct {
		Recipient struct {
			GroupID string `json:"group_id"`
			UserID  string `json:"user_id"`
		} `json:"recipient"`
		Message struct {
			Text string `json:"text"`
		} `json:"message"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil {
		answer(w, map[string]any{"error": -201, "message": "Invalid parameter"})
		return
	}
	group := r.URL.Path == "/v3.0/oa/group/message"
	switch {
	case group && !z.Groups[body.Recipient.GroupID], !group && !z.Users[body.Recipient.UserID]:
		answer(w, map[string]any{"error": -230, "message": "User/group has not interacted with the OA or does not exist"})
		return
	case body.Message.Text == "" || utf8.RuneCountInString(body.Message.Text) > 2000:
		answer(w, map[string]any{"error": -204, "message": "Invalid message: text empty or over 2000 characters"})
		return
	}
	now := z.now()
	if z.Quota > 0 {
		if now.Sub(z.windowAt) >= z.QuotaWindow {
			z.windowAt, z.inWindow = now, 0
		}
		if z.inWindow >= z.Quota {
			z.quotaHits++
			answer(w, map[string]any{"error": -32, "message": "Exceeded the quota of the OA"})
			return
		}
		z.inWindow++
	}
	z.messages = append(z.messages, FakeZaloMessage{Group: body.Recipient.GroupID, User: body.Recipient.UserID, Text: body.Message.Text, At: now})
	answer(w, map[string]any{"error": 0, "message": "Success", "data": map[string]string{"message_id": fmt.Sprintf("m%d", len(z.messages))}})
}
