package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// deliverer sends one notice to one destination. A returned error is
// retried unless it is a backoff.Permanent.
type deliverer interface {
	deliver(ctx context.Context, n *Notification) error
}

// runner is a notifier that has work of its own (Alertmanager's re-push).
type runner interface {
	run(ctx context.Context) error
}

// sender owns one notifier: its bounded queue, its goroutine, retries and
// counters. Notifiers never share a goroutine, so a dead webhook only
// fills its own queue.
type sender struct {
	e     *Engine
	cfg   *Notifier
	d     deliverer
	queue chan outboxEntry
	log   *slog.Logger

	sent, failed, dropped, retries atomic.Uint64
}

func (e *Engine) newSender(cfg *Notifier) (*sender, error) {
	s := &sender{e: e, cfg: cfg, queue: make(chan outboxEntry, cfg.QueueSize),
		log: e.log.With("notifier", cfg.Name, "type", cfg.Type)}
	switch cfg.Type {
	case "webhook":
		s.d = &webhook{cfg: cfg, client: e.deps.HTTPClient, loc: e.loc}
	case "mqtt":
		if e.deps.Publisher == nil {
			return nil, errors.New("an mqtt notifier needs the hub's MQTT publisher")
		}
		s.d = &mqttNotifier{cfg: cfg, pub: e.deps.Publisher, prefix: e.deps.Prefix}
	case "alertmanager":
		s.d = &alertmanager{cfg: cfg, client: e.deps.HTTPClient, engine: e, log: s.log}
	default:
		return nil, fmt.Errorf("unknown notifier type %q", cfg.Type)
	}
	return s, nil
}

// wants reports whether this notifier takes notices of this kind.
func (s *sender) wants(kind string) bool {
	return kind != KindRepeat || *s.cfg.Repeats
}

// enqueue hands a notice over without waiting: a full queue drops it (and
// counts it), so a dead notifier never holds up the engine.
func (s *sender) enqueue(o outboxEntry) {
	select {
	case s.queue <- o:
	default:
		s.dropped.Add(1)
		s.log.Warn("notification queue full; notice dropped", "alert", o.N.Alert, "site", o.N.Site, "device", o.N.Device, "kind", o.N.Kind)
		s.finish(o)
	}
}

func (s *sender) finish(o outboxEntry) {
	if err := s.e.db.done(o.id); err != nil {
		s.log.Error("removing a notice from the outbox", "err", err)
	}
}

func (s *sender) run(ctx context.Context) error {
	if r, ok := s.d.(runner); ok {
		go func() { _ = r.run(ctx) }()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case o := <-s.queue:
			s.send(ctx, o)
		}
	}
}

// send delivers one notice, retrying with exponential backoff until it
// works, fails for good, or MaxElapsed passes. A notice cut short by
// shutdown stays in the outbox and is sent again, with the same
// idempotency key, after the next start.
func (s *sender) send(ctx context.Context, o outboxEntry) {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(time.Duration(s.cfg.Retry.Initial)),
		backoff.WithMaxInterval(time.Duration(s.cfg.Retry.Max)),
		backoff.WithMaxElapsedTime(time.Duration(s.cfg.Retry.MaxElapsed)),
	)
	n := o.N
	n.Vars, n.loc = s.cfg.Vars, s.e.loc
	attempt := 0
	err := backoff.RetryNotify(func() error {
		attempt++
		actx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.Timeout))
		defer cancel()
		return s.d.deliver(actx, &n)
	}, backoff.WithContext(b, ctx), func(err error, wait time.Duration) {
		s.retries.Add(1)
		s.log.Warn("notice not delivered; retrying", "alert", n.Alert, "device", n.Device, "kind", n.Kind,
			"attempt", attempt, "retry_in", wait.Round(time.Millisecond).String(), "err", err)
	})
	if ctx.Err() != nil {
		return // shutting down: left in the outbox
	}
	if err != nil {
		s.failed.Add(1)
		s.log.Error("notice abandoned", "alert", n.Alert, "site", n.Site, "device", n.Device, "kind", n.Kind,
			"attempts", attempt, "err", err)
	} else {
		s.sent.Add(1)
	}
	s.finish(o)
}
