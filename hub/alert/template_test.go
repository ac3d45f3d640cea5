package alert_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"villagehub/hub/alert"
	"villagehub/hub/testenv"
)

const templatesDir = "../../configs/alerts"

func loadTemplate(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(templatesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// notices to render: every alert, firing, repeated and resolved, with
// names that need escaping in JSON and in Telegram's HTML.
func sampleNotices() []*alert.Notification {
	since := time.Date(2026, 11, 27, 1, 15, 0, 0, time.UTC)
	resolved := since.Add(65 * time.Minute)
	base := alert.Notification{Key: "0123abcd", Alert: "CameraDown", Severity: "critical", Site: "tan-ngu-2",
		SiteName: "Thôn Tân Ngữ 2", Device: "gate", DeviceName: `Cổng làng "chính" <b>&`, Reason: "not_found",
		Since: since, FiredAt: since.Add(30 * time.Second), DurationS: 754, URL: "http://hub.example.vn/", HubID: "hub-1",
		Vars: map[string]string{"chat_id": "-1001234567890", "user_id": "2468013579"}}
	firing, repeat, res := base, base, base
	firing.Kind, firing.State = "firing", "firing"
	repeat.Kind, repeat.State, repeat.Repeat, repeat.DurationS = "repeat", "firing", 1, 4*3600+60
	res.Kind, res.State, res.ResolvedAt, res.DurationS = "resolved", "resolved", &resolved, 3900
	board := firing
	board.Alert, board.Device, board.DeviceName, board.Reason, board.Severity = "QRBoardSilent", "market-07", "Chợ Bản, sạp 7", "silent", "warning"
	hub := firing
	hub.Alert, hub.Site, hub.SiteName, hub.Device, hub.DeviceName, hub.Reason = "HubDegraded", alert.HubSite, "", "broker", "", "disconnected"
	flap := firing
	flap.Flapping, flap.Reason = true, "flapping"
	// The MQTT link only: "mất kết nối", never "mất hình" (docs/terms.md).
	offline := firing
	offline.Reason = "offline"
	return []*alert.Notification{&firing, &repeat, &res, &board, &hub, &flap, &offline}
}

// TestChatTemplates: the shipped Telegram and Zalo templates (and the
// generic one) render to valid JSON, the Vietnamese text keeps its
// diacritics, names are escaped, and the messages are short.
func TestChatTemplates(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"telegram.json.tmpl", "zalo.json.tmpl", "generic.json.tmpl"} {
		tmpl, err := alert.ParseTemplate(name, loadTemplate(t, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, n := range sampleNotices() {
			b, err := alert.Render(tmpl, n)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !json.Valid(b) {
				t.Fatalf("%s for %s/%s: invalid JSON:\n%s", name, n.Alert, n.Kind, b)
			}
			var text string
			switch name {
			case "telegram.json.tmpl":
				var m struct {
					ChatID    string `json:"chat_id"`
					Text      string `json:"text"`
					ParseMode string `json:"parse_mode"`
				}
				mustUnmarshal(t, b, &m)
				if m.ChatID != "-1001234567890" || m.ParseMode != "HTML" {
					t.Errorf("telegram: %s", b)
				}
				text = m.Text
				if n.Device == "gate" && !strings.Contains(text, "Cổng làng &#34;chính&#34; &lt;b&gt;&amp;") {
					t.Errorf("telegram: the device name is not HTML-escaped: %q", text)
				}
			case "zalo.json.tmpl":
				var m struct {
					Recipient struct {
						UserID string `json:"user_id"`
					} `json:"recipient"`
					Message struct {
						Text string `json:"text"`
					} `json:"message"`
				}
				mustUnmarshal(t, b, &m)
				if m.Recipient.UserID != "2468013579" {
					t.Errorf("zalo: %s", b)
				}
				text = m.Message.Text
				if n.Device == "gate" && !strings.Contains(text, `Cổng làng "chính" <b>&`) {
					t.Errorf("zalo: the device name is not intact: %q", text)
				}
			default:
				var m map[string]any
				mustUnmarshal(t, b, &m)
				if m["idempotency_key"] != "0123abcd" || m["site_name"] != n.SiteName {
					t.Errorf("generic: %s", b)
				}
				text, _ = m["text_vi"].(string)
			}
			if !utf8.ValidString(text) || strings.ContainsRune(text, utf8.RuneError) {
				t.Errorf("%s: broken UTF-8: %q", name, text)
			}
			if utf8.RuneCountInString(text) > 300 {
				t.Errorf("%s: message of %d characters; keep it short", name, utf8.RuneCountInString(text))
			}
			want := map[string][]string{
				"CameraDown/firing":         {"Camera mất hình", "Thôn Tân Ngữ 2", "12 phút 34 giây"},
				"CameraDown/repeat":         {"Vẫn còn: Camera mất hình", "4 giờ 1 phút"},
				"CameraDown/resolved":       {"Camera có hình trở lại", "1 giờ 5 phút"},
				"QRBoardSilent/firing":      {"Bảng QR không gửi dữ liệu", "Chợ Bản, sạp 7"},
				"HubDegraded/firing":        {"Hub gặp sự cố", "hub hub-1"},
				"CameraDown/firing/flap":    {"chập chờn"},
				"CameraDown/firing/offline": {"Camera mất kết nối"},
			}
			k := n.Alert + "/" + n.Kind
			if n.Flapping {
				k += "/flap"
			}
			if n.Reason == "offline" {
				k += "/offline"
				if strings.Contains(text, "mất hình") {
					t.Errorf("%s: an MQTT-only outage reads as no picture: %q", name, text)
				}
			}
			for _, w := range want[k] {
				if !strings.Contains(text, w) {
					t.Errorf("%s for %s: %q lacks %q", name, k, text, w)
				}
			}
			if name != "generic.json.tmpl" && n.Kind == "firing" && n.Alert == "CameraDown" && !n.Flapping {
				t.Logf("%s:\n%s", name, text)
			}
		}
	}
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
}

// TestSecretsStayHidden: a Telegram-style webhook whose URL carries the bot
// token (read from url_file) and a Zalo-style one with the token in a
// header file deliver through the shipped templates, one of them after
// failures; the tokens appear in no log line, metric, API answer or config
// problem.
func TestSecretsStayHidden(t *testing.T) {
	t.Parallel()
	const botToken, oaToken = "123456:AAH-bot-SECRET-token", "zalo-oa-SECRET-token"
	tg, zl := newReceiver(t, 2), newReceiver(t, 0)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tgN := webhookCfg("")
	tgN.Name, tgN.URL, tgN.URLFile = "telegram", "", write("tg-url", tg.URL+"/bot"+botToken+"/sendMessage\n")
	tgN.TemplateFile, tgN.Vars = filepath.Join(templatesDir, "telegram.json.tmpl"), map[string]string{"chat_id": "-100200300"}
	zlN := webhookCfg(zl.URL + "/v3.0/oa/message/cs")
	zlN.Name, zlN.TemplateFile = "zalo", filepath.Join(templatesDir, "zalo.json.tmpl")
	zlN.HeaderFiles, zlN.Vars = map[string]string{"access_token": write("zalo-token", oaToken)}, map[string]string{"user_id": "42"}
	var logs testenv.SyncBuffer
	r := startRig(t, rigConfig{Sites: sites, Cameras: statusCameras(1),
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Alerts: alert.Config{Rules: fastRules(), Notifiers: []alert.Notifier{tgN, zlN}}})
	r.status(t, "camera", "tan-ngu-2", "cam-0", "offline")
	testenv.WaitFor(t, 10*time.Second, "both chat notices", func() bool { return len(tg.notices(false)) == 1 && len(zl.notices(false)) == 1 })

	g := zl.notices(false)[0]
	if g.Header.Get("access_token") != oaToken || !json.Valid(g.Body) || !strings.Contains(string(g.Body), "Camera mất kết nối") {
		t.Errorf("zalo request: %v %s", g.Header, g.Body)
	}
	if b := tg.notices(false)[0].Body; !json.Valid(b) || !strings.Contains(string(b), `"chat_id": "-100200300"`) {
		t.Errorf("telegram request: %s", b)
	}
	var api []string
	for _, p := range []string{"/api/v1/alerts", "/api/v1/silences"} {
		resp, err := httpClient.Get(r.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		api = append(api, buf.String())
	}
	metrics := metricsText(t, r.Engine)
	bad := alert.Config{Notifiers: []alert.Notifier{{Type: "webhook", URL: "ftp://x/bot" + botToken}, {Type: "alertmanager", URL: "http://a b/" + botToken}}}
	var problems []string
	for _, p := range bad.Validate() {
		problems = append(problems, p.String())
	}
	if len(problems) != 2 {
		t.Errorf("problems: %q", problems)
	}
	for what, text := range map[string]string{"log": logs.String(), "API": strings.Join(api, "\n"), "metrics": metrics, "config problems": strings.Join(problems, "\n")} {
		for _, secret := range []string{botToken, oaToken, "SECRET"} {
			if strings.Contains(text, secret) {
				t.Errorf("the %s shows a secret:\n%s", what, text)
			}
		}
	}
	if !strings.Contains(logs.String(), "retrying") {
		t.Errorf("the failing Telegram webhook left no log line:\n%s", logs.String())
	}
}
