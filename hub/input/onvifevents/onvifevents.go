// Package onvifevents registers the ONVIF events input: for every camera
// with an onvif: block, a pull-point subscription on the camera
// (hub/onvif.Watcher) whose motion notifications enter the same motion
// path as the MQTT contract's motion topic (docs/onvif.md). The cameras are
// one Set, which a config reload changes live (Set.Plan): new cameras are
// subscribed, removed ones unsubscribed, changed ones both.
package onvifevents

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"villagehub/hub/config"
	"villagehub/hub/event"
	"villagehub/hub/input"
	"villagehub/hub/onvif"
)

// Source is the input's registered name; each camera's instance is
// "onvif/<site>/<camera>", the source of its events.
const Source = "onvif"

func init() {
	input.Register(Source, func(env input.Env) ([]input.Input, error) {
		// One Set even with no camera yet, so that a reload can add one.
		set, err := NewSet(env.Config, env.Logger)
		if err != nil {
			return nil, err
		}
		return []input.Input{set}, nil
	})
}

// Set is the ONVIF events input of every camera with an onvif: block: one
// Runner whose cameras a reload replaces while it runs.
type Set struct {
	log *slog.Logger

	mu      sync.Mutex
	cams    map[string]*Camera // by "site/id"
	running map[string]*run    // started cameras, while Run runs
	ctx     context.Context    // Run's, nil before Run and after it ends
	sink    input.Sink
	wg      sync.WaitGroup
}

// run is one started camera.
type run struct {
	cancel context.CancelFunc
	done   chan struct{}
}

var _ input.Runner = (*Set)(nil)

// NewSet makes the inputs of cfg's cameras with an onvif: block. It fails
// on a password file that cannot be read (naming the file, never the
// secret).
func NewSet(cfg *config.Config, log *slog.Logger) (*Set, error) {
	if log == nil {
		log = slog.Default()
	}
	cams, err := build(cfg, log)
	if err != nil {
		return nil, err
	}
	return &Set{log: log, cams: cams, running: map[string]*run{}}, nil
}

func build(cfg *config.Config, log *slog.Logger) (map[string]*Camera, error) {
	cams := map[string]*Camera{}
	for _, cam := range cfg.Cameras {
		if cam.ONVIF == nil {
			continue
		}
		c, err := New(cam, log)
		if err != nil {
			return nil, err
		}
		cams[cam.Site+"/"+cam.ID] = c
	}
	return cams, nil
}

// Name is "onvif".
func (s *Set) Name() string { return Source }

// Cameras lists the cameras' inputs ("onvif/<site>/<camera>"), sorted.
func (s *Set) Cameras() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.cams))
	for _, c := range s.cams {
		out = append(out, c.Name())
	}
	slices.Sort(out)
	return out
}

// Camera is the input of camera site/id, nil if it has none.
func (s *Set) Camera(site, id string) *Camera {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cams[site+"/"+id]
}

// Run subscribes to every camera's events until ctx ends, then waits
// until every subscription is given back to its camera.
func (s *Set) Run(ctx context.Context, sink input.Sink) error {
	s.mu.Lock()
	s.ctx, s.sink = ctx, sink
	for k, c := range s.cams {
		s.start(k, c)
	}
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	s.ctx = nil
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// start runs camera c under key k. Called with s.mu held, while Run runs.
func (s *Set) start(k string, c *Camera) {
	ctx, cancel := context.WithCancel(s.ctx)
	r := &run{cancel: cancel, done: make(chan struct{})}
	s.running[k] = r
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(r.done)
		_ = c.Run(ctx, s.sink) // errors are logged and retried inside
	}()
}

// Plan checks the cameras of next, reading their password files, and
// returns what makes the running set match it: cameras whose onvif block
// (or the account it defaults to) is new or changed are subscribed, those
// gone or changed are unsubscribed (apply waits until the camera was told).
// Plan changes nothing; apply cannot fail, so a reload applying it stays
// all-or-nothing. apply is nil when nothing changes.
func (s *Set) Plan(next *config.Config) (apply func(), err error) {
	want, err := build(next, s.log)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	have := s.cams
	s.mu.Unlock()
	var stop, start []string
	for k, c := range have {
		if n, ok := want[k]; !ok || !c.same(n) {
			stop = append(stop, k)
		}
	}
	for k, n := range want {
		if c, ok := have[k]; !ok || !c.same(n) {
			start = append(start, k)
		} else {
			want[k] = c // unchanged: keep the running subscription
		}
	}
	if len(stop) == 0 && len(start) == 0 {
		return nil, nil
	}
	slices.Sort(stop)
	slices.Sort(start)
	return func() {
		s.mu.Lock()
		var waits []*run
		for _, k := range stop {
			if r := s.running[k]; r != nil {
				r.cancel()
				waits = append(waits, r)
				delete(s.running, k)
			}
		}
		s.mu.Unlock()
		// A camera changed in place is unsubscribed before it is
		// subscribed again (cameras allow only a few subscriptions).
		for _, r := range waits {
			<-r.done
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.cams = want
		if s.ctx != nil {
			for _, k := range start {
				s.start(k, want[k])
			}
		}
		s.log.Info("onvif: event subscriptions changed by a reload", "stopped", stop, "started", start)
	}, nil
}

// Camera is one camera's ONVIF events input.
type Camera struct {
	site, id string
	w        *onvif.Watcher
	log      *slog.Logger
}

var _ input.Runner = (*Camera)(nil)

// same reports whether o talks to the same camera with the same account.
func (c *Camera) same(o *Camera) bool {
	a, b := c.w.Client, o.w.Client
	return c.site == o.site && c.id == o.id && a.XAddr == b.XAddr && a.Username == b.Username && a.Password == b.Password
}

// New makes the input of one configured camera (cam.ONVIF set). The
// username, and the password, each default to the camera's own.
func New(cam config.Camera, log *slog.Logger) (*Camera, error) {
	o := cam.ONVIF
	user, pass, passFile := o.Username, o.Password, o.PasswordFile
	if user == "" {
		user = cam.Username
	}
	if pass == "" && passFile == "" {
		pass, passFile = cam.Password, cam.PasswordFile
	}
	pw, err := config.ReadSecret(pass, passFile)
	if err != nil {
		// The error names the file, never its contents.
		return nil, fmt.Errorf("camera %s/%s onvif: %w", cam.Site, cam.ID, err)
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("input", Source, "site", cam.Site, "camera", cam.ID)
	return &Camera{
		site: cam.Site, id: cam.ID, log: log,
		w: &onvif.Watcher{
			Client: &onvif.Client{XAddr: o.URL, Username: user, Password: pw},
			Log:    log,
		},
	}, nil
}

// Name is "onvif/<site>/<camera>".
func (c *Camera) Name() string { return Source + "/" + c.site + "/" + c.id }

// Watcher exposes the subscription's counters (tests, metrics).
func (c *Camera) Watcher() *onvif.Watcher { return c.w }

// Run keeps the camera's subscription until ctx ends. Each motion change
// is handed to sink and waited for until durable, so a slow store slows
// the pulling, never loses an event.
func (c *Camera) Run(ctx context.Context, sink input.Sink) error {
	submit := func(ev event.Event) {
		if err := sink.SubmitEvent(ctx, ev); err != nil && ctx.Err() == nil {
			c.log.Warn("onvif: event not applied", "type", ev.Type.String(), "err", err)
		}
	}
	// The camera's motion comes from this input: while its events are
	// unavailable the hub shows its motion as unknown, not as "no motion"
	// (as for a Frigate that went offline).
	c.w.OnState = func(available bool) {
		now := time.Now()
		submit(event.Event{Type: event.InputStatus, Site: c.site, Source: c.Name(), Online: available, Time: now, Received: now})
	}
	c.w.OnMotion = func(m onvif.MotionEvent) {
		submit(event.Event{
			Type: event.Motion, Kind: event.Camera, Site: c.site, Device: c.id, Source: c.Name(),
			Active: m.Active, Time: m.At, HasTS: true, Received: time.Now(),
		})
	}
	return c.w.Run(ctx)
}
