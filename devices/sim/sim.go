// Package sim simulates a village's MQTT devices: cameras that publish
// status and motion, and QR boards that publish cumulative scan totals,
// reboot now and then (new boot ID) and re-send old reports (as a QoS 1
// redelivery would). Every device has its own MQTT connection, as real
// ones do. The fleet keeps its own account of what the hub should count.
package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/sync/errgroup"

	"villagehub/devices/payload"
)

// Device names one simulated device.
type Device struct{ Site, ID string }

// Config configures a fleet.
type Config struct {
	// Broker is the MQTT broker URL, e.g. tcp://127.0.0.1:1883.
	Broker             string
	Username, Password string
	Prefix             string
	Cameras            []Device
	Boards             []Device
	// Rate is the messages per second the whole fleet publishes (motion
	// and scan reports; status messages come on top). 0 publishes only
	// the devices' online status.
	Rate float64
	// QoS for motion and scan reports (status is always QoS 1).
	QoS byte
	// Pattern is how the work is spread over devices: "random" (default:
	// each message goes to a random device), "round-robin" (devices take
	// turns, so each camera's motion comes at a steady period), or "burst"
	// (a random device gets several messages in a row: a camera sees a
	// flurry of motion events, then quiet).
	Pattern string
	// RebootProb is the chance that a board reboots (new boot ID, total
	// back to 0) before a report; RepeatProb the chance it re-sends one of
	// its earlier reports instead of a new one.
	RebootProb, RepeatProb float64
	// MotionJSON sends JSON motion payloads instead of ON/OFF.
	MotionJSON bool
	// ClientPrefix starts every MQTT client ID ("villagesim").
	ClientPrefix string
	Seed         uint64
	Logger       *slog.Logger
}

// Stats is the fleet's account of what it published and what the hub
// should therefore have counted.
type Stats struct {
	Published uint64 // reports acknowledged by the broker
	Errors    uint64 // reports that failed
	Skipped   uint64 // ticks dropped because every device was busy
	// MotionStarts is the motion events started (ON messages acknowledged).
	MotionStarts uint64
	// ExpectedScans per board: the sum over boots of the largest total
	// acknowledged in each, i.e. what an idempotent counter must count.
	ExpectedScans map[Device]int64
	// ExpectedReports per board: the acknowledged reports that raised
	// their boot's largest total, i.e. the reports that add scans.
	ExpectedReports map[Device]int64
}

// Fleet is a set of simulated devices.
type Fleet struct {
	cfg     Config
	log     *slog.Logger
	cams    []*camera
	boards  []*board
	pub     atomic.Uint64
	errs    atomic.Uint64
	skipped atomic.Uint64
	starts  atomic.Uint64
}

type camera struct {
	Device
	c      paho.Client
	work   chan struct{}
	active bool
}

type board struct {
	Device
	c       paho.Client
	work    chan struct{}
	mu      sync.Mutex
	boot    string
	total   int64
	sent    [][]byte // recent reports, for repeats
	bootMax map[string]int64
	expect  int64
	reports int64
}

// NewFleet prepares a fleet; Run connects and drives it.
func NewFleet(cfg Config) (*Fleet, error) {
	if cfg.Broker == "" {
		return nil, errors.New("sim: Broker is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = payload.DefaultPrefix
	}
	if cfg.ClientPrefix == "" {
		cfg.ClientPrefix = "villagesim"
	}
	switch cfg.Pattern {
	case "", "random", "round-robin", "burst":
	default:
		return nil, fmt.Errorf("sim: pattern %q is not random, round-robin or burst", cfg.Pattern)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	f := &Fleet{cfg: cfg, log: cfg.Logger}
	for _, d := range cfg.Cameras {
		f.cams = append(f.cams, &camera{Device: d, work: make(chan struct{}, 1)})
	}
	for _, d := range cfg.Boards {
		f.boards = append(f.boards, &board{Device: d, work: make(chan struct{}, 1), boot: newBoot(), bootMax: map[string]int64{}})
	}
	return f, nil
}

func newBoot() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (f *Fleet) client(kind string, d Device, statusTopic string) paho.Client {
	opts := paho.NewClientOptions().
		AddBroker(f.cfg.Broker).
		SetClientID(fmt.Sprintf("%s-%s-%s-%s", f.cfg.ClientPrefix, kind, d.Site, d.ID)).
		SetUsername(f.cfg.Username).SetPassword(f.cfg.Password).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(5*time.Second).
		SetKeepAlive(30*time.Second).
		SetWill(statusTopic, payload.Offline, 1, true).
		SetOnConnectHandler(func(c paho.Client) {
			// Retained, so the hub learns it even if it starts later.
			c.Publish(statusTopic, 1, true, payload.Online)
		})
	return paho.NewClient(opts)
}

// Run connects every device, then publishes at the configured rate until
// ctx ends.
func (f *Fleet) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for _, c := range f.cams {
		c.c = f.client("camera", c.Device, payload.CameraStatusTopic(f.cfg.Prefix, c.Site, c.ID))
		g.Go(func() error { return connect(gctx, c.c) })
	}
	for _, b := range f.boards {
		b.c = f.client("board", b.Device, payload.BoardStatusTopic(f.cfg.Prefix, b.Site, b.ID))
		g.Go(func() error { return connect(gctx, b.c) })
	}
	if err := g.Wait(); err != nil {
		f.disconnect()
		return err
	}
	f.log.Info("simulated devices connected", "cameras", len(f.cams), "boards", len(f.boards), "broker", f.cfg.Broker)

	var wg sync.WaitGroup
	seed := f.cfg.Seed
	for i, c := range f.cams {
		wg.Add(1)
		go func() { defer wg.Done(); f.runCamera(ctx, c, mrand.New(mrand.NewPCG(seed, uint64(i)))) }()
	}
	for i, b := range f.boards {
		wg.Add(1)
		go func() { defer wg.Done(); f.runBoard(ctx, b, mrand.New(mrand.NewPCG(seed+1, uint64(i)))) }()
	}
	f.drive(ctx)
	wg.Wait()
	f.disconnect()
	return nil
}

func connect(ctx context.Context, c paho.Client) error {
	t := c.Connect()
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *Fleet) disconnect() {
	for _, c := range f.cams {
		if c.c != nil {
			c.c.Disconnect(100)
		}
	}
	for _, b := range f.boards {
		if b.c != nil {
			b.c.Disconnect(100)
		}
	}
}

// drive hands out work at the configured rate to random devices.
func (f *Fleet) drive(ctx context.Context) {
	n := len(f.cams) + len(f.boards)
	if f.cfg.Rate <= 0 || n == 0 {
		<-ctx.Done()
		return
	}
	const tick = 10 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	rng := mrand.New(mrand.NewPCG(f.cfg.Seed, 99))
	credit := 0.0
	cur, left := 0, 0 // device and messages left in a burst / round-robin turn
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		credit += f.cfg.Rate * tick.Seconds()
		for ; credit >= 1; credit-- {
			var i int
			switch f.cfg.Pattern {
			case "round-robin":
				i, cur = cur, (cur+1)%n
			case "burst":
				if left == 0 {
					cur, left = rng.IntN(n), 6
				}
				i = cur
				left--
			default:
				i = rng.IntN(n)
			}
			var w chan struct{}
			if i < len(f.cams) {
				w = f.cams[i].work
			} else {
				w = f.boards[i-len(f.cams)].work
			}
			select {
			case w <- struct{}{}:
			default:
				f.skipped.Add(1)
			}
		}
	}
}

func (f *Fleet) publish(c paho.Client, topic string, body []byte) bool {
	t := c.Publish(topic, f.cfg.QoS, false, body)
	if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
		f.errs.Add(1)
		return false
	}
	f.pub.Add(1)
	return true
}

func (f *Fleet) runCamera(ctx context.Context, c *camera, rng *mrand.Rand) {
	topic := payload.MotionTopic(f.cfg.Prefix, c.Site, c.ID)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.work:
		}
		next := !c.active
		var body []byte
		switch {
		case f.cfg.MotionJSON:
			body = payload.Marshal(payload.Motion{Active: next, TS: time.Now().UTC().Format(time.RFC3339Nano), Zone: "zone-1", Score: 0.5 + rng.Float64()/2})
		case next:
			body = []byte(payload.MotionOn)
		default:
			body = []byte(payload.MotionOff)
		}
		if f.publish(c.c, topic, body) {
			c.active = next
			if next {
				f.starts.Add(1)
			}
		}
	}
}

func (f *Fleet) runBoard(ctx context.Context, b *board, rng *mrand.Rand) {
	topic := payload.QRScansTopic(f.cfg.Prefix, b.Site, b.ID)
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.work:
		}
		b.mu.Lock()
		var body []byte
		var boot string
		var total int64
		if len(b.sent) > 0 && rng.Float64() < f.cfg.RepeatProb {
			body = b.sent[rng.IntN(len(b.sent))] // a redelivery: must add nothing
		} else {
			if rng.Float64() < f.cfg.RebootProb {
				b.boot, b.total = newBoot(), 0
			}
			b.total += 1 + int64(rng.IntN(3))
			boot, total = b.boot, b.total
			body = payload.Marshal(payload.QRScans{Total: total, Boot: boot, TS: time.Now().UnixMilli()})
			b.sent = append(b.sent, body)
			if len(b.sent) > 4 {
				b.sent = b.sent[1:]
			}
		}
		b.mu.Unlock()
		if f.publish(b.c, topic, body) && boot != "" {
			b.mu.Lock()
			if total > b.bootMax[boot] {
				b.expect += total - b.bootMax[boot]
				b.bootMax[boot] = total
				b.reports++
			}
			b.mu.Unlock()
		}
	}
}

// Stats returns the fleet's account so far.
func (f *Fleet) Stats() Stats {
	s := Stats{
		Published: f.pub.Load(), Errors: f.errs.Load(), Skipped: f.skipped.Load(),
		MotionStarts: f.starts.Load(), ExpectedScans: map[Device]int64{}, ExpectedReports: map[Device]int64{},
	}
	for _, b := range f.boards {
		b.mu.Lock()
		s.ExpectedScans[b.Device] = b.expect
		s.ExpectedReports[b.Device] = b.reports
		b.mu.Unlock()
	}
	return s
}

// Devices makes n devices named <prefix>-<i> spread over the given sites.
func Devices(prefix string, n int, sites ...string) []Device {
	if len(sites) == 0 {
		sites = []string{"demo"}
	}
	out := make([]Device, n)
	for i := range out {
		out[i] = Device{Site: sites[i%len(sites)], ID: fmt.Sprintf("%s-%d", prefix, i+1)}
	}
	return out
}
