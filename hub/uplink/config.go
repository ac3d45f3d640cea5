// Package uplink sends a hub's metrics to central engines with the
// Prometheus remote-write protocol (any receiver: Prometheus with
// --web.enable-remote-write-receiver, VictoriaMetrics, Mimir, Thanos
// Receive), storing them on disk while the WAN is down and forwarding them,
// oldest first and with their original timestamps, when it returns.
//
// Every interval the hub's own registry (the families /metrics serves) is
// gathered once, labelled with the hub's place (province, district,
// commune, village) and hub ID, encoded as one remote-write request and
// appended to one on-disk queue per remote_write entry. A sender per queue
// pushes queued requests in order, merging a backlog into larger requests,
// at a bounded byte rate. docs/province.md describes the whole province
// set-up.
package uplink

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
)

// Duration is a YAML duration ("15s", "1m"), the same type the hub's
// config uses.
type Duration = model.Duration

// PlaceLabels are the label names a place adds to every uplinked series,
// plus "hub".
var PlaceLabels = []string{"province", "district", "commune", "village"}

// Place is where the hub sits (config key `place`). The IDs become labels
// on everything sent up; Names are the display names with diacritics
// (e.g. village: "Thôn Tân Ngữ 2"), sent only in villagehub_place_info.
type Place struct {
	Province string            `yaml:"province"`
	District string            `yaml:"district"`
	Commune  string            `yaml:"commune"`
	Village  string            `yaml:"village"`
	Lat      *float64          `yaml:"lat"`
	Lon      *float64          `yaml:"lon"`
	Names    map[string]string `yaml:"names"`
}

// IDs returns province, district, commune and village in that order.
func (p Place) IDs() []string { return []string{p.Province, p.District, p.Commune, p.Village} }

// Set reports whether any part of the place is configured.
func (p Place) Set() bool {
	return p.Province != "" || p.District != "" || p.Commune != "" || p.Village != "" || p.Lat != nil || p.Lon != nil || len(p.Names) > 0
}

// Config is the `uplink` section.
type Config struct {
	// Interval between two gathers of the hub's metrics (default 15s). Each
	// gather is one sample per series at the gather time.
	Interval Duration `yaml:"interval"`
	// RemoteWrite lists the receivers; each has its own disk queue.
	RemoteWrite []RemoteWrite `yaml:"remote_write"`
	// Exclude lists metric-name regular expressions (anchored: the whole
	// name must match) of series not sent up. Nil means DefaultExclude:
	// the Go runtime, process and promhttp families and histogram
	// buckets, which the central rules and dashboards do not use and which
	// were about half of every request. An empty list sends everything.
	Exclude []string `yaml:"exclude"`
	// BacklogAlertAge: when the oldest sample queued for a receiver is
	// older than this, the hub's own HubDegraded alert fires (check
	// "uplink", reason "uplink_backlog"), so a stuck uplink is noticed in
	// the village too. Default DefaultBacklogAlertAge; "0s" turns it off.
	BacklogAlertAge *Duration `yaml:"backlog_alert_age"`
}

// DefaultExclude is what `uplink.exclude` drops when the file says nothing.
var DefaultExclude = []string{`go_.*`, `process_.*`, `promhttp_.*`, `.*_bucket`}

// excludeRe compiles the exclude list into one anchored expression (nil
// when nothing is excluded). Validate has checked each part.
func excludeRe(list []string) (*regexp.Regexp, error) {
	if len(list) == 0 {
		return nil, nil
	}
	parts := make([]string, len(list))
	for i, e := range list {
		if _, err := regexp.Compile(e); err != nil {
			return nil, err
		}
		parts[i] = "(?:" + e + ")"
	}
	return regexp.Compile("^(?:" + strings.Join(parts, "|") + ")$")
}

// RemoteWrite is one receiver.
type RemoteWrite struct {
	// Name tells the queues apart in metrics (label "remote") and on disk
	// (default: the URL's host name). Never a URL.
	Name string `yaml:"name"`
	// URL of the receiver's write endpoint, e.g.
	// http://prometheus:9090/api/v1/write or http://vm:8428/api/v1/write.
	URL string `yaml:"url"`
	// BearerTokenFile holds a token sent as "Authorization: Bearer"; read on
	// every request, so it can be rotated without a restart.
	BearerTokenFile string `yaml:"bearer_token_file"`
	// BasicAuth: username and password_file (or password).
	BasicAuth *BasicAuth `yaml:"basic_auth"`
	// CAFile verifies an https receiver signed by a private CA.
	CAFile string `yaml:"ca_file"`
	// MaxBytes bounds the queue on disk (default 256 MiB, about 5 days of
	// a 10-camera village at the default interval). When full the oldest
	// requests are dropped and counted.
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxBytesPerSecond bounds the upload rate, so a village returning from
	// a long cut does not fill its own 4G link catching up (default 32768,
	// 256 kbit/s; 0 keeps the default, -1 means unlimited).
	MaxBytesPerSecond int64 `yaml:"max_bytes_per_second"`
	// MaxSamplesPerSend bounds one request while catching up (default 20000).
	MaxSamplesPerSend int `yaml:"max_samples_per_send"`
	// BatchSendDeadline is how long gathers may wait on disk to go up
	// together in one request (each series' labels once, its samples
	// after): the 4G data volume against how fresh the centre is. 0 sends
	// each gather at once. Default DefaultBatchSendDeadline.
	BatchSendDeadline *Duration `yaml:"batch_send_deadline"`
	// Timeout bounds one request (default 30s).
	Timeout Duration `yaml:"timeout"`
	// MinBackoff and MaxBackoff bound the wait between failed attempts
	// (defaults 1s and 1m).
	MinBackoff Duration `yaml:"min_backoff"`
	MaxBackoff Duration `yaml:"max_backoff"`
	// Dir is the queue directory (default <data_dir>/uplink/<name>).
	Dir string `yaml:"dir"`
}

// BasicAuth is HTTP basic authentication. The password is a secret: it
// never appears in logs, metrics or errors.
type BasicAuth struct {
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// Defaults.
const (
	DefaultInterval          = 15 * time.Second
	DefaultMaxBytes          = 256 << 20
	DefaultMaxBytesPerSecond = 32 << 10
	DefaultMaxSamplesPerSend = 20000
	DefaultBatchSendDeadline = 5 * time.Minute
	DefaultBacklogAlertAge   = 10 * time.Minute
	DefaultTimeout           = 30 * time.Second
	DefaultMinBackoff        = time.Second
	DefaultMaxBackoff        = time.Minute
)

// Problem is one thing wrong with `place` or `uplink`. Path is the key
// inside that section, e.g. {"remote_write", 0, "url"}.
type Problem struct {
	Path []any
	Msg  string
}

var idRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ApplyDefaults fills in what the file leaves out; dataDir is the hub's
// data directory.
func (c *Config) ApplyDefaults(dataDir string) {
	if c.Interval == 0 {
		c.Interval = Duration(DefaultInterval)
	}
	if c.Exclude == nil {
		c.Exclude = append([]string(nil), DefaultExclude...)
	}
	if c.BacklogAlertAge == nil {
		d := Duration(DefaultBacklogAlertAge)
		c.BacklogAlertAge = &d
	}
	for i := range c.RemoteWrite {
		r := &c.RemoteWrite[i]
		if r.Name == "" {
			if u, err := url.Parse(r.URL); err == nil && u.Hostname() != "" {
				r.Name = sanitizeName(u.Hostname())
			} else {
				r.Name = fmt.Sprintf("remote-%d", i)
			}
		}
		if r.MaxBytes == 0 {
			r.MaxBytes = DefaultMaxBytes
		}
		if r.MaxBytesPerSecond == 0 {
			r.MaxBytesPerSecond = DefaultMaxBytesPerSecond
		}
		if r.MaxSamplesPerSend == 0 {
			r.MaxSamplesPerSend = DefaultMaxSamplesPerSend
		}
		if r.Timeout == 0 {
			r.Timeout = Duration(DefaultTimeout)
		}
		if r.BatchSendDeadline == nil {
			d := Duration(DefaultBatchSendDeadline)
			r.BatchSendDeadline = &d
		}
		if r.MinBackoff == 0 {
			r.MinBackoff = Duration(DefaultMinBackoff)
		}
		if r.MaxBackoff == 0 {
			r.MaxBackoff = Duration(DefaultMaxBackoff)
		}
		if r.Dir == "" && dataDir != "" {
			r.Dir = dataDir + "/uplink/" + r.Name
		}
	}
}

// sanitizeName turns a host name into a queue name: lower case, [a-z0-9_-].
func sanitizeName(h string) string {
	b := []byte(strings.ToLower(h))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	s := strings.TrimLeft(string(b), "-_")
	if len(s) > 64 {
		s = s[:64]
	}
	if s == "" {
		s = "remote"
	}
	return s
}

// ValidatePlace checks `place`. required is true when an uplink is
// configured: then every ID must be set, or series from different villages
// could not be told apart.
func ValidatePlace(p Place, required bool) []Problem {
	var out []Problem
	bad := func(msg string, path ...any) { out = append(out, Problem{Path: path, Msg: msg}) }
	for i, id := range p.IDs() {
		key := PlaceLabels[i]
		switch {
		case id == "" && required:
			bad("is required when uplink.remote_write is set (it labels every series sent up)", key)
		case id != "" && !idRe.MatchString(id):
			bad(fmt.Sprintf("%q must match %s (an ID; put the display name under place.names)", id, idRe), key)
		}
	}
	if p.Lat != nil && (math.IsNaN(*p.Lat) || *p.Lat < -90 || *p.Lat > 90) {
		bad("must be a latitude between -90 and 90", "lat")
	}
	if p.Lon != nil && (math.IsNaN(*p.Lon) || *p.Lon < -180 || *p.Lon > 180) {
		bad("must be a longitude between -180 and 180", "lon")
	}
	if (p.Lat == nil) != (p.Lon == nil) {
		bad("lat and lon go together", "lat")
	}
	for k, v := range p.Names {
		ok := false
		for _, l := range PlaceLabels {
			ok = ok || k == l
		}
		if !ok {
			bad("unknown name (use province, district, commune or village)", "names", k)
		}
		if !utf8.ValidString(v) || len(v) > 200 || strings.ContainsAny(v, "\n\r") {
			bad("must be one line of valid UTF-8, at most 200 bytes", "names", k)
		}
	}
	return out
}

// Validate fills in defaults (see ApplyDefaults) and checks `uplink`.
func (c *Config) Validate(dataDir string) []Problem {
	c.ApplyDefaults(dataDir)
	var out []Problem
	bad := func(msg string, path ...any) { out = append(out, Problem{Path: path, Msg: msg}) }
	if time.Duration(c.Interval) < time.Second || time.Duration(c.Interval) > time.Hour {
		bad("must be between 1s and 1h", "interval")
	}
	for i, e := range c.Exclude {
		if _, err := regexp.Compile(e); err != nil {
			bad(fmt.Sprintf("not a regular expression: %v", err), "exclude", i)
		}
	}
	if c.BacklogAlertAge != nil && *c.BacklogAlertAge < 0 {
		bad("must be 0s (off) or more", "backlog_alert_age")
	}
	names := map[string]bool{}
	for i, r := range c.RemoteWrite {
		p := func(k string) []any { return []any{"remote_write", i, k} }
		u, err := url.Parse(r.URL)
		switch {
		case r.URL == "":
			bad("is required", p("url")...)
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			// The URL is not echoed: it may hold credentials.
			bad("must be an http:// or https:// URL", p("url")...)
		case u.User != nil:
			bad("must not hold credentials; use basic_auth with password_file", p("url")...)
		}
		if !idRe.MatchString(r.Name) {
			bad(fmt.Sprintf("%q must match %s", r.Name, idRe), p("name")...)
		} else if names[r.Name] {
			bad(fmt.Sprintf("%q is used twice (set name to tell the queues apart)", r.Name), p("name")...)
		}
		names[r.Name] = true
		if r.BasicAuth != nil {
			if r.BasicAuth.Username == "" {
				bad("is required", "remote_write", i, "basic_auth", "username")
			}
			if r.BasicAuth.Password != "" && r.BasicAuth.PasswordFile != "" {
				bad("set password or password_file, not both", "remote_write", i, "basic_auth", "password_file")
			}
			if r.BearerTokenFile != "" {
				bad("set basic_auth or bearer_token_file, not both", p("bearer_token_file")...)
			}
		}
		if r.MaxBytes < 1<<20 {
			bad("must be at least 1048576 (1 MiB)", p("max_bytes")...)
		}
		if r.MaxBytesPerSecond < -1 || (r.MaxBytesPerSecond > 0 && r.MaxBytesPerSecond < 1024) {
			bad("must be -1 (unlimited) or at least 1024", p("max_bytes_per_second")...)
		}
		if r.MaxSamplesPerSend < 100 || r.MaxSamplesPerSend > 1000000 {
			bad("must be between 100 and 1000000", p("max_samples_per_send")...)
		}
		if r.BatchSendDeadline != nil && (*r.BatchSendDeadline < 0 || time.Duration(*r.BatchSendDeadline) > time.Hour) {
			bad("must be between 0s and 1h", p("batch_send_deadline")...)
		}
		if r.Timeout < Duration(100*time.Millisecond) {
			bad("must be at least 100ms", p("timeout")...)
		}
		if r.MinBackoff < Duration(10*time.Millisecond) || r.MaxBackoff < r.MinBackoff {
			bad("min_backoff must be at least 10ms and at most max_backoff", p("min_backoff")...)
		}
		if r.Dir == "" {
			bad("is required (no data_dir)", p("dir")...)
		}
	}
	return out
}
