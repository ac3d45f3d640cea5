package app

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"

	"villagehub/hub/config"
	"villagehub/hub/probe"
	"villagehub/hub/scan"
	"villagehub/hub/state"
)

// Reload applies a new configuration without a restart: sites, cameras,
// QR boards and probe settings. The new config must already be valid; a
// change to a setting that only takes effect at start (listen addresses,
// the data directory, the broker, InfluxDB, limits) is refused with the
// keys named, and nothing of it is applied.
func (h *Hub) Reload(ctx context.Context, next *config.Config) error {
	if keys := restartKeys(h.currentConfig(), next); len(keys) > 0 {
		return fmt.Errorf("these settings only change with a restart: %s", strings.Join(keys, ", "))
	}
	targets, err := probeTargets(next)
	if err != nil {
		return err
	}
	if len(targets) > 0 && h.prober == nil && next.ProbeEnabled() {
		return fmt.Errorf("RTSP probing was off at start (no camera had an rtsp_url, or probe.enabled was false): restart to turn it on")
	}
	if h.auth != nil {
		// Device credentials, anonymous access and broker limits.
		if err := h.auth.Reconfigure(h.authConfig(next)); err != nil {
			return fmt.Errorf("broker: %w", err)
		}
	}
	sites, cams, boards := stateDevices(next)
	if err := h.state.SetDevices(ctx, sites, cams, boards); err != nil {
		return fmt.Errorf("applying devices: %w", err)
	}
	if h.prober != nil {
		if !next.ProbeEnabled() {
			targets = nil
		}
		h.prober.SetTargets(targets)
	}
	h.boards.Store(newBoardLookup(next))
	h.cfg.Store(next)
	h.log.Info("configuration reloaded", "sites", len(next.Sites), "cameras", len(next.Cameras), "qr_boards", len(next.Boards))
	return nil
}

func (h *Hub) currentConfig() *config.Config { return h.cfg.Load() }

// restartKeys lists the settings that differ and need a restart.
func restartKeys(a, b *config.Config) []string {
	var keys []string
	for _, c := range []struct {
		key  string
		x, y any
	}{
		{"hub_id", a.HubID, b.HubID}, {"data_dir", a.DataDir, b.DataDir}, {"timezone", a.Timezone, b.Timezone},
		{"topic_prefix", a.TopicPrefix, b.TopicPrefix}, {"http.addr", a.HTTP.Addr, b.HTTP.Addr}, {"http.public_url", a.HTTP.PublicURL, b.HTTP.PublicURL},
		{"http.tls", a.HTTP.TLS, b.HTTP.TLS}, {"http.auth", a.HTTP.Auth, b.HTTP.Auth},
		{"broker.addr", a.Broker.Addr, b.Broker.Addr}, {"broker.tls_addr", a.Broker.TLSAddr, b.Broker.TLSAddr},
		{"broker.wss_addr", a.Broker.WSSAddr, b.Broker.WSSAddr}, {"broker.tls", a.Broker.TLS, b.Broker.TLS},
		{"mqtt", a.MQTT, b.MQTT}, {"influx", a.Influx, b.Influx}, {"store", a.Store, b.Store},
		{"limits", a.Limits, b.Limits}, {"log", a.Log, b.Log}, {"qr", a.QR, b.QR},
		{"probe.workers", a.Probe.Workers, b.Probe.Workers}, {"probe.concurrency", a.Probe.Concurrency, b.Probe.Concurrency},
		{"probe.recycle_after", a.Probe.RecycleAfter, b.Probe.RecycleAfter},
		{"debug", a.Debug, b.Debug},
	} {
		if !reflect.DeepEqual(c.x, c.y) {
			keys = append(keys, c.key)
		}
	}
	return keys
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

// probeTargets is every camera with an RTSP URL, credentials resolved.
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
			ExpectedFPS: c.ExpectedFPS, Settings: probeSettings(c.Probe),
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
