// Package mqttclient connects the hub to an external MQTT broker (Mosquitto
// or any other) with paho: QoS 1 subscriptions on a persistent session
// under a stable client ID, so the broker keeps messages while the hub is
// away; manual acknowledgement after the store commit; auto-reconnect with
// backoff; the hub's retained online status with offline as its last will.
package mqttclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"villagehub/hub/ingest"
	"villagehub/hub/tlscert"
)

// Config configures the client.
type Config struct {
	// URL is the broker: tcp://, ssl://, ws:// or wss://.
	URL      string
	Username string
	Password string
	// ClientID must be stable across restarts: it names the persistent
	// session in which the broker keeps messages while the hub is away.
	ClientID  string
	CAFile    string
	CertFile  string
	KeyFile   string
	Insecure  bool
	KeepAlive time.Duration
	// Prefix is the device topic prefix; HubID names the hub's status
	// topic <prefix>/_hub/<hub-id>/status.
	Prefix string
	HubID  string
	Queue  *ingest.Queue
	// Filters are the topic filters to subscribe to (hub/input's Filters
	// over every MQTT input); nil: the contract's device topics.
	Filters []string
	Logger  *slog.Logger
	// While the broker cannot be reached, the client logs an error after
	// UnreachableAfter (default 5s) and again every UnreachableEvery
	// (default 1m), with the reason, so a wrong mqtt.url is not silent.
	UnreachableAfter time.Duration
	UnreachableEvery time.Duration
}

// Client is the hub's connection to an external broker.
type Client struct {
	cfg       Config
	log       *slog.Logger
	c         paho.Client
	status    string
	filters   map[string]byte
	connected atomic.Bool
	ctx       context.Context
	cancel    context.CancelFunc
	host      string // host:port, for diagnosing an unreachable broker
}

// New validates the config and prepares the client; Run connects.
func New(cfg Config) (*Client, error) {
	if cfg.Queue == nil {
		return nil, errors.New("mqttclient: Queue is required")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, errors.New("mqtt.url: not a valid broker URL (tcp://host:1883)")
	}
	// The defaults of these live in hub/config, with the keys.
	if cfg.Prefix == "" || cfg.HubID == "" || cfg.ClientID == "" || cfg.KeepAlive <= 0 {
		return nil, errors.New("mqttclient: Prefix, HubID, ClientID and KeepAlive are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.UnreachableAfter <= 0 {
		cfg.UnreachableAfter = 5 * time.Second
	}
	if cfg.UnreachableEvery <= 0 {
		cfg.UnreachableEvery = time.Minute
	}
	c := &Client{
		host:   brokerHostPort(u),
		cfg:    cfg,
		log:    cfg.Logger.With("component", "mqtt", "broker", redact(u)),
		status: cfg.Prefix + "/_hub/" + cfg.HubID + "/status",
	}
	c.filters = map[string]byte{}
	if cfg.Filters == nil {
		cfg.Filters = ingest.NewDecoder(ingest.DecoderConfig{Prefix: cfg.Prefix}).Filters()
	}
	for _, f := range cfg.Filters {
		c.filters[f] = 1
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	opts := paho.NewClientOptions().
		AddBroker(cfg.URL).
		SetClientID(cfg.ClientID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetCleanSession(false). // the broker keeps our subscriptions and messages
		SetResumeSubs(true).
		SetAutoAckDisabled(true). // PUBACK only after the store commit
		SetOrderMatters(true).    // per-device order matters (motion ON/OFF)
		SetKeepAlive(cfg.KeepAlive).
		SetPingTimeout(10*time.Second).
		SetConnectTimeout(10*time.Second).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(30*time.Second).
		SetWill(c.status, "offline", 1, true).
		SetOnConnectHandler(c.onConnect).
		// The broker sends the session's queued messages right after
		// CONNACK, before onConnect has subscribed (and so routed) them
		// in a new process: paho leaves a message without a route
		// unacknowledged, and the broker would hold it until the next
		// reconnect, out of order. Found by TestMotionExactlyOnceKillLoop.
		SetDefaultPublishHandler(c.handle).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			c.connected.Store(false)
			c.log.Warn("lost connection to MQTT broker; reconnecting", "err", err)
		}).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
			c.log.Debug("reconnecting to MQTT broker")
		})
	if strings.HasPrefix(u.Scheme, "ssl") || strings.HasPrefix(u.Scheme, "tls") ||
		u.Scheme == "mqtts" || u.Scheme == "wss" || cfg.CAFile != "" || cfg.CertFile != "" {
		tc, err := tlscert.ClientConfig("mqtt.", cfg.CAFile, cfg.CertFile, cfg.KeyFile, cfg.Insecure)
		if err != nil {
			return nil, err
		}
		opts.SetTLSConfig(tc)
	}
	c.c = paho.NewClient(opts)
	return c, nil
}

// redact drops any password from a broker URL for logs.
func redact(u *url.URL) string {
	r := *u
	if r.User != nil {
		r.User = url.User(r.User.Username())
	}
	return r.String()
}

func (c *Client) onConnect(pc paho.Client) {
	// Subscribe again on every connect: harmless when the broker kept the
	// session, necessary when it did not (it expired, or the broker lost it).
	tok := pc.SubscribeMultiple(c.filters, c.handle)
	go func() {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			c.log.Error("subscribing to device topics", "err", tok.Error())
			pc.Disconnect(0) // reconnect logic will try again
			return
		}
		c.connected.Store(true)
		c.log.Info("connected to MQTT broker and subscribed")
		pc.Publish(c.status, 1, true, "online")
	}()
}

// handle runs in paho's router goroutine. A QoS 1 message is queued without
// waiting (its acknowledgement is what holds the broker back), a QoS 0
// message waits for room: that is the only back-pressure QoS 0 has.
func (c *Client) handle(_ paho.Client, msg paho.Message) {
	m := ingest.Message{Topic: msg.Topic(), Payload: msg.Payload(), QoS: msg.Qos(), Received: time.Now()}
	if msg.Qos() > 0 {
		m.Ack = msg.Ack
		m.PacketID, m.Dup = msg.MessageID(), msg.Duplicate()
	}
	_ = c.cfg.Queue.Push(c.ctx, m, msg.Qos() == 0)
}

// Run connects (retrying until it succeeds or ctx ends) and stays connected
// until ctx ends; then it publishes offline and disconnects.
func (c *Client) Run(ctx context.Context) error {
	go c.watch(ctx)
	tok := c.c.Connect()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("connecting to MQTT broker %s (mqtt.url): %w", c.cfg.URL, err)
		}
	case <-ctx.Done():
	}
	<-ctx.Done()
	c.cancel()
	if c.c.IsConnectionOpen() {
		c.c.Publish(c.status, 1, true, "offline").WaitTimeout(2 * time.Second)
	}
	c.c.Disconnect(1000)
	c.connected.Store(false)
	return nil
}

// Connected reports whether the hub is connected and subscribed.
func (c *Client) Connected() bool { return c.connected.Load() && c.c.IsConnectionOpen() }

// Publish publishes a message from the hub itself (alerts). QoS 0 returns
// at once; QoS 1 and 2 wait (up to 5 s) for the broker's acknowledgement,
// so an error means the broker may not have the message.
func (c *Client) Publish(topic string, payload []byte, retain bool, qos byte) error {
	tok := c.c.Publish(topic, qos, retain, payload)
	if qos == 0 {
		return nil
	}
	if !tok.WaitTimeout(5 * time.Second) {
		return errors.New("publish timed out")
	}
	return tok.Error()
}

// brokerHostPort is the broker's host:port, with the scheme's default port.
func brokerHostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "1883"
	switch u.Scheme {
	case "ssl", "tls", "mqtts", "tcps":
		port = "8883"
	case "ws":
		port = "80"
	case "wss":
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// watch logs, while the hub is not connected, that the broker cannot be
// reached and why: paho retries quietly, and a hub that logged only
// "started" while receiving nothing misled operators (issue 17, item 2).
func (c *Client) watch(ctx context.Context) {
	down := time.Now()
	reported := false
	t := time.NewTimer(c.cfg.UnreachableAfter)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if c.Connected() {
			if reported {
				c.log.Info("MQTT broker reachable again", "down_for", time.Since(down).Round(time.Second).String())
			}
			reported = false
			down = time.Now()
			t.Reset(c.cfg.UnreachableAfter)
			continue
		}
		if !reported && time.Since(down) < c.cfg.UnreachableAfter {
			t.Reset(c.cfg.UnreachableAfter - time.Since(down))
			continue
		}
		c.log.Error("cannot reach the MQTT broker (mqtt.url): messages from cameras and QR boards are not received until it answers",
			"reason", c.diagnose(), "down_for", time.Since(down).Round(time.Second).String())
		reported = true
		t.Reset(c.cfg.UnreachableEvery)
	}
}

// diagnose says why the broker is unreachable: the TCP error (refused,
// no route, timeout, unknown host), or, when TCP works, that the MQTT
// handshake fails.
func (c *Client) diagnose() string {
	conn, err := net.DialTimeout("tcp", c.host, 3*time.Second)
	if err != nil {
		return err.Error()
	}
	conn.Close()
	return "the broker accepts TCP connections at " + c.host + " but the MQTT connection fails: check mqtt.username, mqtt.password, TLS settings and the broker's log"
}
