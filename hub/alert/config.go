package alert

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/common/model"
)

// Duration is a YAML duration ("30s", "2h", "1d"), the same type the hub's
// config uses.
type Duration = model.Duration

// Alert names: the value of the "alert" field on MQTT, the alertname label
// in Alertmanager and the alert label of villagehub_alerts_firing.
const (
	CameraDown     = "CameraDown"
	CameraDegraded = "CameraDegraded"
	QRBoardSilent  = "QRBoardSilent"
	HubDegraded    = "HubDegraded"
	// NotifierFailing is a notifier in trouble; its device is the
	// notifier's name.
	NotifierFailing = "NotifierFailing"
	// FrigateDown is a configured Frigate that said `offline` (or
	// `stopped`) on <prefix>/available; its device is the Frigate's name.
	FrigateDown = "FrigateDown"
)

// HubSite is the site of HubDegraded alerts: the hub itself, as in the
// contract's <prefix>/_hub/<hub-id>/status topic.
const HubSite = "_hub"

// Names of the HubDegraded checks (the alert's device).
const (
	CheckBroker      = "broker"
	CheckIngestQueue = "ingest_queue"
	CheckInfluxSpool = "influx_spool"
	CheckProbes      = "probes"
	CheckUplink      = "uplink"
)

// Config is the alerting configuration, embedded by the hub under
// `alerts:` in its YAML file. The zero value is valid: every rule on with
// its defaults, no notifier, no silence.
type Config struct {
	Rules Rules `yaml:"rules"`
	// RepeatInterval re-sends a firing alert's notice while it lasts
	// (default 4h; "0s" turns repeats off).
	RepeatInterval *Duration `yaml:"repeat_interval"`
	// History is how many resolved alerts are kept for /api/v1/alerts
	// (default 1000).
	History int `yaml:"history"`
	// Timezone for opening hours and maintenance windows (default: the
	// hub's, i.e. Deps.Location, else Asia/Ho_Chi_Minh).
	Timezone  string     `yaml:"timezone"`
	Notifiers []Notifier `yaml:"notifiers"`
	Silences  []Silence  `yaml:"silences"`
}

// Rules holds each rule's settings.
type Rules struct {
	CameraDown     CameraDownRule     `yaml:"camera_down"`
	CameraDegraded CameraDegradedRule `yaml:"camera_degraded"`
	QRBoardSilent  BoardSilentRule    `yaml:"qr_board_silent"`
	HubDegraded    HubDegradedRule    `yaml:"hub_degraded"`
	// NotifierFailing: a notifier that failed repeatedly or lost its
	// credentials, told through every other notifier.
	NotifierFailing NotifierFailingRule `yaml:"notifier_failing"`
	// FrigateDown: a configured Frigate reported offline on its
	// available topic.
	FrigateDown FrigateDownRule `yaml:"frigate_down"`
}

// FrigateDownRule fires FrigateDown (site: the Frigate's site, device:
// its name) once a configured Frigate has said `offline` or `stopped` on
// <prefix>/available for `for` (default 1m: a Frigate restart or an
// upgrade takes well under that); `online` resolves it after recover_for
// evaluations (default 1, i.e. at once). Default severity critical: while
// it lasts the motion of all its cameras is unknown.
type FrigateDownRule struct {
	RuleBase `yaml:",inline"`
}

// NotifierFailingRule fires NotifierFailing (site _hub, device the
// notifier's name) once a notifier failed After delivery attempts in a
// row (default 3), or at once when its token chain is broken; for is 0 by
// default, recover_for 1 (the next success).
type NotifierFailingRule struct {
	RuleBase `yaml:",inline"`
	After    int `yaml:"after"`
}

// RuleBase are the settings every rule has.
type RuleBase struct {
	// Enabled turns the rule off when false (default on).
	Enabled *bool `yaml:"enabled"`
	// For is how long the condition must hold before the alert fires.
	For Duration `yaml:"for"`
	// RecoverFor is how many consecutive good observations (RTSP probes
	// for camera rules, evaluations one second apart for hub checks)
	// resolve the alert.
	RecoverFor int    `yaml:"recover_for"`
	Severity   string `yaml:"severity"`
}

func (r RuleBase) on() bool { return r.Enabled == nil || *r.Enabled }

// CameraDownRule: no video from the RTSP probe, or MQTT status offline.
type CameraDownRule struct {
	RuleBase `yaml:",inline"`
	// A camera that went down FlapThreshold times within FlapWindow is
	// flapping: it fires once even if no single outage lasted For, and it
	// resolves only after staying up for For (as well as RecoverFor
	// probes), so a flapping camera gives one alert, not one per flap.
	FlapWindow    Duration `yaml:"flap_window"`
	FlapThreshold int      `yaml:"flap_threshold"`
}

// CameraDegradedRule: a stream that is up but poor.
type CameraDegradedRule struct {
	RuleBase `yaml:",inline"`
	// MinFPS and MinBitrateBps: below either is degraded (0 = not used).
	MinFPS        float64 `yaml:"min_fps"`
	MinBitrateBps float64 `yaml:"min_bitrate_bps"`
	// Grade: the prober's connection grade at or below which the stream
	// is degraded: "poor" (default; fps under 50% of the expected),
	// "fair" (under 90%), or "off".
	Grade string `yaml:"grade"`
}

// BoardSilentRule: a QR board that stopped reporting. Only boards that
// reported at least once are watched, so printed codes without an
// electronic board never fire.
type BoardSilentRule struct {
	RuleBase `yaml:",inline"`
	// OpeningHours, when set, count silence only inside these windows (in
	// the village's time zone): a market board that goes quiet at closing
	// time does not fire overnight.
	OpeningHours []Hours `yaml:"opening_hours"`
	// CheckInterval is how often boards are looked at (default 10s).
	CheckInterval Duration `yaml:"check_interval"`
}

// HubDegradedRule: the hub itself is in trouble.
type HubDegradedRule struct {
	RuleBase `yaml:",inline"`
	// QueueSaturation is the fill ratio of the ingest queue counted as
	// saturated (default 0.9).
	QueueSaturation float64 `yaml:"queue_saturation"`
}

// Hours is a daily window, e.g. {days: [mon, tue], from: "06:00", to:
// "18:00"}. To before From spans midnight. No days = every day.
type Hours struct {
	Days []string `yaml:"days"`
	From string   `yaml:"from"`
	To   string   `yaml:"to"`

	days     [7]bool
	from, to int // minutes after midnight
}

// Notifier is one destination for notifications.
type Notifier struct {
	// Type: webhook, mqtt, alertmanager or zalo.
	Type string `yaml:"type"`
	// Name labels the notifier in metrics and logs (default: the type,
	// numbered when repeated). Never put a secret here.
	Name string `yaml:"name"`
	// URL of the webhook or Alertmanager. It may carry a secret (a
	// Telegram bot token): it is never logged nor shown. URLFile reads it
	// from a file instead.
	URL     string `yaml:"url"`
	URLFile string `yaml:"url_file"`
	// Webhook: the body is TemplateFile (or Template) rendered with Go's
	// text/template; without either, the generic JSON body.
	TemplateFile string            `yaml:"template_file"`
	Template     string            `yaml:"template"`
	Method       string            `yaml:"method"`
	Headers      map[string]string `yaml:"headers"`
	// HeaderFiles: header values read from files (secrets, e.g. Zalo's
	// access_token).
	HeaderFiles map[string]string `yaml:"header_files"`
	// Vars are free values for the template (e.g. chat_id).
	Vars map[string]string `yaml:"vars"`
	// Repeats: also send repeat notices of long outages (default true for
	// webhooks; MQTT retains the state and Alertmanager repeats itself).
	Repeats *bool `yaml:"repeats"`
	// MQTT: retain the alert message (default true) and its QoS (default 1).
	Retain *bool `yaml:"retain"`
	QoS    *int  `yaml:"qos"`
	// Alertmanager: how often firing alerts are pushed again (default
	// 1m); each push is valid for 4 times this.
	ResendInterval Duration `yaml:"resend_interval"`
	// Webhook body checks, for chat APIs that answer 200 with an error:
	// SuccessField names a JSON field that must be true (e.g. Telegram's
	// "ok"); ErrorField names a field that must be 0, "" or absent (e.g.
	// Zalo's "error"). Dotted paths reach into objects ("result.ok").
	SuccessField string `yaml:"success_field"`
	ErrorField   string `yaml:"error_field"`

	// Zalo Official Account (type zalo): the app's ID, files holding the
	// app secret and the first refresh token (the hub keeps the rotated
	// ones under data_dir itself), the recipients (a GMF group, or
	// users), and both base URLs (overridable for tests and proxies).
	AppID            string   `yaml:"app_id"`
	SecretKeyFile    string   `yaml:"secret_key_file"`
	RefreshTokenFile string   `yaml:"refresh_token_file"`
	GroupID          string   `yaml:"group_id"`
	UserIDs          []string `yaml:"user_ids"`
	APIURL           string   `yaml:"api_url"`
	OAuthURL         string   `yaml:"oauth_url"`
	// QuotaWait: how long a notice waits after a quota answer before it is
	// tried again (default 1h); the queue keeps its order meanwhile.
	QuotaWait Duration `yaml:"quota_wait"`

	// Delivery: per-attempt timeout (default 10s), queue size (default
	// 1000; a full queue drops), and retry backoff.
	Timeout   Duration `yaml:"timeout"`
	QueueSize int      `yaml:"queue_size"`
	Retry     Retry    `yaml:"retry"`

	// Filled by Validate.
	url      string
	headers  map[string]string
	tmpl     *template.Template
	secret   string // zalo: the app secret
	tmplText string // the template's source, to tell a changed file on reload
}

// Retry is an exponential backoff.
type Retry struct {
	// Initial wait (default 1s), the longest wait (default 1m), and how
	// long to keep trying one notification (default 1h).
	Initial    Duration `yaml:"initial"`
	Max        Duration `yaml:"max"`
	MaxElapsed Duration `yaml:"max_elapsed"`
}

// Silence in the config: a maintenance window. Either Start/End (once) or
// Daily (every day, or on Days, in the village's time zone).
type Silence struct {
	Matcher   `yaml:",inline"`
	Start     time.Time `yaml:"start"`
	End       time.Time `yaml:"end"`
	Daily     *Hours    `yaml:"daily"`
	Comment   string    `yaml:"comment"`
	CreatedBy string    `yaml:"created_by"`
}

// Matcher selects alerts. Empty fields match anything, but a silence must
// name at least a site or a device.
type Matcher struct {
	Alert  string `yaml:"alert" json:"alert,omitempty"`
	Site   string `yaml:"site" json:"site,omitempty"`
	Device string `yaml:"device" json:"device,omitempty"`
}

// Problem is one thing wrong with the config. Path is the key inside
// `alerts:` as a list of keys and indexes, e.g. {"notifiers", 1, "url"},
// so the hub can prefix it and find its line in the file.
type Problem struct {
	Path []any
	Msg  string
}

// Key renders the path: "notifiers[1].url".
func (p Problem) Key() string {
	var b strings.Builder
	for _, k := range p.Path {
		switch k := k.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", k)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, k)
		}
	}
	return b.String()
}

func (p Problem) String() string { return p.Key() + ": " + p.Msg }

// ValidationError lists every problem.
type ValidationError struct{ Problems []Problem }

func (e *ValidationError) Error() string {
	s := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		s[i] = "alerts." + p.String()
	}
	return strings.Join(s, "\n")
}

var (
	idRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	nameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$`)
)

var alertNames = []string{CameraDown, CameraDegraded, QRBoardSilent, HubDegraded, NotifierFailing, FrigateDown}

func knownAlert(s string) bool {
	for _, n := range alertNames {
		if n == s {
			return true
		}
	}
	return false
}

// Validate fills in defaults, reads the files the config points at
// (templates, secrets) and returns every problem, naming its key. Call it
// once before New (New calls it too).
func (c *Config) Validate() []Problem {
	var ps []Problem
	bad := func(msg string, path ...any) { ps = append(ps, Problem{Path: path, Msg: msg}) }

	r := &c.Rules
	defBase(&r.CameraDown.RuleBase, 30*time.Second, 2, "critical")
	if r.CameraDown.FlapWindow == 0 {
		r.CameraDown.FlapWindow = Duration(10 * time.Minute)
	}
	if r.CameraDown.FlapThreshold == 0 {
		r.CameraDown.FlapThreshold = 3
	}
	defBase(&r.CameraDegraded.RuleBase, 2*time.Minute, 2, "warning")
	if r.CameraDegraded.Grade == "" {
		r.CameraDegraded.Grade = "poor"
	}
	defBase(&r.QRBoardSilent.RuleBase, 2*time.Hour, 1, "warning")
	if r.QRBoardSilent.CheckInterval == 0 {
		r.QRBoardSilent.CheckInterval = Duration(10 * time.Second)
	}
	defBase(&r.HubDegraded.RuleBase, time.Minute, 5, "critical")
	if r.HubDegraded.QueueSaturation == 0 {
		r.HubDegraded.QueueSaturation = 0.9
	}
	// For stays 0 unless set: one failure count is the delay.
	defBase(&r.NotifierFailing.RuleBase, 0, 1, "warning")
	if r.NotifierFailing.After == 0 {
		r.NotifierFailing.After = 3
	} else if r.NotifierFailing.After < 1 || r.NotifierFailing.After > 1000 {
		bad("must be between 1 and 1000", "rules", "notifier_failing", "after")
	}
	defBase(&r.FrigateDown.RuleBase, time.Minute, 1, "critical")
	for _, rb := range []struct {
		key string
		b   *RuleBase
	}{{"camera_down", &r.CameraDown.RuleBase}, {"camera_degraded", &r.CameraDegraded.RuleBase},
		{"qr_board_silent", &r.QRBoardSilent.RuleBase}, {"hub_degraded", &r.HubDegraded.RuleBase},
		{"notifier_failing", &r.NotifierFailing.RuleBase}, {"frigate_down", &r.FrigateDown.RuleBase}} {
		if rb.b.For < 0 {
			bad("must not be negative", "rules", rb.key, "for")
		}
		if rb.b.RecoverFor < 1 || rb.b.RecoverFor > 1000 {
			bad("must be between 1 and 1000", "rules", rb.key, "recover_for")
		}
		switch rb.b.Severity {
		case "critical", "warning", "info":
		default:
			bad(fmt.Sprintf("%q is not critical, warning or info", rb.b.Severity), "rules", rb.key, "severity")
		}
	}
	if r.QRBoardSilent.For == 0 {
		bad("must be more than 0", "rules", "qr_board_silent", "for")
	}
	if r.CameraDown.FlapThreshold < 2 || r.CameraDown.FlapThreshold > 100 {
		bad("must be between 2 and 100", "rules", "camera_down", "flap_threshold")
	}
	if r.CameraDown.FlapWindow <= 0 {
		bad("must be more than 0", "rules", "camera_down", "flap_window")
	}
	switch r.CameraDegraded.Grade {
	case "poor", "fair", "off":
	default:
		bad(fmt.Sprintf("%q is not poor, fair or off", r.CameraDegraded.Grade), "rules", "camera_degraded", "grade")
	}
	if r.CameraDegraded.MinFPS < 0 {
		bad("must not be negative", "rules", "camera_degraded", "min_fps")
	}
	if r.CameraDegraded.MinBitrateBps < 0 {
		bad("must not be negative", "rules", "camera_degraded", "min_bitrate_bps")
	}
	if q := r.HubDegraded.QueueSaturation; q <= 0 || q > 1 {
		bad("must be more than 0 and at most 1", "rules", "hub_degraded", "queue_saturation")
	}
	if r.QRBoardSilent.CheckInterval < Duration(time.Second) {
		bad("must be at least 1s", "rules", "qr_board_silent", "check_interval")
	}
	for i := range r.QRBoardSilent.OpeningHours {
		if err := r.QRBoardSilent.OpeningHours[i].parse(); err != nil {
			bad(err.Error(), "rules", "qr_board_silent", "opening_hours", i)
		}
	}

	if c.RepeatInterval == nil {
		d := Duration(4 * time.Hour)
		c.RepeatInterval = &d
	} else if *c.RepeatInterval < 0 || (*c.RepeatInterval > 0 && *c.RepeatInterval < Duration(time.Second)) {
		bad("must be 0 (off) or at least 1s", "repeat_interval")
	}
	if c.History == 0 {
		c.History = 1000
	} else if c.History < 0 {
		bad("must not be negative", "history")
	}
	if c.Timezone != "" {
		if _, err := time.LoadLocation(c.Timezone); err != nil {
			bad(fmt.Sprintf("unknown time zone %q", c.Timezone), "timezone")
		}
	}

	names := map[string]bool{}
	count := map[string]int{}
	for _, n := range c.Notifiers {
		count[n.Type]++
	}
	seen := map[string]int{}
	for i := range c.Notifiers {
		n := &c.Notifiers[i]
		seen[n.Type]++
		if n.Name == "" {
			n.Name = n.Type
			if count[n.Type] > 1 {
				n.Name = fmt.Sprintf("%s-%d", n.Type, seen[n.Type])
			}
		}
		if !nameRE.MatchString(n.Name) {
			bad("must be letters, digits, _ or -, at most 64", "notifiers", i, "name")
		} else if names[n.Name] {
			bad(fmt.Sprintf("%q is used by another notifier", n.Name), "notifiers", i, "name")
		}
		names[n.Name] = true
		n.validate(func(msg string, path ...any) { bad(msg, append([]any{"notifiers", i}, path...)...) })
	}

	for i := range c.Silences {
		s := &c.Silences[i]
		at := func(msg string, path ...any) { bad(msg, append([]any{"silences", i}, path...)...) }
		if err := s.Matcher.check(); err != nil {
			at(err.Error())
		}
		switch {
		case s.Daily != nil:
			if !s.Start.IsZero() || !s.End.IsZero() {
				at("give either daily or start/end, not both")
			}
			if err := s.Daily.parse(); err != nil {
				at(err.Error(), "daily")
			}
		case s.Start.IsZero() || s.End.IsZero():
			at("needs start and end (RFC 3339), or daily")
		case !s.End.After(s.Start):
			at("must be after start", "end")
		}
	}
	return ps
}

func defBase(b *RuleBase, forDur time.Duration, recover int, severity string) {
	if b.For == 0 {
		b.For = Duration(forDur)
	}
	if b.RecoverFor == 0 {
		b.RecoverFor = recover
	}
	if b.Severity == "" {
		b.Severity = severity
	}
}

func (n *Notifier) validate(bad func(msg string, path ...any)) {
	if n.Timeout == 0 {
		n.Timeout = Duration(10 * time.Second)
	}
	if n.QueueSize == 0 {
		n.QueueSize = 1000
	}
	if n.Retry.Initial == 0 {
		n.Retry.Initial = Duration(time.Second)
	}
	if n.Retry.Max == 0 {
		n.Retry.Max = Duration(time.Minute)
	}
	if n.Retry.MaxElapsed == 0 {
		n.Retry.MaxElapsed = Duration(time.Hour)
	}
	if n.Timeout < 0 {
		bad("must not be negative", "timeout")
	}
	if n.QueueSize < 1 || n.QueueSize > 1_000_000 {
		bad("must be between 1 and 1000000", "queue_size")
	}
	if n.Retry.Initial <= 0 || n.Retry.Max < n.Retry.Initial || n.Retry.MaxElapsed <= 0 {
		bad("needs 0 < initial <= max and max_elapsed > 0", "retry")
	}
	t, known := notifierTypes[n.Type]
	if n.Repeats == nil {
		v := t.repeats
		n.Repeats = &v
	}
	switch {
	case n.Type == "":
		bad("is required ("+typeNames()+")", "type")
	case !known:
		bad(fmt.Sprintf("%q is not %s", n.Type, typeNames()), "type")
	default:
		t.provision(n, bad)
	}
}

// needURL reads url or url_file and checks it is http(s). Shared by the
// notifier types that post to a URL.
func (n *Notifier) needURL(bad func(msg string, path ...any)) {
	n.url = n.URL
	if n.URLFile != "" {
		if n.URL != "" {
			bad("give url or url_file, not both", "url_file")
			return
		}
		b, err := os.ReadFile(n.URLFile)
		if err != nil {
			// The path is not secret, its content is.
			bad(fmt.Sprintf("cannot read %s: %v", n.URLFile, pathErr(err)), "url_file")
			return
		}
		n.url = strings.TrimSpace(string(b))
	}
	if n.url == "" {
		bad("is required", "url")
		return
	}
	u, err := url.Parse(n.url)
	// Never quote the URL back: it may hold a token.
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("must be an http:// or https:// URL", "url")
	}
}

// pathErr keeps only the reason of a file error (the path is shown by the
// caller).
// ResolveFiles makes the notifiers' relative file paths (template_file,
// url_file, header_files, secret_key_file, refresh_token_file) relative to
// dir, the config file's directory, rather than to wherever the hub was
// started from: `check-config` and the hub then read the same files.
func (c *Config) ResolveFiles(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	for i := range c.Notifiers {
		n := &c.Notifiers[i]
		abs(&n.TemplateFile)
		abs(&n.URLFile)
		abs(&n.SecretKeyFile)
		abs(&n.RefreshTokenFile)
		for k, f := range n.HeaderFiles {
			abs(&f)
			n.HeaderFiles[k] = f
		}
	}
}

func pathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func (m Matcher) check() error {
	if m.Site == "" && m.Device == "" {
		return fmt.Errorf("needs a site or a device")
	}
	if m.Alert != "" && !knownAlert(m.Alert) {
		return fmt.Errorf("alert %q is not one of %s", m.Alert, strings.Join(alertNames, ", "))
	}
	if m.Site != "" && m.Site != HubSite && !idRE.MatchString(m.Site) {
		return fmt.Errorf("site %q is not a valid ID", m.Site)
	}
	if m.Device != "" && !idRE.MatchString(m.Device) {
		return fmt.Errorf("device %q is not a valid ID", m.Device)
	}
	return nil
}

func (m Matcher) matches(a *Alert) bool {
	return (m.Alert == "" || m.Alert == a.Name) && (m.Site == "" || m.Site == a.Site) && (m.Device == "" || m.Device == a.Device)
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

func (h *Hours) parse() error {
	if len(h.Days) == 0 {
		h.days = [7]bool{true, true, true, true, true, true, true}
	}
	for _, d := range h.Days {
		wd, ok := dayNames[strings.ToLower(d)]
		if !ok {
			return fmt.Errorf("days: %q is not one of mon, tue, wed, thu, fri, sat, sun", d)
		}
		h.days[wd] = true
	}
	var err error
	if h.from, err = clock(h.From); err != nil {
		return fmt.Errorf("from: %w", err)
	}
	if h.to, err = clock(h.To); err != nil {
		return fmt.Errorf("to: %w", err)
	}
	if h.from == h.to {
		return fmt.Errorf("from and to are equal")
	}
	return nil
}

func clock(s string) (int, error) {
	if s == "24:00" {
		return 24 * 60, nil
	}
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a time like 06:30", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// window returns the window of h that contains t, if any.
func (h *Hours) window(t time.Time) (start, end time.Time, ok bool) {
	// A window starting yesterday may span midnight into today.
	for back := 1; back >= 0; back-- {
		d := t.AddDate(0, 0, -back)
		day := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, t.Location())
		if !h.days[day.Weekday()] {
			continue
		}
		s := day.Add(time.Duration(h.from) * time.Minute)
		e := day.Add(time.Duration(h.to) * time.Minute)
		if h.to < h.from {
			e = e.AddDate(0, 0, 1)
		}
		if !t.Before(s) && t.Before(e) {
			return s, e, true
		}
	}
	return time.Time{}, time.Time{}, false
}

// openTime is how much of [from, to) falls inside the windows, stopping
// early once it reaches limit. With no windows all time counts.
func openTime(hours []Hours, from, to time.Time, loc *time.Location, limit time.Duration) time.Duration {
	if len(hours) == 0 {
		return to.Sub(from)
	}
	if !to.After(from) {
		return 0
	}
	// Walk back from `to` a day at a time, adding each window's overlap.
	var total time.Duration
	to = to.In(loc)
	day := time.Date(to.Year(), to.Month(), to.Day(), 0, 0, 0, 0, loc).AddDate(0, 0, 1)
	for day.After(from.AddDate(0, 0, -2)) {
		for i := range hours {
			h := &hours[i]
			if !h.days[day.Weekday()] {
				continue
			}
			s := day.Add(time.Duration(h.from) * time.Minute)
			e := day.Add(time.Duration(h.to) * time.Minute)
			if h.to < h.from {
				e = e.AddDate(0, 0, 1)
			}
			if s.Before(from) {
				s = from
			}
			if e.After(to) {
				e = to
			}
			if e.After(s) {
				total += e.Sub(s)
			}
		}
		if total >= limit {
			return total
		}
		day = day.AddDate(0, 0, -1)
	}
	return total
}
