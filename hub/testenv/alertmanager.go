package testenv

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Alertmanager is a real Alertmanager (Debian's prometheus-alertmanager)
// on a free loopback port, with clustering off and its own storage.
type Alertmanager struct {
	URL  string
	proc *Process
}

// AlertmanagerBinary is the Debian package's name for the server.
const AlertmanagerBinary = "prometheus-alertmanager"

// StartAlertmanager writes config, starts Alertmanager and returns when it
// is ready. Test configs should set group_wait: 0s (the default waits
// 30 s before the first notification). args are extra flags, e.g.
// --cluster.listen-address=127.0.0.1:PORT and --cluster.peer to gossip.
func StartAlertmanager(t testing.TB, config string, args ...string) *Alertmanager {
	t.Helper()
	bin, err := exec.LookPath(AlertmanagerBinary)
	if err != nil {
		t.Fatalf("testenv: %s not found (%v): apt-get install -y --no-install-recommends prometheus-alertmanager", AlertmanagerBinary, err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(conf, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	flags := []string{
		"--config.file=" + conf,
		"--storage.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--log.level=warn",
	}
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--cluster.listen-address") }) {
		// Empty: no gossip listener (it would bind 0.0.0.0:9094).
		flags = append(flags, "--cluster.listen-address=")
	}
	p := StartProcess(t, bin, nil, append(flags, args...)...)
	WaitHTTP(t, "http://"+addr+"/-/ready", 30*time.Second, p)
	return &Alertmanager{URL: "http://" + addr, proc: p}
}

// AlertmanagerAlert is an alert as Alertmanager's /api/v2/alerts lists it.
type AlertmanagerAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Status       struct {
		State string `json:"state"`
	} `json:"status"`
}

// Alerts lists the alerts Alertmanager holds.
func (a *Alertmanager) Alerts(t testing.TB) []AlertmanagerAlert {
	t.Helper()
	resp, err := httpClient.Get(a.URL + "/api/v2/alerts")
	if err != nil {
		t.Fatalf("testenv: listing Alertmanager's alerts: %v", err)
	}
	defer resp.Body.Close()
	var out []AlertmanagerAlert
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("testenv: decoding Alertmanager's alerts: %v", err)
	}
	return out
}

// Output is what Alertmanager logged.
func (a *Alertmanager) Output() string { return a.proc.Output() }
