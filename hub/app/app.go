// Package app assembles a hub from its configuration and runs it: the
// broker side (embedded broker or external client), the ingest queue, the
// state pipeline, the store, metrics and the HTTP server, all under one
// errgroup so that one failure stops everything cleanly.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"villagehub/hub/broker"
	"villagehub/hub/config"
	"villagehub/hub/ingest"
	"villagehub/hub/metrics"
	"villagehub/hub/mqttclient"
	"villagehub/hub/state"
	"villagehub/hub/store"
	"villagehub/hub/web"
)

// mqttSide is the embedded broker or the external broker client.
type mqttSide interface {
	Run(ctx context.Context) error
	Connected() bool
	Publish(topic string, payload []byte, retain bool, qos byte) error
}

// Hub is an assembled hub.
type Hub struct {
	cfg     *config.Config
	log     *slog.Logger
	queue   *ingest.Queue
	store   *store.Store
	state   *state.State
	metrics *metrics.Metrics
	mqtt    mqttSide
	broker  *broker.Broker // nil with an external broker
	web     *web.Server
}

// New builds every component. Listening sockets are bound here, so a port
// in use fails New with a message naming the setting to change.
func New(cfg *config.Config, log *slog.Logger) (*Hub, error) {
	h := &Hub{cfg: cfg, log: log}
	h.queue = ingest.NewQueue(cfg.Limits.QueueSize)
	st, err := store.Open(store.Config{
		Dir:             cfg.DataDir,
		EventRetention:  time.Duration(cfg.Store.EventRetention),
		HourlyRetention: time.Duration(cfg.Store.QRHourRetention),
	})
	if err != nil {
		return nil, err
	}
	h.store = st
	ok := false
	defer func() {
		if !ok {
			h.store.Close()
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
		Queue:     h.queue,
		Store:     st,
		BatchSize: cfg.Limits.BatchSize,
		Logger:    log.With("component", "state"),
	}
	for _, s := range cfg.Sites {
		scfg.Sites = append(scfg.Sites, state.Site{ID: s.ID, Name: s.Name})
	}
	for _, c := range cfg.Cameras {
		scfg.Cameras = append(scfg.Cameras, state.CameraInfo{ID: c.ID, Site: c.Site, Name: c.Name, Location: c.Location, RTSPURL: RedactURL(c.RTSPURL)})
	}
	for _, b := range cfg.Boards {
		scfg.Boards = append(scfg.Boards, state.BoardInfo{ID: b.ID, Site: b.Site, Name: b.Name, Location: b.Location, TargetURL: b.TargetURL})
	}

	if cfg.EmbeddedBroker() {
		allow := true
		if cfg.Broker.AllowAnonymous != nil {
			allow = *cfg.Broker.AllowAnonymous
		}
		b, err := broker.New(broker.Config{
			Addr: cfg.Broker.Addr, Prefix: cfg.TopicPrefix, HubID: cfg.HubID,
			Queue: h.queue, AllowAnonymous: allow, Logger: log,
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

	latency := metrics.NewLatency()
	scfg.ObserveLatency = latency.Observe
	if h.state, err = state.New(scfg); err != nil {
		return nil, err
	}
	h.metrics, err = metrics.New(metrics.Config{
		State: h.state, Queue: h.queue, Broker: h.mqtt, Latency: latency,
		MaxAutoCameras: cfg.Limits.MaxAutoCameras, MaxAutoBoards: cfg.Limits.MaxAutoBoards,
	})
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}

	h.web, err = web.New(web.Config{
		Addr: cfg.HTTP.Addr, State: h.state, Events: st, Registry: h.metrics.Registry,
		Ready: []web.Check{
			{Name: "broker", Fn: func() error {
				if !h.mqtt.Connected() {
					return errors.New("not connected to the MQTT broker")
				}
				return nil
			}},
			{Name: "store", Fn: func() error { return h.state.Counters().StoreErr }},
		},
		Mount:  []func(*http.ServeMux){web.Dashboard(h.state)},
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	ok = true
	return h, nil
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

// State is the hub's live state.
func (h *Hub) State() *state.State { return h.state }

// Run runs the hub until ctx ends or a component fails. On the way out the
// MQTT side stops first (no new messages), the pipeline finishes what it
// was doing, and the store closes last.
func (h *Hub) Run(ctx context.Context) error {
	defer h.store.Close()
	pipeCtx, stopPipe := context.WithCancel(context.Background())
	defer stopPipe()
	g, gctx := errgroup.WithContext(ctx)
	pipeDone := make(chan error, 1)
	go func() { pipeDone <- h.state.Run(pipeCtx) }()
	g.Go(func() error { return h.mqtt.Run(gctx) })
	g.Go(func() error { return h.web.Run(gctx) })
	g.Go(func() error { return h.store.Run(gctx, h.log) })
	err := g.Wait()
	// The MQTT side has stopped: let the pipeline drain what is queued
	// (bounded), then stop it.
	deadline := time.After(5 * time.Second)
	for h.queue.Len() > 0 {
		select {
		case <-deadline:
			h.log.Warn("shutting down with messages still queued; they were not acknowledged and will be redelivered", "queued", h.queue.Len())
			goto stop
		case <-time.After(10 * time.Millisecond):
		}
	}
stop:
	stopPipe()
	if perr := <-pipeDone; perr != nil && err == nil {
		err = perr
	}
	return err
}

// RedactURL removes the password from a URL for display.
func RedactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(invalid URL)"
	}
	if u.User == nil {
		return u.String()
	}
	if _, has := u.User.Password(); !has {
		return u.String()
	}
	name := url.User(u.User.Username()).String()
	u.User = nil
	// Built by hand: url.UserPassword would percent-encode the stars.
	return u.Scheme + "://" + name + ":***@" + strings.TrimPrefix(u.String(), u.Scheme+"://")
}
