package alert_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"villagehub/hub/alert"
	"villagehub/hub/testenv"
)

// zaloCfg is a zalo notifier for the fake, its secret and first refresh
// token written to 0600 files.
func zaloCfg(t *testing.T, z *testenv.FakeZalo, refresh string) alert.Notifier {
	t.Helper()
	dir := t.TempDir()
	secret, rt := filepath.Join(dir, "secret"), filepath.Join(dir, "refresh")
	if err := os.WriteFile(secret, []byte(z.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rt, []byte(refresh+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return alert.Notifier{Type: "zalo", Name: "zalo-thon", AppID: z.AppID, SecretKeyFile: secret, RefreshTokenFile: rt,
		GroupID: "g1", APIURL: z.URL, OAuthURL: z.URL,
		Retry: alert.Retry{Initial: dur(50 * time.Millisecond), Max: dur(300 * time.Millisecond), MaxElapsed: dur(time.Minute)}}
}

func zaloTexts(z *testenv.FakeZalo) []string {
	var out []string
	for _, m := range z.Messages() {
		out = append(out, m.Text)
	}
	return out
}

func countPrefix(texts []string, prefix string) int {
	n := 0
	for _, s := range texts {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// TestZaloAcrossTokenExpiries: access tokens live 2 s; a camera outage
// with repeats every 1.5 s and its recovery span more than three expiries.
// Every notice reaches the group, in Vietnamese, the token is renewed
// ahead of expiry (Zalo never has to refuse an expired one), and each
// rotated refresh token is used once.
func TestZaloAcrossTokenExpiries(t *testing.T) {
	t.Parallel()
	z, first := testenv.NewFakeZalo(t)
	z.TokenTTL = 2 * time.Second
	rep := dur(1500 * time.Millisecond)
	cfg := alert.Config{Rules: fastRules(), RepeatInterval: &rep, Notifiers: []alert.Notifier{zaloCfg(t, z, first)}}
	r := startRig(t, rigConfig{Sites: sites, Cameras: statusCameras(1), Alerts: cfg})
	r.status(t, "camera", "tan-ngu-2", "cam-0", "online")
	start := time.Now()
	r.status(t, "camera", "tan-ngu-2", "cam-0", "offline")
	testenv.WaitFor(t, 20*time.Second, "firing and three repeats in Zalo", func() bool {
		return countPrefix(zaloTexts(z), "🔴 Vẫn còn: Camera mất kết nối") >= 3
	})
	testenv.WaitFor(t, 20*time.Second, "three token expiries", func() bool { return time.Since(start) > 3*z.TokenTTL })
	r.status(t, "camera", "tan-ngu-2", "cam-0", "online")
	testenv.WaitFor(t, 10*time.Second, "the resolved message", func() bool {
		return countPrefix(zaloTexts(z), "✅ Camera kết nối lại") == 1
	})
	texts := zaloTexts(z)
	if n := countPrefix(texts, "🔴 Camera mất kết nối: Camera 0 – Thôn Tân Ngữ 2"); n != 1 {
		t.Errorf("%d firing messages, want 1: %q", n, texts)
	}
	refreshes, refused, invalid, _ := z.Counts()
	if refreshes < 3 || refused != 0 || invalid != 0 {
		t.Errorf("refreshes %d, refused %d, sends refused for a bad token %d; want >=3, 0, 0", refreshes, refused, invalid)
	}
	for _, s := range texts {
		if !strings.Contains(s, "Thôn Tân Ngữ 2") || len([]rune(s)) > 2000 {
			t.Errorf("message %q", s)
		}
	}
	res := texts[len(texts)-1]
	if !strings.Contains(res, "Gián đoạn") {
		t.Errorf("resolved message without the downtime: %q", res)
	}
	st := r.Engine.Notifiers()
	if len(st) != 1 || !st[0].Healthy || st[0].TokenRefreshes < 3 || st[0].TokenValidUntil.IsZero() {
		t.Errorf("status %+v", st)
	}
}

// TestZaloTokenInvalidRefreshesAtOnce: Zalo revokes the access token early
// (it answers -216 with HTTP 200): the notifier refreshes at once and the
// same message goes through on the retry, counted as sent.
func TestZaloTokenInvalidRefreshesAtOnce(t *testing.T) {
	t.Parallel()
	z, first := testenv.NewFakeZalo(t)
	var (
		mu  sync.Mutex
		now = time.Now()
	)
	z.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg := alert.Config{Rules: fastRules(), Notifiers: []alert.Notifier{zaloCfg(t, z, first)}}
	r := startRig(t, rigConfig{Sites: sites, Cameras: statusCameras(1), Alerts: cfg})
	testenv.WaitFor(t, 10*time.Second, "the first refresh", func() bool { n, _, _, _ := z.Counts(); return n == 1 })
	// The fake's clock jumps past the token's life: the hub still thinks
	// it valid, Zalo does not.
	mu.Lock()
	now = now.Add(26 * time.Hour)
	mu.Unlock()
	r.status(t, "camera", "tan-ngu-2", "cam-0", "online")
	r.status(t, "camera", "tan-ngu-2", "cam-0", "offline")
	testenv.WaitFor(t, 10*time.Second, "the firing message, counted", func() bool {
		return len(z.Messages()) == 1 && r.Engine.Notifiers()[0].Sent == 1
	})
	refreshes, refused, invalid, _ := z.Counts()
	if refreshes != 2 || refused != 0 || invalid != 1 {
		t.Errorf("refreshes %d refused %d invalid %d; want 2, 0, 1", refreshes, refused, invalid)
	}
	if v := counter(t, r.Engine, "villagehub_notifications_total", "zalo-thon", "", "sent"); v != 1 {
		t.Errorf("sent = %v", v)
	}
	if v := counter(t, r.Engine, "villagehub_notification_errors_total", "zalo-thon", "token"); v != 0 {
		t.Errorf("a refreshed-and-retried message counted %v token errors", v)
	}
}

// TestZaloQuotaHoldsOrder: the OA's quota allows 2 messages per second;
// five cameras go down at once. The notifier holds on each quota answer
// and retries after quota_wait, and all five arrive, in the order they
// were made, each once; the quota answers are counted by reason.
func TestZaloQuotaHoldsOrder(t *testing.T) {
	t.Parallel()
	z, first := testenv.NewFakeZalo(t)
	z.Quota, z.QuotaWindow = 2, time.Second
	n := zaloCfg(t, z, first)
	n.QuotaWait = dur(time.Second)
	cfg := alert.Config{Rules: fastRules(), Notifiers: []alert.Notifier{n}}
	r := startRig(t, rigConfig{Sites: sites, Cameras: statusCameras(5), Alerts: cfg})
	for _, c := range statusCameras(5) {
		r.status(t, "camera", c.Site, c.ID, "online")
	}
	for _, c := range statusCameras(5) {
		r.status(t, "camera", c.Site, c.ID, "offline")
	}
	testenv.WaitFor(t, 30*time.Second, "five messages, counted", func() bool {
		return len(z.Messages()) >= 5 && r.Engine.Notifiers()[0].Sent == 5
	})
	seen := map[string]int{}
	for _, m := range z.Messages() {
		seen[m.Text]++
	}
	if len(seen) != 5 {
		t.Errorf("%d distinct messages for 5 cameras: %v", len(seen), seen)
	}
	if _, _, _, q := z.Counts(); q == 0 {
		t.Error("the quota never bit")
	}
	if v := counter(t, r.Engine, "villagehub_notification_errors_total", "zalo-thon", "quota"); v == 0 {
		t.Error("quota answers not counted")
	}
	if v := counter(t, r.Engine, "villagehub_notifications_total", "zalo-thon", "", "sent"); v != 5 {
		t.Errorf("sent = %v, want 5", v)
	}
	// The outbox order: the engine made the notices in one evaluation, in
	// one order; the queue keeps it across the holds.
	var order []string
	for _, a := range r.alerts(t).Firing {
		order = append(order, a.Device)
	}
	if len(order) != 5 {
		t.Fatalf("firing %v", order)
	}
	msgs := z.Messages()
	for i := 1; i < len(msgs); i++ {
		if msgs[i].At.Before(msgs[i-1].At) {
			t.Errorf("messages out of order: %v", msgs)
		}
	}
}

// TestZaloBrokenChainFailsOver: the refresh token the hub is given was
// already used once (single-use), so Zalo refuses it. The notifier says
// so (status Broken with the fix, a log line naming it), NotifierFailing
// reaches the webhook within 5 s and never the broken channel; a new token
// written to refresh_token_file repairs it and resolves the alert. No
// token or secret appears in logs, metrics, API answers or config errors.
func TestZaloBrokenChainFailsOver(t *testing.T) {
	t.Parallel()
	z, first := testenv.NewFakeZalo(t)
	// Spend the token, as a second copy of the hub (or a person testing
	// with curl) would.
	form := strings.NewReader("app_id=" + z.AppID + "&grant_type=refresh_token&refresh_token=" + first)
	req, _ := http.NewRequest(http.MethodPost, z.URL+"/v4/oa/access_token", form)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("secret_key", z.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	rc := newReceiver(t, 0)
	zn := zaloCfg(t, z, first)
	logs := &testenv.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := alert.Config{Rules: fastRules(), Notifiers: []alert.Notifier{zn, webhookCfg(rc.URL)}}
	start := time.Now()
	r := startRig(t, rigConfig{Sites: sites, Alerts: cfg, Logger: log})
	testenv.WaitFor(t, 20*time.Second, "NotifierFailing through the webhook", func() bool { return rc.count("zalo-thon", "firing") == 1 })
	t.Logf("NotifierFailing delivered %v after start", time.Since(start).Round(time.Millisecond))
	n := rc.notices(true)[0].N
	if n.Alert != alert.NotifierFailing || n.Site != alert.HubSite || n.Reason != "credentials" || !strings.Contains(n.Detail, "refresh_token_file") {
		t.Errorf("notice %+v", n)
	}
	st := r.Engine.Notifiers()
	if st[0].Healthy || !st[0].Broken || !strings.Contains(st[0].Problem, "refresh_token_file") || !st[1].Healthy {
		t.Errorf("status %+v", st)
	}
	if !strings.Contains(logs.String(), "lost its token chain") || !strings.Contains(logs.String(), "notifier=zalo-thon") {
		t.Errorf("no log line naming the notifier:\n%s", logs.String())
	}
	if v := counter(t, r.Engine, "villagehub_notifier_healthy", "zalo-thon"); v != 0 {
		t.Errorf("villagehub_notifier_healthy = %v", v)
	}

	// The test button shows Zalo's exact refusal.
	var tr alert.TestResult
	if code := doJSON(t, "POST", r.URL+"/api/v1/notifiers/zalo-thon/test", "", &tr); code != 200 || tr.OK || tr.Reason != "token" {
		t.Errorf("test send: %d %+v", code, tr)
	}

	// A person issues a new token and writes it to the file.
	if err := os.WriteFile(zn.RefreshTokenFile, []byte(z.IssueRefreshToken()), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := doJSON(t, "POST", r.URL+"/api/v1/notifiers/zalo-thon/test", "", &tr); code != 200 || !tr.OK {
		t.Fatalf("test send after the new token: %d %+v", code, tr)
	}
	if len(tr.Answer) != 2 || !strings.Contains(tr.Answer[0], "token refresh: ok") || !strings.Contains(tr.Answer[1], `"error":0`) {
		t.Errorf("answer %q", tr.Answer)
	}
	if m := z.Messages(); len(m) != 1 || !strings.Contains(m[0].Text, "Tin nhắn thử") {
		t.Errorf("messages %+v", m)
	}
	testenv.WaitFor(t, 20*time.Second, "NotifierFailing resolved", func() bool { return rc.count("zalo-thon", "resolved") == 1 })
	for _, m := range z.Messages() {
		if strings.Contains(m.Text, "Kênh báo tin") {
			t.Errorf("the broken channel was told about itself: %q", m.Text)
		}
	}

	// No secret anywhere people or scrapers look.
	var all bytes.Buffer
	all.WriteString(logs.String())
	all.WriteString(metricsText(t, r.Engine))
	for _, p := range []string{"/api/v1/alerts", "/api/v1/notifiers"} {
		resp, err := http.Get(r.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		all.Write(b)
	}
	trj, _ := json.Marshal(tr)
	all.Write(trj)
	bad := zn
	bad.APIURL = "ftp://x"
	bad.GroupID = ""
	if err := (&alert.Config{Notifiers: []alert.Notifier{bad}}).Validate(); len(err) == 0 {
		t.Error("a bad zalo config passed")
	} else {
		for _, p := range err {
			all.WriteString(p.String())
		}
	}
	for _, s := range z.Secrets() {
		if strings.Contains(all.String(), s) {
			t.Errorf("secret %q leaked", s[:6]+"…")
		}
	}
}

// TestZaloConfigErrors: each missing or wrong key is named; a secret file
// others can read is refused.
func TestZaloConfigErrors(t *testing.T) {
	z, first := testenv.NewFakeZalo(t)
	ok := zaloCfg(t, z, first)
	open := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(open, []byte("s3cr3t"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]alert.Notifier{
		"notifiers[0].app_id":             {Type: "zalo", SecretKeyFile: ok.SecretKeyFile, RefreshTokenFile: ok.RefreshTokenFile, GroupID: "g"},
		"notifiers[0].group_id":           {Type: "zalo", AppID: "1", SecretKeyFile: ok.SecretKeyFile, RefreshTokenFile: ok.RefreshTokenFile},
		"notifiers[0].secret_key_file":    {Type: "zalo", AppID: "1", SecretKeyFile: open, RefreshTokenFile: ok.RefreshTokenFile, GroupID: "g"},
		"notifiers[0].refresh_token_file": {Type: "zalo", AppID: "1", SecretKeyFile: ok.SecretKeyFile, RefreshTokenFile: "/nonexistent", GroupID: "g"},
		"notifiers[0].oauth_url":          {Type: "zalo", AppID: "1", SecretKeyFile: ok.SecretKeyFile, RefreshTokenFile: ok.RefreshTokenFile, GroupID: "g", OAuthURL: "x"},
	}
	for key, n := range cases {
		c := alert.Config{Notifiers: []alert.Notifier{n}}
		var keys []string
		for _, p := range c.Validate() {
			keys = append(keys, p.Key())
			if strings.Contains(p.Msg, "s3cr3t") || strings.Contains(p.Msg, first) {
				t.Errorf("%s: the message quotes a secret: %s", key, p.Msg)
			}
		}
		if !strings.Contains(strings.Join(keys, " "), key) {
			t.Errorf("want a problem at %s, got %v", key, keys)
		}
	}
	c := alert.Config{Notifiers: []alert.Notifier{ok}}
	if ps := c.Validate(); len(ps) != 0 {
		t.Errorf("a good config: %v", ps)
	}
}

// TestZaloReloadKeepsChain: a reload that changes the Zalo notifier's
// settings replaces it; the new one goes on with the old one's rotated
// refresh token (the chain is never used by both), so Zalo refuses
// nothing across the swap and later expiries.
func TestZaloReloadKeepsChain(t *testing.T) {
	t.Parallel()
	z, first := testenv.NewFakeZalo(t)
	z.TokenTTL = 2 * time.Second
	n := zaloCfg(t, z, first)
	r := startRig(t, rigConfig{Sites: sites, Alerts: alert.Config{Notifiers: []alert.Notifier{n}}})
	testenv.WaitFor(t, 10*time.Second, "two refreshes", func() bool { c, _, _, _ := z.Counts(); return c >= 2 })
	n.QuotaWait = dur(2 * time.Hour)
	if err := r.Engine.Reload(alert.Config{Notifiers: []alert.Notifier{n}}); err != nil {
		t.Fatal(err)
	}
	c0, _, _, _ := z.Counts()
	testenv.WaitFor(t, 10*time.Second, "two more refreshes after the reload", func() bool { c, _, _, _ := z.Counts(); return c >= c0+2 })
	res, err := r.Engine.TestNotifier(context.Background(), "zalo-thon")
	if err != nil || !res.OK {
		t.Fatalf("test send after the reload: %+v %v", res, err)
	}
	if _, refused, invalid, _ := z.Counts(); refused != 0 || invalid != 0 {
		t.Errorf("refused %d refreshes and %d sends across the reload", refused, invalid)
	}
}
