package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"
)

// Defaults for the limits in Config. A village hub serves hundreds of
// devices, each reporting a few messages a minute; the defaults leave a
// wide margin for that and for a device flushing what it queued while the
// hub was away, and still stop a single client from monopolising the hub.
const (
	// DefaultCredentialsFile is where the credentials live, relative to the
	// data directory, when credentials_file is not set.
	DefaultCredentialsFile = "mqtt-credentials.yaml"
	DefaultMaxConnections  = 1000
	DefaultPublishRate     = 20  // messages per second per client, sustained
	DefaultPublishBurst    = 200 // messages a client may send at once
	DefaultMaxPacketSize   = 65536
	DefaultMaxInflight     = 1000
	// A client must finish its TLS handshake and send CONNECT within
	// DefaultConnectTimeout; until then it holds one of DefaultMaxPending
	// slots (DefaultMaxPendingPerSource from one address). Each costs the
	// hub about 40 KB (two goroutines and mochi's buffers), so the slots
	// bound what clients that never speak can take: see docs/security.md.
	DefaultConnectTimeout        = 10 * time.Second
	DefaultMaxPending            = 256
	DefaultMaxPendingPerSource   = 64
	DefaultMaxConnectionsPerUser = 8
	// Retained messages: only status topics, each at most
	// DefaultMaxRetainedBytes, at most DefaultMaxRetained in the broker.
	DefaultMaxRetainedBytes = 64
	DefaultMaxRetained      = 20000
)

// Config configures the broker's access control and limits. It is meant to
// be embedded in the hub's `broker:` section with `yaml:",inline"`.
type Config struct {
	// CredentialsFile holds the hashed device credentials that
	// `villagehub device` writes. Relative paths are relative to the data
	// directory (see CredentialsPath).
	CredentialsFile string `yaml:"credentials_file"`
	// AllowAnonymous lets clients connect without a username. It is a
	// trial mode: an anonymous client may publish as any device.
	AllowAnonymous bool `yaml:"allow_anonymous"`
	// MaxConnections caps connected clients (plus clients still being
	// authenticated); more are refused with "server unavailable".
	MaxConnections int `yaml:"max_connections"`
	// PublishRate is the sustained number of PUBLISH packets per second a
	// client may send; PublishBurst how many it may send at once. There is
	// no "unlimited": a load test sets a large rate. The hub role is not
	// limited. A client going faster is not cut off: the broker stops reading
	// from it until it is back within its rate, so nothing it sent is lost.
	PublishRate  float64 `yaml:"publish_rate"`
	PublishBurst int     `yaml:"publish_burst"`
	// MaxPacketSize is the largest MQTT packet accepted, in bytes; a
	// client sending a bigger one is disconnected.
	MaxPacketSize int `yaml:"max_packet_size"`
	// MaxInflight bounds unacknowledged QoS 1/2 messages per client, both
	// ways (MQTT 5 Receive Maximum and the broker's outbound queue).
	MaxInflight int `yaml:"max_inflight"`

	// ConnectTimeout is how long a new connection may take to finish its
	// TLS handshake and send CONNECT before it is closed.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// MaxPending caps connections that have not yet sent CONNECT, over
	// all listeners; MaxPendingPerSource those from one IP address.
	MaxPending          int `yaml:"max_pending"`
	MaxPendingPerSource int `yaml:"max_pending_per_source"`
	// MaxConnectionsPerUser caps one account's connections. The hub role
	// and anonymous clients (trial mode) are not capped.
	MaxConnectionsPerUser int `yaml:"max_connections_per_user"`
	// MaxRetained caps retained messages in the broker; MaxRetainedBytes
	// one retained payload. Devices may retain only their status topic.
	MaxRetained      int `yaml:"max_retained"`
	MaxRetainedBytes int `yaml:"max_retained_bytes"`

	// Prefix is the topic prefix ("village"); set by the hub, not the file.
	Prefix string `yaml:"-"`
	// Frigates maps each configured Frigate's name to its topic_prefix
	// (the hub's frigate: entries); set by the hub. A frigate account
	// "_frigate/<name>" may use only its entry's prefix, and nothing if
	// no entry has its name.
	Frigates map[string]string `yaml:"-"`
	// DataDir is where a relative CredentialsFile lives; set by the hub.
	DataDir string `yaml:"-"`
	// Logger receives authentication failures and reloads.
	Logger *slog.Logger `yaml:"-"`
}

// Problem is one invalid setting: Key is the setting's name as written in
// the file (e.g. "publish_rate"), relative to where Config is embedded.
type Problem struct {
	Key string
	Msg string
}

func (p Problem) String() string { return p.Key + ": " + p.Msg }

// SetDefaults fills in unset limits.
func (c *Config) SetDefaults() {
	if c.PublishRate == 0 {
		c.PublishRate = DefaultPublishRate
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.PublishBurst == 0 {
		c.PublishBurst = DefaultPublishBurst
	}
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = DefaultMaxPacketSize
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxPendingPerSource == 0 {
		c.MaxPendingPerSource = DefaultMaxPendingPerSource
	}
	if c.MaxConnectionsPerUser == 0 {
		c.MaxConnectionsPerUser = DefaultMaxConnectionsPerUser
	}
	if c.MaxRetained == 0 {
		c.MaxRetained = DefaultMaxRetained
	}
	if c.MaxRetainedBytes == 0 {
		c.MaxRetainedBytes = DefaultMaxRetainedBytes
	}
	if c.Prefix == "" {
		c.Prefix = "village"
	}
}

// Problems checks every setting and returns what is wrong, naming each key.
// Call SetDefaults first.
func (c *Config) Problems() []Problem {
	var ps []Problem
	bad := func(key, msg string, a ...any) { ps = append(ps, Problem{key, fmt.Sprintf(msg, a...)}) }
	if c.MaxConnections < 1 {
		bad("max_connections", "must be at least 1, not %d", c.MaxConnections)
	}
	// A throttled client waits up to 1/rate between packets while the
	// broker does not read from it; under 1/s that wait nears a device's
	// keepalive and the broker's read deadline.
	if c.PublishRate < 1 {
		bad("publish_rate", "must be at least 1 message per second, not %v", c.PublishRate)
	}
	if c.PublishBurst < 1 {
		bad("publish_burst", "must be at least 1, not %d", c.PublishBurst)
	}
	// 1 KiB holds a topic and a small report; the MQTT maximum is 256 MiB.
	if c.MaxPacketSize < 1024 || c.MaxPacketSize > 268435455 {
		bad("max_packet_size", "must be between 1024 and 268435455 bytes, not %d", c.MaxPacketSize)
	}
	if c.MaxInflight < 1 || c.MaxInflight > 65535 {
		bad("max_inflight", "must be between 1 and 65535, not %d", c.MaxInflight)
	}
	if c.ConnectTimeout < time.Second || c.ConnectTimeout > 5*time.Minute {
		bad("connect_timeout", "must be between 1s and 5m, not %v", c.ConnectTimeout)
	}
	if c.MaxPending < 1 {
		bad("max_pending", "must be at least 1, not %d", c.MaxPending)
	}
	if c.MaxPendingPerSource < 1 || c.MaxPendingPerSource > c.MaxPending {
		bad("max_pending_per_source", "must be between 1 and max_pending (%d), not %d", c.MaxPending, c.MaxPendingPerSource)
	}
	if c.MaxConnectionsPerUser < 1 {
		bad("max_connections_per_user", "must be at least 1, not %d", c.MaxConnectionsPerUser)
	}
	if c.MaxRetained < 1 {
		bad("max_retained", "must be at least 1, not %d", c.MaxRetained)
	}
	if c.MaxRetainedBytes < 16 || c.MaxRetainedBytes > c.MaxPacketSize {
		bad("max_retained_bytes", "must be between 16 and max_packet_size, not %d", c.MaxRetainedBytes)
	}
	return ps
}

// Validate is Problems as an error.
func (c *Config) Validate() error {
	ps := c.Problems()
	if len(ps) == 0 {
		return nil
	}
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = errors.New("broker." + p.String())
	}
	return errors.Join(errs...)
}

// CredentialsPath is the credentials file's path: credentials_file, taken
// relative to dataDir when it is relative, or DefaultCredentialsFile in
// dataDir when it is unset.
func (c *Config) CredentialsPath(dataDir string) string {
	p := c.CredentialsFile
	if p == "" {
		p = DefaultCredentialsFile
	}
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dataDir, p)
}
