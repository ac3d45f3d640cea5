// Package influx writes the hub's history to InfluxDB (OSS 2.x, Cloud, or 1.8
// through its v2-compatible API) without losing a point: every point is made
// durable in an on-disk spool before Append returns, and leaves the spool only
// after InfluxDB confirmed the write. See docs/influxdb.md.
package influx

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"villagehub/hub/tlscert"
)

// Defaults applied by New (and by Config.WithDefaults) to zero values.
const (
	DefaultBatchSize        = 5000
	DefaultFlushInterval    = time.Second
	DefaultTimeout          = 10 * time.Second
	DefaultMaxRetryInterval = 30 * time.Second
	DefaultSpoolMaxBytes    = 1 << 30 // 1 GiB
	// MaxBatchSize bounds one write request (and one spool record); InfluxDB
	// itself advises 5,000-10,000 lines per request.
	MaxBatchSize = 100_000
	// minSpoolMaxBytes keeps at least a few segments of room.
	minSpoolMaxBytes = 1 << 20
)

// Config configures a Writer. It lives under `influx:` in the hub's YAML
// file; the error messages of Validate name keys with that prefix.
type Config struct {
	// URL of the InfluxDB HTTP API, e.g. http://127.0.0.1:8086. Empty means
	// InfluxDB is not configured (the hub then uses its embedded store only).
	URL string `yaml:"url"`
	// Token is an InfluxDB 2.x API token, or "user:password" for 1.8 with
	// authentication on (empty for 1.8 without authentication). Secret: it
	// never appears in logs, errors or metrics.
	Token string `yaml:"token"`
	// Org is the 2.x organisation; empty for 1.8.
	Org string `yaml:"org"`
	// Bucket is the 2.x bucket, or "database/retention-policy" for 1.8
	// (e.g. "village/autogen").
	Bucket string `yaml:"bucket"`
	// BatchSize is the most points sent in one write request (default 5000).
	BatchSize int `yaml:"batch_size"`
	// FlushInterval is how long spooled points may wait for a batch to fill
	// before they are sent anyway (default 1s).
	FlushInterval time.Duration `yaml:"flush_interval"`
	// Gzip compresses write requests; worth it over slow links, a CPU cost on
	// loopback.
	Gzip bool `yaml:"gzip"`
	// TLS options for https URLs.
	TLS TLSConfig `yaml:"tls"`
	// Timeout bounds one write request (default 10s); a slower answer counts
	// as a timeout and the batch is retried.
	Timeout time.Duration `yaml:"timeout"`
	// MaxRetryInterval caps the exponential backoff between retries
	// (default 30s).
	MaxRetryInterval time.Duration `yaml:"max_retry_interval"`
	// SpoolDir holds the spool segments, its checkpoint and the dead-letter
	// file. The hub sets it to <data_dir>/influx-spool when empty.
	SpoolDir string `yaml:"spool_dir"`
	// SpoolMaxBytes bounds the spool's segment files on disk (default 1 GiB).
	// When they reach it, Append returns ErrSpoolFull.
	SpoolMaxBytes int64 `yaml:"spool_max_bytes"`

	// Tags are added to every point, e.g. the hub's place (province,
	// district, commune, village, hub) so that many hubs can share one
	// central bucket. Keys and values are IDs (no escaping needed).
	Tags []Tag `yaml:"-"`

	// Logger receives the writer's logs (default slog.Default()).
	Logger *slog.Logger `yaml:"-"`

	// Now and After are the writer's clock (default time.Now and
	// time.After): the timestamp of points appended without one, the
	// flush interval, retry back-off, Stale and the last-success time run
	// on them. Tests inject a fake clock (testenv.Clock) so that back-off
	// and staleness are checked without waiting in real time. Request
	// timeouts and the write-duration histogram stay on real time: they
	// measure the network. New fills in nil ones (not WithDefaults: a
	// Config holding funcs would never compare equal to itself in a reload).
	Now   func() time.Time                     `yaml:"-"`
	After func(time.Duration) <-chan time.Time `yaml:"-"`
}

// TLSConfig holds the client TLS options for an https InfluxDB URL.
type TLSConfig struct {
	// CAFile is a PEM bundle of CAs to trust instead of the system pool.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate for mutual TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// InsecureSkipVerify turns off server certificate checks (testing only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Enabled reports whether InfluxDB is configured at all.
func (c Config) Enabled() bool { return c.URL != "" }

// WithDefaults returns c with zero values replaced by the defaults.
func (c Config) WithDefaults() Config {
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxRetryInterval == 0 {
		c.MaxRetryInterval = DefaultMaxRetryInterval
	}
	if c.SpoolMaxBytes == 0 {
		c.SpoolMaxBytes = DefaultSpoolMaxBytes
	}
	return c
}

// Validate checks the configuration as written (zero values mean "default").
// Every error names the YAML key at fault; none contains the token. An empty
// URL means InfluxDB is off, which is valid: nothing else is checked then.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("influx.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if u, err := url.Parse(c.URL); err != nil {
		bad("url", "not a URL")
	} else if u.Scheme != "http" && u.Scheme != "https" {
		bad("url", "scheme must be http or https, got %q", u.Scheme)
	} else if u.Host == "" {
		bad("url", "missing host")
	} else if u.User != nil {
		bad("url", "must not carry credentials; put them in influx.token")
	}
	if c.Bucket == "" {
		bad("bucket", `required (a 2.x bucket, or "database/retention-policy" for 1.8, e.g. village/autogen)`)
	}
	if c.BatchSize < 0 || c.BatchSize > MaxBatchSize {
		bad("batch_size", "must be between 1 and %d, got %d", MaxBatchSize, c.BatchSize)
	}
	if c.FlushInterval < 0 {
		bad("flush_interval", "must not be negative, got %s", c.FlushInterval)
	}
	if c.Timeout < 0 {
		bad("timeout", "must not be negative, got %s", c.Timeout)
	}
	if c.MaxRetryInterval < 0 {
		bad("max_retry_interval", "must not be negative, got %s", c.MaxRetryInterval)
	}
	if c.SpoolMaxBytes != 0 && c.SpoolMaxBytes < minSpoolMaxBytes {
		bad("spool_max_bytes", "must be at least %d (1 MiB), got %d", minSpoolMaxBytes, c.SpoolMaxBytes)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls", "cert_file and key_file must be set together")
	}
	if c.TLS != (TLSConfig{}) {
		if _, err := c.TLS.load(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// load builds a *tls.Config from the files named in t.
func (t TLSConfig) load() (*tls.Config, error) {
	return tlscert.ClientConfig("influx.tls.", t.CAFile, t.CertFile, t.KeyFile, t.InsecureSkipVerify)
}

// ApplyEnv overrides c from the contract's environment variables
// (VILLAGEHUB_INFLUX_URL, _TOKEN, _ORG, _BUCKET); a set variable beats the
// file, an unset one leaves it. lookup is os.LookupEnv in the hub.
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) {
	for _, e := range []struct {
		name string
		dst  *string
	}{
		{"VILLAGEHUB_INFLUX_URL", &c.URL},
		{"VILLAGEHUB_INFLUX_TOKEN", &c.Token},
		{"VILLAGEHUB_INFLUX_ORG", &c.Org},
		{"VILLAGEHUB_INFLUX_BUCKET", &c.Bucket},
	} {
		if v, ok := lookup(e.name); ok {
			*e.dst = v
		}
	}
}

// LogValue keeps the token out of logs when a Config is logged with slog.
func (c Config) LogValue() slog.Value {
	tok := ""
	if c.Token != "" {
		tok = "<redacted>"
	}
	return slog.GroupValue(
		slog.String("url", c.URL),
		slog.String("token", tok),
		slog.String("org", c.Org),
		slog.String("bucket", c.Bucket),
		slog.Int("batch_size", c.BatchSize),
		slog.Duration("flush_interval", c.FlushInterval),
		slog.Bool("gzip", c.Gzip),
		slog.String("spool_dir", c.SpoolDir),
		slog.Int64("spool_max_bytes", c.SpoolMaxBytes),
	)
}
