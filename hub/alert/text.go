package alert

// The words of notices, shared by every notifier: titles, reasons and
// durations in Vietnamese and English, and the functions webhook
// templates get.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"strings"
	"text/template"
	"time"
)

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
	CameraDown:      {{"Camera mất hình", "Camera có hình trở lại"}, {"Camera has no picture", "Camera picture back"}},
	CameraDegraded:  {{"Camera hình kém", "Camera hình ổn định trở lại"}, {"Camera picture poor", "Camera picture back to normal"}},
	QRBoardSilent:   {{"Bảng QR không gửi dữ liệu", "Bảng QR hoạt động trở lại"}, {"QR board silent", "QR board reporting again"}},
	HubDegraded:     {{"Hub gặp sự cố", "Hub hoạt động bình thường trở lại"}, {"Hub degraded", "Hub back to normal"}},
	NotifierFailing: {{"Kênh báo tin bị lỗi", "Kênh báo tin hoạt động trở lại"}, {"Notifier failing", "Notifier working again"}},
	// "mất kết nối": Frigate's own MQTT link (its last will), as for a
	// camera's link in docs/terms.md; its cameras may still record.
	FrigateDown: {{"Frigate mất kết nối", "Frigate kết nối lại"}, {"Frigate offline", "Frigate back online"}},
}

// offlineTitles name an outage of the device's MQTT link only (reason
// offline): docs/terms.md keeps "mất kết nối" (link) apart from "mất
// hình" (no video from the probe), since the video may be fine.
var offlineTitles = map[string][2][2]string{
	CameraDown:    {{"Camera mất kết nối", "Camera kết nối lại"}, {"Camera disconnected", "Camera reconnected"}},
	QRBoardSilent: {{"Bảng QR mất kết nối", "Bảng QR kết nối lại"}, {"QR board disconnected", "QR board reconnected"}},
}

func title(n *Notification, l lang) string {
	t, ok := titles[n.Alert]
	if !ok {
		return n.Alert
	}
	if o, ok := offlineTitles[n.Alert]; ok && n.Reason == "offline" {
		t = o
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
	"probes_unavailable": {"không kiểm tra được hình camera (tiến trình kiểm tra không chạy)", "camera probing unavailable (probe worker cannot start)"},
	"uplink_backlog":     {"dữ liệu chờ gửi lên trung tâm ùn ứ", "uplink backlog (metrics not reaching the centre)"},
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
