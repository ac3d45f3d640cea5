// Package ui is the hub's built-in web dashboard: a single page at / with
// the camera grid, QR usage and alerts, in Vietnamese by default and
// English on a toggle. Every asset (including the vendored uPlot charting
// library) is embedded in the binary, so the page works with no Internet
// connection, and nothing is inline, so it runs under the hub's strict
// Content-Security-Policy.
//
// Live updates come over Server-Sent Events from /ui/stream: one goroutine
// (Run) builds a compact snapshot of the cameras and boards once per
// interval, only while someone is watching, and every viewer is sent only
// what changed since its last message. The cost on the hub is therefore one
// snapshot per interval whatever the number of viewers, and a phone on a
// slow link receives a few hundred bytes per change instead of the whole
// fleet.
//
// The page reads the hub's JSON API for the rest: /api/v1/qr-boards/{board}/scans
// for daily QR counts and CSV, /api/v1/alerts and /api/v1/silences for alerts
// (the alerts panel says so when the hub has no alerting).
package ui

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"villagehub/hub/report"
	"villagehub/hub/state"
	"villagehub/hub/web"
)

//go:embed assets
var assets embed.FS

// Source is the live state the dashboard shows; *state.State is one.
type Source interface {
	Cameras() []state.CameraView
	Boards() []state.BoardView
	Sites() []state.Site
}

// Config configures the dashboard.
type Config struct {
	Source Source
	// Location is the village's time zone: dates on the page and the days
	// of the QR chart are in it (Asia/Ho_Chi_Minh if nil).
	Location *time.Location
	// Interval is how often a snapshot is taken while someone watches
	// (default 2s).
	Interval time.Duration
	// Heartbeat is how often an idle stream gets a keep-alive message, so
	// proxies do not close it and the page knows the hub is there
	// (default 15s).
	Heartbeat time.Duration
	// MaxStreams bounds concurrent live streams (default 256); one more
	// is answered 503 and the page falls back to reconnecting later.
	MaxStreams int
	Logger     *slog.Logger

	// The admin area (all optional; what is missing is hidden on the page).
	//
	// QR is the scan history the monthly report reads (the store or
	// InfluxDB, as for the API).
	QR report.Source
	// PublicURL is what printed codes encode (http.public_url).
	PublicURL func() string
	// ConfigFile is the file the hub was started from, and Reload applies
	// it again: with both, administrators add, rename and approve cameras
	// and boards, and the first-run page creates the administrator, by
	// writing that file (see configFile).
	ConfigFile string
	Reload     func(ctx context.Context) error
	// Notifiers backs the "Gửi thử" (send a test) button.
	Notifiers Notifiers
	// DataDir is the hub's data_dir: "Tìm camera" keeps the camera
	// passwords it is given there, in 0600 files.
	DataDir string
	// CodeURL, if set, is each board's printed address (the gateway's
	// <public_url>/q/<village>/<board> when the hub has a gateway: block),
	// so the sheets downloaded here match /qr/<board>.png and `qr print`;
	// PrintedBase is that address's base, for the reachability warnings.
	CodeURL     func(board string) (string, error)
	PrintedBase func() string
	// NeedsSetup says no administrator exists yet (default: the config
	// file lists no admin user or token).
	NeedsSetup func() bool
	// CreateAdmin, if set, makes the first administrator live (the hub's
	// users file, as `villagehub user add` writes it) instead of in the
	// config file, so the new admin can log in at once.
	CreateAdmin func(name, password string) error
}

// UI serves the dashboard. Mount adds its routes; Run drives live updates.
type UI struct {
	cfg   Config
	log   *slog.Logger
	index *template.Template
	files map[string]*asset // by name under assets/, e.g. "app.js"

	feed *feed

	cfgFile *configFile
	setup   setup
}

// asset is one embedded file, with its gzip form when that is smaller.
type asset struct {
	name, ctype, etag, version string
	body, gz                   []byte
}

// New validates cfg and prepares the embedded assets (hashed for caching
// and compressed once, here, rather than on every request).
func New(cfg Config) (*UI, error) {
	if cfg.Source == nil {
		return nil, errors.New("ui: Source is required")
	}
	if cfg.Location == nil {
		loc, err := time.LoadLocation("Asia/Ho_Chi_Minh")
		if err != nil {
			return nil, fmt.Errorf("ui: loading the default time zone: %w", err)
		}
		cfg.Location = loc
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	u := &UI{cfg: cfg, log: cfg.Logger, files: map[string]*asset{}}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Base(p) == "index.html" {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "assets/")
		sum := sha256.Sum256(b)
		a := &asset{name: name, body: b, version: hex.EncodeToString(sum[:6])}
		a.etag = `"` + a.version + `"`
		a.ctype = assetTypes[path.Ext(name)]
		if a.ctype == "" || strings.HasSuffix(name, "LICENSE") {
			a.ctype = "text/plain; charset=utf-8"
		}
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		zw.Write(b)
		zw.Close()
		if gz.Len() < len(b)*9/10 {
			a.gz = gz.Bytes()
		}
		u.files[name] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ui: reading embedded assets: %w", err)
	}
	u.index, err = template.New("index.html").Funcs(template.FuncMap{
		"asset": func(name string) (string, error) {
			a := u.files[name]
			if a == nil {
				return "", fmt.Errorf("no asset %q", name)
			}
			return "/ui/" + name + "?v=" + a.version, nil
		},
	}).ParseFS(assets, "assets/index.html")
	if err != nil {
		return nil, fmt.Errorf("ui: parsing index.html: %w", err)
	}
	// Render once now so a broken template fails New, not the first visitor.
	if err := u.index.Execute(&bytes.Buffer{}, u.pageData()); err != nil {
		return nil, fmt.Errorf("ui: rendering index.html: %w", err)
	}
	u.feed = newFeed(cfg.Source, cfg.Location, cfg.Interval)
	if cfg.ConfigFile != "" {
		// Only a file that is there can be edited (a demo or test hub
		// names one it never read).
		if st, err := os.Stat(cfg.ConfigFile); err == nil && st.Mode().IsRegular() {
			u.cfgFile = &configFile{path: cfg.ConfigFile}
		}
	}
	if u.needsSetup() {
		u.setup.token = newSetupToken()
		// The one-time token lets the installer finish setup from another
		// device on the LAN; it stops working once an admin exists.
		u.log.Warn("no administrator yet: open /setup on this machine (http://127.0.0.1:<port>/setup), or /setup?token=" + u.setup.token + " from another device, to create one")
	}
	return u, nil
}

// Mount adds the dashboard's routes to mux: the page at /, its assets
// under /ui/, and the live stream at /ui/stream. It has the signature of
// web.Config.Mount entries.
func (u *UI) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", u.serveIndex)
	mux.HandleFunc("GET /ui/stream", u.serveStream)
	mux.HandleFunc("GET /ui/{file...}", u.serveAsset)
	mux.HandleFunc("GET /setup", u.serveSetup)
	mux.HandleFunc("POST /setup", u.postSetup)
	u.mountAdmin(mux)
}

// Run takes snapshots while someone watches, until ctx ends; then it ends
// every open stream so the HTTP server can shut down at once.
func (u *UI) Run(ctx context.Context) error {
	t := time.NewTicker(u.cfg.Interval)
	defer t.Stop()
	defer u.feed.close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if u.feed.watched() {
				u.feed.refresh()
			}
		}
	}
}

type pageData struct {
	TimeZone string
	// Role and User of the visitor: the page shows the login or logout
	// link and the admin area from them (the server enforces the rules).
	Role, User string
	Setup      bool
}

func (u *UI) pageData() pageData {
	tz := u.cfg.Location.String()
	if tz == "Local" {
		tz = "" // the browser's own zone is the best guess
	}
	return pageData{TimeZone: tz, Role: "viewer"}
}

func (u *UI) serveIndex(w http.ResponseWriter, r *http.Request) {
	var b bytes.Buffer
	pd := u.pageData()
	if role, user, ok := web.RequestRole(r); ok {
		pd.Role, pd.User = role.String(), user
	}
	pd.Setup = u.needsSetup() && isLoopback(r)
	if err := u.index.Execute(&b, pd); err != nil {
		u.log.Error("rendering the dashboard", "err", err)
		http.Error(w, "dashboard unavailable", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// The page is tiny and names its assets by content hash: always
	// revalidate it so an upgraded hub is picked up at once.
	h.Set("Cache-Control", "no-cache")
	writeMaybeGzip(w, r, b.Bytes(), nil)
}

func (u *UI) serveAsset(w http.ResponseWriter, r *http.Request) {
	a := u.files[r.PathValue("file")]
	if a == nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", a.etag)
	if r.URL.Query().Get("v") == a.version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeMaybeGzip(w, r, a.body, a.gz)
}

// writeMaybeGzip sends gz (or body compressed now, when gz is nil and body
// is worth it) to clients that accept gzip.
func writeMaybeGzip(w http.ResponseWriter, r *http.Request, body, gz []byte) {
	h := w.Header()
	h.Add("Vary", "Accept-Encoding")
	if !acceptsGzip(r) || (gz == nil && len(body) < 1024) {
		w.Write(body)
		return
	}
	if gz == nil {
		var b bytes.Buffer
		zw := gzipWriters.Get().(*gzip.Writer)
		zw.Reset(&b)
		zw.Write(body)
		zw.Close()
		gzipWriters.Put(zw)
		gz = b.Bytes()
	}
	h.Set("Content-Encoding", "gzip")
	w.Write(gz)
}

var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.TrimSpace(q) != "q=0" {
			return true
		}
	}
	return false
}

// assetTypes are the Content-Types of the embedded assets' extensions (Go's
// built-in values). Not mime.TypeByExtension: its first call loads the
// system's MIME tables (/etc/mime.types and others), about 1 MB of heap kept
// for the life of the hub, for the handful of types the assets use; and the
// answer no longer depends on the machine's tables. An extension missing
// here is served as text/plain (TestAssetTypes lists the assets).
var assetTypes = map[string]string{
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".html": "text/html; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".json": "application/json",
}
