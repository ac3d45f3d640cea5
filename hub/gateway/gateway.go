// Package gateway is the QR gateway: the `gateway` role of villagehub,
// run at the province's centre behind a load balancer, and the small
// village-side link (link.go) that feeds it.
//
// A printed code that points at a village hub's /q/<board> reaches the hub
// only from the village LAN; phones on mobile data cannot reach a hub
// behind (carrier-grade) NAT. Codes printed with the gateway's address,
// <gateway public_url>/q/<village>/<board>, work from anywhere:
//
//   - each village hub publishes its boards' targets, retained, to the
//     province's MQTT broker (<prefix>/_gateway/<village>/<board>);
//   - every gateway instance subscribes, keeps the last known targets in
//     memory and in a file, and serves /q/<village>/<board> with the hub's
//     own rules (hub/scan: bots and link previews, unique-phone window,
//     per-client rate limit, Vietnamese not-found page);
//   - each counted visit gets a random 128-bit scan id and goes into a
//     durable journal before the redirect; from there into the central
//     InfluxDB (idempotent points, qr_scans source=printed with place tags)
//     and down to the village hub (QoS 1, <prefix>/_gateway/<village>/
//     <board>/scans), which counts each id once.
//
// Instances share nothing but the salt secret file and the broker:
// docs/gateway.md has the deployment, the exactness argument and the
// figures.
package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"golang.org/x/sync/errgroup"

	"villagehub/hub/fastlane"
	"villagehub/hub/influx"
	"villagehub/hub/scan"
	"villagehub/hub/tlscert"
)

// Consumers of the journal.
const (
	consumerInflux  = "influx"
	consumerVillage = "village"
)

// maxRead is the most journal bytes a sink takes at once (about 5,000
// scans).
const maxRead = 1 << 20

// maxScansPerMessage bounds one down message.
const maxScansPerMessage = 500

// Gateway is one gateway instance.
type Gateway struct {
	cfg     *Config
	log     *slog.Logger
	targets *targets
	journal *journal
	influx  *influx.Writer // nil without influx.url
	mqtt    paho.Client
	scans   *scan.Handler
	reg     *prometheus.Registry
	m       *metrics
	srv     *http.Server
	ln      net.Listener
	lane    *fastlane.Lane

	connected  atomic.Bool
	subscribed atomic.Bool
	window     time.Duration
	errLog     atomic.Int64 // unix ns of the last journal error logged
	series     seriesCache  // the InfluxDB consumer's (one goroutine)
}

// New builds an instance from cfg and binds its listener.
func New(cfg *Config, log *slog.Logger) (*Gateway, error) {
	if log == nil {
		log = slog.Default()
	}
	g := &Gateway{cfg: cfg, log: log.With("component", "gateway", "instance", cfg.Instance), window: cfg.uniqueWindow()}
	g.reg = prometheus.NewRegistry()
	g.m = newMetrics(g)
	g.reg.MustRegister(g.m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	secret, err := readSecret(cfg.QR.SaltFile, "qr.salt_file")
	if err != nil {
		return nil, err
	}
	sc, err := cfg.scanConfig(secret)
	if err != nil {
		return nil, err
	}
	sc.Logger = g.log
	g.targets = newTargets(filepath.Join(cfg.DataDir, "targets.json"), cfg.MaxBoards, g.log, g.m.forTarget, g.m.dropTarget)
	if g.scans, err = scan.NewHandler(sc, g.targets, g); err != nil {
		return nil, err
	}
	if n, err := g.targets.load(); err != nil {
		g.log.Warn("target cache unreadable; waiting for the broker", "err", err)
	} else if n > 0 {
		g.log.Info("targets loaded from the cache", "boards", n)
	}
	consumers := []string{consumerVillage}
	if cfg.Influx.URL != "" {
		consumers = append(consumers, consumerInflux)
		ic := cfg.Influx.Config
		if cfg.Influx.TokenFile != "" {
			tok, err := readSecret(cfg.Influx.TokenFile, "influx.token_file")
			if err != nil {
				return nil, err
			}
			ic.Token = string(tok)
		}
		ic.Logger = g.log.With("component", "influx")
		if g.influx, err = influx.New(ic); err != nil {
			return nil, fmt.Errorf("influx: %w", err)
		}
		g.reg.MustRegister(g.influx)
	}
	if g.journal, err = openJournal(filepath.Join(cfg.DataDir, "journal"), cfg.Sync(), consumers...); err != nil {
		return nil, fmt.Errorf("scan journal: %w", err)
	}
	g.journal.async = cfg.JournalAsync && !cfg.Sync()
	if err := g.newMQTT(); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /q/{village}/{board}", func(w http.ResponseWriter, r *http.Request) {
		g.scans.Serve(w, r, r.PathValue("village")+"/"+r.PathValue("board"))
	})
	mux.HandleFunc("GET /q/", func(w http.ResponseWriter, r *http.Request) {
		g.scans.Serve(w, r, "") // any other path under /q/: the friendly not-found page
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if g.targets.len() == 0 && !g.subscribed.Load() {
			http.Error(w, "no targets yet: not subscribed to the broker and no cache", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{}))
	g.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelDebug)}
	if g.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen %s (set listen: in %s): %w", cfg.Listen, cfg.Path, err)
	}
	// The printed codes' redirects through fasthttp, the rest through
	// net/http, on the one port (hub/fastlane).
	g.lane = fastlane.New(g.ln, fastlane.Config{
		Routes:      []fastlane.Route{{Prefix: "/q/", Serve: g.serveFast}},
		ReadTimeout: g.srv.ReadHeaderTimeout,
		IdleTimeout: g.srv.IdleTimeout,
		Logger:      g.log,
	})
	return g, nil
}

// serveFast is GET /q/<village>/<board> for fasthttp; any other path under
// /q/ gets the friendly not-found page, as with net/http above.
func (g *Gateway) serveFast(ctx *fasthttp.RequestCtx, rest string) bool {
	village, board, ok := strings.Cut(rest, "/")
	if !ok || village == "" || board == "" || strings.IndexByte(board, '/') >= 0 {
		rest = ""
	}
	g.scans.ServeFast(ctx, rest)
	return true
}

// Addr is the HTTP listener's address.
func (g *Gateway) Addr() string { return g.ln.Addr().String() }

func (g *Gateway) newMQTT() error {
	b := g.cfg.Broker
	pw := b.Password
	if b.PasswordFile != "" {
		p, err := readSecret(b.PasswordFile, "broker.password_file")
		if err != nil {
			return err
		}
		pw = string(p)
	}
	filter := g.cfg.TopicPrefix + "/_gateway/+/+"
	opts := paho.NewClientOptions().AddBroker(b.URL).SetClientID(b.ClientID).SetUsername(b.Username).SetPassword(pw).
		// A clean session: the targets are retained, every subscribe gets
		// them all again.
		SetCleanSession(true).
		SetKeepAlive(30 * time.Second).SetConnectTimeout(10 * time.Second).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second).SetMaxReconnectInterval(15 * time.Second).
		SetOnConnectHandler(func(c paho.Client) {
			g.connected.Store(true)
			tok := c.Subscribe(filter, 1, g.onTarget)
			go func() {
				if tok.WaitTimeout(30*time.Second) && tok.Error() == nil {
					g.subscribed.Store(true)
					g.log.Info("connected to the broker and subscribed to targets")
					return
				}
				g.log.Error("subscribing to targets", "err", tok.Error())
				c.Disconnect(0)
			}()
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			g.connected.Store(false)
			g.subscribed.Store(false)
			g.log.Warn("lost the broker; redirecting from the last known targets", "err", err)
		})
	if strings.HasPrefix(b.URL, "ssl") || strings.HasPrefix(b.URL, "wss") || strings.HasPrefix(b.URL, "mqtts") || b.CAFile != "" {
		tc, err := tlscert.ClientConfig("broker.", b.CAFile, "", "", false)
		if err != nil {
			return err
		}
		opts.SetTLSConfig(tc)
	}
	g.mqtt = paho.NewClient(opts)
	return nil
}

// onTarget applies one retained target message.
func (g *Gateway) onTarget(_ paho.Client, msg paho.Message) {
	parts := strings.Split(msg.Topic(), "/")
	if len(parts) != 4 {
		return
	}
	village, board := parts[2], parts[3]
	if len(msg.Payload()) == 0 {
		g.targets.remove(village, board)
		return
	}
	var m TargetMessage
	err := errors.New("larger than 4 KiB")
	if len(msg.Payload()) <= 4096 {
		err = json.Unmarshal(msg.Payload(), &m)
	}
	if err == nil {
		err = g.targets.set(village, board, m)
	}
	if err != nil {
		g.m.targetsRejected.Inc()
		g.log.Warn("target message rejected", "village", safeID(village), "board", safeID(board), "err", err)
	}
}

func safeID(s string) string {
	if idRe.MatchString(s) {
		return s
	}
	return "(not an ID)"
}

// RecordScan is the scan.Recorder: it journals a counted visit durably
// before the handler answers with the redirect.
func (g *Gateway) RecordScan(s scan.Scan) {
	if s.Class == scan.ClassOrphan {
		g.m.orphans.Inc()
		return
	}
	t := g.targets.get(s.Board)
	if t == nil {
		g.m.orphans.Inc() // removed while we looked
		return
	}
	r := record{At: s.At.UnixNano(), Class: s.Class, Unique: s.Unique, Province: t.Place.Province, District: t.Place.District,
		Commune: t.Place.Commune, Village: t.Village, Hub: t.Hub, Site: t.Site, Board: t.Board}
	r.Visit, r.HasVisit = s.VisitKey()
	if k, ok := s.RequestKey(); ok {
		r.ID = k // the proxy's request id: a retried request is the same scan
	} else {
		_, _ = rand.Read(r.ID[:]) // never fails (crypto/rand panics rather)
	}
	var buf [256]byte
	if err := g.journal.append(r.appendTo(buf[:0])); err != nil {
		g.m.journalErrors.Inc()
		now := time.Now().UnixNano()
		if last := g.errLog.Load(); now-last > int64(time.Minute) && g.errLog.CompareAndSwap(last, now) {
			g.log.Error("scan journal write failed; this scan is redirected but not counted", "err", err)
		}
		return
	}
	t.m.count(s.Class, s.Unique)
}

// Run serves until ctx ends.
func (g *Gateway) Run(ctx context.Context) error {
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		err := g.srv.Serve(g.lane.Slow())
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	})
	eg.Go(func() error { return g.lane.Run(ctx) })
	eg.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return g.srv.Shutdown(sctx)
	})
	eg.Go(func() error {
		g.mqtt.Connect() // retries in the background (SetConnectRetry)
		<-ctx.Done()
		g.mqtt.Disconnect(250)
		return nil
	})
	eg.Go(func() error { return g.saveTargets(ctx) })
	eg.Go(func() error { return g.sendDown(ctx) })
	if g.influx != nil {
		eg.Go(func() error { return g.influx.Run(ctx) })
		eg.Go(func() error { return g.sendInflux(ctx) })
	}
	err := eg.Wait()
	if g.influx != nil {
		g.influx.Close()
	}
	if cerr := g.journal.close(); err == nil {
		err = cerr
	}
	return err
}

// saveTargets writes the target cache within about 100 ms of a change,
// coalescing a burst (the retained targets of every village arriving on
// subscribe) into few writes.
func (g *Gateway) saveTargets(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			if err := g.targets.flush(); err != nil {
				g.log.Error("saving the target cache", "err", err)
			}
			return nil
		case <-g.targets.save:
		}
		if err := g.targets.flush(); err != nil {
			g.log.Error("saving the target cache", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// consume runs one journal consumer: read, hand to sink, advance; on a
// sink error wait and retry the same lines.
func (g *Gateway) consume(ctx context.Context, name string, sink func(ctx context.Context, lines []byte) error) error {
	backoff := 100 * time.Millisecond
	for {
		lines, next, err := g.journal.read(name, maxRead)
		if err == nil && len(lines) > 0 {
			if err = sink(ctx, lines); err == nil {
				err = g.journal.advance(name, next)
				backoff = 100 * time.Millisecond
			}
			if err == nil && len(lines) >= maxRead/2 {
				continue // behind: no pause until caught up
			}
			if err == nil {
				// Pace the sinks: each batch costs an fsync (the InfluxDB
				// spool) and a cursor rename, and on ext4 every fsync is a
				// journal commit that stalls the request path's appends.
				// A batch every 200 ms keeps that to 5 a second.
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(200 * time.Millisecond):
				}
				continue
			}
		}
		if err != nil {
			g.m.sinkErrors.WithLabelValues(name).Inc()
			g.log.Debug("journal consumer waits", "consumer", name, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 10*time.Second)
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-g.journal.notify(name):
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sendInflux moves journal lines into the InfluxDB writer's spool as
// idempotent points.
func (g *Gateway) sendInflux(ctx context.Context) error {
	var out []byte
	return g.consume(ctx, consumerInflux, func(_ context.Context, lines []byte) error {
		var n int
		out, n = g.influxBatch(out[:0], lines)
		return g.influx.AppendLines(out, n)
	})
}

// influxBatch appends the InfluxDB lines of a batch of journal lines to
// out and says how many points they are.
func (g *Gateway) influxBatch(out, lines []byte) ([]byte, int) {
	if g.series == nil {
		g.series = seriesCache{}
	}
	n := 0
	eachLine(lines, func(line []byte) {
		var k int
		var err error
		if out, k, err = g.series.appendLine(out, line, g.window); err != nil {
			g.m.journalErrors.Inc()
			return
		}
		n += k
	})
	return out, n
}

// eachRecord calls fn with each line of a batch of journal lines parsed;
// a malformed line is counted and skipped.
func (g *Gateway) eachRecord(lines []byte, fn func(r *record)) {
	eachLine(lines, func(line []byte) {
		r, err := parseRecord(line)
		if err != nil {
			g.m.journalErrors.Inc()
			return
		}
		fn(&r)
	})
}

// eachLine calls fn with each line of a batch of journal lines. The batch
// is walked in place: it is up to maxRead bytes, so copying what is left
// of it for every line would cost more than everything else the gateway
// does.
func eachLine(lines []byte, fn func(line []byte)) {
	for len(lines) > 0 {
		line := lines
		if i := bytes.IndexByte(lines, '\n'); i >= 0 {
			line, lines = lines[:i], lines[i+1:]
		} else {
			lines = nil
		}
		fn(line)
	}
}

// DownScan is one scan sent down to the village hub.
type DownScan struct {
	ID     string    `json:"id"`
	TS     time.Time `json:"ts"`
	Class  string    `json:"class"`
	Unique bool      `json:"unique,omitempty"`
}

// DownMessage is the payload on <prefix>/_gateway/<village>/<board>/scans.
type DownMessage struct {
	Scans []DownScan `json:"scans"`
}

// sendDown publishes journal lines to the village hubs, QoS 1, one
// message per board per batch, and advances only once the broker
// acknowledged them all.
func (g *Gateway) sendDown(ctx context.Context) error {
	return g.consume(ctx, consumerVillage, func(ctx context.Context, lines []byte) error {
		if !g.connected.Load() {
			return errors.New("not connected to the broker")
		}
		groups := map[string]*DownMessage{}
		var order []string
		g.eachRecord(lines, func(r *record) {
			topic := g.cfg.TopicPrefix + "/_gateway/" + r.Village + "/" + r.Board + "/scans"
			m := groups[topic]
			if m == nil {
				m = &DownMessage{}
				groups[topic] = m
				order = append(order, topic)
			}
			m.Scans = append(m.Scans, DownScan{ID: fmt.Sprintf("%x", r.ID), TS: time.Unix(0, r.At).UTC(), Class: string(r.Class), Unique: r.Unique})
		})
		var toks []paho.Token
		sent := 0
		for _, topic := range order {
			all := groups[topic].Scans
			for len(all) > 0 {
				n := min(len(all), maxScansPerMessage)
				b, _ := json.Marshal(DownMessage{Scans: all[:n]})
				toks = append(toks, g.mqtt.Publish(topic, 1, false, b))
				all = all[n:]
				sent += n
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for _, t := range toks {
			if !t.WaitTimeout(time.Until(deadline)) {
				return errors.New("broker did not acknowledge in 30 s")
			}
			if t.Error() != nil {
				return t.Error()
			}
		}
		g.m.sentDown.Add(float64(sent))
		return nil
	})
}
