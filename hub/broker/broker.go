// Package broker runs the embedded MQTT broker (mochi-mqtt) that devices
// connect to when no external broker is configured. Device messages enter
// the hub through a broker hook rather than a subscription: the hook runs
// in the publishing client's goroutine before the broker sends PUBACK, so
// it can hold the PUBACK until the message is durable in the store.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"

	"golang.org/x/time/rate"

	"villagehub/hub/auth"
	"villagehub/hub/ingest"
)

// clientWritesPending is each client's queue of pending writes (New).
const clientWritesPending = 1024

// Config configures the embedded broker.
type Config struct {
	// Addr is the TCP listen address (127.0.0.1:1883 by default).
	Addr string
	// Prefix is the device topic prefix ("village"); required.
	Prefix string
	// HubID names the hub's status topic <prefix>/_hub/<hub-id>/status;
	// required.
	HubID string
	// Queue receives device messages.
	Queue *ingest.Queue
	// Match says which published topics the hub ingests (hub/input's
	// Matcher over every MQTT input); nil: the contract's device topics.
	Match func(topic string) bool
	// Auth is the device identity, ACL and limits hook (hub/auth).
	Auth *auth.Hook
	// TLSAddr and WSSAddr, if set, add MQTT over TLS and over secure
	// WebSocket listeners using TLS.
	TLSAddr, WSSAddr string
	TLS              *tls.Config
	Logger           *slog.Logger
}

// Broker is the embedded MQTT broker.
type Broker struct {
	cfg    Config
	srv    *mqtt.Server
	hook   *ingestHook
	log    *slog.Logger
	status string
	// offline lets shutdown wait for the "offline" status to be delivered.
	offline *offlineHook
	// closing is set once shutdown starts: connections ending then are
	// expected, not worth a warning each.
	closing *atomic.Bool
	// listeners are the IDs of the listeners added, for Shutdown.
	listeners []string
}

// New creates the broker and binds its listener, so a port already in use
// is reported here with the setting to change.
func New(cfg Config) (*Broker, error) {
	if cfg.Queue == nil {
		return nil, errors.New("broker: Queue is required")
	}
	// The defaults of these live in hub/config, with the keys.
	if cfg.Prefix == "" || cfg.HubID == "" {
		return nil, errors.New("broker: Prefix and HubID are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// mochi logs every connect at info; keep the hub's log for the hub.
	closing := &atomic.Bool{}
	mlog := slog.New(&levelFloor{h: cfg.Logger.Handler(), min: slog.LevelWarn, limit: rate.NewLimiter(1, 10), closing: closing}).With("component", "broker")
	// Each client's queue of pending writes is a channel allocated whole
	// at connect: mochi's default of 8,192 entries is 64 KB per client,
	// 700 MB for a district's 11,000 devices (bench-footprint.sh). Devices
	// subscribe to little; a subscriber taking every device message (a
	// bridge, Home Assistant) still has 1,024 packets of slack before
	// mochi drops for it.
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = clientWritesPending
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: mlog, Capabilities: caps})
	if cfg.Auth == nil {
		return nil, errors.New("broker: Auth is required")
	}
	// Access control first: mochi allows what any hook allows, so nothing
	// permissive may sit beside it.
	if err := cfg.Auth.Install(srv); err != nil {
		return nil, fmt.Errorf("broker: adding the access hook: %w", err)
	}
	if cfg.Match == nil {
		cfg.Match = ingest.NewDecoder(ingest.DecoderConfig{Prefix: cfg.Prefix}).Match
	}
	h := &ingestHook{queue: cfg.Queue, match: cfg.Match, forward: srv.Publish,
		subscriptions: func() int64 { return atomic.LoadInt64(&srv.Info.Subscriptions) }, info: srv.Info}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.acks.init()
	go h.acks.run(h.ctx)
	if err := srv.AddHook(h, nil); err != nil {
		return nil, fmt.Errorf("broker: adding ingest hook: %w", err)
	}
	offline := &offlineHook{topic: cfg.Prefix + "/_hub/" + cfg.HubID + "/status"}
	if err := srv.AddHook(offline, nil); err != nil {
		return nil, fmt.Errorf("broker: adding the offline status hook: %w", err)
	}
	var ids []string
	guard := &attachGuard{wg: &srv.Listeners.ClientsWg}
	listen := func(l listeners.Listener, addr, key string) error {
		switch g := l.(type) {
		case *guardedTCP:
			g.guard = guard
		case *guardedWS:
			g.guard = guard
		}
		ids = append(ids, l.ID())
		if err := srv.AddListener(l); err != nil {
			h.cancel()
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("embedded MQTT broker: address %s is already in use (change %s, or set mqtt.url to use another broker)", addr, key)
			}
			return fmt.Errorf("embedded MQTT broker: listening on %s (%s): %w", addr, key, err)
		}
		return nil
	}
	if err := listen(newGuardedTCP("tcp", cfg.Addr, nil, cfg.Auth), cfg.Addr, "broker.addr or VILLAGEHUB_BROKER_ADDR"); err != nil {
		return nil, err
	}
	if cfg.TLSAddr != "" {
		if err := listen(newGuardedTCP("tls", cfg.TLSAddr, cfg.TLS, cfg.Auth), cfg.TLSAddr, "broker.tls_addr"); err != nil {
			return nil, err
		}
	}
	if cfg.WSSAddr != "" {
		if err := listen(newGuardedWS("wss", cfg.WSSAddr, cfg.TLS, cfg.Auth), cfg.WSSAddr, "broker.wss_addr"); err != nil {
			return nil, err
		}
	}
	// Past the open-file limit accepts fail (the listener retries, and the
	// hub reports not ready meanwhile): say so at start rather than then.
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < uint64(cfg.Auth.Sockets()+128) {
		cfg.Logger.Warn("the open-file limit is below what the broker's limits allow; raise it (LimitNOFILE= in systemd) or lower broker.max_connections / max_pending",
			"nofile", rl.Cur, "max_connections+max_pending", cfg.Auth.Sockets())
	}
	return &Broker{cfg: cfg, srv: srv, hook: h, log: cfg.Logger, offline: offline, closing: closing,
		status: offline.topic, listeners: ids}, nil
}

// Addr is the address the broker listens on (useful with port 0).
func (b *Broker) Addr() string {
	if l, ok := b.srv.Listeners.Get("tcp"); ok {
		return l.Address()
	}
	return b.cfg.Addr
}

// Run serves until ctx ends, then says the hub is offline and closes.
func (b *Broker) Run(ctx context.Context) error {
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("embedded MQTT broker: %w", err)
	}
	b.log.Info("embedded MQTT broker listening", "addr", b.Addr())
	if err := b.srv.Publish(b.status, []byte("online"), true, 1); err != nil {
		b.log.Warn("publishing hub status", "err", err)
	}
	<-ctx.Done()
	b.closing.Store(true)
	// Say the hub is offline and let that reach the subscribers before
	// any connection closes.
	b.publishOffline()
	// Release producers waiting on the queue, then disconnect clients.
	// Messages they were waiting on are not acknowledged, so devices
	// resend them after the restart. (Cancelled first, so the wills of
	// devices cut off here do not mark them offline in the store.)
	b.hook.cancel()
	b.closeV311()
	return Shutdown(b.srv, b.listeners...)
}

// Shutdown closes srv's listeners ids and their clients, then srv. It is
// mochi's Server.Close with a client closer that takes the clients lock
// once. mochi v2.7.9's own closer (closeListenerClients, through
// Clients.GetByListener) read-locks the clients map twice, so a client
// connecting or leaving between the two locks deadlocks the shutdown for
// good (mochi-mqtt/server#488; the fixes, #489 and #507, are not in a
// release). It hung a test here under load. The listeners are removed
// once closed, so that Server.Close finds none left to close the old way.
func Shutdown(srv *mqtt.Server, ids ...string) error {
	closer := func(id string) {
		for _, cl := range srv.Clients.GetAll() { // one read lock
			if cl.Net.Listener == id && !cl.Closed() {
				_ = srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	}
	for _, id := range ids {
		if l, ok := srv.Listeners.Get(id); ok {
			switch g := l.(type) {
			case *guardedTCP:
				g.guard.end()
			case *guardedWS:
				g.guard.end()
			}
		}
	}
	for _, id := range ids {
		srv.Listeners.Close(id, closer)
		srv.Listeners.Delete(id)
	}
	return srv.Close()
}

// Publish publishes a message from the hub itself (status, alerts).
func (b *Broker) Publish(topic string, payload []byte, retain bool, qos byte) error {
	return b.srv.Publish(topic, payload, retain, qos)
}

// Connected reports whether devices can reach the broker: false while a
// listener fails to accept connections (e.g. out of file descriptors), so
// /readyz and villagehub_broker_connected tell the truth.
func (b *Broker) Connected() bool { return b.cfg.Auth.AcceptHealthy() == nil }

// ingestHook feeds device messages into the ingest queue.
type ingestHook struct {
	mqtt.HookBase
	queue  *ingest.Queue
	match  func(topic string) bool
	ctx    context.Context
	cancel context.CancelFunc
	done   sync.Pool // of chan struct{}, one per waiting publish
	// forward publishes a message to subscribers as the hub (inline client).
	forward func(topic string, payload []byte, retain bool, qos byte) error
	// subscriptions is the broker's subscription count (0: forwarding a
	// non-retained message would reach nobody); info its statistics.
	subscriptions func() int64
	info          *system.Info
	// acks writes QoS 1 acknowledgements in batches (acks.go).
	acks ackFlusher
}

func (h *ingestHook) ID() string { return "villagehub-ingest" }

func (h *ingestHook) Provides(b byte) bool {
	return b == mqtt.OnPublish || b == mqtt.OnWillSent || b == mqtt.OnDisconnect
}

// OnDisconnect forgets the client's acknowledgement queue (acks already
// owed to it are still written, to a closed connection, harmlessly).
func (h *ingestHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.acks.forget(cl) }

// device reports whether a topic is one the hub ingests.
func (h *ingestHook) device(topic string) bool { return h.match(topic) }

// OnPublish runs in the publishing client's goroutine before the broker
// acknowledges and forwards a publish.
//
// A QoS 1 device message is taken over by the hub: it is queued, and the
// broker is told to drop it (takenOver) so that it neither sends the
// PUBACK nor forwards the message yet. The hub sends the PUBACK once the
// message is durable, then forwards it to any subscribers (keeping its
// retain flag). The client's goroutine is free to read its next packet at
// once, so a device can have many messages in flight and they share store
// commits; PUBACKs still go out in the order the messages came.
//
// QoS 0 is queued and forwarded at once (nobody waits for it). QoS 2,
// which devices here do not use, waits in place until durable, then the
// broker completes the exchange as usual.
func (h *ingestHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || !h.device(pk.TopicName) {
		return pk, nil
	}
	// The packet's buffer is not ours once we return.
	m := ingest.Message{Topic: pk.TopicName, Payload: append([]byte(nil), pk.Payload...), QoS: pk.FixedHeader.Qos, Received: time.Now()}
	switch pk.FixedHeader.Qos {
	case 0:
		if err := h.queue.Push(h.ctx, m, true); err != nil {
			return pk, packets.ErrRejectPacket
		}
		return pk, nil
	case 1:
		m.Session, m.PacketID, m.Dup = cl.ID, pk.PacketID, pk.FixedHeader.Dup
		// The client's acknowledger keeps the message's PUBACK and
		// forward in arrival order; its Ack (one function per client, not
		// one closure per message) takes the oldest: hub/state acks in
		// queue order, which for one client is arrival order.
		a := h.acks.of(h, cl)
		a.expect(pendingAck{topic: m.Topic, payload: m.Payload, id: pk.PacketID, retain: pk.FixedHeader.Retain})
		m.Ack = a.ackNext
		// Waiting here when the queue is full stops reading from this
		// client: back-pressure reaches the device over TCP.
		if err := h.queue.Push(h.ctx, m, true); err != nil {
			a.unexpect() // not queued: no Ack will come for it
		}
		return takenOver(pk), nil
	}
	done, _ := h.done.Get().(chan struct{})
	if done == nil {
		done = make(chan struct{}, 1)
	}
	m.Done = done
	if err := h.queue.Push(h.ctx, m, true); err != nil {
		return pk, packets.ErrRejectPacket
	}
	select {
	case <-done:
		h.done.Put(done)
		return pk, nil
	case <-h.ctx.Done():
		// done may still be signalled later; leave it to the GC.
		return pk, packets.ErrRejectPacket
	}
}

// takenOver marks a QoS 1 publish the hub has taken over so that mochi
// neither acknowledges, retains nor forwards it: Ignore stops retaining and
// forwarding, and QoS 0 stops the PUBACK. (ErrRejectPacket does the same,
// but mochi then boxes the whole packet for a debug log line, enabled or
// not: half of the hub's allocated bytes per message in a profile of
// `villagesim bench`.)
func takenOver(pk packets.Packet) packets.Packet {
	pk.Ignore = true
	pk.FixedHeader.Qos = 0
	return pk
}

// OnWillSent passes a device's last will (e.g. "offline") to the hub: the
// broker publishes wills itself, without OnPublish.
func (h *ingestHook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	if !h.device(pk.TopicName) {
		return
	}
	m := ingest.Message{Topic: pk.TopicName, Payload: append([]byte(nil), pk.Payload...), QoS: pk.FixedHeader.Qos, Received: time.Now()}
	_ = h.queue.Push(h.ctx, m, true)
}

// levelFloor drops records below min, and keeps mochi's warnings (one per
// failed connection: a flood would write one line per socket) to about
// one a second.
type levelFloor struct {
	h       slog.Handler
	min     slog.Level
	limit   *rate.Limiter
	closing *atomic.Bool // nil: never
}

func (l *levelFloor) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= l.min && l.h.Enabled(ctx, lv)
}

// Handle drops mochi's "pk" attribute: it is the whole packet, payload and,
// for a CONNECT, password included, which has no place in a log.
func (l *levelFloor) Handle(ctx context.Context, r slog.Record) error {
	msg, keep := mochiMessage(r)
	if !keep || (r.Message == "" && l.closing != nil && l.closing.Load()) {
		return nil
	}
	if l.limit != nil && r.Level < slog.LevelError && !l.limit.Allow() {
		return nil
	}
	out := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "pk" {
			out.AddAttrs(a)
		}
		return true
	})
	return l.h.Handle(ctx, out)
}
func (l *levelFloor) WithAttrs(a []slog.Attr) slog.Handler {
	return &levelFloor{h: l.h.WithAttrs(a), min: l.min, limit: l.limit, closing: l.closing}
}
func (l *levelFloor) WithGroup(n string) slog.Handler {
	return &levelFloor{h: l.h.WithGroup(n), min: l.min, limit: l.limit, closing: l.closing}
}
