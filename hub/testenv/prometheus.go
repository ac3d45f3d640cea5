package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Prometheus is a real Prometheus server (Debian's package) on a free
// loopback port with its own storage, started from any config text.
type Prometheus struct {
	URL string
	// Dir holds prometheus.yml and the files given to StartPrometheus.
	Dir  string
	API  promv1.API
	proc *Process
}

// StartPrometheus writes config (with "{{DIR}}" replaced by the server's
// directory) and files (name -> content, into that directory, e.g. rule
// files), starts Prometheus and returns when it is ready. A missing
// binary or a config Prometheus rejects fails the test. args are extra
// flags (e.g. --web.enable-remote-write-receiver).
func StartPrometheus(t testing.TB, config string, files map[string]string, args ...string) *Prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("testenv: prometheus not found (%v): apt-get install -y --no-install-recommends prometheus", err)
	}
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(strings.ReplaceAll(config, "{{DIR}}", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	p := StartProcess(t, bin, nil, append([]string{
		"--config.file=" + conf,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--log.level=warn",
	}, args...)...)
	WaitHTTP(t, "http://"+addr+"/-/ready", 30*time.Second, p)
	c, err := api.NewClient(api.Config{Address: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	return &Prometheus{URL: "http://" + addr, Dir: dir, API: promv1.NewAPI(c), proc: p}
}

// Query runs an instant query now and returns its vector (failing the test
// on an error or another result type).
func (p *Prometheus) Query(t testing.TB, expr string) model.Vector {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, _, _, err := p.API.Query(ctx, expr, time.Now())
	if err != nil {
		t.Fatalf("testenv: query %q: %v", expr, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		t.Fatalf("testenv: query %q returned a %s, not a vector", expr, v.Type())
	}
	return vec
}

// Pid is the server's process ID (for CPU and memory figures).
func (p *Prometheus) Pid() int { return p.proc.Cmd.Process.Pid }

// Output is what Prometheus logged.
func (p *Prometheus) Output() string { return p.proc.Output() }

// Promtool runs promtool with args and returns its combined output; a
// non-zero exit fails the test with that output.
func Promtool(t testing.TB, args ...string) string {
	t.Helper()
	out, err := RunPromtool(args...)
	if err != nil {
		t.Fatalf("testenv: promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// RunPromtool runs promtool with args, returning its output and error.
func RunPromtool(args ...string) (string, error) {
	bin, err := exec.LookPath("promtool")
	if err != nil {
		return "", fmt.Errorf("promtool not found (%v): apt-get install -y --no-install-recommends prometheus", err)
	}
	cmd := exec.Command(bin, args...)
	b, err := cmd.CombinedOutput()
	return string(b), err
}
