// Package config loads and validates the hub's YAML configuration, applies
// environment overrides, and reports every problem with the file, line and
// key it is about.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"villagehub/hub/alert"
	"villagehub/hub/auth"
	"villagehub/hub/event"
	"villagehub/hub/gateway"
	"villagehub/hub/ingest"
	"villagehub/hub/uplink"
)

// GatewayLink is the gateway: block with the hub's place: when
// gateway.place is not set, the link uses the hub-wide place: block
// (docs/gateway.md).
func (c *Config) GatewayLink() gateway.LinkConfig {
	return c.Gateway.WithHubPlace(gateway.Place{Province: c.Place.Province, District: c.Place.District,
		Commune: c.Place.Commune, Village: c.Place.Village, Names: c.Place.Names})
}

// Duration is a YAML duration that also takes days and weeks ("30d").
type Duration = model.Duration

// Config is the whole hub configuration. Keys fixed by the contract are
// http, broker, mqtt, data_dir, influx, sites, cameras, qr_boards.
type Config struct {
	// HubID names this hub in <prefix>/_hub/<hub_id>/status and in its MQTT
	// client ID.
	HubID    string `yaml:"hub_id"`
	DataDir  string `yaml:"data_dir"`
	Timezone string `yaml:"timezone"`
	// TopicPrefix is the first level of every device topic.
	TopicPrefix string `yaml:"topic_prefix"`
	// ShutdownTimeout bounds a clean stop (SIGTERM): stop taking messages,
	// finish and acknowledge those in hand, flush the store and spool,
	// publish offline, exit (default 10s).
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`

	HTTP   HTTP   `yaml:"http"`
	Broker Broker `yaml:"broker"`
	MQTT   MQTT   `yaml:"mqtt"`
	Influx Influx `yaml:"influx"`
	Store  Store  `yaml:"store"`
	Limits Limits `yaml:"limits"`
	Log    Log    `yaml:"log"`
	Probe  Probe  `yaml:"probe"`
	QR     QR     `yaml:"qr"`
	// Alerts: rules, notifiers and silences (see docs/alerting.md).
	Alerts alert.Config `yaml:"alerts"`
	// Debug: pprof serves /debug/pprof/ to administrators (off by
	// default: profiles show the command line and load the CPU).
	Debug struct {
		Pprof bool `yaml:"pprof"`
	} `yaml:"debug"`
	// Place and Uplink: where the hub sits and where its metrics are pushed
	// (see docs/province.md).
	Place  uplink.Place  `yaml:"place"`
	Uplink uplink.Config `yaml:"uplink"`
	// Gateway: the province's QR gateway this hub feeds (docs/gateway.md).
	Gateway gateway.LinkConfig `yaml:"gateway"`

	Sites   []Site   `yaml:"sites"`
	Cameras []Camera `yaml:"cameras"`
	Boards  []Board  `yaml:"qr_boards"`
	// Frigate instances whose own MQTT topics the hub reads (docs/frigate.md).
	Frigate []Frigate `yaml:"frigate"`

	// Set by Load, not by the file.
	Path     string         `yaml:"-"`
	Location *time.Location `yaml:"-"`
	root     *yaml.Node
}

type HTTP struct {
	Addr string `yaml:"addr"`
	// TLS, if set, serves HTTPS (the certificate is reloaded on SIGHUP).
	TLS struct {
		CertFile string `yaml:"cert_file"`
		KeyFile  string `yaml:"key_file"`
	} `yaml:"tls"`
	// PublicURL is how phones reach the hub: printed QR codes encode
	// <public_url>/q/<board>.
	PublicURL string   `yaml:"public_url"`
	Auth      HTTPAuth `yaml:"auth"`
}

// HTTPAuth says who may view the dashboard and API and who may change
// things (silences, reloads). /q/, /qr/, /healthz and /readyz are public.
type HTTPAuth struct {
	// Users log in at /login (or use basic auth). Make a password_hash with
	// "villagehub hash-password".
	Users []HTTPUser `yaml:"users"`
	// Tokens are API bearer tokens; "villagehub token" makes one and the
	// token_sha256 to put here.
	Tokens []HTTPToken `yaml:"tokens"`
	// Anonymous is what a visitor without credentials may do: none, viewer
	// (default) or admin.
	Anonymous string `yaml:"anonymous"`
	// LoopbackAdmin lets anonymous requests from the hub's own machine
	// administer. Default: true while no user or token is configured.
	LoopbackAdmin *bool `yaml:"loopback_admin"`
	// UsersFile holds users made by `villagehub user add` (default
	// <data_dir>/http-users.yaml; relative to data_dir).
	UsersFile string `yaml:"users_file"`
	// Metrics, if it lists tokens or users, guards /metrics with them
	// (Prometheus' authorization / basic_auth scrape settings).
	Metrics struct {
		Tokens []HTTPToken `yaml:"tokens"`
		Users  []HTTPUser  `yaml:"users"`
	} `yaml:"metrics"`
	SessionTTL Duration `yaml:"session_ttl"`
}

type HTTPUser struct {
	Name         string `yaml:"name"`
	PasswordHash string `yaml:"password_hash"`
	Role         string `yaml:"role"` // viewer or admin
}

type HTTPToken struct {
	Name        string `yaml:"name"`
	TokenSHA256 string `yaml:"token_sha256"`
	Role        string `yaml:"role"`
}

// Broker is the embedded MQTT broker, used when mqtt.url is empty.
type Broker struct {
	Addr string `yaml:"addr"`
	// TLSAddr, if set, also serves MQTT over TLS there (e.g. 0.0.0.0:8883),
	// and WSSAddr MQTT over secure WebSocket, both with TLS.CertFile/KeyFile.
	TLSAddr string `yaml:"tls_addr"`
	WSSAddr string `yaml:"wss_addr"`
	TLS     struct {
		CertFile string `yaml:"cert_file"`
		KeyFile  string `yaml:"key_file"`
	} `yaml:"tls"`
	// Device identity, ACL and limits (docs/security.md).
	auth.Config `yaml:",inline"`
}

// MQTT is an external broker. Setting URL turns the embedded broker off.
type MQTT struct {
	URL          string   `yaml:"url"`
	Username     string   `yaml:"username"`
	Password     string   `yaml:"password"`
	PasswordFile string   `yaml:"password_file"`
	ClientID     string   `yaml:"client_id"`
	CAFile       string   `yaml:"ca_file"`
	CertFile     string   `yaml:"cert_file"`
	KeyFile      string   `yaml:"key_file"`
	Insecure     bool     `yaml:"insecure_skip_verify"`
	KeepAlive    Duration `yaml:"keepalive"`
}

// Influx is the optional InfluxDB output. An empty URL means history stays
// in the embedded store only.
type Influx struct {
	URL           string   `yaml:"url"`
	Token         string   `yaml:"token"`
	TokenFile     string   `yaml:"token_file"`
	Org           string   `yaml:"org"`
	Bucket        string   `yaml:"bucket"`
	BatchSize     int      `yaml:"batch_size"`
	FlushInterval Duration `yaml:"flush_interval"`
	Gzip          bool     `yaml:"gzip"`
	SpoolMaxBytes int64    `yaml:"spool_max_bytes"`
	// OutboxMaxBytes bounds the points committed but not yet in the spool
	// (default 64 MiB); past it the hub stops acknowledging messages.
	OutboxMaxBytes int64 `yaml:"outbox_max_bytes"`
	// SpoolDir holds the spool (default <data_dir>/influx-spool).
	SpoolDir         string   `yaml:"spool_dir"`
	Timeout          Duration `yaml:"timeout"`
	MaxRetryInterval Duration `yaml:"max_retry_interval"`
	TLS              TLS      `yaml:"tls"`
}

type TLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	Insecure bool   `yaml:"insecure_skip_verify"`
}

// Store is the embedded store's retention.
type Store struct {
	EventRetention  Duration `yaml:"event_retention"`
	QRHourRetention Duration `yaml:"qr_hourly_retention"`
}

// Limits protect the hub from misbehaving devices.
type Limits struct {
	MaxPayloadBytes int      `yaml:"max_payload_bytes"`
	MaxFuture       Duration `yaml:"max_future"`
	// QR report bounds (docs/qr.md): the most scans one report may add,
	// the most one board may add in an hour, and how old a report's ts
	// may be; past them it is rejected (implausible, stale_ts).
	MaxQRPerReport int64    `yaml:"max_qr_per_report"`
	MaxQRPerHour   int64    `yaml:"max_qr_per_hour"`
	MaxPast        Duration `yaml:"max_past"`
	MaxAutoCameras int      `yaml:"max_auto_cameras"`
	MaxAutoBoards  int      `yaml:"max_auto_boards"`
	QueueSize      int      `yaml:"queue_size"`
	BatchSize      int      `yaml:"batch_size"`
}

type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"` // text or json
}

// QR configures how scans of printed codes (/q/<board>) are counted.
type QR struct {
	// UniqueWindow: a phone scanning the same board again within it counts
	// as a scan but not as a unique scan (default 30s).
	UniqueWindow Duration `yaml:"unique_window"`
	// TrustedProxies (IPs or CIDRs) whose X-Forwarded-For is believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Per client: RatePerSecond scans with bursts of RateBurst (defaults
	// 0.5/s, 20); past it visits count as rate_limited, not as scans.
	RatePerSecond float64 `yaml:"rate_per_second"`
	RateBurst     int     `yaml:"rate_burst"`
	// MaxClients bounds the phones remembered (default 65536).
	MaxClients int `yaml:"max_clients"`
	// BotAgents are extra User-Agent substrings that mark link previewers.
	BotAgents []string `yaml:"bot_agents"`
}

// Probe configures RTSP stream probing of every camera with an rtsp_url.
type Probe struct {
	// Enabled turns probing off when false (default on).
	Enabled *bool `yaml:"enabled"`
	// Workers is the number of probe worker processes (default 0: one per
	// 64 cameras, probe.CamerasPerWorker);
	// Concurrency caps probes in flight (default 0: 64, or one per 8 cameras
	// past 512, probe.CamerasPerSlot); RecycleAfter replaces
	// a worker after that many probes (default 1000).
	Workers      int `yaml:"workers"`
	Concurrency  int `yaml:"concurrency"`
	RecycleAfter int `yaml:"recycle_after"`
	// Defaults for every camera; a camera's probe: block overrides them.
	ProbeSettings `yaml:",inline"`
}

// ProbeSettings are the per-camera probe settings.
type ProbeSettings struct {
	// Mode: auto (sample every sample_interval, handshake every interval in
	// between), handshake, or sample.
	Mode            string   `yaml:"mode"`
	Interval        Duration `yaml:"interval"`
	SampleInterval  Duration `yaml:"sample_interval"`
	Timeout         Duration `yaml:"timeout"`
	SampleWindow    Duration `yaml:"sample_window"`
	MaxSampleWindow Duration `yaml:"max_sample_window"`
	NoVideoTimeout  Duration `yaml:"no_video_timeout"`
}

// Or fills the settings p leaves unset from d (a camera's from the
// probe: section).
func (p ProbeSettings) Or(d ProbeSettings) ProbeSettings {
	if p.Mode == "" {
		p.Mode = d.Mode
	}
	for _, f := range []struct{ v, d *Duration }{
		{&p.Interval, &d.Interval}, {&p.SampleInterval, &d.SampleInterval}, {&p.Timeout, &d.Timeout},
		{&p.SampleWindow, &d.SampleWindow}, {&p.MaxSampleWindow, &d.MaxSampleWindow}, {&p.NoVideoTimeout, &d.NoVideoTimeout},
	} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	return p
}

// ProbeEnabled reports whether cameras are probed.
func (c *Config) ProbeEnabled() bool { return c.Probe.Enabled == nil || *c.Probe.Enabled }

type Site struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
}

type Camera struct {
	ID       string `yaml:"id"`
	Site     string `yaml:"site"`
	Name     string `yaml:"name"`
	Location string `yaml:"location"`
	// RTSPURL may carry user:password; Username/Password (or
	// PasswordFile) override them so the URL in the file can stay clean.
	RTSPURL      string `yaml:"rtsp_url"`
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// ExpectedFPS grades the stream (good at 90% of it); 0 takes the
	// stream's own announced frame rate.
	ExpectedFPS float64       `yaml:"expected_fps"`
	Probe       ProbeSettings `yaml:"probe"`
	// ONVIF, when set, reads the camera's motion from its ONVIF events
	// (docs/onvif.md).
	ONVIF *CameraONVIF `yaml:"onvif"`
}

// CameraONVIF is a camera's ONVIF device service. Username and password
// default to the camera's own (one account on most cameras).
type CameraONVIF struct {
	URL          string `yaml:"url"` // e.g. http://10.0.0.5/onvif/device_service
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

type Board struct {
	ID        string `yaml:"id"`
	Site      string `yaml:"site"`
	Name      string `yaml:"name"`
	Location  string `yaml:"location"`
	TargetURL string `yaml:"target_url"`
}

// Defaults from the contract.
const (
	DefaultHTTPAddr   = "127.0.0.1:8080"
	DefaultBrokerAddr = "127.0.0.1:1883"
	DefaultDataDir    = "./data"
	DefaultTimezone   = "Asia/Ho_Chi_Minh"
	DefaultHubID      = "villagehub"
)

// Default returns a configuration with every default filled in and no
// devices.
func Default() *Config {
	c := &Config{}
	c.applyDefaults()
	return c
}

// applyDefaults fills in every unset value; each section's defaults sit
// with its type.
func (c *Config) applyDefaults() {
	def(&c.HubID, DefaultHubID)
	def(&c.DataDir, DefaultDataDir)
	def(&c.Timezone, DefaultTimezone)
	def(&c.TopicPrefix, ingest.DefaultPrefix)
	defDur(&c.ShutdownTimeout, 10*time.Second)
	c.HTTP.setDefaults()
	c.Broker.setDefaults()
	c.MQTT.setDefaults(c.HubID)
	c.Influx.setDefaults()
	c.Store.setDefaults()
	c.Limits.setDefaults()
	c.Log.setDefaults()
}

func (h *HTTP) setDefaults() { def(&h.Addr, DefaultHTTPAddr) }

func (b *Broker) setDefaults() {
	def(&b.Addr, DefaultBrokerAddr)
	b.Config.SetDefaults()
}

func (m *MQTT) setDefaults(hubID string) {
	def(&m.ClientID, "villagehub-"+hubID)
	defDur(&m.KeepAlive, 30*time.Second)
}

func (in *Influx) setDefaults() {
	def(&in.Bucket, "village/autogen")
	defNum(&in.BatchSize, 5000)
	defDur(&in.FlushInterval, time.Second)
	defDur(&in.Timeout, 10*time.Second)
	defNum(&in.SpoolMaxBytes, 1<<30)
}

func (s *Store) setDefaults() {
	defDur(&s.EventRetention, 30*24*time.Hour)
	defDur(&s.QRHourRetention, 400*24*time.Hour)
}

// Limits' defaults are the contract's: 4 KiB payloads, 24 h into the
// future, 10,000 auto-registered devices per kind.
func (l *Limits) setDefaults() {
	defNum(&l.MaxPayloadBytes, 4096)
	defDur(&l.MaxFuture, 24*time.Hour)
	defNum(&l.MaxAutoCameras, 10000)
	defNum(&l.MaxAutoBoards, 10000)
	defNum(&l.QueueSize, 10000)
	defNum(&l.BatchSize, 2048)
}

func (l *Log) setDefaults() {
	def(&l.Level, "info")
	def(&l.Format, "text")
}

func def(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

func defNum[T int | int64](n *T, v T) {
	if *n == 0 {
		*n = v
	}
}

func defDur(d *Duration, v time.Duration) {
	if *d == 0 {
		*d = Duration(v)
	}
}

// Problem is one thing wrong with a config file.
type Problem struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc += ":" + strconv.Itoa(p.Line)
	}
	if p.Key != "" {
		return fmt.Sprintf("%s: %s: %s", loc, p.Key, p.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, p.Msg)
}

// Error lists every problem found in a config file.
type Error struct{ Problems []Problem }

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads, decodes and validates a config file, then applies the
// environment overrides. An empty path gives the defaults (plus
// environment).
func Load(path string, getenv func(string) string) (*Config, error) {
	return load(path, getenv, false)
}

// LoadMissingFilesOK is Load for commands that make the files a config
// names (`villagehub cert --config`): a named file that does not exist yet
// is not a problem.
func LoadMissingFilesOK(path string, getenv func(string) string) (*Config, error) {
	return load(path, getenv, true)
}

func load(path string, getenv func(string) string, missingOK bool) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := &Config{}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
		}
		var decoded []Problem
		if c, decoded, err = parse(path, data); err != nil {
			return nil, err
		}
		if decoded != nil {
			// Report the values too, in the same pass: a file with several
			// problems shows all of them (issue 17, item 7).
			return nil, c.withValueProblems(decoded, getenv)
		}
	}
	c.Path = path
	if err := c.ApplyEnv(getenv); err != nil {
		return nil, err
	}
	if err := c.validate(missingOK); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse decodes a config file without environment overrides or validation.
// Unknown keys are errors.
func Parse(path string, data []byte) (*Config, error) {
	c, decoded, err := parse(path, data)
	if err != nil {
		return nil, err
	}
	if decoded != nil {
		return nil, &Error{decoded}
	}
	return c, nil
}

// parse decodes data. err is for a file that could not be decoded at all
// (YAML syntax); decoded lists the values that could not be decoded, and
// then c is what the rest of the file decoded to (a bad value left at its
// zero value), so the caller can still check the other values.
func parse(path string, data []byte) (c *Config, decoded []Problem, err error) {
	c = &Config{Path: path}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, nil, &Error{[]Problem{misindented(yamlProblem(path, err), data)}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			// yaml.v3 goes on decoding after a type error: c holds the rest.
			for _, m := range te.Errors {
				decoded = append(decoded, withKey(&root, yamlProblem(path, errors.New(m))))
			}
		} else if ps, partial := valueProblems(path, &root, err); ps != nil {
			decoded, c = ps, partial
		} else {
			return nil, nil, &Error{[]Problem{yamlProblem(path, err)}}
		}
	}
	if c == nil {
		return nil, nil, &Error{decoded}
	}
	c.root = &root
	c.Path = path
	return c, decoded, nil
}

// misindented improves yaml.v3's "did not find expected key", which names
// the line where the block began rather than the line that broke it: the
// first later line indented less than the block but more than the block's
// parent is the one out of line.
func misindented(p Problem, data []byte) Problem {
	if p.Line <= 0 || !strings.Contains(p.Msg, "did not find expected key") {
		return p
	}
	lines := strings.Split(string(data), "\n")
	if p.Line > len(lines) {
		return p
	}
	indent := func(l string) (int, bool) {
		t := strings.TrimLeft(l, " ")
		if t == "" || strings.HasPrefix(t, "#") {
			return 0, false
		}
		return len(l) - len(t), true
	}
	block, ok := indent(lines[p.Line-1])
	if !ok {
		return p
	}
	parent := -1
	for i := p.Line - 2; i >= 0; i-- {
		if n, ok := indent(lines[i]); ok && n < block {
			parent = n
			break
		}
	}
	for i := p.Line; i < len(lines); i++ {
		n, ok := indent(lines[i])
		if !ok || n >= block {
			continue
		}
		if n > parent {
			p.Line = i + 1
			p.Msg = fmt.Sprintf("this line is indented by %d: line up keys of one mapping in the same column (%d here, or %d for a key of the level above)", n, block, max(parent, 0))
		}
		break
	}
	return p
}

// withValueProblems adds the problems Validate finds in c (decoded from a
// file with the decoding problems decoded) to them, leaving out those on
// a line already reported (the bad value was left at zero, which the
// checks would report again in other words).
func (c *Config) withValueProblems(decoded []Problem, getenv func(string) string) error {
	all := append([]Problem(nil), decoded...)
	lines := map[int]bool{}
	for _, p := range decoded {
		lines[p.Line] = true
	}
	_ = c.ApplyEnv(getenv)
	var e *Error
	if err := c.Validate(); errors.As(err, &e) {
		for _, p := range e.Problems {
			if p.Line == 0 || !lines[p.Line] {
				all = append(all, p)
			}
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Line < all[j].Line })
	return &Error{all}
}

// withKey fills in the key path of a problem that names only its line
// (yaml.v3's type errors: "cannot unmarshal !!str `lots` into int").
func withKey(root *yaml.Node, p Problem) Problem {
	if p.Key == "" && p.Line > 0 {
		p.Key = keyAtLine(root, p.Line, "")
	}
	return p
}

// keyAtLine is the key path of the first scalar value on line, or "".
func keyAtLine(n *yaml.Node, line int, prefix string) string {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if k := keyAtLine(c, line, prefix); k != "" {
				return k
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if prefix != "" {
				key = prefix + "." + key
			}
			val := n.Content[i+1]
			if val.Kind == yaml.ScalarNode && val.Line == line {
				return key
			}
			if k := keyAtLine(val, line, key); k != "" {
				return k
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if c.Kind == yaml.ScalarNode && c.Line == line {
				return fmt.Sprintf("%s[%d]", prefix, i)
			}
			if k := keyAtLine(c, line, fmt.Sprintf("%s[%d]", prefix, i)); k != "" {
				return k
			}
		}
	}
	return ""
}

// valueProblems handles a value a field's own parser refused (a duration
// such as "30 sec" or "-5s"): such errors name the value but neither line
// nor key, and stop decoding at the first. It finds the value in the tree,
// reports it with its line and key, sets it to a neutral value and decodes
// again, so every bad value in the file is reported at once. nil when the
// error does not quote a value found in the file.
func valueProblems(path string, root *yaml.Node, err error) ([]Problem, *Config) {
	var ps []Problem
	for range 50 {
		var n *yaml.Node
		var key string
		for _, m := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(err.Error(), -1) {
			if n, key = findScalar(root, m[1], ""); n != nil {
				break
			}
		}
		if n == nil {
			if ps == nil {
				return nil, nil
			}
			return append(ps, yamlProblem(path, err)), nil
		}
		ps = append(ps, Problem{File: path, Line: n.Line, Key: key, Msg: strings.TrimPrefix(err.Error(), "yaml: ")})
		n.Value, n.Tag, n.Style = "0s", "!!str", 0
		probe := &Config{}
		err = root.Decode(probe)
		if err == nil {
			return ps, probe
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, msg := range te.Errors {
				ps = append(ps, withKey(root, yamlProblem(path, errors.New(msg))))
			}
			return ps, probe
		}
	}
	return ps, nil
}

// findScalar finds the first mapping value equal to v, with its key path.
func findScalar(n *yaml.Node, v, prefix string) (*yaml.Node, string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if f, k := findScalar(c, v, prefix); f != nil {
				return f, k
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if prefix != "" {
				key = prefix + "." + key
			}
			if val := n.Content[i+1]; val.Kind == yaml.ScalarNode && val.Value == v {
				return val, key
			} else if f, k := findScalar(val, v, key); f != nil {
				return f, k
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if f, k := findScalar(c, v, fmt.Sprintf("%s[%d]", prefix, i)); f != nil {
				return f, k
			}
		}
	}
	return nil, ""
}

// yamlProblem turns "yaml: line 12: field foo not found in type ..." into
// a Problem with its line and a message a person can act on.
func yamlProblem(path string, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	p := Problem{File: path, Msg: msg}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				p.Line, p.Msg = n, strings.TrimSpace(rest[i+1:])
			}
		}
	}
	if f, ok := strings.CutPrefix(p.Msg, "field "); ok {
		if i := strings.Index(f, " not found in type "); i > 0 {
			p.Key, p.Msg = f[:i], "unknown key (misspelt, or not valid here)"
		}
	}
	return p
}

// ApplyEnv applies the VILLAGEHUB_* environment overrides; each beats the
// file.
func (c *Config) ApplyEnv(getenv func(string) string) error {
	set := func(dst *string, name string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	set(&c.HTTP.Addr, "VILLAGEHUB_HTTP_ADDR")
	set(&c.Broker.Addr, "VILLAGEHUB_BROKER_ADDR")
	set(&c.MQTT.URL, "VILLAGEHUB_MQTT_URL")
	set(&c.MQTT.Username, "VILLAGEHUB_MQTT_USERNAME")
	set(&c.MQTT.Password, "VILLAGEHUB_MQTT_PASSWORD")
	set(&c.DataDir, "VILLAGEHUB_DATA_DIR")
	set(&c.Influx.URL, "VILLAGEHUB_INFLUX_URL")
	set(&c.Influx.Token, "VILLAGEHUB_INFLUX_TOKEN")
	set(&c.Influx.Org, "VILLAGEHUB_INFLUX_ORG")
	set(&c.Influx.Bucket, "VILLAGEHUB_INFLUX_BUCKET")
	set(&c.HTTP.PublicURL, "VILLAGEHUB_PUBLIC_URL")
	return nil
}

// UsersPath is the dashboard users file (http.auth.users_file).
func (c *Config) UsersPath() string {
	p := c.HTTP.Auth.UsersFile
	if p == "" {
		p = "http-users.yaml"
	}
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.DataDir, p)
}

// EmbeddedBroker reports whether the hub runs its own broker.
func (c *Config) EmbeddedBroker() bool { return c.MQTT.URL == "" }

// Validate fills in defaults and checks every value, collecting all
// problems rather than stopping at the first.
func (c *Config) Validate() error { return c.validate(false) }

func (c *Config) validate(missingFilesOK bool) error {
	c.applyDefaults()
	v := &validator{c: c, missingFilesOK: missingFilesOK}
	v.check()
	if len(v.problems) > 0 {
		return &Error{v.problems}
	}
	return nil
}

type validator struct {
	c        *Config
	problems []Problem
	// missingFilesOK: named files that do not exist yet are fine.
	missingFilesOK bool
}

// bad records a problem about the key at path (e.g. "cameras", 2, "site"),
// with the line of that key in the file when there is one.
func (v *validator) bad(msg string, path ...any) {
	key, line := v.c.locate(path...)
	v.problems = append(v.problems, Problem{File: v.c.fileName(), Line: line, Key: key, Msg: msg})
}

func (c *Config) fileName() string {
	if c.Path == "" {
		return "(no config file)"
	}
	return c.Path
}

// locate renders a key path as "cameras[2].site" and finds its line.
func (c *Config) locate(path ...any) (string, int) {
	var b strings.Builder
	n := c.root
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, p := range path {
		switch k := p.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
			n = mapValue(n, k, &line)
		case int:
			fmt.Fprintf(&b, "[%d]", k)
			if n != nil && n.Kind == yaml.SequenceNode && k < len(n.Content) {
				n = n.Content[k]
				line = n.Line
			} else {
				n = nil
			}
		}
	}
	return b.String(), line
}

func mapValue(n *yaml.Node, key string, line *int) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			*line = n.Content[i].Line
			return n.Content[i+1]
		}
	}
	return nil
}

// check validates every section; each has its own method below.
func (v *validator) check() {
	c := v.c
	v.top()
	v.http(&c.HTTP)
	if c.EmbeddedBroker() {
		v.broker(&c.Broker)
	} else {
		v.mqtt(&c.MQTT)
	}
	v.influx(&c.Influx)
	v.limits(&c.Limits)
	v.log(&c.Log)
	v.qr(&c.QR)
	if c.Path != "" {
		// Relative notifier files (template_file...) are next to the
		// config file, whatever the working directory.
		if dir, err := filepath.Abs(filepath.Dir(c.Path)); err == nil {
			c.Alerts.ResolveFiles(dir)
		}
	}
	for _, p := range c.Alerts.Validate() {
		v.bad(p.Msg, append([]any{"alerts"}, p.Path...)...)
	}
	for _, p := range uplink.ValidatePlace(c.Place, len(c.Uplink.RemoteWrite) > 0) {
		v.bad(p.Msg, append([]any{"place"}, p.Path...)...)
	}
	for _, p := range c.Uplink.Validate(c.DataDir) {
		v.bad(p.Msg, append([]any{"uplink"}, p.Path...)...)
	}
	for _, p := range c.GatewayLink().Validate() {
		v.bad(p.Msg, append([]any{"gateway"}, p.Path...)...)
	}
	v.probe(&c.Probe)
	v.devices()
}

// idRule is the message for an ID that event.ValidID refuses.
const idRule = "must match ^[a-z0-9][a-z0-9_-]{0,63}$"

// top checks the keys at the top level.
func (v *validator) top() {
	c := v.c
	if !event.ValidID(c.HubID) {
		v.bad(idRule, "hub_id")
	}
	if c.TopicPrefix == "" || strings.ContainsAny(c.TopicPrefix, "+#") || strings.HasPrefix(c.TopicPrefix, "/") || strings.HasSuffix(c.TopicPrefix, "/") {
		v.bad("must be a topic without wildcards or leading/trailing slash", "topic_prefix")
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		v.bad(fmt.Sprintf("unknown time zone %q (use an IANA name such as %s)", c.Timezone, DefaultTimezone), "timezone")
	} else {
		c.Location = loc
	}
	if c.DataDir == "" {
		v.bad("must not be empty", "data_dir")
	}
	if c.ShutdownTimeout < Duration(time.Second) {
		v.bad("must be at least 1s", "shutdown_timeout")
	}
}

func (v *validator) http(h *HTTP) {
	v.hostPort(h.Addr, "http", "addr")
	v.httpAuth(&h.Auth)
	if h.PublicURL != "" {
		v.url(h.PublicURL, []string{"http", "https"}, "http", "public_url")
	}
	if (h.TLS.CertFile == "") != (h.TLS.KeyFile == "") {
		v.bad("cert_file and key_file go together", "http", "tls", "cert_file")
	}
	v.file(h.TLS.CertFile, "http", "tls", "cert_file")
	v.file(h.TLS.KeyFile, "http", "tls", "key_file")
}

// broker checks the embedded broker (only when it runs).
func (v *validator) broker(b *Broker) {
	v.hostPort(b.Addr, "broker", "addr")
	for _, p := range b.Config.Problems() {
		v.bad(p.Msg, "broker", p.Key)
	}
	for _, k := range []struct{ key, addr string }{{"tls_addr", b.TLSAddr}, {"wss_addr", b.WSSAddr}} {
		if k.addr == "" {
			continue
		}
		v.hostPort(k.addr, "broker", k.key)
		if b.TLS.CertFile == "" || b.TLS.KeyFile == "" {
			v.bad("needs broker.tls.cert_file and key_file", "broker", k.key)
		}
	}
	v.file(b.TLS.CertFile, "broker", "tls", "cert_file")
	v.file(b.TLS.KeyFile, "broker", "tls", "key_file")
}

// mqtt checks the external broker (only when mqtt.url is set).
func (v *validator) mqtt(m *MQTT) {
	v.url(m.URL, []string{"tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss"}, "mqtt", "url")
	if m.Password != "" && m.PasswordFile != "" {
		v.bad("set password or password_file, not both", "mqtt", "password_file")
	}
	v.file(m.PasswordFile, "mqtt", "password_file")
	v.file(m.CAFile, "mqtt", "ca_file")
	v.file(m.CertFile, "mqtt", "cert_file")
	v.file(m.KeyFile, "mqtt", "key_file")
	if (m.CertFile == "") != (m.KeyFile == "") {
		v.bad("cert_file and key_file go together", "mqtt", "cert_file")
	}
	if m.ClientID == "" || len(m.ClientID) > 23*4 {
		v.bad("must be a non-empty client ID", "mqtt", "client_id")
	}
}

func (v *validator) influx(in *Influx) {
	if in.URL != "" {
		v.url(in.URL, []string{"http", "https"}, "influx", "url")
		if in.Bucket == "" {
			v.bad("is required with influx.url (for InfluxDB 1.8: database/retention-policy)", "influx", "bucket")
		}
		v.file(in.TokenFile, "influx", "token_file")
		v.file(in.TLS.CAFile, "influx", "tls", "ca_file")
		v.file(in.TLS.CertFile, "influx", "tls", "cert_file")
		v.file(in.TLS.KeyFile, "influx", "tls", "key_file")
	}
	if in.BatchSize < 1 || in.BatchSize > 100000 {
		v.bad(fmt.Sprintf("must be between 1 and 100000, got %d", in.BatchSize), "influx", "batch_size")
	}
	if in.SpoolMaxBytes < 1<<20 {
		v.bad("must be at least 1048576 (1 MiB)", "influx", "spool_max_bytes")
	}
}

func (v *validator) limits(lim *Limits) {
	v.intRange(lim.MaxPayloadBytes, 64, 1<<20, "limits", "max_payload_bytes")
	v.intRange(lim.MaxAutoCameras, 0, 1000000, "limits", "max_auto_cameras")
	v.intRange(lim.MaxAutoBoards, 0, 1000000, "limits", "max_auto_boards")
	v.intRange(lim.QueueSize, 16, 10000000, "limits", "queue_size")
	v.intRange(lim.BatchSize, 1, 100000, "limits", "batch_size")
	if lim.MaxFuture < Duration(time.Minute) {
		v.bad("must be at least 1m", "limits", "max_future")
	}
	// Zero means the default (hub/state); a negative bound is a mistake.
	if lim.MaxQRPerReport < 0 {
		v.bad("must be positive (0: the default, 10000)", "limits", "max_qr_per_report")
	}
	if lim.MaxQRPerHour < 0 {
		v.bad("must be positive (0: the default, 360000)", "limits", "max_qr_per_hour")
	}
	if lim.MaxPast < 0 || (lim.MaxPast > 0 && lim.MaxPast < Duration(time.Hour)) {
		v.bad("must be at least 1h (0: the default, 48h)", "limits", "max_past")
	}
}

func (v *validator) log(l *Log) {
	switch strings.ToLower(l.Level) {
	case "debug", "info", "warn", "error":
	default:
		v.bad("must be debug, info, warn or error", "log", "level")
	}
	switch l.Format {
	case "text", "json":
	default:
		v.bad("must be text or json", "log", "format")
	}
}

func (v *validator) qr(q *QR) {
	if q.RatePerSecond < 0 {
		v.bad("must not be negative", "qr", "rate_per_second")
	}
	v.intRange(q.RateBurst, 0, 100000, "qr", "rate_burst")
	v.intRange(q.MaxClients, 0, 10000000, "qr", "max_clients")
	for i, p := range q.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				v.bad(fmt.Sprintf("%q is not an IP address or CIDR prefix", p), "qr", "trusted_proxies", i)
			}
		}
	}
}

func (v *validator) probe(p *Probe) {
	v.probeSettings(p.ProbeSettings, "probe")
	v.intRange(p.Workers, 0, 64, "probe", "workers")
	v.intRange(p.Concurrency, 0, 10000, "probe", "concurrency")
	v.intRange(p.RecycleAfter, 0, 10000000, "probe", "recycle_after")
}

func (v *validator) httpAuth(a *HTTPAuth) {
	switch a.Anonymous {
	case "", "none", "viewer", "admin":
	default:
		v.bad(fmt.Sprintf("%q must be none, viewer or admin", a.Anonymous), "http", "auth", "anonymous")
	}
	users := func(list []HTTPUser, path ...any) {
		for i, u := range list {
			p := append(append([]any{}, path...), i)
			if u.Name == "" {
				v.bad("is required", append(p, "name")...)
			}
			if !strings.HasPrefix(u.PasswordHash, "$2") || len(u.PasswordHash) != 60 {
				v.bad("must be a bcrypt hash (make one with: villagehub hash-password)", append(p, "password_hash")...)
			}
			if u.Role != "viewer" && u.Role != "admin" && !(len(path) > 3 && u.Role == "") {
				v.bad(fmt.Sprintf("%q must be viewer or admin", u.Role), append(p, "role")...)
			}
		}
	}
	tokens := func(list []HTTPToken, path ...any) {
		for i, t := range list {
			p := append(append([]any{}, path...), i)
			if len(t.TokenSHA256) != 64 || strings.Trim(strings.ToLower(t.TokenSHA256), "0123456789abcdef") != "" {
				v.bad("must be the token's SHA-256 in hex (make one with: villagehub token)", append(p, "token_sha256")...)
			}
			if t.Role != "viewer" && t.Role != "admin" && !(len(path) > 3 && t.Role == "") {
				v.bad(fmt.Sprintf("%q must be viewer or admin", t.Role), append(p, "role")...)
			}
		}
	}
	users(a.Users, "http", "auth", "users")
	tokens(a.Tokens, "http", "auth", "tokens")
	users(a.Metrics.Users, "http", "auth", "metrics", "users")
	tokens(a.Metrics.Tokens, "http", "auth", "metrics", "tokens")
}

func (v *validator) probeSettings(p ProbeSettings, path ...any) {
	switch p.Mode {
	case "", "auto", "handshake", "sample":
	default:
		v.bad(fmt.Sprintf("%q must be auto, handshake or sample", p.Mode), append(path, "mode")...)
	}
	for _, d := range []struct {
		key string
		val Duration
		min time.Duration
	}{
		{"interval", p.Interval, time.Second}, {"sample_interval", p.SampleInterval, time.Second},
		{"timeout", p.Timeout, 100 * time.Millisecond}, {"sample_window", p.SampleWindow, 100 * time.Millisecond},
		{"max_sample_window", p.MaxSampleWindow, 100 * time.Millisecond}, {"no_video_timeout", p.NoVideoTimeout, 100 * time.Millisecond},
	} {
		if d.val != 0 && time.Duration(d.val) < d.min {
			v.bad(fmt.Sprintf("must be at least %v", d.min), append(path, d.key)...)
		}
	}
}

func (v *validator) devices() {
	defer v.frigate()
	c := v.c
	sites := map[string]bool{}
	for i, s := range c.Sites {
		if !event.ValidID(s.ID) {
			v.bad(fmt.Sprintf("%q %s", s.ID, idRule), "sites", i, "id")
		} else if sites[s.ID] {
			v.bad(fmt.Sprintf("site %q is listed twice", s.ID), "sites", i, "id")
		}
		sites[s.ID] = true
	}
	siteRef := func(site, list string, i int) {
		if !event.ValidID(site) {
			v.bad(fmt.Sprintf("%q %s", site, idRule), list, i, "site")
		} else if !sites[site] {
			v.bad(fmt.Sprintf("unknown site %q (add it under sites:)", site), list, i, "site")
		}
	}
	seen := map[string]bool{}
	for i, cam := range c.Cameras {
		if !event.ValidID(cam.ID) {
			v.bad(fmt.Sprintf("%q %s", cam.ID, idRule), "cameras", i, "id")
		} else if seen[cam.Site+"/"+cam.ID] {
			v.bad(fmt.Sprintf("camera %q is listed twice in site %q", cam.ID, cam.Site), "cameras", i, "id")
		}
		seen[cam.Site+"/"+cam.ID] = true
		siteRef(cam.Site, "cameras", i)
		if cam.RTSPURL != "" {
			u, err := url.Parse(cam.RTSPURL)
			if err != nil {
				// url's error quotes the URL, password included: don't.
				v.bad("not a valid URL", "cameras", i, "rtsp_url")
			} else if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
				v.bad(fmt.Sprintf("scheme must be rtsp or rtsps, not %q", u.Scheme), "cameras", i, "rtsp_url")
			} else if u.Host == "" {
				v.bad("has no host", "cameras", i, "rtsp_url")
			}
		}
		if cam.Password != "" && cam.PasswordFile != "" {
			v.bad("set password or password_file, not both", "cameras", i, "password_file")
		}
		v.file(cam.PasswordFile, "cameras", i, "password_file")
		if cam.ExpectedFPS < 0 || cam.ExpectedFPS > 240 {
			v.bad("must be between 0 and 240", "cameras", i, "expected_fps")
		}
		v.probeSettings(cam.Probe, "cameras", i, "probe")
		if o := cam.ONVIF; o != nil {
			if o.URL == "" {
				v.bad("is required", "cameras", i, "onvif", "url")
			} else if u, err := url.Parse(o.URL); err == nil && u.User != nil {
				v.bad("must not hold credentials: use onvif.username and password_file", "cameras", i, "onvif", "url")
			} else {
				v.url(o.URL, []string{"http", "https"}, "cameras", i, "onvif", "url")
			}
			if o.Password != "" && o.PasswordFile != "" {
				v.bad("set password or password_file, not both", "cameras", i, "onvif", "password_file")
			}
			v.file(o.PasswordFile, "cameras", i, "onvif", "password_file")
		}
	}
	seen = map[string]bool{}
	for i, b := range c.Boards {
		if !event.ValidID(b.ID) {
			v.bad(fmt.Sprintf("%q %s", b.ID, idRule), "qr_boards", i, "id")
		} else if seen[b.ID] {
			// Printed codes carry only the board: /q/<board>.
			v.bad(fmt.Sprintf("board %q is listed twice (board IDs must be unique across sites: printed codes link to /q/<board>)", b.ID), "qr_boards", i, "id")
		}
		seen[b.ID] = true
		siteRef(b.Site, "qr_boards", i)
		if b.TargetURL != "" {
			v.url(b.TargetURL, []string{"http", "https"}, "qr_boards", i, "target_url")
		}
	}
}

func (v *validator) hostPort(addr string, path ...any) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.bad(fmt.Sprintf("%q is not host:port", addr), path...)
		return
	}
	_ = host
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.bad(fmt.Sprintf("port %q is not a number from 0 to 65535", port), path...)
	}
}

func (v *validator) url(s string, schemes []string, path ...any) {
	u, err := url.Parse(s)
	if err != nil {
		v.bad("not a valid URL", path...)
		return
	}
	for _, sc := range schemes {
		if u.Scheme == sc {
			if u.Host == "" {
				v.bad("has no host", path...)
			}
			return
		}
	}
	v.bad(fmt.Sprintf("scheme must be one of %s, not %q", strings.Join(schemes, ", "), u.Scheme), path...)
}

func (v *validator) file(name string, path ...any) {
	if name == "" {
		return
	}
	if _, err := os.Stat(name); err != nil && !(v.missingFilesOK && errors.Is(err, fs.ErrNotExist)) {
		v.bad(fmt.Sprintf("cannot read %s: %v", name, errors.Unwrap(err)), path...)
	}
}

func (v *validator) intRange(n, lo, hi int, path ...any) {
	if n < lo || n > hi {
		v.bad(fmt.Sprintf("%d is out of range %d..%d", n, lo, hi), path...)
	}
}

// ReadSecret returns value, or the trimmed contents of file when set.
func ReadSecret(value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("reading secret file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Frigate is one Frigate NVR whose MQTT topics the hub reads
// (hub/input/frigate, docs/frigate.md).
type Frigate struct {
	// Name names the instance: frigate/<name> in logs, the API and alerts.
	Name string `yaml:"name"`
	// TopicPrefix is Frigate's mqtt.topic_prefix ("frigate" by default).
	TopicPrefix string `yaml:"topic_prefix"`
	// Site is the site of its cameras.
	Site string `yaml:"site"`
	// Cameras maps Frigate camera names to hub camera IDs; a camera not
	// listed is auto-registered under its Frigate name if that is a valid ID.
	Cameras map[string]string `yaml:"cameras"`
}

func (f *Frigate) setDefaults() { def(&f.TopicPrefix, "frigate") }

func (v *validator) frigate() {
	c := v.c
	sites := map[string]bool{}
	for _, s := range c.Sites {
		sites[s.ID] = true
	}
	names, prefixes := map[string]bool{}, map[string]bool{c.TopicPrefix: true}
	for i := range c.Frigate {
		f := &c.Frigate[i]
		f.setDefaults() // list items are made by the YAML decoder
		if !event.ValidID(f.Name) {
			v.bad(fmt.Sprintf("%q %s", f.Name, idRule), "frigate", i, "name")
		} else if names[f.Name] {
			v.bad(fmt.Sprintf("frigate %q is listed twice", f.Name), "frigate", i, "name")
		}
		names[f.Name] = true
		root, _, _ := strings.Cut(f.TopicPrefix, "/")
		if strings.ContainsAny(f.TopicPrefix, "+#") || strings.HasPrefix(f.TopicPrefix, "/") || strings.HasSuffix(f.TopicPrefix, "/") {
			v.bad("must be a topic without wildcards or leading/trailing slash", "frigate", i, "topic_prefix")
		} else if prefixes[f.TopicPrefix] || prefixes[root] {
			v.bad(fmt.Sprintf("topic prefix %q is already used by the hub or another frigate", f.TopicPrefix), "frigate", i, "topic_prefix")
		}
		prefixes[f.TopicPrefix] = true
		if !event.ValidID(f.Site) {
			v.bad(fmt.Sprintf("%q %s", f.Site, idRule), "frigate", i, "site")
		} else if !sites[f.Site] {
			v.bad(fmt.Sprintf("unknown site %q (add it under sites:)", f.Site), "frigate", i, "site")
		}
		for name, id := range f.Cameras {
			if name == "" || strings.ContainsAny(name, "/+#") {
				v.bad(fmt.Sprintf("Frigate camera name %q cannot be a topic level", name), "frigate", i, "cameras")
			}
			if !event.ValidID(id) {
				v.bad(fmt.Sprintf("camera id %q for %q %s", id, name, idRule), "frigate", i, "cameras", name)
			}
		}
	}
}
