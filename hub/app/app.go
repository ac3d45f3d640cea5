// Package app assembles a hub from its configuration and runs it: the
// broker side (embedded broker or external client), the ingest queue, the
// state pipeline, the store, metrics and the HTTP server, all under one
// errgroup so that one failure stops everything cleanly.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"villagehub/hub/alert"
	"villagehub/hub/auth"
	"villagehub/hub/broker"
	"villagehub/hub/config"
	"villagehub/hub/fastlane"
	"villagehub/hub/gateway"
	"villagehub/hub/influx"
	"villagehub/hub/ingest"
	"villagehub/hub/input"
	_ "villagehub/hub/input/all" // every input compiled in
	"villagehub/hub/metrics"
	"villagehub/hub/mqttclient"
	"villagehub/hub/probe"
	"villagehub/hub/scan"
	"villagehub/hub/state"
	"villagehub/hub/store"
	"villagehub/hub/tlscert"
	"villagehub/hub/uplink"
	"villagehub/hub/web"
	"villagehub/hub/web/ui"
)

// mqttSide is the embedded broker or the external broker client.
type mqttSide interface {
	Run(ctx context.Context) error
	Connected() bool
	Publish(topic string, payload []byte, retain bool, qos byte) error
}

// Options are what the config file does not say.
type Options struct {
	Logger *slog.Logger
	// ProbeWorker is the command that starts an RTSP probe worker process
	// (default: this executable with "probe-worker").
	ProbeWorker []string
}

// Hub is an assembled hub.
type Hub struct {
	cfg     atomic.Pointer[config.Config] // replaced by Reload
	boards  atomic.Pointer[map[string]scan.Board]
	log     *slog.Logger
	started time.Time
	// printedURL is each board's printed address (hub or gateway), one
	// function for /qr/ images and the dashboard's sheets; it calls
	// printed, which a reload of http.public_url replaces.
	printedURL func(board string) (string, error)
	printed    atomic.Pointer[func(board string) (string, error)]
	prober     *probe.Supervisor // nil when no camera has an RTSP URL
	probeErr   atomic.Value      // string: why probing stopped ("" or unset: it runs)
	life       context.Context   // ends when Run returns
	endLife    context.CancelFunc
	queue      *ingest.Queue
	store      *store.Store
	state      *state.State
	metrics    *metrics.Metrics
	mqtt       mqttSide
	broker     *broker.Broker // nil with an external broker
	web        *web.Server
	ui         *ui.UI
	alerts     *alert.Engine
	influx     *influx.Writer // nil without InfluxDB
	gwLink     *gateway.Link  // nil without a gateway: block
	uplink     *uplink.Uplink // nil without uplink.remote_write
	auth       *auth.Hook     // nil with an external broker
	inputs     []input.Input
	// TLS certificates, reloaded with the configuration; nil without TLS.
	brokerTLS, httpTLS *tlscert.Reloader

	// latency and probeDur are made before the state, which observes
	// them, and registered with the metrics.
	latency  prometheus.Histogram
	probeDur *prometheus.HistogramVec

	reloadFn func() (*config.Config, error)
	reloadMu sync.Mutex // one reload at a time
	reloads  reloadRecord
}

// New builds every component, in the order they depend on each other.
// Listening sockets are bound here, so a port in use fails New with a
// message naming the setting to change.
// The state is the dashboard's Forgetter: the admin area's "Từ chối"
// rejects a self-registered device through State.Forget.
var _ ui.Forgetter = (*state.State)(nil)

func New(cfg *config.Config, opts Options) (*Hub, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	h := &Hub{log: log, started: time.Now().UTC(), queue: ingest.NewQueue(cfg.Limits.QueueSize)}
	h.cfg.Store(cfg)
	h.boards.Store(newBoardLookup(cfg))
	h.life, h.endLife = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			h.closeBuilt()
		}
	}()
	for _, build := range []func() error{
		h.openStore,
		h.newInflux,
		h.newInputs,
		h.newMQTTSide,
		h.newState,
		h.newGatewayLink,
		func() error { return h.newProber(opts.ProbeWorker) },
		h.newAlerts,
		h.newMetrics,
		h.newUplink,
		h.newWeb,
	} {
		if err := build(); err != nil {
			h.endLife()
			return nil, err
		}
	}
	ok = true
	return h, nil
}

// closeBuilt releases what a failed New opened.
func (h *Hub) closeBuilt() {
	if h.alerts != nil {
		h.alerts.Close()
	}
	if h.influx != nil {
		h.influx.Close()
	}
	if h.store != nil {
		h.store.Close()
	}
}

// openStore opens the embedded store under data_dir.
func (h *Hub) openStore() error {
	cfg := h.cfg.Load()
	st, err := store.Open(store.Config{
		Dir:             cfg.DataDir,
		EventRetention:  time.Duration(cfg.Store.EventRetention),
		HourlyRetention: time.Duration(cfg.Store.QRHourRetention),
		OutboxMaxBytes:  cfg.Influx.OutboxMaxBytes,
		Logger:          h.log.With("component", "store"),
	})
	h.store = st
	return err
}

// newInflux makes the InfluxDB writer, when influx.url is set.
func (h *Hub) newInflux() error {
	cfg := h.cfg.Load()
	if cfg.Influx.URL == "" {
		return nil
	}
	w, err := newInfluxWriter(cfg, h.log)
	h.influx = w
	return err
}

// newInputs makes the configured instances of every input (hub/input).
func (h *Hub) newInputs() error {
	var err error
	h.inputs, err = input.Build(input.Env{Config: h.cfg.Load(), Logger: h.log})
	return err
}

// newMQTTSide makes the embedded broker (with its access hook and TLS) or
// the client of an external broker.
func (h *Hub) newMQTTSide() error {
	cfg := h.cfg.Load()
	if !cfg.EmbeddedBroker() {
		pw, err := config.ReadSecret(cfg.MQTT.Password, cfg.MQTT.PasswordFile)
		if err != nil {
			return fmt.Errorf("mqtt.password_file: %w", err)
		}
		c, err := mqttclient.New(mqttclient.Config{
			URL: cfg.MQTT.URL, Username: cfg.MQTT.Username, Password: pw, ClientID: cfg.MQTT.ClientID,
			CAFile: cfg.MQTT.CAFile, CertFile: cfg.MQTT.CertFile, KeyFile: cfg.MQTT.KeyFile, Insecure: cfg.MQTT.Insecure,
			KeepAlive: time.Duration(cfg.MQTT.KeepAlive), Prefix: cfg.TopicPrefix, HubID: cfg.HubID,
			Queue: h.queue, Logger: h.log, Filters: input.Filters(h.inputs),
		})
		h.mqtt = c
		return err
	}
	var err error
	if h.auth, err = auth.New(h.authConfig(cfg)); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	var tc *tls.Config
	if cfg.Broker.TLS.CertFile != "" {
		if h.brokerTLS, err = tlscert.New(tlscert.Config{CertFile: cfg.Broker.TLS.CertFile, KeyFile: cfg.Broker.TLS.KeyFile, Name: "broker", Logger: h.log}); err != nil {
			return fmt.Errorf("broker.tls: %w", err)
		}
		tc = h.brokerTLS.TLSConfig()
	}
	b, err := broker.New(broker.Config{
		Addr: cfg.Broker.Addr, TLSAddr: cfg.Broker.TLSAddr, WSSAddr: cfg.Broker.WSSAddr, TLS: tc,
		Prefix: cfg.TopicPrefix, HubID: cfg.HubID, Queue: h.queue, Auth: h.auth, Logger: h.log,
		Match: input.Matcher(h.inputs),
	})
	if err != nil {
		return err
	}
	h.broker, h.mqtt = b, b
	return nil
}

// newState makes the state pipeline with the configured devices.
func (h *Hub) newState() error {
	cfg := h.cfg.Load()
	h.latency, h.probeDur = metrics.NewLatency(), metrics.NewProbeDuration()
	scfg := state.Config{
		Inputs:         input.Decoders(h.inputs),
		MaxAutoCameras: cfg.Limits.MaxAutoCameras,
		MaxAutoBoards:  cfg.Limits.MaxAutoBoards,
		Location:       cfg.Location,
		Decoder: ingest.DecoderConfig{
			Prefix:     cfg.TopicPrefix,
			MaxPayload: cfg.Limits.MaxPayloadBytes,
			MaxFuture:  time.Duration(cfg.Limits.MaxFuture),
		},
		Queue:          h.queue,
		Store:          h.store,
		BatchSize:      cfg.Limits.BatchSize,
		Logger:         h.log.With("component", "state"),
		InfluxPoints:   cfg.Influx.URL != "",
		ObserveLatency: h.latency.Observe,
		ObserveProbe:   func(site string, s float64) { h.probeDur.WithLabelValues(site).Observe(s) },
		// Zero: the state's defaults.
		MaxQRPerReport: cfg.Limits.MaxQRPerReport,
		MaxQRPerHour:   cfg.Limits.MaxQRPerHour,
		MaxPast:        time.Duration(cfg.Limits.MaxPast),
	}
	scfg.Sites, scfg.Cameras, scfg.Boards = stateDevices(cfg)
	var err error
	h.state, err = state.New(scfg)
	return err
}

// probeProblem says why RTSP probing stopped, "" while it runs.
func (h *Hub) probeProblem() string {
	s, _ := h.probeErr.Load().(string)
	return s
}

// uplinkProblem feeds HubDegraded's uplink check (nil without an uplink).
// The uplink is made after the alerts (it gathers their metrics too), so
// the check reads it when it runs.
func (h *Hub) uplinkProblem(cfg *config.Config) func() string {
	if len(cfg.Uplink.RemoteWrite) == 0 {
		return nil
	}
	return func() string {
		if h.uplink == nil {
			return ""
		}
		return h.uplink.BacklogProblem()
	}
}

// newAlerts makes the alerting engine.
func (h *Hub) newAlerts() error {
	cfg := h.cfg.Load()
	var err error
	h.alerts, err = alert.New(cfg.Alerts, alert.Deps{
		State: h.state, Publisher: h.mqtt, Prefix: cfg.TopicPrefix, HubID: cfg.HubID,
		DataDir: cfg.DataDir, PublicURL: cfg.HTTP.PublicURL,
		// Links in notices follow a reloaded http.public_url.
		CurrentPublicURL: func() string { return h.cfg.Load().HTTP.PublicURL }, Location: cfg.Location,
		BrokerConnected: h.mqtt.Connected,
		IngestQueue:     func() (int, int) { return h.queue.Len(), h.queue.Cap() },
		SpoolPoints:     h.influxBacklog,
		ProbeProblem:    h.probeProblem,
		UplinkProblem:   h.uplinkProblem(cfg),
		Frigates:        frigateInputs(cfg),
		Changed:         h.state.Changed(),
		Logger:          h.log.With("component", "alert"),
		Now:             h.state.Now, // the hub's clock (docs/time.md)
	})
	if err != nil {
		return fmt.Errorf("alerts: %w", err)
	}
	return nil
}

// newMetrics makes the Prometheus registry with every component's
// collector.
func (h *Hub) newMetrics() error {
	var extra []prometheus.Collector
	for _, c := range []prometheus.Collector{h.influx, h.auth, h.brokerTLS, h.prober, h.alerts} {
		// A nil pointer in an interface is not nil: check the pointer.
		if v := reflect.ValueOf(c); v.IsValid() && !v.IsNil() {
			extra = append(extra, c)
		}
	}
	var err error
	h.metrics, err = metrics.New(metrics.Config{
		State: h.state, Queue: h.queue, Broker: h.mqtt, Latency: h.latency, ProbeDuration: h.probeDur,
		Extra:  extra,
		Outbox: func() (int64, bool) { return h.store.OutboxPoints(), h.influx != nil },
	})
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// newUplink sets up the metrics pushed to the centre (docs/province.md):
// the families /metrics serves, labelled with the place and hub.
func (h *Hub) newUplink() error {
	cfg := h.cfg.Load()
	if len(cfg.Uplink.RemoteWrite) == 0 {
		return nil
	}
	var err error
	h.uplink, err = uplink.New(uplink.Options{
		Config: cfg.Uplink, Place: cfg.Place, HubID: cfg.HubID,
		Gatherer: h.metrics.Registry, Registerer: h.metrics.Registry, Logger: h.log,
	})
	return err
}

// newWeb makes the HTTP server: API, dashboard, printed codes, alerts,
// status and reload.
func (h *Hub) newWeb() error {
	cfg := h.cfg.Load()
	scans, err := h.newScans()
	if err != nil {
		return err
	}
	if h.ui, err = ui.New(ui.Config{Source: h.state, Location: cfg.Location, Logger: h.log.With("component", "ui"),
		// The dashboard's admin area: reports, QR sheets, and devices
		// added or renamed by writing the config file, then reloading.
		QR: h.store, PublicURL: func() string { return h.cfg.Load().HTTP.PublicURL },
		ConfigFile: cfg.Path,
		Reload:     func(ctx context.Context) error { return h.ReloadFromFile(ctx, "dashboard") },
		Notifiers:  uiNotifiers{h.alerts},
		// First run: the admin goes into the users file, live; "needs
		// setup" counts users from the config and the users file alike.
		NeedsSetup:  func() bool { return h.web != nil && h.web.NeedsFirstUser() },
		CreateAdmin: func(name, pw string) error { return h.web.CreateFirstAdmin(name, pw) },
		// Sheets printed from the dashboard carry what /qr/ and `qr print`
		// carry: the gateway's address when configured.
		CodeURL: h.printedURL,
		PrintedBase: func() string {
			if gw := h.cfg.Load().GatewayLink(); gw.Enabled() {
				return gw.PublicURL
			}
			return h.cfg.Load().HTTP.PublicURL
		},
		DataDir: cfg.DataDir,
	}); err != nil {
		return err
	}
	var httpTLS *tls.Config
	if cfg.HTTP.TLS.CertFile != "" {
		if h.httpTLS, err = tlscert.New(tlscert.Config{CertFile: cfg.HTTP.TLS.CertFile, KeyFile: cfg.HTTP.TLS.KeyFile, Name: "http", Logger: h.log}); err != nil {
			return fmt.Errorf("http.tls: %w", err)
		}
		httpTLS = h.httpTLS.TLSConfig()
		h.metrics.Registry.MustRegister(h.httpTLS)
	}
	h.web, err = web.New(web.Config{
		TLS:  httpTLS,
		Addr: cfg.HTTP.Addr, State: h.state, Events: h.store, QR: h.store, Location: cfg.Location, Registry: h.metrics.Registry,
		Ready: h.readyChecks(),
		// Silences record the authenticated user as created_by.
		Mount:  []func(*http.ServeMux){h.ui.Mount, scans.Register, func(mux *http.ServeMux) { h.alerts.RegisterWith(mux, web.WithUserName(alert.WithUser)) }},
		Fast:   []fastlane.Route{{Prefix: "/q/", Serve: scans.ServeFastBoard}},
		Status: func() any { return h.Status() },
		Reload: func(ctx context.Context) error { return h.ReloadFromFile(ctx, "api") },
		Access: accessConfig(cfg),
		Logger: h.log,
	})
	if err == nil && h.web.NeedsFirstUser() && len(cfg.HTTP.Auth.Tokens) == 0 {
		h.log.Warn("no dashboard users yet: make an administrator with `villagehub user add NAME`; until then only this machine (loopback) may administer", "users_file", cfg.UsersPath())
	}
	return err
}

// readyChecks are what /readyz reports.
func (h *Hub) readyChecks() []web.Check {
	return []web.Check{
		{Name: "broker", Fn: func() error {
			if !h.mqtt.Connected() {
				return errors.New("not connected to the MQTT broker")
			}
			return nil
		}},
		{Name: "store", Fn: func() error { return h.state.Counters().StoreErr }},
		{Name: "influx", Fn: func() error {
			if h.influx != nil && h.influx.Stale(2*time.Minute) {
				return fmt.Errorf("InfluxDB has not accepted a write for 2 minutes; %d points wait", h.influxBacklog())
			}
			return nil
		}},
	}
}

// Status is what GET /api/v1/status answers: no secrets.
type Status struct {
	Version string       `json:"version,omitempty"`
	Started time.Time    `json:"started"`
	Reload  ReloadStatus `json:"reload"`
	// Certificates is each TLS listener's certificate being served.
	Certificates []CertStatus `json:"certificates"`
	// Notifiers is each alert notifier's health (a broken Zalo token chain
	// shows here with what to do).
	Notifiers []alert.NotifierStatus `json:"notifiers"`
}

// CertStatus is a certificate being served.
type CertStatus struct {
	Listener string    `json:"listener"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"not_after"`
}

// Version is reported at /api/v1/status (cmd/villagehub sets it).
var Version string

// Status is the hub's running state.
func (h *Hub) Status() Status {
	st := Status{Version: Version, Started: h.started, Reload: h.LastReload(), Certificates: []CertStatus{}, Notifiers: h.alerts.Notifiers()}
	for _, r := range h.certs() {
		c := r.Certificate()
		st.Certificates = append(st.Certificates, CertStatus{Listener: r.Name(), Serial: c.Leaf.SerialNumber.Text(16), NotAfter: c.Leaf.NotAfter.UTC()})
	}
	return st
}

// certs are the TLS certificates in use.
func (h *Hub) certs() []*tlscert.Reloader {
	var out []*tlscert.Reloader
	for _, r := range []*tlscert.Reloader{h.brokerTLS, h.httpTLS} {
		if r != nil {
			out = append(out, r)
		}
	}
	return out
}

// newScans sets up counting of printed QR codes at /q/<board> and the
// codes themselves at /qr/<board>.png|svg.
func (h *Hub) newScans() (*scan.Handler, error) {
	cfg := h.cfg.Load()
	public, printed := h.printedURLs(cfg)
	h.printed.Store(&printed)
	h.printedURL = func(board string) (string, error) { return (*h.printed.Load())(board) }
	hd, err := scan.NewHandler(scan.Config{
		PublicURL:      public,
		UniqueWindow:   time.Duration(cfg.QR.UniqueWindow),
		TrustedProxies: cfg.QR.TrustedProxies,
		RatePerSecond:  cfg.QR.RatePerSecond,
		RateBurst:      cfg.QR.RateBurst,
		MaxClients:     cfg.QR.MaxClients,
		BotAgents:      cfg.QR.BotAgents,
		Location:       cfg.Location,
		Logger:         h.log.With("component", "qr"),
		CodeURL:        h.printedURL,
	}, boardLookup{&h.boards}, h.state)
	if err != nil {
		return nil, fmt.Errorf("qr: %w", err)
	}
	return hd, nil
}

// newProber sets up RTSP probing of every camera with a URL.
func (h *Hub) newProber(worker []string) error {
	cfg := h.cfg.Load()
	if !cfg.ProbeEnabled() {
		return nil
	}
	targets, err := probeTargets(cfg)
	if err != nil || len(targets) == 0 {
		return err
	}
	sup, err := probe.NewSupervisor(probe.Config{
		WorkerCommand: worker,
		Workers:       cfg.Probe.Workers,
		Concurrency:   cfg.Probe.Concurrency,
		RecycleAfter:  cfg.Probe.RecycleAfter,
		Defaults:      probeSettings(cfg.Probe.ProbeSettings),
		Logger:        h.log.With("component", "probe"),
	}, func(r probe.Result) {
		// Back-pressure: the prober waits while the pipeline is full.
		_ = h.state.Submit(h.life, r)
	})
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	sup.SetTargets(targets)
	h.prober = sup
	return nil
}

func probeSettings(p config.ProbeSettings) probe.Settings {
	return probe.Settings{
		Mode: probe.Mode(p.Mode), Interval: time.Duration(p.Interval), SampleInterval: time.Duration(p.SampleInterval),
		Timeout: time.Duration(p.Timeout), SampleWindow: time.Duration(p.SampleWindow),
		MaxSampleWindow: time.Duration(p.MaxSampleWindow), NoVideoTimeout: time.Duration(p.NoVideoTimeout),
	}
}

// frigateInputs are the configured Frigates' input names (frigate/<name>),
// the only ones FrigateDown watches.
func frigateInputs(cfg *config.Config) []string {
	out := []string{}
	for _, f := range cfg.Frigate {
		out = append(out, "frigate/"+f.Name)
	}
	return out
}

// authConfig is the embedded broker's access settings.
func (h *Hub) authConfig(cfg *config.Config) auth.Config {
	ac := cfg.Broker.Config
	ac.Prefix, ac.DataDir, ac.Logger = cfg.TopicPrefix, cfg.DataDir, h.log
	ac.Frigates = map[string]string{}
	for _, f := range cfg.Frigate {
		ac.Frigates[f.Name] = f.TopicPrefix
	}
	return ac
}

// accessConfig turns http.auth into the web server's access rules.
func accessConfig(cfg *config.Config) web.AccessConfig {
	a := cfg.HTTP.Auth
	ac := web.AccessConfig{Anonymous: web.RoleViewer, SessionTTL: time.Duration(a.SessionTTL)}
	if a.Anonymous != "" {
		ac.Anonymous, _ = web.ParseRole(a.Anonymous) // validated
	}
	// Loopback administers while no user (in the config or made by
	// `villagehub user add`) and no token exists.
	ac.LoopbackAdmin, ac.LoopbackUntilUsers = len(a.Users) == 0 && len(a.Tokens) == 0, true
	if a.LoopbackAdmin != nil {
		ac.LoopbackAdmin, ac.LoopbackUntilUsers = *a.LoopbackAdmin, false
	}
	ac.UsersFile = cfg.UsersPath()
	users := func(list []config.HTTPUser) (out []web.User) {
		for _, u := range list {
			r, _ := web.ParseRole(u.Role)
			out = append(out, web.User{Name: u.Name, PasswordHash: u.PasswordHash, Role: r})
		}
		return out
	}
	tokens := func(list []config.HTTPToken) (out []web.Token) {
		for _, t := range list {
			r, _ := web.ParseRole(t.Role)
			out = append(out, web.Token{Name: t.Name, SHA256: t.TokenSHA256, Role: r})
		}
		return out
	}
	ac.Users, ac.Tokens = users(a.Users), tokens(a.Tokens)
	ac.MetricsUsers, ac.MetricsTokens = users(a.Metrics.Users), tokens(a.Metrics.Tokens)
	ac.SecureCookies = strings.HasPrefix(cfg.HTTP.PublicURL, "https://")
	ac.Pprof = cfg.Debug.Pprof
	return ac
}

// SetReloader tells the hub how to read its configuration again, for
// POST /api/v1/reload (cmd/villagehub passes the same loader SIGHUP uses).
func (h *Hub) SetReloader(fn func() (*config.Config, error)) { h.reloadFn = fn }

// newInfluxWriter makes the InfluxDB writer with its spool under the data
// directory.
func newInfluxWriter(cfg *config.Config, log *slog.Logger) (*influx.Writer, error) {
	ic := cfg.Influx
	token, err := config.ReadSecret(ic.Token, ic.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("influx.token_file: %w", err)
	}
	spool := ic.SpoolDir
	if spool == "" {
		spool = filepath.Join(cfg.DataDir, "influx-spool")
	}
	w, err := influx.New(influx.Config{
		URL: ic.URL, Token: token, Org: ic.Org, Bucket: ic.Bucket, BatchSize: ic.BatchSize,
		FlushInterval: time.Duration(ic.FlushInterval), Gzip: ic.Gzip,
		TLS:     influx.TLSConfig{CAFile: ic.TLS.CAFile, CertFile: ic.TLS.CertFile, KeyFile: ic.TLS.KeyFile, InsecureSkipVerify: ic.TLS.Insecure},
		Timeout: time.Duration(ic.Timeout), MaxRetryInterval: time.Duration(ic.MaxRetryInterval),
		SpoolDir: spool, SpoolMaxBytes: ic.SpoolMaxBytes, Logger: log,
		Tags: placeTags(cfg),
	})
	if err != nil {
		return nil, fmt.Errorf("influx: %w", err)
	}
	return w, nil
}

// placeTags are the hub's place IDs and hub ID as InfluxDB tags, so that
// many hubs can write into one central bucket (docs/province.md); none
// when no place is configured.
func placeTags(cfg *config.Config) []influx.Tag {
	if !cfg.Place.Set() {
		return nil
	}
	var tags []influx.Tag
	for i, id := range cfg.Place.IDs() {
		tags = append(tags, influx.Tag{Key: uplink.PlaceLabels[i], Value: id})
	}
	return append(tags, influx.Tag{Key: "hub", Value: cfg.HubID})
}

// influxBacklog is the points not yet in InfluxDB: in the outbox and in the
// writer's spool.
func (h *Hub) influxBacklog() int64 {
	if h.influx == nil {
		return 0
	}
	return h.store.OutboxPoints() + h.influx.Waiting()
}

// BrokerAddr is the embedded broker's address, or "" with an external one.
func (h *Hub) BrokerAddr() string {
	if h.broker == nil {
		return ""
	}
	return h.broker.Addr()
}

// HTTPAddr is the HTTP server's address.
func (h *Hub) HTTPAddr() string { return h.web.Addr() }

// HTTPURL is the dashboard's base URL as served: https:// over TLS.
func (h *Hub) HTTPURL() string { return h.web.URL() }

// NeedsFirstUser reports whether no dashboard user exists yet; the
// first-run page (hub/web/ui) offers CreateFirstAdmin then.
func (h *Hub) NeedsFirstUser() bool { return h.web.NeedsFirstUser() }

// CreateFirstAdmin makes the first administrator; it fails once any user
// exists.
func (h *Hub) CreateFirstAdmin(name, password string) error {
	return h.web.CreateFirstAdmin(name, password)
}

// Uplink is the metrics uplink, nil without uplink.remote_write.
func (h *Hub) Uplink() *uplink.Uplink { return h.uplink }

// State is the hub's live state.
func (h *Hub) State() *state.State { return h.state }

// Run runs the hub until ctx ends or a component fails. On the way out the
// MQTT side stops first (no new messages), the pipeline finishes what it
// was doing, and the store closes last.
func (h *Hub) Run(ctx context.Context) error {
	defer h.store.Close()
	defer h.alerts.Close()
	defer h.endLife()
	pipeCtx, stopPipe := context.WithCancel(context.Background())
	defer stopPipe()
	g, gctx := errgroup.WithContext(ctx)
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- h.state.Run(pipeCtx) }()
	g.Go(func() error { return h.mqtt.Run(gctx) })
	g.Go(func() error { return h.web.Run(gctx) })
	g.Go(func() error { return h.ui.Run(gctx) })
	g.Go(func() error { return h.alerts.Run(gctx) })
	g.Go(func() error { return h.store.Run(gctx, h.log) })
	if h.prober != nil {
		g.Go(func() error {
			// A probe worker that cannot start (a missing or foreign
			// binary, no memory) degrades the hub to "probes unavailable"
			// with a HubDegraded alert; ingest, alerts and the dashboard
			// keep running.
			if err := h.prober.Run(gctx); err != nil && gctx.Err() == nil {
				h.probeErr.Store(err.Error())
				h.log.Error("RTSP probing unavailable; the hub keeps ingesting and alerting", "err", err)
			}
			return nil
		})
	}
	if h.gwLink != nil {
		g.Go(func() error { return h.gwLink.Run(gctx) })
	}
	for _, in := range input.Runners(h.inputs) {
		g.Go(func() error { return in.Run(gctx, h.state) })
	}
	if h.auth != nil {
		g.Go(func() error { return h.auth.Run(gctx) })
	}
	if h.uplink != nil {
		g.Go(func() error { return h.uplink.Run(gctx) })
	}
	if h.influx != nil {
		defer h.influx.Close()
		g.Go(func() error { return h.influx.Run(gctx) })
		g.Go(func() error { return h.store.RunOutbox(gctx, h.influx.AppendLines) })
	}
	err := g.Wait()
	h.endLife() // releases a prober callback waiting on a full queue
	// The MQTT side has stopped: let the pipeline drain what is queued,
	// within half the shutdown deadline, then stop it.
	deadline := time.Now().Add(time.Duration(h.cfg.Load().ShutdownTimeout) / 2)
	for h.queue.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := h.queue.Len(); n > 0 {
		h.log.Warn("shutting down with messages still queued; they were not acknowledged and will be redelivered", "queued", n)
	}
	stopPipe()
	if perr := <-pipeDone; perr != nil && err == nil {
		err = perr
	}
	return err
}
