package app_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"villagehub/devices/onvifcam"
	"villagehub/hub/alert"
	"villagehub/hub/app"
	"villagehub/hub/app/apptest"
	"villagehub/hub/config"
	"villagehub/hub/gateway"
	"villagehub/hub/state"
	"villagehub/hub/testenv"
)

// reloadCase changes one section of a running hub's configuration and
// says what must follow: restart names the key that must be refused (and
// shown at /api/v1/status); otherwise check proves the change is live.
type reloadCase struct {
	section string
	name    string
	change  func(c *config.Config)
	restart string
	check   func(t *testing.T, h *apptest.Hub)
}

// TestReloadEverySection changes each config section of a running hub,
// reloads through POST /api/v1/reload (the path SIGHUP takes too), and
// checks the change took effect, or was refused naming its key in the
// answer, the log and /api/v1/status with nothing of that file applied.
// Every key of config.Config must have a case here.
func TestReloadEverySection(t *testing.T) {
	httpAddr, brokerAddr, dataDir := testenv.FreeAddr(t), testenv.FreeAddr(t), t.TempDir()
	base := func(change func(*config.Config)) *config.Config {
		t.Helper()
		c, err := config.Parse("reload.yaml", []byte(fmt.Sprintf(`data_dir: %s
http: { addr: %s, public_url: "http://%s" }
broker: { addr: %s, allow_anonymous: true, publish_rate: 1000000, publish_burst: 1000000 }
probe: { enabled: false }
sites: [{ id: s1, name: "Thôn 1" }]
qr_boards: [{ id: b1, site: s1, name: "Bảng", target_url: "http://example.invalid/old" }]
`, dataDir, httpAddr, httpAddr, brokerAddr)))
		if err != nil {
			t.Fatal(err)
		}
		if change != nil {
			change(c)
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	onvifCam, err := onvifcam.New(onvifcam.Config{Addr: "127.0.0.1:0", Username: "admin", Password: "mk"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(onvifCam.Close)
	log := testenv.NewLog(t)
	h := apptest.Start(t, base(nil), log.Logger)
	var next *config.Config
	h.SetReloader(func() (*config.Config, error) { return next, nil })

	target := func() string {
		t.Helper()
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		req, _ := http.NewRequest("GET", h.URL+"/q/b1", nil)
		req.Header.Set("User-Agent", phoneA)
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Location")
	}
	anonymousConnects := func() bool {
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + h.BrokerAddr()).SetClientID("anon-reload").
			SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).SetConnectRetry(false))
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			t.Fatal("MQTT connect did not finish")
		}
		if tok.Error() != nil {
			return false
		}
		c.Disconnect(100)
		return true
	}
	newTarget := func(c *config.Config) { c.Boards[0].TargetURL = "http://example.invalid/new" }

	restart := func(section, key string, change func(*config.Config)) reloadCase {
		return reloadCase{section: section, name: key, change: change, restart: key}
	}
	cases := []reloadCase{
		restart("hub_id", "hub_id", func(c *config.Config) { c.HubID = "another-hub" }),
		restart("data_dir", "data_dir", func(c *config.Config) { c.DataDir = filepath.Join(dataDir, "other") }),
		restart("timezone", "timezone", func(c *config.Config) { c.Timezone = "Asia/Bangkok" }),
		restart("topic_prefix", "topic_prefix", func(c *config.Config) { c.TopicPrefix = "lang" }),
		restart("shutdown_timeout", "shutdown_timeout", func(c *config.Config) { c.ShutdownTimeout = config.Duration(20 * time.Second) }),
		restart("http", "http.addr", func(c *config.Config) { c.HTTP.Addr = testenv.FreeAddr(t) }),
		{section: "http", name: "public_url", change: func(c *config.Config) { c.HTTP.PublicURL = "http://hub.example.vn" },
			check: func(t *testing.T, h *apptest.Hub) {
				// What prints and links follows (TestReloadPublicURLLive).
				var info struct {
					PublicURL string `json:"public_url"`
				}
				getJSON(t, h.URL+"/api/v1/admin/info", &info)
				if info.PublicURL != "http://hub.example.vn" {
					t.Fatalf("admin info public_url %q after reload", info.PublicURL)
				}
			}},
		restart("broker", "broker.max_packet_size", func(c *config.Config) { c.Broker.MaxPacketSize = 2048 }),
		restart("broker", "broker.max_inflight", func(c *config.Config) { c.Broker.MaxInflight = 10 }),
		restart("mqtt", "mqtt.keepalive", func(c *config.Config) { c.MQTT.KeepAlive = config.Duration(time.Minute) }),
		restart("influx", "influx.batch_size", func(c *config.Config) { c.Influx.BatchSize = 100 }),
		restart("store", "store.event_retention", func(c *config.Config) { c.Store.EventRetention = config.Duration(time.Hour) }),
		restart("limits", "limits.queue_size", func(c *config.Config) { c.Limits.QueueSize = 100 }),
		restart("log", "log.level", func(c *config.Config) { c.Log.Level = "debug" }),
		restart("qr", "qr.rate_burst", func(c *config.Config) { c.QR.RateBurst = 5 }),
		restart("debug", "debug.pprof", func(c *config.Config) { c.Debug.Pprof = true }),
		restart("gateway", "gateway.public_url", func(c *config.Config) {
			c.Gateway = gateway.LinkConfig{PublicURL: "https://qr.example.org", Broker: gateway.LinkBroker{URL: "tcp://127.0.0.1:1"}, Place: gateway.Place{Village: "v1"}}
		}),
		restart("probe", "probe.workers", func(c *config.Config) { c.Probe.Workers = 3 }),
		restart("frigate", "frigate", func(c *config.Config) {
			c.Frigate = []config.Frigate{{Name: "nvr", TopicPrefix: "frigate", Site: "s1"}}
		}),
		restart("place", "place.village", func(c *config.Config) { c.Place.Village = "ban-moi" }),
		restart("uplink", "uplink.interval", func(c *config.Config) { c.Uplink.Interval = config.Duration(time.Minute) }),
		restart("probe", "probe.enabled", func(c *config.Config) {
			on := true
			c.Probe.Enabled = &on
			c.Cameras = append(c.Cameras, config.Camera{ID: "cam", Site: "s1", RTSPURL: "rtsp://127.0.0.1:1/x"})
		}),
		{section: "qr_boards", name: "target_url", change: newTarget, check: func(t *testing.T, h *apptest.Hub) {
			if got := target(); got != "http://example.invalid/new" {
				t.Fatalf("/q/b1 -> %q after reload", got)
			}
		}},
		{section: "sites", name: "new site", change: func(c *config.Config) {
			c.Sites = append(c.Sites, config.Site{ID: "s2", Name: "Thôn 2"})
		}, check: func(t *testing.T, h *apptest.Hub) {
			if !slices.ContainsFunc(h.State().Sites(), func(s state.Site) bool { return s.ID == "s2" && s.Name == "Thôn 2" }) {
				t.Fatalf("sites after reload: %+v", h.State().Sites())
			}
		}},
		{section: "cameras", name: "new camera", change: func(c *config.Config) {
			c.Cameras = append(c.Cameras, config.Camera{ID: "gate", Site: "s1", Name: "Cổng"})
		}, check: func(t *testing.T, h *apptest.Hub) {
			var cs struct{ Cameras []state.CameraView }
			getJSON(t, h.URL+"/api/v1/cameras", &cs)
			if len(cs.Cameras) != 1 || cs.Cameras[0].ID != "gate" || !cs.Cameras[0].Configured {
				t.Fatalf("cameras after reload: %+v", cs.Cameras)
			}
		}},
		// After "new camera": a camera removed by a reload stays listed
		// as self-registered.
		{section: "cameras", name: "onvif", change: func(c *config.Config) {
			c.Cameras = append(c.Cameras, config.Camera{ID: "cam", Site: "s1", ONVIF: &config.CameraONVIF{URL: onvifCam.XAddr(), Username: "admin", Password: "mk"}})
		}, check: func(t *testing.T, h *apptest.Hub) {
			// Its events are subscribed to at once (TestReloadONVIFCameraLive
			// follows motion, a change and the removal).
			testenv.WaitFor(t, 20*time.Second, "the ONVIF camera subscribed", func() bool { return onvifCam.Stats().LiveSubscriptions == 1 })
		}},
		{section: "probe", name: "probe.interval", change: func(c *config.Config) {
			c.Probe.Interval = config.Duration(time.Minute)
		}, check: func(t *testing.T, h *apptest.Hub) {}}, // accepted: applies to cameras' probes through SetTargets
		{section: "alerts", name: "silence", change: func(c *config.Config) {
			c.Alerts.Silences = append(c.Alerts.Silences, alert.Silence{Matcher: alert.Matcher{Site: "s1"},
				Start: time.Now().Add(-time.Hour), End: time.Now().Add(time.Hour), Comment: "sửa điện"})
		}, check: func(t *testing.T, h *apptest.Hub) {
			var ss struct{ Silences []alert.SilenceView }
			getJSON(t, h.URL+"/api/v1/silences", &ss)
			if !slices.ContainsFunc(ss.Silences, func(s alert.SilenceView) bool { return s.Comment == "sửa điện" && s.Source == "config" }) {
				t.Fatalf("silences after reload: %+v", ss.Silences)
			}
		}},
		{section: "broker", name: "allow_anonymous", change: func(c *config.Config) {
			c.Broker.AllowAnonymous = false
		}, check: func(t *testing.T, h *apptest.Hub) {
			if anonymousConnects() {
				t.Fatal("an anonymous client connected after allow_anonymous: false was reloaded")
			}
		}},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.section] = true
	}
	for _, k := range app.ConfigKeys() {
		if !covered[k] {
			t.Errorf("config section %q has no reload case here", k)
		}
	}
	if !anonymousConnects() {
		t.Fatal("an anonymous client cannot connect at start")
	}

	for _, c := range cases {
		t.Run(c.section+"/"+c.name, func(t *testing.T) {
			if c.restart != "" {
				// A live change in the same file must not be applied.
				next = base(func(cfg *config.Config) { newTarget(cfg); c.change(cfg) })
			} else {
				next = base(c.change)
			}
			before := len(log.String())
			code, body := postReload(t, h.URL)
			st := status(t, h.URL)
			logged := log.String()[before:]
			if c.restart != "" {
				if code != http.StatusUnprocessableEntity || !strings.Contains(body, c.restart) {
					t.Fatalf("reload answered %d %s, want 422 naming %s", code, body, c.restart)
				}
				if st.Reload.Result != "restart_needed" || !slices.Contains(st.Reload.RestartNeeded, c.restart) {
					t.Fatalf("/api/v1/status reload %+v, want restart_needed %s", st.Reload, c.restart)
				}
				if !strings.Contains(logged, "configuration not reloaded") || !strings.Contains(logged, "restart_needed="+c.restart) {
					t.Fatalf("log does not name %s:\n%s", c.restart, logged)
				}
				if got := target(); got != "http://example.invalid/old" {
					t.Fatalf("a refused reload applied a board change: /q/b1 -> %q", got)
				}
				return
			}
			if code != http.StatusOK {
				t.Fatalf("reload answered %d %s", code, body)
			}
			if st.Reload.Result != "ok" || len(st.Reload.RestartNeeded) != 0 || time.Since(st.Reload.Last) > time.Minute {
				t.Fatalf("/api/v1/status reload %+v, want ok just now", st.Reload)
			}
			if !strings.Contains(logged, "configuration reloaded") {
				t.Fatalf("log:\n%s", logged)
			}
			c.check(t, h)
			// Back to the start for the next case.
			next = base(nil)
			if code, body := postReload(t, h.URL); code != http.StatusOK {
				t.Fatalf("reloading the original config: %d %s", code, body)
			}
		})
	}
	if !anonymousConnects() {
		t.Fatal("allow_anonymous: true reloaded back, but an anonymous client cannot connect")
	}
}

// TestReloadCertificateByAPI: POST /api/v1/reload serves a renewed HTTPS
// certificate (it once did only on SIGHUP), and /api/v1/status shows the
// certificate being served.
func TestReloadCertificateByAPI(t *testing.T) {
	dir := t.TempDir()
	ca := testenv.NewTestCA(t, dir)
	certFile, keyFile := filepath.Join(dir, "hub.crt"), filepath.Join(dir, "hub.key")
	ca.Issue(t, certFile, keyFile, "hub.lan", "127.0.0.1")
	cfg := &config.Config{}
	apptest.Prepare(t, cfg)
	cfg.HTTP.TLS.CertFile, cfg.HTTP.TLS.KeyFile = certFile, keyFile
	h := apptest.Start(t, cfg, nil)
	h.SetReloader(func() (*config.Config, error) { return cfg, nil })
	addr := strings.TrimPrefix(h.URL, "https://")

	serial2 := ca.Issue(t, certFile, keyFile, "hub.lan", "127.0.0.1")
	if got := ca.PeerSerial(t, addr, "hub.lan"); got.Cmp(serial2) == 0 {
		t.Fatal("the new certificate is served before any reload")
	}
	if code, body := postReload(t, h.URL); code != http.StatusOK {
		t.Fatalf("reload: %d %s", code, body)
	}
	if got := ca.PeerSerial(t, addr, "hub.lan"); got.Cmp(serial2) != 0 {
		t.Fatalf("after POST /api/v1/reload serial %x, want the renewed %x", got, serial2)
	}
	st := status(t, h.URL)
	if len(st.Certificates) != 1 || st.Certificates[0].Listener != "http" || st.Certificates[0].Serial != serial2.Text(16) {
		t.Fatalf("/api/v1/status certificates %+v, want http serial %x", st.Certificates, serial2)
	}
}

var insecureClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback test hub

func postReload(t *testing.T, base string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/api/v1/reload", bytes.NewReader(nil))
	// Loopback admin is ambient authority: it needs the double-submit
	// CSRF token, as the dashboard sends it.
	req.AddCookie(&http.Cookie{Name: "vh_csrf", Value: "reload-test-csrf-token"})
	req.Header.Set("X-CSRF-Token", "reload-test-csrf-token")
	resp, err := insecureClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func status(t *testing.T, base string) app.Status {
	t.Helper()
	resp, err := insecureClient.Get(base + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st app.Status
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("/api/v1/status: %s %s", resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}
