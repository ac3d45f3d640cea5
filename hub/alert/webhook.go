package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/template"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// webhook posts a notice to a URL, with a body from a template, and reads
// the answer: a 2xx whose JSON body fails success_field or error_field is
// a failure too.
type webhook struct {
	cfg    *Notifier
	client *http.Client
}

var webhookType = notifierType{
	repeats: true,
	provision: func(n *Notifier, bad func(msg string, path ...any)) {
		n.needURL(bad)
		if n.Method == "" {
			n.Method = "POST"
		}
		switch n.Method {
		case "POST", "PUT":
		default:
			bad("must be POST or PUT", "method")
		}
		n.headers = map[string]string{}
		for k, v := range n.Headers {
			n.headers[k] = v
		}
		for k, f := range n.HeaderFiles {
			b, err := os.ReadFile(f)
			if err != nil {
				bad(fmt.Sprintf("cannot read %s: %v", f, pathErr(err)), "header_files", k)
				continue
			}
			n.headers[k] = strings.TrimSpace(string(b))
		}
		text := n.Template
		if n.TemplateFile != "" {
			if n.Template != "" {
				bad("give template or template_file, not both", "template_file")
			}
			b, err := os.ReadFile(n.TemplateFile)
			if err != nil {
				bad(fmt.Sprintf("cannot read: %v", pathErr(err)), "template_file")
			}
			text = string(b)
		}
		n.tmplText = text
		if text != "" {
			t, err := parseTemplate(n.Name, text)
			if err != nil {
				key := "template"
				if n.TemplateFile != "" {
					key = "template_file"
				}
				bad(err.Error(), key)
			}
			n.tmpl = t
		}
	},
	build: func(n *Notifier, d notifierDeps) (deliverer, error) {
		return &webhook{cfg: n, client: d.HTTP}, nil
	},
}

func (w *webhook) deliver(ctx context.Context, n *Notification) error {
	body, err := w.body(n)
	if err != nil {
		return backoff.Permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, w.cfg.Method, w.cfg.url, bytes.NewReader(body))
	if err != nil {
		return backoff.Permanent(errors.New("building the request failed (check the url)"))
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "villagehub-alert")
	req.Header.Set("Idempotency-Key", n.Key)
	for k, v := range w.cfg.headers {
		req.Header.Set(k, v)
	}
	body, err = doHTTP(ctx, w.client, req)
	if err != nil {
		return err
	}
	return checkBody(body, w.cfg.SuccessField, w.cfg.ErrorField)
}

// checkBody applies the optional body checks to a 2xx answer.
func checkBody(body []byte, successField, errorField string) error {
	if successField == "" && errorField == "" {
		return nil
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return failf(ReasonRejected, false, "the answer is not JSON, so %s cannot be checked", cmpOr(successField, errorField))
	}
	if successField != "" {
		if ok, _ := lookup(v, successField).(bool); !ok {
			return failf(ReasonRejected, false, "the answer's %s is not true", successField)
		}
	}
	if errorField != "" {
		switch e := lookup(v, errorField).(type) {
		case nil:
		case float64:
			if e != 0 {
				return failf(ReasonRejected, false, "the answer's %s is %v", errorField, e)
			}
		case string:
			if e != "" && e != "0" {
				return failf(ReasonRejected, false, "the answer's %s is %q", errorField, truncate(e, 200))
			}
		case bool:
			if e {
				return failf(ReasonRejected, false, "the answer's %s is true", errorField)
			}
		default:
			return failf(ReasonRejected, false, "the answer's %s is set", errorField)
		}
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// lookup follows a dotted path into decoded JSON.
func lookup(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// truncate cuts s to at most n runes.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// body renders the notice: the template, or the generic JSON.
func (w *webhook) body(n *Notification) ([]byte, error) {
	if w.cfg.tmpl == nil {
		return json.Marshal(n)
	}
	return Render(w.cfg.tmpl, n)
}

// doHTTP sends req, reads the whole answer (up to 64 KiB) and classifies
// it: 2xx is done (the body is returned for checks); 408 and 5xx are
// worth retrying; 429 is a quota; other 4xx are permanent. Errors never
// carry the URL (it may hold a token). A test send records the answer.
func doHTTP(ctx context.Context, client *http.Client, req *http.Request) ([]byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // drop the URL, keep the reason
		}
		recordAnswer(ctx, "no answer: "+err.Error())
		return nil, failf(ReasonUnavailable, false, "sending: %v", err)
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	recordAnswer(ctx, fmt.Sprintf("HTTP %s %s", resp.Status, strings.TrimSpace(string(body))))
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		if rerr != nil {
			return nil, failf(ReasonUnavailable, false, "reading the answer: %v", rerr)
		}
		return body, nil
	case c == http.StatusTooManyRequests:
		return nil, failf(ReasonQuota, false, "receiver answered %s", resp.Status)
	case c == http.StatusRequestTimeout || c >= 500:
		return nil, failf(ReasonUnavailable, false, "receiver answered %s", resp.Status)
	default:
		return nil, failf(ReasonBadRequest, true, "receiver answered %s", resp.Status)
	}
}

// Render executes a notice template. Exported for tools that preview
// templates.
func Render(t *template.Template, n *Notification) ([]byte, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, n); err != nil {
		return nil, fmt.Errorf("rendering the template: %w", err)
	}
	return b.Bytes(), nil
}

// ParseTemplate parses a notice template with the engine's functions.
func ParseTemplate(name, text string) (*template.Template, error) { return parseTemplate(name, text) }

func parseTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=zero").Funcs(templateFuncs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parsing the template: %w", err)
	}
	return t, nil
}

// templateFuncs help templates build JSON for chat APIs in Vietnamese or
// English.
var templateFuncs = template.FuncMap{
	// json encodes a value as JSON (a string gets its quotes): the safe
	// way to put text into a JSON body.
	"json": func(v any) (string, error) {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return "", err
		}
		return strings.TrimSuffix(b.String(), "\n"), nil
	},
	// html escapes text for Telegram's parse_mode HTML.
	"html": html.EscapeString,
	// lines joins its non-empty arguments with newlines.
	"lines": func(parts ...string) string {
		out := parts[:0:0]
		for _, p := range parts {
			if p != "" {
				out = append(out, p)
			}
		}
		return strings.Join(out, "\n")
	},
	"vi_title":    func(n *Notification) string { return title(n, vi) },
	"en_title":    func(n *Notification) string { return title(n, en) },
	"vi_reason":   func(r string) string { return reasonText(r, vi) },
	"en_reason":   func(r string) string { return reasonText(r, en) },
	"vi_duration": func(d time.Duration) string { return durationText(d, vi) },
	"en_duration": func(d time.Duration) string { return durationText(d, en) },
	"emoji": func(n *Notification) string {
		if n.State == KindResolved {
			return "✅"
		}
		if n.Severity == "critical" {
			return "🔴"
		}
		return "🟠"
	},
}

type lang int

const (
	vi lang = iota
	en
)

var titles = map[string][2][2]string{
	// alert: {vi: {firing, resolved}, en: {firing, resolved}}
	CameraDown:      {{"Camera mất hình", "Camera có hình trở lại"}, {"Camera down", "Camera back up"}},
	CameraDegraded:  {{"Camera hình kém", "Camera hình ổn định trở lại"}, {"Camera stream degraded", "Camera stream back to normal"}},
	QRBoardSilent:   {{"Bảng QR không gửi dữ liệu", "Bảng QR hoạt động trở lại"}, {"QR board silent", "QR board reporting again"}},
	HubDegraded:     {{"Hub gặp sự cố", "Hub hoạt động bình thường trở lại"}, {"Hub degraded", "Hub back to normal"}},
	NotifierFailing: {{"Kênh báo tin bị lỗi", "Kênh báo tin hoạt động trở lại"}, {"Notifier failing", "Notifier working again"}},
}

func title(n *Notification, l lang) string {
	t, ok := titles[n.Alert]
	if !ok {
		return n.Alert
	}
	s := t[l][0]
	if n.State == KindResolved {
		s = t[l][1]
	}
	if n.Kind == KindRepeat {
		s = [...]string{"Vẫn còn: ", "Still: "}[l] + s
	}
	if n.Flapping && n.State != KindResolved {
		s += [...]string{" (chập chờn)", " (flapping)"}[l]
	}
	return s
}

var reasons = map[string][2]string{
	"timeout":            {"không phản hồi", "no answer"},
	"refused":            {"từ chối kết nối", "connection refused"},
	"unauthorized":       {"sai tài khoản hoặc mật khẩu", "wrong credentials"},
	"not_found":          {"không tìm thấy luồng video", "stream not found"},
	"no_video":           {"không có hình", "no video"},
	"protocol":           {"lỗi giao thức", "protocol error"},
	"other":              {"lỗi khác", "other error"},
	"offline":            {"mất kết nối", "offline"},
	"flapping":           {"chập chờn", "flapping"},
	"low_fps":            {"số khung hình thấp", "low frame rate"},
	"low_bitrate":        {"bitrate thấp", "low bitrate"},
	"poor_grade":         {"chất lượng kém", "poor quality"},
	"silent":             {"không gửi báo cáo", "no reports"},
	"disconnected":       {"mất kết nối MQTT broker", "MQTT broker disconnected"},
	"queue_saturated":    {"hàng đợi gần đầy", "ingest queue saturated"},
	"spool_not_draining": {"dữ liệu chờ ghi InfluxDB ùn ứ", "InfluxDB spool not draining"},
	"removed":            {"thiết bị đã bị gỡ", "device removed"},
	"failing":            {"gửi tin thất bại nhiều lần liên tiếp", "failed repeatedly"},
	"credentials":        {"mất quyền gửi (cần cấp lại mã)", "lost its credentials (a new token is needed)"},
}

func reasonText(r string, l lang) string {
	if t, ok := reasons[r]; ok {
		return t[l]
	}
	return r
}

// durationText: "2 giờ 5 phút" / "2h 5m", at most two units.
func durationText(d time.Duration, l lang) string {
	if d < 0 {
		d = 0
	}
	units := [...]struct {
		d    time.Duration
		name [2]string
	}{
		{24 * time.Hour, [2]string{" ngày", "d"}},
		{time.Hour, [2]string{" giờ", "h"}},
		{time.Minute, [2]string{" phút", "m"}},
		{time.Second, [2]string{" giây", "s"}},
	}
	var parts []string
	for _, u := range units {
		if len(parts) == 2 {
			break
		}
		if n := d / u.d; n > 0 || (len(parts) > 0) {
			if n > 0 {
				parts = append(parts, fmt.Sprintf("%d%s", n, u.name[l]))
			} else {
				break
			}
			d -= n * u.d
		}
	}
	if len(parts) == 0 {
		return [...]string{"0 giây", "0s"}[l]
	}
	sep := [...]string{" ", " "}[l]
	return strings.Join(parts, sep)
}
