package app_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"villagehub/hub/auth"
	"villagehub/hub/config"
	"villagehub/hub/state"
	"villagehub/hub/testenv"
	"villagehub/hub/web"
)

// addDevice runs `villagehub device add` against cfg's credentials file
// and returns the username and password.
func addDevice(t *testing.T, c *config.Config, args ...string) (string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := auth.DeviceCommand(append([]string{"add"}, args...), &out, &errb, c.Broker.CredentialsPath(c.DataDir)); code != 0 {
		t.Fatalf("device add %v: %s", args, errb.String())
	}
	u := regexp.MustCompile(`username: (\S+)`).FindStringSubmatch(out.String())
	p := regexp.MustCompile(`password: (\S+)`).FindStringSubmatch(out.String())
	if u == nil || p == nil {
		t.Fatalf("device add printed %q", out.String())
	}
	return u[1], p[1]
}

type creds struct{ user, pw string }

func sha256b64(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// securedHub is the in-process hub with anonymous MQTT off and three
// accounts: the gate camera, the market-07 QR board, a viewer.
func securedHub(t *testing.T, edit func(*config.Config)) (*testHub, string, map[string]creds) {
	t.Helper()
	cs := map[string]creds{}
	var broker string
	h := startHub(t, func(c *config.Config) {
		c.Broker.AllowAnonymous = false
		u, p := addDevice(t, c, "camera", "tan-ngu-2", "gate")
		cs["gate"] = creds{u, p}
		u, p = addDevice(t, c, "qr", "tan-ngu-2", "market-07")
		cs["market"] = creds{u, p}
		u, p = addDevice(t, c, "viewer", "ha")
		cs["viewer"] = creds{u, p}
		broker = "tcp://" + c.Broker.Addr
		if edit != nil {
			edit(c)
		}
	})
	return h, broker, cs
}

func mqttConnect(url, id string, c creds, opts ...func(*paho.ClientOptions)) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(c.user).SetPassword(c.pw).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).SetProtocolVersion(4)
	for _, f := range opts {
		f(o)
	}
	cl := paho.NewClient(o)
	tok := cl.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, errors.New("no CONNACK in 10 s")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	return cl, nil
}

func refused(m testenv.Metrics, reason string) float64 {
	v, _ := m.Value("villagehub_broker_connections_refused_total", "reason="+reason)
	return v
}

// TestAttackClientIDTakeover (issue 12, High 2): another account
// connecting with the gate camera's client ID used to kick the camera off,
// and the broker then published the camera's retained "offline" will.
// Now the attempt is refused and counted, the camera stays connected, and
// no offline event is recorded.
func TestAttackClientIDTakeover(t *testing.T) {
	h, broker, cs := securedHub(t, nil)
	gate, err := mqttConnect(broker, "gate", cs["gate"], func(o *paho.ClientOptions) {
		o.SetWill("village/tan-ngu-2/camera/gate/status", "offline", 1, true)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Disconnect(50)
	testenv.Publish(t, gate, "village/tan-ngu-2/camera/gate/status", 1, true, "online")
	testenv.WaitFor(t, 5*time.Second, "the camera online", func() bool {
		v, _ := testenv.Scrape(t, h.URL).Value("villagehub_device_online", "device=gate")
		return v == 1
	})
	// 20 attempts: the QR board's account (a device using another's client
	// ID) and the viewer's (any account, the ID in use).
	for i := range 10 {
		if c, err := mqttConnect(broker, "gate", cs["market"]); err == nil {
			c.Disconnect(0)
			t.Fatalf("attempt %d: the QR board's account took the camera's client ID", i)
		}
		if c, err := mqttConnect(broker, "gate", cs["viewer"]); err == nil {
			c.Disconnect(0)
			t.Fatalf("attempt %d: the viewer's account took the camera's client ID", i)
		}
	}
	// A device whose ID is a prefix of another's cannot hold the other's
	// client ID ("gate" taking "gate-2" would lock the real gate-2 out).
	if c, err := mqttConnect(broker, "gate-2", cs["gate"]); err == nil {
		c.Disconnect(0)
		t.Fatal("the camera took the client ID of a device gate-2")
	}
	if !gate.IsConnectionOpen() {
		t.Fatal("the camera was disconnected")
	}
	testenv.Publish(t, gate, "village/tan-ngu-2/camera/gate/motion", 1, false, "ON")
	m := testenv.Scrape(t, h.URL)
	if v, _ := m.Value("villagehub_device_online", "device=gate"); v != 1 {
		t.Errorf("the camera shows offline (%v): a false will was sent", v)
	}
	if refused(m, "client_id") != 11 || refused(m, "client_id_in_use") != 10 {
		t.Errorf("refusals: client_id %v, client_id_in_use %v; want 11 and 10", refused(m, "client_id"), refused(m, "client_id_in_use"))
	}
	var evs struct {
		Events []state.EventRecord `json:"events"`
	}
	getJSON(t, h.URL+"/api/v1/events?device=gate&type=offline", &evs)
	if len(evs.Events) != 0 {
		t.Errorf("offline events recorded: %+v", evs.Events)
	}
	// The camera's own account may use its own ID and longer ones.
	c2, err := mqttConnect(broker, "gate:backup", cs["gate"])
	if err != nil {
		t.Fatalf("the camera with its own prefixed client ID: %v", err)
	}
	c2.Disconnect(50)
}

// TestAttackPerAccountCap (issue 12, Medium 4): 1,000 CONNECTs with one
// camera's credentials used to take every slot. Now an account holds at
// most max_connections_per_user (here 5) and other devices still connect.
func TestAttackPerAccountCap(t *testing.T) {
	h, broker, cs := securedHub(t, func(c *config.Config) { c.Broker.MaxConnectionsPerUser = 5 })
	var held []paho.Client
	defer func() {
		for _, c := range held {
			c.Disconnect(0)
		}
	}()
	var refusedN int
	for i := range 40 {
		c, err := mqttConnect(broker, fmt.Sprintf("gate:%d", i), cs["gate"])
		if err != nil {
			refusedN++
			continue
		}
		held = append(held, c)
	}
	if len(held) != 5 || refusedN != 35 {
		t.Fatalf("one account holds %d connections (%d refused), want 5", len(held), refusedN)
	}
	board, err := mqttConnect(broker, "market-07", cs["market"])
	if err != nil {
		t.Fatalf("another device was refused: %v", err)
	}
	board.Disconnect(50)
	if v := refused(testenv.Scrape(t, h.URL), "max_connections_per_user"); v != 35 {
		t.Errorf("refused for max_connections_per_user: %v, want 35", v)
	}
	// A slot comes back when a connection ends.
	held[0].Disconnect(100)
	testenv.WaitFor(t, 5*time.Second, "a freed slot to be usable", func() bool {
		c, err := mqttConnect(broker, "gate:again", cs["gate"])
		if err == nil {
			held[0] = c
		}
		return err == nil
	})
}

// TestAttackMQTTPasswordGuessing (issue 12, Medium 3, MQTT side): wrong
// passwords for one account cost a bcrypt run each until the account's and
// the address's failed logins run out (10, then one per 6 s); then they
// are refused at once. The camera, whose password the hub has verified
// before, still connects.
func TestAttackMQTTPasswordGuessing(t *testing.T) {
	h, broker, cs := securedHub(t, nil)
	c, err := mqttConnect(broker, "gate", cs["gate"])
	if err != nil {
		t.Fatal(err)
	}
	c.Disconnect(50)
	wrong := creds{cs["gate"].user, "guess"}
	start := time.Now()
	for i := range 30 {
		if c, err := mqttConnect(broker, fmt.Sprintf("gate:guess-%d", i), wrong); err == nil {
			c.Disconnect(0)
			t.Fatal("a wrong password was accepted")
		}
	}
	took := time.Since(start)
	m := testenv.Scrape(t, h.URL)
	if bad, lim := refused(m, "bad_credentials"), refused(m, "auth_rate_limited"); bad > 12 || lim < 18 {
		t.Errorf("30 guesses: %v checked, %v refused by the limit; want at most 12 and at least 18", bad, lim)
	}
	t.Logf("30 wrong passwords answered in %v", took)
	c, err = mqttConnect(broker, "gate", cs["gate"])
	if err != nil {
		t.Fatalf("the camera was locked out by someone guessing its password: %v", err)
	}
	c.Disconnect(50)
}

// TestAttackRetainedAndACL (issue 12, Medium 6): a device may publish
// only its kind's topics (camera: motion, status), and only status is
// retained, small: a retained 60 KB message on a made-up leaf used to stay
// in the broker for ever.
func TestAttackRetainedAndACL(t *testing.T) {
	h, broker, cs := securedHub(t, func(c *config.Config) { c.Broker.PublishRate = 1000 })
	gate, err := mqttConnect(broker, "gate", cs["gate"])
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Disconnect(50)
	big := strings.Repeat("x", 60<<10)
	// QoS 0: a denied QoS 1 publish ends an MQTT 3.1.1 connection.
	for i := range 20 {
		gate.Publish(fmt.Sprintf("village/tan-ngu-2/camera/gate/junk%d", i), 0, true, big).WaitTimeout(2 * time.Second)
	}
	testenv.Publish(t, gate, "village/tan-ngu-2/camera/gate/motion", 1, true, "ON")                     // retain dropped: topic
	testenv.Publish(t, gate, "village/tan-ngu-2/camera/gate/status", 1, true, strings.Repeat("o", 100)) // retain dropped: size
	testenv.Publish(t, gate, "village/tan-ngu-2/camera/gate/status", 1, true, "online")                 // kept
	// A new subscriber receives exactly one retained message: the status.
	got := make(chan string, 64)
	v, err := mqttConnect(broker, "ha", cs["viewer"])
	if err != nil {
		t.Fatal(err)
	}
	defer v.Disconnect(50)
	v.Subscribe("village/tan-ngu-2/camera/gate/#", 1, func(_ paho.Client, m paho.Message) {
		if m.Retained() {
			got <- m.Topic() + "=" + string(m.Payload())
		}
	}).WaitTimeout(5 * time.Second)
	testenv.WaitFor(t, 5*time.Second, "the retained status", func() bool { return len(got) >= 1 })
	// Give any other retained message the same chance to arrive: a probe
	// published after the subscription comes after them in order.
	probe := make(chan struct{})
	v.Subscribe("village/tan-ngu-2/camera/gate/status", 1, func(_ paho.Client, m paho.Message) {
		if !m.Retained() {
			close(probe)
		}
	}).WaitTimeout(5 * time.Second)
	testenv.Publish(t, gate, "village/tan-ngu-2/camera/gate/status", 1, false, "online")
	select {
	case <-probe:
	case <-time.After(5 * time.Second):
		t.Fatal("no probe")
	}
	close(got)
	var all []string
	for s := range got {
		all = append(all, s)
	}
	if len(all) < 1 || all[0] != "village/tan-ngu-2/camera/gate/status=online" {
		t.Errorf("retained messages delivered: %q", all)
	}
	for _, s := range all {
		if s != "village/tan-ngu-2/camera/gate/status=online" {
			t.Errorf("retained message kept: %.80s", s)
		}
	}
	m := testenv.Scrape(t, h.URL)
	if v, _ := m.Value("villagehub_broker_acl_denied_total", "action=publish"); v < 20 {
		t.Errorf("made-up leaves not denied: %v", v)
	}
	for _, r := range []string{"topic", "size"} {
		if v, _ := m.Value("villagehub_broker_retain_refused_total", "reason="+r); v < 1 {
			t.Errorf("retain refused for %s: %v", r, v)
		}
	}
}

// TestAttackQRTotals (issue 12, Medium 5): a total of MaxInt64 under new
// boots used to wrap scans_total (and send the Prometheus counter
// backwards), and a report stamped 2020 added scans to January 2020. Now
// the first is rejected as implausible and the second as stale_ts; the
// counter only grows.
func TestAttackQRTotals(t *testing.T) {
	h := startHub(t, nil)
	c := testenv.MQTT(t, "tcp://"+h.BrokerAddr(), "attacker")
	topic := "village/tan-ngu-2/qr/market-07/scans"
	scans := func() float64 {
		v, _ := testenv.Scrape(t, h.URL).Value("villagehub_qr_scans_total", "board=market-07")
		return v
	}
	testenv.Publish(t, c, topic, 1, false, `{"total":5,"boot":"real"}`)
	testenv.WaitFor(t, 5*time.Second, "5 scans", func() bool { return scans() == 5 })
	last := 5.0
	for i, p := range []string{
		fmt.Sprintf(`{"total":%d,"boot":"evil1"}`, int64(math.MaxInt64)),
		`{"total":8,"boot":"evil2"}`, // plausible: counts 8
		fmt.Sprintf(`{"total":%d,"boot":"evil3"}`, int64(math.MaxInt64)),
		fmt.Sprintf(`{"total":%d,"boot":"real"}`, int64(math.MaxInt64)), // a jump within a boot
		`{"total":10001,"boot":"evil4"}`,                                // over max_qr_per_report
		`{"total":7,"boot":"real","ts":"2020-01-15T08:00:00Z"}`,         // stale
		`{"total":9,"boot":"real"}`,                                     // counts 4: the jump above changed nothing
	} {
		testenv.Publish(t, c, topic, 1, false, p)
		v := scans()
		if v < last {
			t.Fatalf("report %d: villagehub_qr_scans_total went backwards: %v -> %v", i, last, v)
		}
		last = v
	}
	testenv.WaitFor(t, 5*time.Second, "17 scans", func() bool { return scans() == 17 })
	m := testenv.Scrape(t, h.URL)
	if v, _ := m.Value("villagehub_mqtt_rejected_total", "reason=implausible"); v != 4 {
		t.Errorf("implausible: %v, want 4", v)
	}
	if v, _ := m.Value("villagehub_mqtt_rejected_total", "reason=stale_ts"); v != 1 {
		t.Errorf("stale_ts: %v, want 1", v)
	}
	var series struct {
		Points []struct {
			Time time.Time
			MQTT uint64 `json:"mqtt"`
		} `json:"points"`
	}
	getJSON(t, h.URL+"/api/v1/qr-boards/market-07/scans?step=month&from=2020-01-01&to=2020-02-01", &series)
	for _, p := range series.Points {
		if p.MQTT != 0 {
			t.Errorf("scans written into January 2020: %+v", p)
		}
	}
}

// TestAttackHTTPPasswordGuessing (issue 12, Medium 3): HTTP Basic auth
// used to bypass the login rate limit (400 guesses, each a bcrypt run that
// slowed other requests to 0.4-1 s). Now every path (Basic, bearer, the
// login form) shares the failed-login limit per account and address, and
// bcrypt runs on at most half the CPUs; other requests stay fast.
func TestAttackHTTPPasswordGuessing(t *testing.T) {
	h := startHub(t, func(c *config.Config) {
		c.HTTP.Auth.Anonymous = "none"
		c.HTTP.Auth.Users = []config.HTTPUser{{Name: "truong-thon", PasswordHash: hash(t, "admin-secret"), Role: "admin"}}
	})
	var wg sync.WaitGroup
	codes := make(chan int, 400)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				req, _ := http.NewRequest("GET", h.URL+"/api/v1/cameras", nil)
				if i%2 == 0 {
					req.SetBasicAuth("truong-thon", fmt.Sprintf("guess-%d-%d", g, i))
				} else {
					req.Header.Set("Authorization", "Bearer not-a-token")
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					continue
				}
				resp.Body.Close()
				codes <- resp.StatusCode
			}
		}()
	}
	// Meanwhile, a public page keeps answering quickly.
	var lat []time.Duration
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		t0 := time.Now()
		resp, err := http.Get(h.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		lat = append(lat, time.Since(t0))
	}
	close(codes)
	n := map[int]int{}
	for c := range codes {
		n[c]++
	}
	if n[200] != 0 || n[429] < 150 {
		t.Errorf("200 guesses: %v; want none accepted and most refused with 429", n)
	}
	t.Logf("guesses by answer %v; /healthz p99 %v over %d requests meanwhile", n, p99(lat), len(lat))
	if p := p99(lat); p > 500*time.Millisecond {
		t.Errorf("/healthz p99 %v while passwords were guessed", p)
	}
	// The account's and this address's allowance is spent: the right
	// password gets 429 too until it refills (one failure per 10 s); then
	// it works.
	req, _ := http.NewRequest("GET", h.URL+"/api/v1/cameras", nil)
	req.SetBasicAuth("truong-thon", "admin-secret")
	testenv.WaitFor(t, 20*time.Second, "the admin's Basic auth to work again", func() bool {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// TestAttackHTTPHardening covers the Low items on the HTTP side: pprof
// off by default and admin-only when on; created_by of a silence from
// the authenticated user; a 100-year silence refused; POST /logout needs
// the CSRF token; HSTS over HTTPS; the 404 page's inline style allowed by
// its CSP; TLS 1.2 without CBC-SHA1 suites; https:// in HTTPURL.
func TestAttackHTTPHardening(t *testing.T) {
	apiToken, apiSHA := web.NewToken()
	viewTok, viewSHA := web.NewToken()
	dir := t.TempDir()
	ca := testenv.NewTestCA(t, dir)
	cert, key := dir+"/hub.crt", dir+"/hub.key"
	ca.Issue(t, cert, key, "127.0.0.1")
	h := startHub(t, func(c *config.Config) {
		c.HTTP.Auth.Tokens = []config.HTTPToken{{Name: "script", TokenSHA256: apiSHA, Role: "admin"}, {Name: "grafana", TokenSHA256: viewSHA, Role: "viewer"}}
		c.HTTP.TLS.CertFile, c.HTTP.TLS.KeyFile = cert, key
		c.Debug.Pprof = true
	})
	if !strings.HasPrefix(h.HTTPURL(), "https://") {
		t.Errorf("HTTPURL %q for an HTTPS listener", h.HTTPURL())
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: ca.ClientConfig("127.0.0.1")}, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path, tok, body string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, h.URL+path, strings.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp, b.String()
	}
	// Anonymous visitors are viewers here (the default when unset).
	for tok, want := range map[string]int{"": 403, viewTok: 403, apiToken: 200} {
		if r, _ := do("GET", "/debug/pprof/cmdline", tok, ""); r.StatusCode != want {
			t.Errorf("pprof with token %q: %d, want %d", tok[:min(4, len(tok))], r.StatusCode, want)
		}
	}
	r, _ := do("GET", "/healthz", "", "")
	if r.Header.Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS over HTTPS")
	}
	// Silences: created_by is the token's name; 100 years refused.
	r, body := do("POST", "/api/v1/silences", apiToken, `{"device":"gate","duration":"1h","created_by":"someone-else"}`)
	if r.StatusCode != 201 || !strings.Contains(body, `"created_by":"token:script"`) {
		t.Errorf("silence: %d %s", r.StatusCode, body)
	}
	if r, body := do("POST", "/api/v1/silences", apiToken, `{"device":"gate","duration":"876000h"}`); r.StatusCode != 400 {
		t.Errorf("a 100-year silence: %d %s", r.StatusCode, body)
	}
	// POST /logout from another site (no CSRF token, the browser says
	// cross-site) is refused; the dashboard's own form (same-origin) is
	// not.
	for site, want := range map[string]int{"": 403, "cross-site": 403, "same-site": 403, "same-origin": 303} {
		req, _ := http.NewRequest("POST", h.URL+"/logout", nil)
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST /logout with Sec-Fetch-Site %q: %d, want %d", site, resp.StatusCode, want)
		}
	}
	req, _ := http.NewRequest("POST", h.URL+"/logout", nil)
	req.Header.Set("Origin", "https://evil.example")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("POST /logout from another Origin: %d", resp.StatusCode)
	}
	// The 404 page of an unknown printed code: its CSP allows its style.
	r, body = do("GET", "/q/no-such-board", "", "")
	style := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(body)
	if r.StatusCode != 404 || style == nil {
		t.Fatalf("404 page: %d", r.StatusCode)
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "'sha256-"+sha256b64(style[1])+"'") {
		t.Errorf("the 404 page's style is not allowed by its CSP %q", csp)
	}
	// TLS 1.2 with only CBC-SHA1 suites offered: no handshake.
	c, err := tls.Dial("tcp", h.HTTPAddr(), &tls.Config{RootCAs: ca.ClientConfig("127.0.0.1").RootCAs, ServerName: "127.0.0.1",
		MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}})
	if err == nil {
		c.Close()
		t.Error("a TLS 1.2 handshake with a CBC-SHA1 suite succeeded")
	}
	c, err = tls.Dial("tcp", h.HTTPAddr(), &tls.Config{RootCAs: ca.ClientConfig("127.0.0.1").RootCAs, ServerName: "127.0.0.1", MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Errorf("TLS 1.2 with AEAD suites: %v", err)
	} else {
		c.Close()
	}
}

// TestFirstRunUser: a fresh hub with anonymous "none" is administered
// only from loopback until `villagehub user add` makes an administrator;
// then loopback is an anonymous visitor like any other, and the user logs
// in. pprof is off by default (404).
func TestFirstRunUser(t *testing.T) {
	var usersFile string
	h := startHub(t, func(c *config.Config) {
		c.HTTP.Auth.Anonymous = "none"
		usersFile = c.UsersPath()
	})
	get := func(path string, user, pw string) int {
		req, _ := http.NewRequest("GET", h.URL+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pw)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("/api/v1/cameras", "", ""); c != 200 {
		t.Fatalf("loopback before the first user: %d", c)
	}
	if c := get("/debug/pprof/cmdline", "", ""); c != 404 {
		t.Errorf("pprof without debug.pprof: %d, want 404", c)
	}
	var out, errb bytes.Buffer
	if code := web.UserCommand([]string{"add", "truong-thon"}, strings.NewReader("first-admin-pw\n"), &out, &errb, usersFile); code != 0 {
		t.Fatalf("user add: %s", errb.String())
	}
	testenv.WaitFor(t, 5*time.Second, "the new user to be in force", func() bool {
		return get("/api/v1/cameras", "", "") == 401
	})
	if c := get("/api/v1/cameras", "truong-thon", "first-admin-pw"); c != 200 {
		t.Errorf("the new admin: %d", c)
	}
	if h.Hub.NeedsFirstUser() {
		t.Error("NeedsFirstUser after user add")
	}
	if err := h.Hub.CreateFirstAdmin("other", "another-password"); err == nil {
		t.Error("a second 'first' admin was made")
	}
	// The login form works for the new user.
	jar, _ := cookiejar.New(nil)
	bc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := bc.Get(h.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	u, _ := url.Parse(h.URL)
	var csrf string
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "vh_csrf" {
			csrf = ck.Value
		}
	}
	resp, err = bc.PostForm(h.URL+"/login", url.Values{"csrf": {csrf}, "username": {"truong-thon"}, "password": {"first-admin-pw"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 303 {
		t.Errorf("login: %s", resp.Status)
	}
	var cams map[string]any
	resp, err = bc.Get(h.URL + "/api/v1/cameras")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&cams)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after login: %s", resp.Status)
	}
	// `villagehub user remove` ends the user's sessions (another user
	// stays, so loopback does not become the administrator again).
	out.Reset()
	if code := web.UserCommand([]string{"add", "bao-ve", "--role", "viewer"}, strings.NewReader("viewer-password\n"), &out, &errb, usersFile); code != 0 {
		t.Fatalf("user add: %s", errb.String())
	}
	if code := web.UserCommand([]string{"remove", "truong-thon"}, nil, &out, &errb, usersFile); code != 0 {
		t.Fatalf("user remove: %s", errb.String())
	}
	testenv.WaitFor(t, 5*time.Second, "the removed user's session to end", func() bool {
		resp, err := bc.Get(h.URL + "/api/v1/cameras")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode != 200
	})
}
