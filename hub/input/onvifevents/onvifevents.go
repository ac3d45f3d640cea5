// Package onvifevents registers the ONVIF events input: for every camera
// with an onvif: block, a pull-point subscription on the camera
// (hub/onvif.Watcher) whose motion notifications enter the same motion
// path as the MQTT contract's motion topic (docs/onvif.md).
package onvifevents

import (
	"context"
	"fmt"
	"log/slog"
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
		var out []input.Input
		for _, cam := range env.Config.Cameras {
			if cam.ONVIF == nil {
				continue
			}
			in, err := New(cam, env.Logger)
			if err != nil {
				return nil, err
			}
			out = append(out, in)
		}
		return out, nil
	})
}

// Camera is one camera's ONVIF events input.
type Camera struct {
	site, id string
	w        *onvif.Watcher
	log      *slog.Logger
}

var _ input.Runner = (*Camera)(nil)

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
