// Package app assembles a hub from its configuration and runs it: the
// broker side (embedded broker or external client), the ingest queue, the
// state pipeline, the store, metrics and the HTTP server, all under one
// errgroup so that one failure stops everything cleanly.
package app

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"villagehub/hub/alert"
	"villagehub/hub/auth"
	"villagehub/hub/broker"
	"villagehub/hub/config"
	"villagehub/hub/influx"
	"villagehub/hub/ingest"
	"villagehub/hub/metrics"
	"villagehub/hub/mqttclient"
	"villagehub/hub/probe"
	"villagehub/hub/scan"
	"villagehub/hub/state"
	"villagehub/hub/store"
	"villagehub/hub/tlscert"
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
	prober  *probe.Supervisor // nil when no camera has an RTSP URL
	life    context.Context   // ends when Run returns
	endLife context.CancelFunc
	queue   *ingest.Queue
	store   *store.Store
	state   *state.State
	metrics *metrics.Metrics
	mqtt    mqttSide
	broker  *broker.Broker // nil with an external broker
	web     *web.Server
	ui      *ui.UI
	alerts  *alert.Engine
	influx  *influx.Writer // nil without InfluxDB
	auth    *auth.Hook     // nil with an external broker
	// TLS certificates, reloaded on SIGHUP; nil without TLS.
	brokerTLS, httpTLS *tlscert.Reloader

	reloadFn func() (*config.Config, error)
}

// New builds every component. Listening sockets are bound here, so a port
// in use fails New with a message naming the setting to change.
func New(cfg *config.Config, opts Options) (*Hub, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	h := &Hub{log: log}
	h.cfg.Store(cfg)
	h.boards.Store(newBoardLookup(cfg))
	h.life, h.endLife = context.WithCancel(context.Background())
	h.queue = ingest.NewQueue(cfg.Limits.QueueSize)
	st, err := store.Open(store.Config{
		Dir:             cfg.DataDir,
		EventRetention:  time.Duration(cfg.Store.EventRetention),
		HourlyRetention: time.Duration(cfg.Store.QRHourRetention),
		OutboxMaxBytes:  cfg.Influx.OutboxMaxBytes,
		Logger:          log.With("component", "store"),
	})
	if err != nil {
		return nil, err
	}
	h.store = st
	ok := false
	defer func() {
		if !ok {
			h.store.Close()
			if h.influx != nil {
				h.influx.Close()
			}
		}
	}()

	scfg := state.Config{
		MaxAutoCameras: cfg.Limits.MaxAutoCameras,
		MaxAutoBoards:  cfg.Limits.MaxAutoBoards,
		Location:       cfg.Location,
		Decoder: ingest.DecoderConfig{
			Prefix:     cfg.TopicPrefix,
			MaxPayload: cfg.Limits.MaxPayloadBytes,
			MaxFuture:  time.Duration(cfg.Limits.MaxFuture),
		},
		Queue:        h.queue,
		Store:        st,
		BatchSize:    cfg.Limits.BatchSize,
		Logger:       log.With("component", "state"),
		InfluxPoints: cfg.Influx.URL != "",
		// Zero: the state's defaults.
		MaxQRPerReport: cfg.Limits.MaxQRPerReport,
		MaxQRPerHour:   cfg.Limits.MaxQRPerHour,
		MaxPast:        time.Duration(cfg.Limits.MaxPast),
	}
	if cfg.Influx.URL != "" {
		if h.influx, err = newInfluxWriter(cfg, log); err != nil {
			return nil, err
		}
	}
	scfg.Sites, scfg.Cameras, scfg.Boards = stateDevices(cfg)

	if cfg.EmbeddedBroker() {
		if h.auth, err = auth.New(h.authConfig(cfg)); err != nil {
			return nil, fmt.Errorf("broker: %w", err)
		}
		var tc *tls.Config
		if cfg.Broker.TLS.CertFile != "" {
			if h.brokerTLS, err = tlscert.New(tlscert.Config{CertFile: cfg.Broker.TLS.CertFile, KeyFile: cfg.Broker.TLS.KeyFile, Name: "broker", Logger: log}); err != nil {
				return nil, fmt.Errorf("broker.tls: %w", err)
			}
			tc = h.brokerTLS.TLSConfig()
		}
		b, err := broker.New(broker.Config{
			Addr: cfg.Broker.Addr, TLSAddr: cfg.Broker.TLSAddr, WSSAddr: cfg.Broker.WSSAddr, TLS: tc,
			Prefix: cfg.TopicPrefix, HubID: cfg.HubID, Queue: h.queue, Auth: h.auth, Logger: log,
		})
		if err != nil {
			return nil, err
		}
		h.broker, h.mqtt = b, b
	} else {
		pw, err := config.ReadSecret(cfg.MQTT.Password, cfg.MQTT.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.password_file: %w", err)
		}
		c, err := mqttclient.New(mqttclient.Config{
			URL: cfg.MQTT.URL, Username: cfg.MQTT.Username, Password: pw, ClientID: cfg.MQTT.ClientID,
			CAFile: cfg.MQTT.CAFile, CertFile: cfg.MQTT.CertFile, KeyFile: cfg.MQTT.KeyFile, Insecure: cfg.MQTT.Insecure,
			KeepAlive: time.Duration(cfg.MQTT.KeepAlive), Prefix: cfg.TopicPrefix, HubID: cfg.HubID,
			Queue: h.queue, Logger: log,
		})
		if err != nil {
			return nil, err
		}
		h.mqtt = c
	}

	latency, probeDur := metrics.NewLatency(), metrics.NewProbeDuration()
	scfg.ObserveLatency = latency.Observe
	scfg.ObserveProbe = func(site string, s float64) { probeDur.WithLabelValues(site).Observe(s) }
	if h.state, err = state.New(scfg); err != nil {
		return nil, err
	}
	var extra []prometheus.Collector
	if h.influx != nil {
		extra = append(extra, h.influx)
	}
	if h.auth != nil {
		extra = append(extra, h.auth)
	}
	if h.brokerTLS != nil {
		extra = append(extra, h.brokerTLS)
	}
	if h.prober, err = h.newProber(opts.ProbeWorker); err != nil {
		return nil, err
	}
	if h.prober != nil {
		extra = append(extra, h.prober)
	}
	h.alerts, err = alert.New(cfg.Alerts, alert.Deps{
		State: h.state, Publisher: h.mqtt, Prefix: cfg.TopicPrefix, HubID: cfg.HubID,
		DataDir: cfg.DataDir, PublicURL: cfg.HTTP.PublicURL, Location: cfg.Location,
		BrokerConnected: h.mqtt.Connected,
		IngestQueue:     func() (int, int) { return h.queue.Len(), h.queue.Cap() },
		SpoolPoints:     h.influxBacklog,
		Changed:         h.state.Changed(),
		Logger:          log.With("component", "alert"),
	})
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	defer func() {
		if !ok {
			h.alerts.Close()
		}
	}()
	extra = append(extra, h.alerts)
	h.metrics, err = metrics.New(metrics.Config{
		State: h.state, Queue: h.queue, Broker: h.mqtt, Latency: latency, ProbeDuration: probeDur,
		MaxAutoCameras: cfg.Limits.MaxAutoCameras, MaxAutoBoards: cfg.Limits.MaxAutoBoards,
		Extra:  extra,
		Outbox: func() (int64, bool) { return st.OutboxPoints(), h.influx != nil },
	})
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}

	scans, err := h.newScans()
	if err != nil {
		return nil, err
	}
	if h.ui, err = ui.New(ui.Config{Source: h.state, Location: cfg.Location, Logger: log.With("component", "ui")}); err != nil {
		return nil, err
	}
	var httpTLS *tls.Config
	if cfg.HTTP.TLS.CertFile != "" {
		if h.httpTLS, err = tlscert.New(tlscert.Config{CertFile: cfg.HTTP.TLS.CertFile, KeyFile: cfg.HTTP.TLS.KeyFile, Name: "http", Logger: log}); err != nil {
			return nil, fmt.Errorf("http.tls: %w", err)
		}
		httpTLS = h.httpTLS.TLSConfig()
		h.metrics.Registry.MustRegister(h.httpTLS)
	}
	h.web, err = web.New(web.Config{
		TLS:  httpTLS,
		Addr: cfg.HTTP.Addr, State: h.state, Events: st, QR: st, Location: cfg.Location, Registry: h.metrics.Registry,
		Ready: []web.Check{
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
		},
		Mount:  []func(*http.ServeMux){h.ui.Mount, scans.Register, func(mux *http.ServeMux) { h.alerts.RegisterWith(mux, web.WithUserName(alert.WithUser)) }, h.mountAdmin},
		Access: accessConfig(cfg),
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if h.web.NeedsFirstUser() && len(cfg.HTTP.Auth.Tokens) == 0 {
		log.Warn("no dashboard users yet: make an administrator with `villagehub user add NAME`; until then only this machine (loopback) may administer", "users_file", cfg.UsersPath())
	}
	ok = true
	return h, nil
}

// newScans sets up counting of printed QR codes at /q/<board> and the
// codes themselves at /qr/<board>.png|svg.
func (h *Hub) newScans() (*scan.Handler, error) {
	cfg := h.cfg.Load()
	public := cfg.HTTP.PublicURL
	if public == "" {
		public = "http://" + cfg.HTTP.Addr
		h.log.Warn("http.public_url is not set; printed QR codes will point at " + public + ", which phones may not reach")
	}
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
	}, boardLookup{&h.boards}, h.state)
	if err != nil {
		return nil, fmt.Errorf("qr: %w", err)
	}
	return hd, nil
}

// newProber sets up RTSP probing of every camera with a URL.
func (h *Hub) newProber(worker []string) (*probe.Supervisor, error) {
	cfg := h.cfg.Load()
	if !cfg.ProbeEnabled() {
		return nil, nil
	}
	targets, err := probeTargets(cfg)
	if err != nil || len(targets) == 0 {
		return nil, err
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
		return nil, fmt.Errorf("probe: %w", err)
	}
	sup.SetTargets(targets)
	return sup, nil
}

func probeSettings(p config.ProbeSettings) probe.Settings {
	return probe.Settings{
		Mode: probe.Mode(p.Mode), Interval: time.Duration(p.Interval), SampleInterval: time.Duration(p.SampleInterval),
		Timeout: time.Duration(p.Timeout), SampleWindow: time.Duration(p.SampleWindow),
		MaxSampleWindow: time.Duration(p.MaxSampleWindow), NoVideoTimeout: time.Duration(p.NoVideoTimeout),
	}
}

// authConfig is the embedded broker's access settings.
func (h *Hub) authConfig(cfg *config.Config) auth.Config {
	ac := cfg.Broker.Config
	ac.Prefix, ac.DataDir, ac.Logger = cfg.TopicPrefix, cfg.DataDir, h.log
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

// mountAdmin adds the administrator's API: reloading the config file.
func (h *Hub) mountAdmin(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/reload", func(w http.ResponseWriter, r *http.Request) {
		if h.reloadFn == nil {
			http.Error(w, `{"error":"this hub was not started from a config file"}`, http.StatusConflict)
			return
		}
		next, err := h.reloadFn()
		if err == nil {
			err = h.Reload(r.Context(), next)
		}
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusUnprocessableEntity)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "reloaded"})
	})
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
	})
	if err != nil {
		return nil, fmt.Errorf("influx: %w", err)
	}
	return w, nil
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
		g.Go(func() error { return h.prober.Run(gctx) })
	}
	if h.auth != nil {
		g.Go(func() error { return h.auth.Run(gctx) })
	}
	for _, r := range []*tlscert.Reloader{h.brokerTLS, h.httpTLS} {
		if r != nil {
			g.Go(func() error { return r.Run(gctx) })
		}
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
