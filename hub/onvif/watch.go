package onvif

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"
)

// MotionEvent is a change of a camera's motion state seen through ONVIF
// events.
type MotionEvent struct {
	Active bool
	// At is when the camera says it happened, on our clock (the camera's
	// UtcTime corrected by its measured clock offset).
	At time.Time
	// CameraTime is the camera's own UtcTime, uncorrected: with the
	// camera's identity it names the event (for exactly-once handling).
	CameraTime time.Time
	Topic      string
}

// WatcherStats count what a Watcher did, for tests and metrics.
type WatcherStats struct {
	Subscribes   int  // CreatePullPointSubscription that succeeded
	Renewals     int  // Renew that succeeded
	Unsubscribes int  // Unsubscribe that succeeded
	Failures     int  // pull, renew or subscribe errors
	Subscribed   bool // a subscription is live now
}

// Watcher keeps a pull-point subscription alive on one camera and turns
// its motion notifications into MotionEvents: it renews before the
// termination time, subscribes again after the camera reboots (the
// subscription gone, or the camera unreachable for a while), and
// unsubscribes when its context ends.
type Watcher struct {
	Client   *Client
	OnMotion func(MotionEvent)
	// OnState, if set, is told when the camera's events become available
	// (subscribed) or unavailable (subscribing, pulling or renewing
	// failed): while they are not, the camera's motion is unknown.
	OnState func(available bool)
	Log     *slog.Logger
	// Period is the subscription length asked for (default 60 s).
	Period time.Duration
	// PullTimeout is how long one PullMessages waits on the camera
	// (default 10 s).
	PullTimeout time.Duration
	// MaxBackoff caps the wait between attempts while the camera is
	// unreachable (default 30 s; the first retry is after 1 s).
	MaxBackoff time.Duration

	mu       sync.Mutex
	stats    WatcherStats
	reported int8 // last OnState: -1 none yet, 0 unavailable, 1 available
}

func (w *Watcher) state(available bool) {
	v := int8(0)
	if available {
		v = 1
	}
	w.mu.Lock()
	changed := w.reported != v
	w.reported = v
	w.mu.Unlock()
	if changed && w.OnState != nil {
		w.OnState(available)
	}
}

// Stats returns the counters so far.
func (w *Watcher) Stats() WatcherStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

func (w *Watcher) count(f func(*WatcherStats)) {
	w.mu.Lock()
	f(&w.stats)
	w.mu.Unlock()
}

// Run watches until ctx ends; it returns nil then. Errors talking to the
// camera are logged and retried, never returned: a camera that is down is
// the probe's business, not a reason to stop the hub.
func (w *Watcher) Run(ctx context.Context) error {
	log := w.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	period := w.Period
	if period <= 0 {
		period = time.Minute
	}
	pull := w.PullTimeout
	if pull <= 0 {
		pull = 10 * time.Second
	}
	if pull > period/2 {
		pull = period / 2
	}
	maxBackoff := w.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 30 * time.Second
	}
	backoff := time.Second
	wait := func() bool {
		t := time.NewTimer(backoff)
		defer t.Stop()
		backoff = min(backoff*2, maxBackoff)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}

	w.mu.Lock()
	w.reported = -1
	w.mu.Unlock()
	states := map[string]bool{} // topic+source -> active
	active := false
	failing := false
	for ctx.Err() == nil {
		// A camera that rebooted may have a new clock: measure it again.
		if err := w.Client.SyncClock(ctx); err != nil && ctx.Err() == nil {
			var f *Fault
			if !errors.As(err, &f) {
				w.fail(log, &failing, "onvif: camera unreachable", err)
				if !wait() {
					return nil
				}
				continue
			}
		}
		sub, err := w.Client.CreatePullPointSubscription(ctx, period)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.fail(log, &failing, "onvif: subscribing to events failed", err)
			if !wait() {
				return nil
			}
			continue
		}
		w.count(func(s *WatcherStats) { s.Subscribes++; s.Subscribed = true })
		w.state(true)
		if failing {
			log.Info("onvif: events subscription back")
			failing = false
		}
		backoff = time.Second
		clear(states)
		err = w.pullLoop(ctx, sub, period, pull, states, &active)
		w.count(func(s *WatcherStats) { s.Subscribed = false })
		if ctx.Err() != nil {
			// Shut down: free the camera's subscription slot (cameras
			// allow only a few) rather than let it time out.
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
			if err := w.Client.Unsubscribe(uctx, sub); err == nil {
				w.count(func(s *WatcherStats) { s.Unsubscribes++ })
			} else {
				log.Debug("onvif: unsubscribe failed", "err", err)
			}
			cancel()
			return nil
		}
		w.fail(log, &failing, "onvif: events subscription lost; subscribing again", err)
		if !wait() {
			return nil
		}
	}
	return nil
}

func (w *Watcher) fail(log *slog.Logger, failing *bool, msg string, err error) {
	w.count(func(s *WatcherStats) { s.Failures++ })
	w.state(false)
	// Once per streak at warning level; the repeats at debug.
	if !*failing {
		log.Warn(msg, "err", err)
		*failing = true
		return
	}
	log.Debug(msg, "err", err)
}

// pullLoop pulls and renews until an error (returned) or ctx ends.
func (w *Watcher) pullLoop(ctx context.Context, sub *Subscription, period, pull time.Duration, states map[string]bool, active *bool) error {
	c := w.Client
	renewMargin := pull + period/3
	for {
		if c.now().Add(renewMargin).After(sub.Deadline) {
			if err := c.Renew(ctx, sub, period); err != nil {
				return err
			}
			w.count(func(s *WatcherStats) { s.Renewals++ })
		}
		// The HTTP request must outlive the camera's own wait.
		pctx, cancel := context.WithTimeout(ctx, pull+10*time.Second)
		ns, err := c.PullMessages(pctx, sub, pull, 100)
		cancel()
		if err != nil {
			return err
		}
		for _, n := range ns {
			on, ok := Motion(n)
			if !ok {
				continue
			}
			states[n.Topic+"\x00"+sourceKey(n.Source)] = on
			any := false
			for _, v := range states {
				any = any || v
			}
			if any == *active {
				continue
			}
			*active = any
			at := c.now()
			if !n.UtcTime.IsZero() {
				at = n.UtcTime.Add(-c.ClockOffset())
			}
			if w.OnMotion != nil {
				w.OnMotion(MotionEvent{Active: any, At: at, CameraTime: n.UtcTime, Topic: n.Topic})
			}
		}
	}
}

func sourceKey(m map[string]string) string {
	// Small maps: a sorted join is cheap and deterministic.
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	s := ""
	for _, k := range keys {
		s += k + "=" + m[k] + ";"
	}
	return s
}
