package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"villagehub/hub/influx"
	"villagehub/hub/scan"
)

// Config is the gateway role's file (villagehub gateway --config
// gateway.yaml). docs/gateway.md has an annotated example.
type Config struct {
	// Listen is the HTTP address (default 127.0.0.1:8090); put it behind
	// the load balancer.
	Listen string `yaml:"listen"`
	// PublicURL is the gateway's address as phones reach it (through the
	// load balancer), e.g. https://qr.thanhhoa.gov.vn. Informational here;
	// village hubs print it (their gateway.public_url).
	PublicURL string `yaml:"public_url"`
	// DataDir holds the target cache, the scan journal and the InfluxDB
	// spool (default ./gateway-data). One per instance, never shared.
	DataDir string `yaml:"data_dir"`
	// TopicPrefix must match the village hubs' topic_prefix (default
	// "village").
	TopicPrefix string `yaml:"topic_prefix"`
	// Instance names this instance in its MQTT client ID and logs
	// (default: the host name). Unique per instance.
	Instance string `yaml:"instance"`
	// MaxBoards caps the targets kept (default 100000): a village cannot
	// blow up memory or metric cardinality.
	MaxBoards int `yaml:"max_boards"`
	// JournalSync makes each redirect wait until its scan is on disk
	// (fdatasync, shared by the requests waiting at that moment): counts
	// then survive a power cut, at a large cost in redirects per second on
	// a slow or busy disk. Off (the default), a scan is in the kernel
	// before its redirect (copied into the mapped segment on Linux), which
	// survives kill -9 and crashes of the gateway, and the kernel writes
	// it out within about 30 s.
	JournalSync *bool `yaml:"journal_sync"`
	// JournalAsync lets a redirect go before its scan is written: the
	// write follows within milliseconds, in groups. Throughput on a busy
	// disk, against the scans of those milliseconds if the gateway is
	// killed (kill -9, a crash). Off by default; ignored with journal_sync,
	// and on Linux, where the journal is mapped (journal.go): a scan is
	// copied into the kernel's pages before its redirect at no cost.
	JournalAsync bool `yaml:"journal_async"`

	Broker Broker       `yaml:"broker"`
	Influx InfluxConfig `yaml:"influx"`
	QR     QR           `yaml:"qr"`

	// Set by LoadConfig.
	Path string `yaml:"-"`
	root *yaml.Node
}

// Broker is the province's MQTT broker (Mosquitto).
type Broker struct {
	URL          string `yaml:"url"`
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	CAFile       string `yaml:"ca_file"`
	// ClientID overrides villagehub-gateway-<instance>.
	ClientID string `yaml:"client_id"`
}

// InfluxConfig is the central InfluxDB: influx.Config's keys plus
// token_file.
type InfluxConfig struct {
	influx.Config `yaml:",inline"`
	TokenFile     string `yaml:"token_file"`
}

// QR are the counting rules, as the hub's qr: block.
type QR struct {
	UniqueWindow   time.Duration `yaml:"unique_window"`
	TrustedProxies []string      `yaml:"trusted_proxies"`
	RatePerSecond  float64       `yaml:"rate_per_second"`
	RateBurst      int           `yaml:"rate_burst"`
	MaxClients     int           `yaml:"max_clients"`
	BotAgents      []string      `yaml:"bot_agents"`
	// SaltFile holds the secret (at least 32 bytes) every instance shares,
	// so they recognise the same phone: the same file on every instance.
	// 0600. "villagehub gateway salt FILE" makes one.
	SaltFile string `yaml:"salt_file"`
	// Timezone of "a day" for the salt (default Asia/Ho_Chi_Minh).
	Timezone string `yaml:"timezone"`
	// RequestIDHeader names the header the load balancer sets to one value
	// per client request, kept across its retries (nginx: X-Request-ID from
	// $request_id, with X-Request-Start "t=${msec}"): a request one
	// instance counted and failed to answer, retried on another, is then
	// counted once. Believed only from trusted_proxies. Empty: off.
	RequestIDHeader string `yaml:"request_id_header"`
}

// Defaults.
const (
	DefaultListen    = "127.0.0.1:8090"
	DefaultDataDir   = "./gateway-data"
	DefaultPrefix    = "village"
	DefaultMaxBoards = 100000
	// DefaultMaxClients is the phones (phone+board pairs for uniqueness)
	// a gateway remembers: four times a village hub's 65,536, since one
	// gateway sees a whole province, and a pair forgotten inside the
	// unique window is counted unique again. About 80 MB at the cap.
	DefaultMaxClients = 1 << 18
)

var idRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// LoadConfig reads and validates a gateway config file. Errors name the
// file, line and key; secrets are never quoted.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(path, data)
}

// ParseConfig is LoadConfig on bytes.
func ParseConfig(path string, data []byte) (*Config, error) {
	c := &Config{Path: path}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) { // empty file: defaults
		return nil, fmt.Errorf("%s: %v", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	c.root = &root
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.TopicPrefix == "" {
		c.TopicPrefix = DefaultPrefix
	}
	if c.MaxBoards == 0 {
		c.MaxBoards = DefaultMaxBoards
	}
	if c.QR.MaxClients == 0 {
		c.QR.MaxClients = DefaultMaxClients
	}
	if c.Instance == "" {
		c.Instance, _ = os.Hostname()
	}
	if c.Broker.ClientID == "" {
		c.Broker.ClientID = "villagehub-gateway-" + c.Instance
	}
	if c.Influx.URL != "" {
		if c.Influx.SpoolDir == "" {
			c.Influx.SpoolDir = filepath.Join(c.DataDir, "influx-spool")
		}
		c.Influx.Config = c.Influx.WithDefaults()
	}
}

// Sync reports whether the journal fsyncs.
func (c *Config) Sync() bool { return c.JournalSync != nil && *c.JournalSync }

// Validate checks the config; each problem names the file, line and key.
func (c *Config) Validate() error {
	var errs []string
	bad := func(msg string, key ...string) {
		errs = append(errs, fmt.Sprintf("%s:%d: %s: %s", c.Path, c.line(key...), strings.Join(key, "."), msg))
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("must be an absolute http(s):// URL", "public_url")
		}
	} else {
		bad("required: the address phones reach the gateway at", "public_url")
	}
	if c.Broker.URL == "" {
		bad("required: the province broker the village hubs publish their targets to", "broker", "url")
	} else if u, err := url.Parse(c.Broker.URL); err != nil || u.Host == "" {
		bad("must be tcp://, ssl://, ws:// or wss:// host:port", "broker", "url")
	}
	if c.Broker.Password != "" && c.Broker.PasswordFile != "" {
		bad("set password or password_file, not both", "broker", "password_file")
	}
	if !idRe.MatchString(c.TopicPrefix) {
		bad("must match ^[a-z0-9][a-z0-9_-]{0,63}$", "topic_prefix")
	}
	if c.MaxBoards < 0 {
		bad("must not be negative", "max_boards")
	}
	if c.Influx.URL != "" {
		if err := c.Influx.Validate(); err != nil {
			bad(err.Error(), "influx")
		}
		if c.Influx.Token != "" && c.Influx.TokenFile != "" {
			bad("set token or token_file, not both", "influx", "token_file")
		}
	}
	if c.QR.SaltFile == "" {
		bad("required: a secret file shared by every instance (villagehub gateway salt FILE makes one)", "qr", "salt_file")
	}
	if c.QR.UniqueWindow < 0 || c.QR.RatePerSecond < 0 || c.QR.RateBurst < 0 || c.QR.MaxClients < 0 {
		bad("unique_window, rate_per_second, rate_burst and max_clients must not be negative", "qr")
	}
	if c.QR.Timezone != "" {
		if _, err := time.LoadLocation(c.QR.Timezone); err != nil {
			bad("unknown time zone", "qr", "timezone")
		}
	}
	if h := c.QR.RequestIDHeader; h != "" {
		if !scan.ValidHeaderName(h) {
			bad("must be a header name, e.g. X-Request-ID", "qr", "request_id_header")
		} else if len(c.QR.TrustedProxies) == 0 {
			bad("needs qr.trusted_proxies: the header is believed only from the load balancer", "qr", "request_id_header")
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

// line finds the line of a key path in the file (0 when absent).
func (c *Config) line(keys ...string) int {
	n := c.root
	if n == nil {
		return 0
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, k := range keys {
		found := false
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
		}
		if !found {
			break
		}
	}
	return line
}

// scanConfig is the counting rules for scan.NewHandler.
func (c *Config) scanConfig(secret []byte) (scan.Config, error) {
	loc := time.FixedZone("ICT", 7*60*60)
	if c.QR.Timezone != "" {
		var err error
		if loc, err = time.LoadLocation(c.QR.Timezone); err != nil {
			return scan.Config{}, err
		}
	}
	return scan.Config{
		PublicURL: c.PublicURL, UniqueWindow: c.QR.UniqueWindow, TrustedProxies: c.QR.TrustedProxies,
		RatePerSecond: c.QR.RatePerSecond, RateBurst: c.QR.RateBurst, MaxClients: c.QR.MaxClients,
		BotAgents: c.QR.BotAgents, SaltSecret: secret, Location: loc, RequestIDHeader: c.QR.RequestIDHeader,
	}, nil
}

// uniqueWindow is the fixed window of the cross-instance unique points.
func (c *Config) uniqueWindow() time.Duration {
	if c.QR.UniqueWindow > 0 {
		return c.QR.UniqueWindow
	}
	return scan.DefaultUniqueWindow
}

// readSecret reads a secret from a file that must not be readable by
// others.
func readSecret(path, what string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s %s is readable by others (mode %04o): chmod 600 it", what, path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return bytes.TrimSpace(b), nil
}
