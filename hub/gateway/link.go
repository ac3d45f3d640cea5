package gateway

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"villagehub/hub/scan"
	"villagehub/hub/tlscert"
)

// LinkConfig is a village hub's `gateway:` block: where its boards'
// targets go up and its gateway counts come down.
type LinkConfig struct {
	// PublicURL is the gateway's address as phones reach it; printed codes
	// carry <public_url>/q/<village>/<board>.
	PublicURL string     `yaml:"public_url"`
	Broker    LinkBroker `yaml:"broker"`
	// Place overrides the hub-wide place: block for the gateway; unset, the
	// hub's place is used (config.GatewayLink). place.village names the
	// village in the gateway's URLs and topics.
	Place Place `yaml:"place"`
	// ClientID overrides villagehub-link-<village>-<hub_id>; it must be
	// stable: it names the persistent session in which the broker keeps
	// gateway counts while the village is offline.
	ClientID string `yaml:"client_id"`
}

// LinkBroker is the province broker as the village hub reaches it.
type LinkBroker struct {
	URL          string `yaml:"url"`
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	CAFile       string `yaml:"ca_file"`
}

// WithHubPlace returns c with the hub-wide place when c sets no
// place.village of its own.
func (c LinkConfig) WithHubPlace(p Place) LinkConfig {
	if c.Place.Village == "" {
		c.Place = p
	}
	return c
}

// Enabled reports whether the block is configured.
func (c LinkConfig) Enabled() bool { return c.PublicURL != "" || c.Broker.URL != "" }

// Problem is one thing wrong with the block; Path is the key inside it.
type Problem struct {
	Path []any
	Msg  string
}

// Validate checks the block (nothing when it is absent).
func (c LinkConfig) Validate() []Problem {
	if !c.Enabled() {
		return nil
	}
	var ps []Problem
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		ps = append(ps, Problem{[]any{"public_url"}, "must be the gateway's absolute http(s):// address, e.g. https://qr.tinh.gov.vn"})
	}
	if c.Broker.URL == "" {
		ps = append(ps, Problem{[]any{"broker", "url"}, "required: the province broker, e.g. ssl://mqtt.tinh.gov.vn:8883"})
	} else if u, err := url.Parse(c.Broker.URL); err != nil || u.Host == "" {
		ps = append(ps, Problem{[]any{"broker", "url"}, "must be tcp://, ssl://, ws:// or wss:// host:port"})
	}
	if c.Broker.Password != "" && c.Broker.PasswordFile != "" {
		ps = append(ps, Problem{[]any{"broker", "password_file"}, "set password or password_file, not both"})
	}
	if !idRe.MatchString(c.Place.Village) {
		ps = append(ps, Problem{[]any{"place", "village"}, "required: the village ID (^[a-z0-9][a-z0-9_-]{0,63}$) used in the printed URLs; set place.village (the hub's place) or gateway.place.village"})
	}
	for k, v := range map[string]string{"province": c.Place.Province, "district": c.Place.District, "commune": c.Place.Commune} {
		if v != "" && !idRe.MatchString(v) {
			ps = append(ps, Problem{[]any{"place", k}, "must be an ID (^[a-z0-9][a-z0-9_-]{0,63}$)"})
		}
	}
	return ps
}

// CodeURL is what a printed code for board carries:
// <public_url>/q/<village>/<board>.
func (c LinkConfig) CodeURL(board string) (string, error) {
	if !idRe.MatchString(board) {
		return "", fmt.Errorf("board id %q is not an ID", board)
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("gateway.public_url %q must be an absolute http(s) URL", c.PublicURL)
	}
	return strings.TrimRight(u.String(), "/") + "/q/" + c.Place.Village + "/" + board, nil
}

// LinkBoard is a board the hub publishes.
type LinkBoard struct {
	ID, Site, Name, TargetURL string
}

// ScanSink counts scans the gateway sent down (hub/state) and calls ack
// once they are durable.
type ScanSink interface {
	RecordGatewayScans(ctx context.Context, scans []scan.Scan, ack func()) error
}

// LinkOptions assemble a Link.
type LinkOptions struct {
	Config LinkConfig
	// Prefix is the hub's topic prefix; HubID its hub_id.
	Prefix, HubID string
	// HubPublicURL completes targets that are paths on the hub.
	HubPublicURL string
	// Boards lists the configured boards (read again on Refresh).
	Boards  func() []LinkBoard
	Sink    ScanSink
	DataDir string
	Logger  *slog.Logger
}

// Link is the village side: it publishes the hub's targets (retained)
// and counts the scans gateways send down.
type Link struct {
	o         LinkOptions
	log       *slog.Logger
	c         paho.Client
	connected atomic.Bool
	refresh   chan struct{}
	ctx       context.Context

	mu    sync.Mutex
	sites map[string]string // board -> site
	// Received and Duplicate-free counting happen in hub/state; these are
	// for logs and tests.
	received, rejected atomic.Int64
}

// NewLink validates and prepares the link; Run connects.
func NewLink(o LinkOptions) (*Link, error) {
	if ps := o.Config.Validate(); len(ps) > 0 {
		return nil, fmt.Errorf("gateway.%v: %s", ps[0].Path, ps[0].Msg)
	}
	if o.Sink == nil || o.Boards == nil || o.Prefix == "" || o.HubID == "" {
		return nil, errors.New("gateway link: Sink, Boards, Prefix and HubID are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	l := &Link{o: o, log: o.Logger.With("component", "gateway-link"), refresh: make(chan struct{}, 1), sites: map[string]string{}, ctx: context.Background()}
	b := o.Config.Broker
	pw := b.Password
	if b.PasswordFile != "" {
		p, err := readSecret(b.PasswordFile, "gateway.broker.password_file")
		if err != nil {
			return nil, err
		}
		pw = string(p)
	}
	id := o.Config.ClientID
	if id == "" {
		id = "villagehub-link-" + o.Config.Place.Village + "-" + o.HubID
	}
	filter := l.base() + "/+/scans"
	opts := paho.NewClientOptions().AddBroker(b.URL).SetClientID(id).SetUsername(b.Username).SetPassword(pw).
		SetCleanSession(false). // the broker keeps the gateway counts while the village is offline
		SetResumeSubs(true).
		SetAutoAckDisabled(true). // PUBACK after the store commit
		SetOrderMatters(true).
		SetKeepAlive(30 * time.Second).SetConnectTimeout(10 * time.Second).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second).SetMaxReconnectInterval(10 * time.Second).
		SetOnConnectHandler(func(c paho.Client) {
			tok := c.Subscribe(filter, 1, l.onScans)
			go func() {
				if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
					l.log.Error("subscribing to gateway counts", "err", tok.Error())
					c.Disconnect(0)
					return
				}
				l.connected.Store(true)
				l.log.Info("connected to the province broker")
				l.Refresh()
			}()
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			l.connected.Store(false)
			l.log.Warn("lost the province broker; gateway counts wait there", "err", err)
		})
	if strings.HasPrefix(b.URL, "ssl") || strings.HasPrefix(b.URL, "wss") || strings.HasPrefix(b.URL, "mqtts") || b.CAFile != "" {
		tc, err := tlscert.ClientConfig("gateway.broker.", b.CAFile, "", "", false)
		if err != nil {
			return nil, err
		}
		opts.SetTLSConfig(tc)
	}
	l.c = paho.NewClient(opts)
	return l, nil
}

func (l *Link) base() string { return l.o.Prefix + "/_gateway/" + l.o.Config.Place.Village }

// Connected reports whether the link is up.
func (l *Link) Connected() bool { return l.connected.Load() }

// Refresh publishes the targets again (after a config reload).
func (l *Link) Refresh() {
	select {
	case l.refresh <- struct{}{}:
	default:
	}
}

// Run connects and keeps the targets published until ctx ends.
func (l *Link) Run(ctx context.Context) error {
	l.ctx = ctx
	l.updateSites()
	l.c.Connect()
	defer l.c.Disconnect(250)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.refresh:
		}
		l.updateSites()
		if !l.connected.Load() {
			continue // published again on connect
		}
		if err := l.publishTargets(); err != nil {
			l.log.Warn("publishing targets to the gateway", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(5 * time.Second):
				l.Refresh()
			}
		}
	}
}

func (l *Link) updateSites() {
	m := map[string]string{}
	for _, b := range l.o.Boards() {
		m[b.ID] = b.Site
	}
	l.mu.Lock()
	l.sites = m
	l.mu.Unlock()
}

// publishTargets publishes every board's target retained and clears the
// retained message of boards published before and gone now.
func (l *Link) publishTargets() error {
	statePath := filepath.Join(l.o.DataDir, "gateway-published.json")
	var before []string
	if b, err := os.ReadFile(statePath); err == nil {
		_ = json.Unmarshal(b, &before)
	}
	var now []string
	var toks []paho.Token
	for _, b := range l.o.Boards() {
		target := b.TargetURL
		if strings.HasPrefix(target, "/") && !strings.HasPrefix(target, "//") && l.o.HubPublicURL != "" {
			target = strings.TrimRight(l.o.HubPublicURL, "/") + target
		}
		m := TargetMessage{Target: target, Name: b.Name, Site: b.Site, Hub: l.o.HubID, Place: l.o.Config.Place, Updated: time.Now().UTC()}
		if err := m.validate(l.o.Config.Place.Village, b.ID); err != nil {
			l.log.Warn("board not published to the gateway", "board", b.ID, "err", err)
			continue
		}
		payload, _ := json.Marshal(m)
		toks = append(toks, l.c.Publish(l.base()+"/"+b.ID, 1, true, payload))
		now = append(now, b.ID)
	}
	for _, id := range before {
		if !slices.Contains(now, id) && idRe.MatchString(id) {
			toks = append(toks, l.c.Publish(l.base()+"/"+id, 1, true, []byte{}))
		}
	}
	for _, t := range toks {
		if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
			return fmt.Errorf("broker did not acknowledge a target: %v", t.Error())
		}
	}
	b, _ := json.Marshal(now)
	return writeFileAtomic(statePath, b, true)
}

// onScans counts a batch of gateway scans for one board; the PUBACK goes
// when hub/state has committed them.
func (l *Link) onScans(_ paho.Client, msg paho.Message) {
	parts := strings.Split(msg.Topic(), "/")
	board := ""
	if len(parts) == 5 {
		board = parts[3]
	}
	l.mu.Lock()
	site, ok := l.sites[board]
	l.mu.Unlock()
	var m DownMessage
	if !ok || len(msg.Payload()) > 1<<20 || json.Unmarshal(msg.Payload(), &m) != nil {
		l.rejected.Add(1)
		l.log.Warn("gateway counts for an unknown board or malformed; dropped", "board", safeID(board))
		msg.Ack()
		return
	}
	scans := make([]scan.Scan, 0, len(m.Scans))
	for _, s := range m.Scans {
		c := scan.Class(s.Class)
		if len(s.ID) != 32 || !isHex(s.ID) || (c != scan.ClassHuman && c != scan.ClassBot && c != scan.ClassRateLimited) || s.TS.IsZero() {
			l.rejected.Add(1)
			continue
		}
		scans = append(scans, scan.Scan{Board: board, Site: site, At: s.TS, Class: c, Unique: s.Unique && c == scan.ClassHuman, ID: strings.ToLower(s.ID)})
	}
	l.received.Add(int64(len(scans)))
	if err := l.o.Sink.RecordGatewayScans(l.ctx, scans, msg.Ack); err != nil {
		l.log.Debug("gateway counts not taken (stopping); the broker redelivers them", "err", err)
	}
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}
