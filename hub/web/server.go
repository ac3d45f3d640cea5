// Package web serves the hub's HTTP side: the JSON API, /metrics, health
// and readiness, and the built-in dashboard.
package web

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"villagehub/hub/fastlane"

	"villagehub/hub/report"
	"villagehub/hub/state"
	"villagehub/hub/store"
)

// Events is the event history the API pages through.
type Events interface {
	Events(q store.EventQuery) (store.EventPage, error)
}

// Check is one readiness condition: nil when ready.
type Check struct {
	Name string
	Fn   func() error
}

// Config configures the server.
type Config struct {
	Addr string
	// TLS, if set, serves HTTPS.
	TLS    *tls.Config
	State  *state.State
	Events Events
	// QR is where QR scan history comes from (the embedded store, or
	// InfluxDB), in the village's time zone Location.
	QR       report.Source
	Location *time.Location
	Registry *prometheus.Registry
	Ready    []Check
	// Access says who may view and who may change things.
	Access AccessConfig
	// Mount adds more handlers (printed QR codes, the dashboard) to mux.
	Mount []func(mux *http.ServeMux)
	// Fast routes (the printed codes' /q/) are served by fasthttp on a
	// plain-HTTP listener (hub/fastlane), with the same security headers;
	// over TLS net/http serves them through Mount's handlers. A fast
	// route's paths are public: the access rules are not consulted.
	Fast []fastlane.Route
	// Status, if set, answers GET /api/v1/status (viewer): the hub's
	// running state, e.g. the last reload and keys waiting for a restart.
	// It must not carry secrets.
	Status func() any
	// Reload, if set, answers POST /api/v1/reload (admin): reread the
	// config file and certificates. ErrNoConfigFile answers 409, any other
	// error 422; both bodies carry Status.
	Reload func(ctx context.Context) error
	Logger *slog.Logger
}

// ErrNoConfigFile is what Config.Reload returns when there is no file to
// reread.
var ErrNoConfigFile = errors.New("this hub was not started from a config file")

// Server is the hub's HTTP server.
type Server struct {
	cfg    Config
	ln     net.Listener
	lane   *fastlane.Lane // nil: net/http serves ln alone
	srv    *http.Server
	log    *slog.Logger
	access *access
}

// New binds the listen address, so a port in use is reported at once.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("HTTP server: address %s is already in use (change http.addr or VILLAGEHUB_HTTP_ADDR)", cfg.Addr)
		}
		return nil, fmt.Errorf("HTTP server: listening on %s (http.addr): %w", cfg.Addr, err)
	}
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	s := &Server{cfg: cfg, ln: ln, log: cfg.Logger, access: newAccess(cfg.Access)}
	if cfg.Registry != nil {
		if err := cfg.Registry.Register(s.access); err != nil {
			ln.Close()
			return nil, fmt.Errorf("HTTP server: registering metrics: %w", err)
		}
	}
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		// net/http logs one line per failed TLS handshake: a client can
		// provoke them at will, so about one a second is kept.
		ErrorLog: slog.NewLogLogger(&limitedHandler{Handler: cfg.Logger.Handler(), limit: rate.NewLimiter(1, 10)}, slog.LevelWarn),
	}
	if cfg.TLS == nil && len(cfg.Fast) > 0 {
		s.lane = fastlane.New(ln, fastlane.Config{
			Routes:         cfg.Fast,
			Header:         plainSecurityHeaders,
			ReadTimeout:    s.srv.ReadHeaderTimeout,
			IdleTimeout:    s.srv.IdleTimeout,
			MaxHeaderBytes: s.srv.MaxHeaderBytes,
			MaxBodyBytes:   maxBody,
			Logger:         cfg.Logger,
			Yield:          true, // the hub's /q/: a lower p99 (fastlane.Config.Yield)
		})
	}
	return s, nil
}

// limitedHandler drops records past its rate.
type limitedHandler struct {
	slog.Handler
	limit *rate.Limiter
}

func (l *limitedHandler) Handle(ctx context.Context, r slog.Record) error {
	if !l.limit.Allow() {
		return nil
	}
	return l.Handler.Handle(ctx, r)
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the server's base URL as bound: https:// when it serves TLS.
func (s *Server) URL() string {
	if s.cfg.TLS != nil {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// Run serves until ctx ends, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	ln := s.ln
	lctx, stopLane := context.WithCancel(ctx)
	defer stopLane()
	var lanec chan error
	if s.lane != nil {
		ln = s.lane.Slow()
		lanec = make(chan error, 1)
		go func() { lanec <- s.lane.Run(lctx) }()
	}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()
	var err error
	served := false // errc read
	select {
	case err = <-errc:
		err = fmt.Errorf("HTTP server: %w", err)
		served = true
	case err = <-lanec:
		// nil: ctx ended first (the lane reports a listener closed under
		// it as an error itself).
		if err != nil {
			err = fmt.Errorf("HTTP server: %w", err)
		}
		lanec = nil
	case <-ctx.Done():
	}
	stopLane()
	if lanec != nil {
		if lerr := <-lanec; err == nil && lerr != nil {
			err = fmt.Errorf("HTTP server: %w", lerr)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if serr := s.srv.Shutdown(sctx); serr != nil {
		s.srv.Close()
	}
	if !served {
		if e := <-errc; err == nil && ctx.Err() == nil && !errors.Is(e, http.ErrServerClosed) {
			err = fmt.Errorf("HTTP server: %w", e)
		}
	}
	return err
}

// Handler returns the server's handler (for tests that serve it themselves).
func (s *Server) Handler() http.Handler { return s.srv.Handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.cfg.Registry != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
			EnableOpenMetrics: true,
		}))
	}
	// Profiling, as Prometheus and most Go servers offer it (the heap
	// profile with ?gc=1 gives exact post-GC memory figures), only with
	// debug.pprof: true, and then for administrators (access.wrap).
	if s.cfg.Access.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /api/v1/cameras", s.cameras)
	mux.HandleFunc("GET /api/v1/qr-boards", s.boards)
	mux.HandleFunc("GET /api/v1/qr-boards/{board}", s.board)
	mux.HandleFunc("GET /api/v1/qr-boards/{board}/scans", s.boardScans)
	mux.HandleFunc("GET /api/v1/events", s.events)
	if s.cfg.Status != nil {
		mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, _ *http.Request) {
			WriteJSON(w, http.StatusOK, s.cfg.Status())
		})
	}
	if s.cfg.Reload != nil {
		mux.HandleFunc("POST /api/v1/reload", s.reload)
	}
	for _, m := range s.cfg.Mount {
		m(mux)
	}
	s.access.routes(mux)
	return securityHeaders(s.access.wrap(mux), s.cfg.TLS != nil)
}

// securityHeaders sets headers every response should carry; over HTTPS
// also HSTS, so a browser that has once reached the hub securely does not
// fall back to plain HTTP (no includeSubDomains: a village hub's name
// is rarely a domain of its own). The values are built once and assigned by
// their canonical keys: Header.Set would canonicalise each key and allocate
// each value on every request, a visible share of the cost of a /q/
// redirect. (Each slice has len == cap, so a handler that Adds to one gets a
// copy, never a shared array.)
func securityHeaders(h http.Handler, https bool) http.Handler {
	hsts := []string{"max-age=31536000"}
	plain := make([][]string, len(plainSecurityHeaders))
	for i, kv := range plainSecurityHeaders {
		plain[i] = []string{kv[1]}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		if https {
			hd["Strict-Transport-Security"] = hsts
		}
		for i, kv := range plainSecurityHeaders {
			hd[kv[0]] = plain[i]
		}
		h.ServeHTTP(w, r)
	})
}

// plainSecurityHeaders go on every answer, the fast routes' too (over
// HTTPS, Strict-Transport-Security as well).
var plainSecurityHeaders = [][2]string{
	{"X-Content-Type-Options", "nosniff"},
	{"Referrer-Policy", "no-referrer"},
	{"Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"},
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	type result struct {
		Name  string `json:"name"`
		OK    bool   `json:"ok"`
		Error string `json:"error,omitempty"`
	}
	out := struct {
		Ready  bool     `json:"ready"`
		Checks []result `json:"checks"`
	}{Ready: true, Checks: []result{}}
	for _, c := range s.cfg.Ready {
		r := result{Name: c.Name, OK: true}
		if err := c.Fn(); err != nil {
			r.OK, r.Error, out.Ready = false, err.Error(), false
		}
		out.Checks = append(out.Checks, r)
	}
	code := http.StatusOK
	if !out.Ready {
		code = http.StatusServiceUnavailable
	}
	WriteJSON(w, code, out)
}

func (s *Server) cameras(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]any{"cameras": s.cfg.State.Cameras()})
}

func (s *Server) boards(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]any{"qr_boards": s.cfg.State.Boards()})
}

func (s *Server) board(w http.ResponseWriter, r *http.Request) {
	if b, ok := s.findBoard(r); ok {
		WriteJSON(w, http.StatusOK, b)
		return
	}
	writeError(w, http.StatusNotFound, "no such QR board")
}

// findBoard finds {board}, in ?site= if given.
func (s *Server) findBoard(r *http.Request) (state.BoardView, bool) {
	return s.cfg.State.Board(r.URL.Query().Get("site"), r.PathValue("board"))
}

// parseTime takes RFC 3339 or a date (midnight in the village's zone).
func (s *Server) parseTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.ParseInLocation("2006-01-02", v, s.cfg.Location)
}

// boardScans serves a board's scan history: ?from=&to=&step=hour|day|month
// (default: the last 30 days by day), as JSON or, with format=csv, CSV.
func (s *Server) boardScans(w http.ResponseWriter, r *http.Request) {
	b, ok := s.findBoard(r)
	if !ok {
		writeError(w, http.StatusNotFound, "no such QR board")
		return
	}
	q := r.URL.Query()
	step, err := report.ParseStep(q.Get("step"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	to := time.Now()
	if v := q.Get("to"); v != "" {
		if to, err = s.parseTime(v); err != nil {
			writeError(w, http.StatusBadRequest, "to must be RFC 3339 or YYYY-MM-DD")
			return
		}
	}
	from := to.AddDate(0, 0, -30)
	if v := q.Get("from"); v != "" {
		if from, err = s.parseTime(v); err != nil {
			writeError(w, http.StatusBadRequest, "from must be RFC 3339 or YYYY-MM-DD")
			return
		}
	}
	pts, err := report.Series(s.cfg.QR, b.Site, b.ID, from, to, step, s.cfg.Location)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if q.Get("format") == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="qr-%s-%s.csv"`, b.ID, step))
		_ = report.WriteSeriesCSV(w, pts)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"board": b.ID, "site": b.Site, "step": step, "from": from, "to": to, "points": pts})
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Events == nil {
		writeError(w, http.StatusNotFound, "no event history")
		return
	}
	q := r.URL.Query()
	eq := store.EventQuery{Cursor: q.Get("cursor"), Site: q.Get("site"), Device: q.Get("device"), Kind: q.Get("kind"), Type: q.Get("type")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit must be a number from 1 to 1000")
			return
		}
		eq.Limit = n
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "since must be an RFC 3339 time")
			return
		}
		eq.Since = t
	}
	page, err := s.cfg.Events.Events(eq)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	WriteJSON(w, http.StatusOK, page)
}

// reload rereads the configuration (the same path as SIGHUP).
func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	err := s.cfg.Reload(r.Context())
	out := map[string]any{"status": "reloaded"}
	if s.cfg.Status != nil {
		out["hub"] = s.cfg.Status()
	}
	code := http.StatusOK
	if err != nil {
		code = http.StatusUnprocessableEntity
		if errors.Is(err, ErrNoConfigFile) {
			code = http.StatusConflict
		}
		out["status"], out["error"] = "refused", err.Error()
	}
	WriteJSON(w, code, out)
}

// WriteJSON answers with v as JSON: the hub's one JSON writer (no HTML
// escaping, never cached).
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	WriteJSON(w, code, map[string]string{"error": msg})
}
