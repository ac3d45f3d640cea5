package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// A notifier type is one file: a notifierType value (how to provision and
// validate its config, how to build it) plus one line in notifierTypes.
// Provisioning fills defaults, reads the files the config points at and
// reports every problem by key, the way Caddy modules provision and
// validate; building gets only what the notifier needs (notifierDeps),
// never the engine. What a notifier can do beyond delivering is declared
// by the optional interfaces it implements (runner, healthReporter), the
// way mochi-mqtt hooks declare their capabilities.
type notifierType struct {
	// provision fills defaults and validates the type's own keys; bad
	// reports a problem at a key under the notifier.
	provision func(n *Notifier, bad func(msg string, path ...any))
	// build makes the deliverer from a provisioned config.
	build func(n *Notifier, d notifierDeps) (deliverer, error)
	// repeats is the default of `repeats` for this type.
	repeats bool
}

// notifierTypes: adding a notifier type is one file and one line here.
var notifierTypes = map[string]notifierType{
	"webhook":      webhookType,
	"mqtt":         mqttType,
	"alertmanager": alertmanagerType,
	"zalo":         zaloType,
}

func typeNames() string { return "webhook, mqtt, alertmanager or zalo" }

// notifierDeps is everything a notifier may be given. Each type takes what
// it needs.
type notifierDeps struct {
	HTTP      *http.Client
	Publisher Publisher
	Prefix    string
	Log       *slog.Logger
	Loc       *time.Location
	DataDir   string
	Now       func() time.Time
	// Firing returns the notices of the alerts firing now (Alertmanager's
	// re-push, the MQTT notifier's republish at start).
	Firing func() []Notification
}

// deliverer sends one notice to one destination. A returned error is
// classified by failure (see deliveryError).
type deliverer interface {
	deliver(ctx context.Context, n *Notification) error
}

// runner is a notifier that has work of its own (Alertmanager's re-push,
// Zalo's token refresh ahead of expiry, MQTT's republish at start).
type runner interface {
	run(ctx context.Context) error
}

// healthReporter is a notifier that knows more about its own health than
// its delivery results (Zalo: the token chain).
type healthReporter interface {
	health() channelHealth
}

// channelHealth is what a healthReporter adds to NotifierStatus.
type channelHealth struct {
	// Broken: the channel cannot work until a person acts (a refused
	// refresh token); Problem says what to do. Never a secret.
	Broken  bool
	Problem string
	// TokenValidUntil: when the current access token expires (zero if
	// none). The token itself is never shown.
	TokenValidUntil time.Time
	Refreshes       uint64
}

// Failure reasons: the reason label of
// villagehub_notifications_total{result="failed"}. A small fixed set.
const (
	ReasonToken       = "token"       // access token invalid/expired, refresh refused
	ReasonQuota       = "quota"       // rate limit or quota reached
	ReasonRecipient   = "recipient"   // user not reachable or outside the messaging window
	ReasonGroup       = "group"       // group not found, OA not verified or not permitted
	ReasonBadRequest  = "bad_request" // the receiver refused the request as malformed
	ReasonUnavailable = "unavailable" // 5xx, timeouts, connection refused
	ReasonRejected    = "rejected"    // a 2xx answer whose body says it failed
	ReasonOther       = "other"
)

var failureReasons = []string{ReasonToken, ReasonQuota, ReasonRecipient, ReasonGroup, ReasonBadRequest, ReasonUnavailable, ReasonRejected, ReasonOther}

// deliveryError is a classified failure. msg never holds a secret.
type deliveryError struct {
	reason    string
	msg       string
	permanent bool
	// hold: wait this long before trying the same notice again (a quota
	// window), keeping the queue's order.
	hold time.Duration
}

func (e *deliveryError) Error() string { return e.reason + ": " + e.msg }

func failf(reason string, permanent bool, format string, args ...any) *deliveryError {
	return &deliveryError{reason: reason, permanent: permanent, msg: fmt.Sprintf(format, args...)}
}

// classify turns any error into a deliveryError.
func classify(err error) *deliveryError {
	var de *deliveryError
	if errors.As(err, &de) {
		return de
	}
	var pe *backoff.PermanentError
	if errors.As(err, &pe) {
		return &deliveryError{reason: ReasonOther, permanent: true, msg: pe.Err.Error()}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &deliveryError{reason: ReasonUnavailable, msg: "timed out"}
	}
	return &deliveryError{reason: ReasonUnavailable, msg: err.Error()}
}

// answerKey carries an *answer through a test send, so the receiver's
// exact answer can be shown to the person testing.
type answerKey struct{}

type answer struct {
	mu   sync.Mutex
	text []string
}

func (a *answer) add(s string) {
	a.mu.Lock()
	a.text = append(a.text, s)
	a.mu.Unlock()
}

func recordAnswer(ctx context.Context, s string) {
	if a, ok := ctx.Value(answerKey{}).(*answer); ok {
		a.add(s)
	}
}

// sender owns one notifier: its bounded queue, its goroutine, retries,
// counters and health. Notifiers never share a goroutine, so a dead
// webhook only fills its own queue.
type sender struct {
	cfg   *Notifier
	d     deliverer
	queue chan outboxEntry
	log   *slog.Logger
	loc   *time.Location
	now   func() time.Time
	// finish removes a notice from the outbox (delivered or abandoned).
	finish func(outboxEntry)
	// stop ends this sender's goroutines (set when started); wg waits
	// for them.
	stop context.CancelFunc
	wg   sync.WaitGroup

	sent, dropped, retries atomic.Uint64
	failed                 [8]atomic.Uint64 // by failureReasons index
	errors                 [8]atomic.Uint64 // failed attempts, by reason

	mu          sync.Mutex
	consecutive int // failed attempts since the last success
	lastErr     string
	lastReason  string
	lastOK      time.Time
	lastFail    time.Time
}

func reasonIndex(r string) int {
	for i, x := range failureReasons {
		if x == r {
			return i
		}
	}
	return len(failureReasons) - 1
}

func newSender(cfg *Notifier, d notifierDeps, finish func(outboxEntry)) (*sender, error) {
	t, ok := notifierTypes[cfg.Type]
	if !ok {
		return nil, fmt.Errorf("unknown notifier type %q", cfg.Type)
	}
	log := d.Log.With("notifier", cfg.Name, "type", cfg.Type)
	d.Log = log
	dl, err := t.build(cfg, d)
	if err != nil {
		return nil, err
	}
	return &sender{cfg: cfg, d: dl, queue: make(chan outboxEntry, cfg.QueueSize), log: log, loc: d.Loc, now: d.Now, finish: finish}, nil
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

// start runs the sender until ctx ends or stop is called.
func (s *sender) start(ctx context.Context) {
	ctx, s.stop = context.WithCancel(ctx)
	if r, ok := s.d.(runner); ok {
		s.wg.Go(func() { _ = r.run(ctx) })
	}
	s.wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case o := <-s.queue:
				s.send(ctx, o)
			}
		}
	})
}

// halt stops the sender and waits for its goroutines. Notices still
// queued stay in the queue (and in the outbox).
func (s *sender) halt() {
	if s.stop != nil {
		s.stop()
		s.wg.Wait()
	}
}

// drain takes the notices left in a halted sender's queue.
func (s *sender) drain() []outboxEntry {
	var out []outboxEntry
	for {
		select {
		case o := <-s.queue:
			out = append(out, o)
		default:
			return out
		}
	}
}

// send delivers one notice, retrying per failure class until it works,
// fails for good, or MaxElapsed passes: quota answers hold the queue for
// the quota window (order kept); permanent answers give up at once, with
// an error log; other failures back off exponentially. A notice cut short
// by shutdown stays in the outbox and is sent again, with the same
// idempotency key, after the next start.
func (s *sender) send(ctx context.Context, o outboxEntry) {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(time.Duration(s.cfg.Retry.Initial)),
		backoff.WithMaxInterval(time.Duration(s.cfg.Retry.Max)),
		backoff.WithMaxElapsedTime(time.Duration(s.cfg.Retry.MaxElapsed)),
	)
	n := o.N
	n.Vars, n.loc = s.cfg.Vars, s.loc
	attempt := 0
	var last *deliveryError
	for {
		attempt++
		actx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.Timeout))
		err := s.d.deliver(actx, &n)
		cancel()
		if ctx.Err() != nil {
			return // shutting down: left in the outbox
		}
		if err == nil {
			// Out of the outbox before it counts as sent, so whoever sees
			// the count (a test, an operator) knows a restart will not
			// send it again.
			s.finish(o)
			s.ok()
			s.sent.Add(1)
			return
		}
		last = classify(err)
		s.fail(last)
		if last.permanent {
			break
		}
		wait := last.hold
		if wait <= 0 {
			if wait = b.NextBackOff(); wait == backoff.Stop {
				break
			}
		}
		s.retries.Add(1)
		s.log.Warn("notice not delivered; retrying", "alert", n.Alert, "device", n.Device, "kind", n.Kind,
			"attempt", attempt, "reason", last.reason, "retry_in", wait.Round(time.Millisecond).String(), "err", last.msg)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	s.failed[reasonIndex(last.reason)].Add(1)
	s.log.Error("notice abandoned", "alert", n.Alert, "site", n.Site, "device", n.Device, "kind", n.Kind,
		"attempts", attempt, "reason", last.reason, "permanent", last.permanent, "err", last.msg)
	s.finish(o)
}

func (s *sender) ok() {
	s.mu.Lock()
	s.consecutive, s.lastOK = 0, s.now()
	s.mu.Unlock()
}

func (s *sender) fail(e *deliveryError) {
	s.errors[reasonIndex(e.reason)].Add(1)
	s.mu.Lock()
	s.consecutive++
	s.lastErr, s.lastReason, s.lastFail = e.msg, e.reason, s.now()
	s.mu.Unlock()
}

// NotifierStatus is one notifier's health, for /api/v1/status, the web
// UI's banner and GET /api/v1/notifiers. It never holds a secret.
type NotifierStatus struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Healthy: no NotifierFailing condition (fewer than
	// rules.notifier_failing.after consecutive failures, chain intact).
	Healthy bool `json:"healthy"`
	// ConsecutiveFailures: failed attempts since the last success.
	ConsecutiveFailures int       `json:"consecutive_failures"`
	LastError           string    `json:"last_error,omitempty"`
	LastReason          string    `json:"last_reason,omitempty"`
	LastSuccess         time.Time `json:"last_success,omitzero"`
	LastFailure         time.Time `json:"last_failure,omitzero"`
	// Broken: the channel needs a person (Zalo: refresh token refused);
	// Problem says what to do, in English and Vietnamese.
	Broken  bool   `json:"broken"`
	Problem string `json:"problem,omitempty"`
	// TokenValidUntil: when the Zalo access token expires (never the token).
	TokenValidUntil time.Time `json:"token_valid_until,omitzero"`
	TokenRefreshes  uint64    `json:"token_refreshes,omitempty"`
	Sent            uint64    `json:"sent"`
	Failed          uint64    `json:"failed"`
	Dropped         uint64    `json:"dropped"`
	Queued          int       `json:"queued"`
}

func (s *sender) status(failAfter int) NotifierStatus {
	s.mu.Lock()
	st := NotifierStatus{Name: s.cfg.Name, Type: s.cfg.Type, ConsecutiveFailures: s.consecutive,
		LastError: s.lastErr, LastReason: s.lastReason, LastSuccess: s.lastOK, LastFailure: s.lastFail}
	s.mu.Unlock()
	if h, ok := s.d.(healthReporter); ok {
		ch := h.health()
		st.Broken, st.Problem, st.TokenValidUntil, st.TokenRefreshes = ch.Broken, ch.Problem, ch.TokenValidUntil, ch.Refreshes
	}
	st.Sent, st.Dropped, st.Queued = s.sent.Load(), s.dropped.Load(), len(s.queue)
	for i := range s.failed {
		st.Failed += s.failed[i].Load()
	}
	st.Healthy = !st.Broken && (failAfter <= 0 || st.ConsecutiveFailures < failAfter)
	return st
}
