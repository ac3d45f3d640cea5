package testenv

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// VictoriaMetrics is a real VictoriaMetrics single-node server on a free
// loopback port with its own storage. It takes Prometheus remote write at
// URL+"/api/v1/write" and answers the Prometheus query API (API).
type VictoriaMetrics struct {
	URL  string
	API  promv1.API
	proc *Process
}

// VictoriaMetricsPath is where scripts/install-deps.sh puts the binary:
// $VILLAGEHUB_VICTORIA_METRICS if set, else $(go env GOPATH)/bin.
func VictoriaMetricsPath() string {
	if p := os.Getenv("VILLAGEHUB_VICTORIA_METRICS"); p != "" {
		return p
	}
	return filepath.Join(filepath.Dir(InfluxdPath()), "victoria-metrics")
}

// StartVictoriaMetrics starts VictoriaMetrics with extra flags and returns
// when it is healthy. Queries see samples at once (-search.latencyOffset=0;
// the default hides the last 30 s). A missing binary fails the test.
func StartVictoriaMetrics(t testing.TB, args ...string) *VictoriaMetrics {
	t.Helper()
	bin := VictoriaMetricsPath()
	if _, err := os.Stat(bin); err != nil {
		if p, lerr := exec.LookPath("victoria-metrics"); lerr == nil {
			bin = p
		} else {
			t.Fatalf("testenv: victoria-metrics not found at %s (%v): run scripts/install-deps.sh", bin, err)
		}
	}
	dir := t.TempDir()
	addr := FreeAddr(t)
	p := StartProcess(t, bin, nil, append([]string{
		"-httpListenAddr=" + addr,
		"-storageDataPath=" + filepath.Join(dir, "data"),
		"-retentionPeriod=100y",
		"-search.latencyOffset=0s",
		"-loggerLevel=WARN",
	}, args...)...)
	WaitHTTP(t, "http://"+addr+"/health", 60*time.Second, p)
	c, err := api.NewClient(api.Config{Address: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	return &VictoriaMetrics{URL: "http://" + addr, API: promv1.NewAPI(c), proc: p}
}

// Flush makes samples received so far visible to queries.
func (v *VictoriaMetrics) Flush(t testing.TB) {
	t.Helper()
	resp, err := http.Get(v.URL + "/internal/force_flush")
	if err != nil {
		t.Fatalf("testenv: flushing VictoriaMetrics: %v", err)
	}
	resp.Body.Close()
}

// Output is what VictoriaMetrics logged.
func (v *VictoriaMetrics) Output() string { return v.proc.Output() }

// Pid is the server's process ID (for CPU and memory figures).
func (v *VictoriaMetrics) Pid() int { return v.proc.Cmd.Process.Pid }
