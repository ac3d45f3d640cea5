package app

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"villagehub/hub/config"
	"villagehub/hub/probe"
	"villagehub/hub/scan"
	"villagehub/hub/state"
	"villagehub/hub/web"
)

// The reload contract. Every top-level key of config.Config has one entry
// in sections (TestEverySectionDeclaresReload fails on a key without one).
// An entry either applies a change live or declares the keys under it that
// need a restart; nothing is ignored. A reload runs every entry's plan
// first: if any key needs a restart, or a plan refuses, nothing is applied
// and the keys are named in the error, the log and /api/v1/status.

// applyFn applies a section's live change.
type applyFn func(ctx context.Context) error

// section is how one top-level config key reloads.
type section struct {
	key string
	// restart lists the keys under this section (dotted, as in the file)
	// whose change needs a restart; nil means everything here is live.
	// The keys given are prefixes: "broker.tls" covers broker.tls.cert_file.
	restart []string
	// plan checks a change and returns what applies it (nil: nothing to
	// do). It must not change anything. Sections whose keys all need a
	// restart have no plan.
	plan func(h *Hub, old, next *config.Config) (applyFn, error)
}

// restartAll marks a section whose every key needs a restart.
var restartAll = []string{""}

// sections are in apply order: those that can still refuse at apply time
// (alerts, broker credentials) come first, so a refusal leaves the rest
// untouched.
var sections = []section{
	// Rules, notifiers and silences: the engine applies them or refuses.
	{key: "alerts", plan: planAlerts},
	// Listeners, TLS files and the limits mochi fixes at start
	// (docs/security.md); credentials, anonymous access, connection and
	// rate limits go to the auth hook live.
	{key: "broker", restart: []string{"broker.addr", "broker.tls_addr", "broker.wss_addr", "broker.tls", "broker.max_packet_size", "broker.max_inflight"},
		plan: planBroker},
	{key: "hub_id", restart: restartAll},
	{key: "data_dir", restart: restartAll},
	{key: "timezone", restart: restartAll},
	{key: "topic_prefix", restart: restartAll},
	{key: "shutdown_timeout", restart: restartAll},
	// The listener, its certificate files and the access rules are fixed
	// at start; the certificate's contents reload (see reloadCertificates).
	// public_url is live (planPublicURL).
	{key: "http", restart: []string{"http.addr", "http.tls", "http.auth"}, plan: planPublicURL},
	{key: "mqtt", restart: restartAll},
	{key: "influx", restart: restartAll},
	{key: "store", restart: restartAll},
	{key: "limits", restart: restartAll},
	{key: "log", restart: restartAll},
	{key: "qr", restart: restartAll},
	// Profiling is mounted, or not, when the HTTP server starts.
	{key: "debug", restart: restartAll},
	{key: "probe", restart: []string{"probe.workers", "probe.concurrency", "probe.recycle_after"}, plan: planDevices},
	{key: "sites", plan: planDevices},
	// A camera's onvif: block included: its event subscription starts,
	// stops or restarts with the reload (liveInput).
	{key: "cameras", plan: planDevices},
	{key: "qr_boards", plan: planDevices},
	{key: "gateway", restart: restartAll},
	// A Frigate's topics are built and subscribed at start.
	{key: "frigate", restart: restartAll},
	// The uplink's labels, receivers and queues are fixed at start
	// (docs/province.md).
	{key: "place", restart: restartAll},
	{key: "uplink", restart: restartAll},
}

func planAlerts(h *Hub, old, next *config.Config) (applyFn, error) {
	return func(context.Context) error {
		if err := h.alerts.Reload(next.Alerts); err != nil {
			return fmt.Errorf("alerts: %w", err)
		}
		return nil
	}, nil
}

func planBroker(h *Hub, old, next *config.Config) (applyFn, error) {
	if h.auth == nil {
		return nil, nil // external broker: the section is not used
	}
	return func(context.Context) error {
		// Device credentials, anonymous access and broker limits.
		if err := h.auth.Reconfigure(h.authConfig(next)); err != nil {
			return fmt.Errorf("broker: %w", err)
		}
		return nil
	}, nil
}

// planDevices covers sites, cameras, boards and probe settings: they all
// end in one SetDevices and one SetTargets, so the apply is shared.
func planDevices(h *Hub, old, next *config.Config) (applyFn, error) {
	targets, err := probeTargets(next)
	if err != nil {
		return nil, err
	}
	if len(targets) > 0 && h.prober == nil && next.ProbeEnabled() {
		key := "cameras.rtsp_url"
		if !old.ProbeEnabled() {
			key = "probe.enabled"
		}
		return nil, &restartError{keys: []string{key}, why: "RTSP probing was off at start (no camera had an rtsp_url, or probe.enabled was false)"}
	}
	// Inputs that follow the cameras (ONVIF events) check the new list
	// here, so that a password file that cannot be read refuses the
	// reload before anything changed.
	var inputs []func()
	for _, in := range h.inputs {
		if li, ok := in.(liveInput); ok {
			apply, err := li.Plan(next)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", in.Name(), err)
			}
			if apply != nil {
				inputs = append(inputs, apply)
			}
		}
	}
	return func(ctx context.Context) error {
		sites, cams, boards := stateDevices(next)
		if err := h.state.SetDevices(ctx, sites, cams, boards); err != nil {
			return fmt.Errorf("applying devices: %w", err)
		}
		// After SetDevices: a new camera is configured before its first
		// event arrives.
		for _, apply := range inputs {
			apply()
		}
		if h.prober != nil {
			if !next.ProbeEnabled() {
				targets = nil
			}
			h.prober.SetTargets(targets)
		}
		h.boards.Store(newBoardLookup(next))
		h.refreshGateway()
		return nil
	}, nil
}

// planPublicURL applies a new http.public_url to what reads it: printed
// codes (/qr/ images, the dashboard's sheets, through h.printed), the
// dashboard's address and warnings and the alert links (both read the
// current config), and the reachability warnings, logged again. Two
// readers are fixed at start, so those changes need a restart: the
// session cookies' Secure flag (http vs https) and the QR gateway link,
// which completes board targets with it.
func planPublicURL(h *Hub, old, next *config.Config) (applyFn, error) {
	if old.HTTP.PublicURL == next.HTTP.PublicURL {
		return nil, nil
	}
	if https := func(c *config.Config) bool { return strings.HasPrefix(c.HTTP.PublicURL, "https://") }; https(old) != https(next) {
		return nil, &restartError{keys: []string{"http.public_url"}, why: "between http and https: the session cookies' Secure flag is set at start"}
	}
	if old.GatewayLink().Enabled() || next.GatewayLink().Enabled() {
		return nil, &restartError{keys: []string{"http.public_url"}, why: "the QR gateway link takes the hub's public URL at start"}
	}
	return func(context.Context) error {
		public, fn := h.printedURLs(next) // logs the new address's warnings
		h.printed.Store(&fn)
		h.log.Info("http.public_url changed; printed QR codes now point at it", "public_url", public)
		return nil
	}, nil
}

// liveInput is an input that follows the configuration while it runs
// (hub/input/onvifevents: a subscription per camera with an onvif: block).
// Plan changes nothing; the apply it returns (nil: nothing to do) cannot
// fail.
type liveInput interface {
	Plan(next *config.Config) (apply func(), err error)
}

// restartError refuses a reload because keys need a restart.
type restartError struct {
	keys []string
	why  string
}

func (e *restartError) Error() string {
	msg := "these settings only change with a restart: " + strings.Join(e.keys, ", ")
	if e.why != "" {
		msg += " (" + e.why + ")"
	}
	return msg
}

// Reload applies a new, already valid configuration without a restart, or
// refuses it as a whole: see sections. The outcome is logged and shown at
// /api/v1/status.
func (h *Hub) Reload(ctx context.Context, next *config.Config) error {
	h.reloadMu.Lock()
	defer h.reloadMu.Unlock()
	err := h.reload(ctx, next)
	h.recordReload(err)
	if err != nil {
		h.logRefusal(err)
		return err
	}
	h.log.Info("configuration reloaded", "sites", len(next.Sites), "cameras", len(next.Cameras), "qr_boards", len(next.Boards))
	return nil
}

// logRefusal logs a refused reload, naming the keys that need a restart.
func (h *Hub) logRefusal(err error) {
	var re *restartError
	if errors.As(err, &re) {
		h.log.Error("configuration not reloaded; keeping the running one", "restart_needed", strings.Join(re.keys, ","), "err", err)
		return
	}
	h.log.Error("configuration not reloaded; keeping the running one", "err", err)
}

func (h *Hub) reload(ctx context.Context, next *config.Config) error {
	old := h.cfg.Load()
	var restart []string
	var applies []applyFn
	var planned = map[uintptr]bool{} // sections sharing a plan run it once
	for _, s := range sections {
		changed := diffKeys(s.key, field(old, s.key), field(next, s.key))
		if len(changed) == 0 {
			continue
		}
		var live []string
		for _, k := range changed {
			if needsRestart(s.restart, k) {
				restart = append(restart, k)
			} else {
				live = append(live, k)
			}
		}
		if len(live) == 0 || s.plan == nil {
			continue
		}
		id := reflect.ValueOf(s.plan).Pointer()
		if planned[id] {
			continue
		}
		planned[id] = true
		apply, err := s.plan(h, old, next)
		var re *restartError
		if errors.As(err, &re) {
			restart = append(restart, re.keys...)
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.key, err)
		}
		if apply != nil {
			applies = append(applies, apply)
		}
	}
	if len(restart) > 0 {
		return &restartError{keys: restart}
	}
	for _, apply := range applies {
		if err := apply(ctx); err != nil {
			return err
		}
	}
	h.cfg.Store(next)
	return nil
}

// needsRestart reports whether key is under one of the prefixes.
func needsRestart(prefixes []string, key string) bool {
	for _, p := range prefixes {
		if p == "" || key == p || strings.HasPrefix(key, p+".") || strings.HasPrefix(key, p+"[") {
			return true
		}
	}
	return false
}

// ReloadFromFile is the one reload path, for SIGHUP and
// POST /api/v1/reload alike: it reloads the TLS certificates from their
// files, then reads the configuration again (SetReloader) and applies it
// with Reload. trigger ("SIGHUP", "api") is logged.
func (h *Hub) ReloadFromFile(ctx context.Context, trigger string) error {
	h.log.Info("reloading the configuration and TLS certificates", "trigger", trigger)
	certErr := h.reloadCertificates() // logged by tlscert
	load := h.reloadFn
	if load == nil {
		load = func() (*config.Config, error) {
			return nil, web.ErrNoConfigFile
		}
	}
	next, err := load()
	if err != nil {
		h.recordReload(err)
		h.logRefusal(err)
		return errors.Join(err, certErr)
	}
	return errors.Join(h.Reload(ctx, next), certErr)
}

// reloadCertificates reads every TLS key pair again; one that cannot be
// loaded keeps serving the previous certificate (tlscert logs why).
func (h *Hub) reloadCertificates() error {
	var errs []error
	for _, r := range h.certs() {
		errs = append(errs, r.Reload())
	}
	return errors.Join(errs...)
}

// ReloadStatus is the last reload's outcome, for /api/v1/status. It never
// carries secrets: config errors name keys, not values.
type ReloadStatus struct {
	// Last is when the last reload was tried (zero: never).
	Last time.Time `json:"last,omitempty"`
	// Result is "ok", "restart_needed" or "error" ("" before any reload).
	Result string `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
	// RestartNeeded are the keys changed in the file that only a restart
	// applies; the rest of that file was not applied either.
	RestartNeeded []string `json:"restart_needed"`
}

type reloadRecord struct {
	mu sync.Mutex
	st ReloadStatus
}

func (h *Hub) recordReload(err error) {
	st := ReloadStatus{Last: time.Now().UTC(), Result: "ok", RestartNeeded: []string{}}
	var re *restartError
	switch {
	case errors.As(err, &re):
		st.Result, st.RestartNeeded = "restart_needed", re.keys
		st.Error = err.Error()
	case err != nil:
		st.Result, st.Error = "error", err.Error()
	}
	h.reloads.mu.Lock()
	h.reloads.st = st
	h.reloads.mu.Unlock()
}

// LastReload is the last reload's outcome.
func (h *Hub) LastReload() ReloadStatus {
	h.reloads.mu.Lock()
	defer h.reloads.mu.Unlock()
	st := h.reloads.st
	st.RestartNeeded = append([]string{}, st.RestartNeeded...)
	return st
}

// field is the value of c's top-level field with that yaml key.
func field(c *config.Config, key string) any {
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		if yamlName(t.Field(i)) == key {
			return v.Field(i).Interface()
		}
	}
	panic("config.Config has no key " + key)
}

// yamlName is a struct field's key in the file; "" for fields not in it,
// ",inline" for an inlined one.
func yamlName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	if tag == "-" || !f.IsExported() {
		return ""
	}
	name, opts, _ := strings.Cut(tag, ",")
	if opts == "inline" {
		return ",inline"
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name
}

// diffKeys lists the dotted keys at which a and b differ, going into
// structs (inline ones included) and stopping at lists, maps and values.
func diffKeys(key string, a, b any) []string {
	return diffValues(key, reflect.ValueOf(a), reflect.ValueOf(b))
}

func diffValues(key string, a, b reflect.Value) []string {
	if a.Kind() != reflect.Struct {
		if reflect.DeepEqual(a.Interface(), b.Interface()) {
			return nil
		}
		return []string{key}
	}
	var out []string
	t := a.Type()
	for i := range t.NumField() {
		name := yamlName(t.Field(i))
		switch name {
		case "":
			continue
		case ",inline":
			out = append(out, diffValues(key, a.Field(i), b.Field(i))...)
		default:
			out = append(out, diffValues(key+"."+name, a.Field(i), b.Field(i))...)
		}
	}
	return out
}

// stateDevices is the config's devices as hub/state takes them.
func stateDevices(cfg *config.Config) ([]state.Site, []state.CameraInfo, []state.BoardInfo) {
	var sites []state.Site
	for _, s := range cfg.Sites {
		sites = append(sites, state.Site{ID: s.ID, Name: s.Name})
	}
	var cams []state.CameraInfo
	for _, c := range cfg.Cameras {
		cams = append(cams, state.CameraInfo{ID: c.ID, Site: c.Site, Name: c.Name, Location: c.Location, RTSPURL: probe.Redact(c.RTSPURL)})
	}
	var boards []state.BoardInfo
	for _, b := range cfg.Boards {
		boards = append(boards, state.BoardInfo{ID: b.ID, Site: b.Site, Name: b.Name, Location: b.Location, TargetURL: b.TargetURL})
	}
	return sites, cams, boards
}

// probeTargets is every camera with an RTSP URL, credentials resolved and
// the global probe settings filled in where the camera leaves them unset,
// so that a change of either reaches the prober through SetTargets.
func probeTargets(cfg *config.Config) ([]probe.Target, error) {
	var targets []probe.Target
	for i, c := range cfg.Cameras {
		if c.RTSPURL == "" {
			continue
		}
		pw, err := config.ReadSecret(c.Password, c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("cameras[%d].password_file: %w", i, err)
		}
		targets = append(targets, probe.Target{
			ID: c.ID, Site: c.Site, URL: c.RTSPURL, Username: c.Username, Password: pw,
			ExpectedFPS: c.ExpectedFPS, Settings: probeSettings(c.Probe.Or(cfg.Probe.ProbeSettings)),
		})
	}
	return targets, nil
}

// boardLookup finds configured boards by ID for /q/ and /qr/. A reload
// swaps the whole map, so requests read it without locks.
type boardLookup struct {
	p *atomic.Pointer[map[string]scan.Board]
}

func newBoardLookup(cfg *config.Config) *map[string]scan.Board {
	m := map[string]scan.Board{}
	for _, b := range cfg.Boards {
		m[b.ID] = scan.Board{ID: b.ID, Site: b.Site, Name: b.Name, TargetURL: b.TargetURL}
	}
	return &m
}

func (l boardLookup) Board(id string) (scan.Board, bool) {
	b, ok := (*l.p.Load())[id]
	return b, ok
}
