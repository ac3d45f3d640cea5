package alert

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"villagehub/hub/web"
)

// Register mounts the alert API on mux:
//
//	GET    /api/v1/alerts           firing, silenced, pending and recently resolved alerts
//	GET    /api/v1/silences         silences and maintenance windows
//	POST   /api/v1/silences         create a silence
//	DELETE /api/v1/silences/{id}    end a silence
//	GET    /api/v1/notifiers        every notifier's health (NotifierStatus)
//	POST   /api/v1/notifiers/{name}/test  send a test message now; the channel's exact answer (TestResult)
//
// Register fits web.Config.Mount as it is: Mount: {..., engine.Register}.
func (e *Engine) Register(mux *http.ServeMux) { e.RegisterWith(mux) }

// RegisterWith is Register with the writing handlers (POST and DELETE)
// wrapped by each of write, outermost first: e.g. an access check, which
// may also name the user with WithUser.
func (e *Engine) RegisterWith(mux *http.ServeMux, write ...func(http.Handler) http.Handler) {
	wrap := func(h http.Handler) http.Handler {
		for i := len(write) - 1; i >= 0; i-- {
			h = write[i](h)
		}
		return h
	}
	mux.HandleFunc("GET /api/v1/alerts", e.handleAlerts)
	mux.HandleFunc("GET /api/v1/silences", e.handleSilences)
	mux.Handle("POST /api/v1/silences", wrap(http.HandlerFunc(e.handleCreateSilence)))
	mux.Handle("DELETE /api/v1/silences/{id}", wrap(http.HandlerFunc(e.handleDeleteSilence)))
	mux.HandleFunc("GET /api/v1/notifiers", e.handleNotifiers)
	mux.Handle("POST /api/v1/notifiers/{name}/test", wrap(http.HandlerFunc(e.handleTestNotifier)))
}

// Notifiers returns every notifier's health, in config order: for
// /api/v1/status and the web UI's banner (show one when any has
// Healthy false; Problem says what to do). No secret is ever in it.
func (e *Engine) Notifiers() []NotifierStatus {
	e.mu.Lock()
	after := e.cfg.Rules.NotifierFailing.After
	e.mu.Unlock()
	ss := e.sendersNow()
	out := make([]NotifierStatus, 0, len(ss))
	for _, s := range ss {
		out = append(out, s.status(after))
	}
	return out
}

// ErrUnknownNotifier: TestNotifier was given a name not in the config.
var ErrUnknownNotifier = errors.New("no notifier by that name")

// TestResult is what a test send did. Answer holds the channel's exact
// answers in order (for Zalo: the token refresh, if one was needed, then
// the message's HTTP status and JSON body), with every secret the hub
// holds replaced by [redacted].
type TestResult struct {
	Notifier string   `json:"notifier"`
	Type     string   `json:"type"`
	OK       bool     `json:"ok"`
	Reason   string   `json:"reason,omitempty"`
	Error    string   `json:"error,omitempty"`
	Answer   []string `json:"answer"`
	// Text is the message as sent to chat channels (Zalo), for showing.
	Text       string `json:"text,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// TestNotifier sends a test message through one notifier now, past its
// queue, and returns the channel's answer (villagehub notify test, the
// UI's "Gửi thử" button). Its result counts toward the notifier's health,
// so a successful test clears a NotifierFailing condition.
func (e *Engine) TestNotifier(ctx context.Context, name string) (TestResult, error) {
	var s *sender
	for _, x := range e.sendersNow() {
		if x.cfg.Name == name {
			s = x
		}
	}
	if s == nil {
		return TestResult{}, ErrUnknownNotifier
	}
	return testSend(ctx, s, e.now(), e.loc, e.deps.HubID, e.link()), nil
}

// TestSend sends a test message through the notifier called name in cfg
// without an engine: for "villagehub notify test" when the hub is not
// running (with the hub running, use its POST /api/v1/notifiers/{name}/test
// instead, so a Zalo token chain is never used by two processes). deps
// needs DataDir (Zalo's token state), and HubID, PublicURL, Location,
// HTTPClient as the hub has them; an mqtt notifier needs the running hub.
func TestSend(ctx context.Context, cfg Config, name string, deps Deps) (TestResult, error) {
	if ps := cfg.Validate(); len(ps) > 0 {
		return TestResult{}, &ValidationError{Problems: ps}
	}
	var n *Notifier
	for i := range cfg.Notifiers {
		if cfg.Notifiers[i].Name == name {
			n = &cfg.Notifiers[i]
		}
	}
	if n == nil {
		return TestResult{}, ErrUnknownNotifier
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.HTTPClient == nil {
		deps.HTTPClient = &http.Client{}
	}
	loc := deps.Location
	if cfg.Timezone != "" {
		loc, _ = time.LoadLocation(cfg.Timezone)
	}
	if loc == nil {
		loc = time.UTC
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	s, err := newSender(n, notifierDeps{HTTP: deps.HTTPClient, Publisher: deps.Publisher, Prefix: deps.Prefix, Log: deps.Logger,
		Loc: loc, DataDir: deps.DataDir, Now: deps.Now, Firing: func() []Notification { return nil }}, func(outboxEntry) {})
	if err != nil {
		return TestResult{}, err
	}
	link := ""
	if deps.PublicURL != "" {
		link = strings.TrimRight(deps.PublicURL, "/") + "/"
	}
	return testSend(ctx, s, deps.Now(), loc, deps.HubID, link), nil
}

// testSend sends one test notice through s, past its queue, recording the
// channel's answers; the result counts toward s's health.
func testSend(ctx context.Context, s *sender, now time.Time, loc *time.Location, hubID, link string) TestResult {
	n := Notification{Key: strings.ToLower(rand.Text()), Kind: KindTest, State: KindFiring, Alert: "Test", Severity: "info",
		Site: HubSite, Device: s.cfg.Name, Since: now, FiredAt: now, HubID: hubID, URL: link, At: now,
		Detail: "test message", Vars: s.cfg.Vars, loc: loc}
	a := &answer{}
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, answerKey{}, a), time.Duration(s.cfg.Timeout))
	defer cancel()
	start := time.Now()
	err := s.d.deliver(ctx, &n)
	res := TestResult{Notifier: s.cfg.Name, Type: s.cfg.Type, OK: err == nil, DurationMS: time.Since(start).Milliseconds()}
	a.mu.Lock()
	res.Answer = append([]string{}, a.text...)
	a.mu.Unlock()
	if z, ok := s.d.(*zalo); ok {
		res.Text = zaloText(&n, loc)
		for i := range res.Answer {
			res.Answer[i] = z.redact(res.Answer[i])
		}
	}
	if err != nil {
		de := classify(err)
		res.Reason, res.Error = de.reason, de.msg
		s.fail(de)
	} else {
		s.ok()
	}
	return res
}

func (e *Engine) handleNotifiers(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"notifiers": e.Notifiers()})
}

func (e *Engine) handleTestNotifier(w http.ResponseWriter, r *http.Request) {
	res, err := e.TestNotifier(r.Context(), r.PathValue("name"))
	if errors.Is(err, ErrUnknownNotifier) {
		writeError(w, http.StatusNotFound, "no notifier by that name")
		return
	}
	e.log.Info("test message sent", "notifier", res.Notifier, "ok", res.OK, "reason", res.Reason)
	writeJSON(w, http.StatusOK, res)
}

// MaxSilence is the longest a silence made through the API may last.
const MaxSilence = 30 * 24 * time.Hour

type userKey struct{}

// WithUser records who is making a request; a silence created in it names
// that user as created_by, whatever the body says.
func WithUser(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, userKey{}, user)
}

// Pending is a device whose condition holds but has not lasted `for` yet.
type Pending struct {
	Alert  string    `json:"alert"`
	Site   string    `json:"site"`
	Device string    `json:"device"`
	Since  time.Time `json:"since"`
	// FiresAt: when it fires if nothing changes.
	FiresAt time.Time `json:"fires_at"`
	Reason  string    `json:"reason,omitempty"`
	Flaps   int       `json:"flaps"`
}

// AlertsResponse is the body of GET /api/v1/alerts.
type AlertsResponse struct {
	Firing   []Alert   `json:"firing"`
	Silenced []Alert   `json:"silenced"`
	Pending  []Pending `json:"pending"`
	Resolved []Alert   `json:"resolved"`
}

func (e *Engine) handleAlerts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	m := Matcher{Alert: q.Get("alert"), Site: q.Get("site"), Device: q.Get("device")}
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit must be between 0 and 1000")
			return
		}
		limit = n
	}
	resp := AlertsResponse{Firing: []Alert{}, Silenced: []Alert{}, Pending: e.pending(m)}
	for _, a := range e.Firing() {
		if !m.matches(&a) {
			continue
		}
		if a.Silenced {
			resp.Silenced = append(resp.Silenced, a)
		} else {
			resp.Firing = append(resp.Firing, a)
		}
	}
	var err error
	if resp.Resolved, err = e.History(limit, m); err != nil {
		e.log.Error("reading alert history", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot read the alert history")
		return
	}
	if resp.Resolved == nil {
		resp.Resolved = []Alert{}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (e *Engine) pending(m Matcher) []Pending {
	out := []Pending{}
	add := func(t *track, sp *spec, site, device string) {
		if t.alert != nil || t.since.IsZero() {
			return
		}
		p := Pending{Alert: sp.name, Site: site, Device: device, Since: t.since, FiresAt: t.since.Add(sp.forDur), Reason: t.reason, Flaps: len(t.flaps)}
		a := Alert{Name: p.Alert, Site: site, Device: device}
		if m.matches(&a) {
			out = append(out, p)
		}
	}
	e.mu.Lock()
	for k, c := range e.cams {
		add(&c.down, &e.down, k.site, k.id)
		add(&c.degr, &e.degr, k.site, k.id)
	}
	for k, h := range e.hub {
		add(&h.t, &e.hubSpec, HubSite, k)
	}
	e.mu.Unlock()
	slices.SortFunc(out, func(a, b Pending) int {
		return cmp.Or(cmp.Compare(a.Site, b.Site), cmp.Compare(a.Device, b.Device), cmp.Compare(a.Alert, b.Alert))
	})
	return out
}

// Silences lists every silence with its state now.
func (e *Engine) Silences() []SilenceView {
	now := e.now()
	e.mu.Lock()
	out := make([]SilenceView, 0, len(e.silences))
	for _, s := range e.silences {
		out = append(out, s.view(now, e.loc))
	}
	e.mu.Unlock()
	return out
}

func (e *Engine) handleSilences(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"silences": e.Silences()})
}

// SilenceRequest is the body of POST /api/v1/silences. Give ends_at or a
// duration ("2h"); starts_at defaults to now.
type SilenceRequest struct {
	Matcher
	StartsAt  *time.Time `json:"starts_at"`
	EndsAt    *time.Time `json:"ends_at"`
	Duration  string     `json:"duration"`
	Comment   string     `json:"comment"`
	CreatedBy string     `json:"created_by"`
}

const maxAPISilences = 1000

func (e *Engine) handleCreateSilence(w http.ResponseWriter, r *http.Request) {
	var req SilenceRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	now := e.now()
	s := &silence{Matcher: req.Matcher, Comment: req.Comment, CreatedBy: req.CreatedBy, CreatedAt: now, Source: "api"}
	if u, ok := r.Context().Value(userKey{}).(string); ok && u != "" {
		s.CreatedBy = u
	}
	if err := s.Matcher.check(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.StartsAt = now
	if req.StartsAt != nil {
		s.StartsAt = *req.StartsAt
	}
	switch {
	case req.EndsAt != nil && req.Duration != "":
		writeError(w, http.StatusBadRequest, "give ends_at or duration, not both")
		return
	case req.EndsAt != nil:
		s.EndsAt = *req.EndsAt
	case req.Duration != "":
		d, err := time.ParseDuration(req.Duration)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "duration must be like 2h or 30m")
			return
		}
		s.EndsAt = s.StartsAt.Add(d)
	default:
		writeError(w, http.StatusBadRequest, "ends_at or duration is required")
		return
	}
	if !s.EndsAt.After(s.StartsAt) || !s.EndsAt.After(now) {
		writeError(w, http.StatusBadRequest, "ends_at must be after starts_at and in the future")
		return
	}
	// A silence hides outages; one that outlives anyone's memory of it
	// (the 100-year silence) hides them for good.
	if s.EndsAt.Sub(s.StartsAt) > MaxSilence || s.StartsAt.Sub(now) > MaxSilence {
		writeError(w, http.StatusBadRequest, "a silence may last at most 30 days (720h) and start at most 30 days ahead")
		return
	}
	if len(s.Comment) > 1024 || len(s.CreatedBy) > 128 {
		writeError(w, http.StatusBadRequest, "comment (1024) or created_by (128) too long")
		return
	}
	s.ID = strings.ToLower(rand.Text())

	e.mu.Lock()
	defer e.mu.Unlock()
	e.pruneSilences(now)
	n := 0
	for _, x := range e.silences {
		if x.Source == "api" {
			n++
		}
	}
	if n >= maxAPISilences {
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("at most %d silences", maxAPISilences))
		return
	}
	if err := e.db.putSilence(s); err != nil {
		e.log.Error("saving a silence", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot save the silence")
		return
	}
	e.silences = append(e.silences, s)
	e.log.Info("silence created", "id", s.ID, "alert", s.Matcher.Alert, "site", s.Matcher.Site, "device", s.Matcher.Device,
		"starts_at", s.StartsAt, "ends_at", s.EndsAt, "created_by", s.CreatedBy)
	writeJSON(w, http.StatusCreated, s.view(now, e.loc))
}

// pruneSilences forgets API silences that ended over a week ago. Called
// with e.mu.
func (e *Engine) pruneSilences(now time.Time) {
	keep := e.silences[:0]
	for _, s := range e.silences {
		if s.Source == "api" && now.Sub(s.EndsAt) > 7*24*time.Hour {
			if err := e.db.deleteSilence(s.ID); err == nil {
				continue
			}
		}
		keep = append(keep, s)
	}
	e.silences = keep
}

func (e *Engine) handleDeleteSilence(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.silences {
		if s.ID != id {
			continue
		}
		if s.Source != "api" {
			writeError(w, http.StatusConflict, "this silence comes from the config file; remove it there")
			return
		}
		// Expired, not deleted: it stays listed, as in Alertmanager.
		if now.Before(s.EndsAt) {
			old := *s
			s.EndsAt = now
			if s.StartsAt.After(now) {
				s.StartsAt = now
			}
			if err := e.db.putSilence(s); err != nil {
				*s = old
				e.log.Error("saving a silence", "err", err)
				writeError(w, http.StatusInternalServerError, "cannot save the silence")
				return
			}
			e.log.Info("silence ended", "id", s.ID)
		}
		writeJSON(w, http.StatusOK, s.view(now, e.loc))
		return
	}
	writeError(w, http.StatusNotFound, "no such silence")
}

// writeJSON is the hub's one JSON writer.
var writeJSON = web.WriteJSON

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
