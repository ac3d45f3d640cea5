package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
)

// InfluxDatabase is the database StartInflux creates; InfluxBucket is how
// the v2 API names it.
const (
	InfluxDatabase = "village"
	InfluxBucket   = "village/autogen"
)

// Influx is a real InfluxDB 1.8 server (influxd built by
// scripts/install-influxd.sh) on free loopback ports with its own data
// directory, for tests. Stop and Start simulate an outage on the same data.
type Influx struct {
	t        testing.TB
	bin      string
	dir      string
	conf     string
	logPath  string
	httpAddr string

	user, password string // empty: authentication off

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}

	client influxdb2.Client
}

// InfluxOption changes how StartInflux sets up the server.
type InfluxOption func(*Influx)

// WithInfluxAuth turns authentication on with one admin user; clients then
// use the token "user:password".
func WithInfluxAuth(user, password string) InfluxOption {
	return func(in *Influx) { in.user, in.password = user, password }
}

// InfluxdPath is where scripts/install-influxd.sh puts influxd:
// $VILLAGEHUB_INFLUXD if set, else $(go env GOPATH)/bin/influxd.
func InfluxdPath() string {
	if p := os.Getenv("VILLAGEHUB_INFLUXD"); p != "" {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	return filepath.Join(strings.Split(gopath, string(os.PathListSeparator))[0], "bin", "influxd")
}

// StartInflux starts InfluxDB 1.8 with Flux enabled, creates the database
// "village" and returns once a Flux query answers. The server is stopped
// when the test ends. A missing binary fails the test.
func StartInflux(t testing.TB, opts ...InfluxOption) *Influx {
	t.Helper()
	bin := InfluxdPath()
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("influxd not found at %s (%v): run scripts/install-influxd.sh or make test, which build InfluxDB 1.8.10 once and cache it", bin, err)
	}
	dir := t.TempDir()
	httpAddr, rpcAddr := FreeAddr(t), FreeAddr(t)
	var probe Influx
	for _, o := range opts {
		o(&probe)
	}
	auth := probe.user != ""
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = %q

[meta]
  dir = %q

[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
  trace-logging-enabled = false

[coordinator]
  log-queries-after = "0s"

[retention]
  enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[http]
  enabled = true
  bind-address = %q
  auth-enabled = %t
  log-enabled = false
  flux-enabled = true
  flux-log-enabled = false

[logging]
  level = "warn"
`, rpcAddr, filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), httpAddr, auth)
	confPath := filepath.Join(dir, "influxdb.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatalf("writing influxdb.conf: %v", err)
	}
	in := &Influx{t: t, bin: bin, dir: dir, conf: confPath, logPath: filepath.Join(dir, "influxd.log"), httpAddr: httpAddr,
		user: probe.user, password: probe.password}
	t.Cleanup(func() {
		if in.client != nil {
			in.client.Close()
		}
		in.stop(syscall.SIGKILL)
	})
	in.Start()
	if auth {
		// The first user may be created without credentials.
		if err := in.Exec(fmt.Sprintf("CREATE USER %q WITH PASSWORD '%s' WITH ALL PRIVILEGES", in.user, in.password)); err != nil {
			t.Fatalf("creating the admin user: %v", err)
		}
	}
	if err := in.Exec("CREATE DATABASE " + InfluxDatabase); err != nil {
		t.Fatalf("creating database %s: %v", InfluxDatabase, err)
	}
	in.waitFlux()
	return in
}

// URL is the server's base URL, e.g. http://127.0.0.1:41234.
func (in *Influx) URL() string { return "http://" + in.httpAddr }

// Addr is the server's HTTP host:port.
func (in *Influx) Addr() string { return in.httpAddr }

// Dir is the server's directory (data, config, log).
func (in *Influx) Dir() string { return in.dir }

// Start (re)starts the server on its data directory and waits for /ping.
// It fails the test if the server does not come up.
func (in *Influx) Start() {
	in.t.Helper()
	in.mu.Lock()
	if in.cmd != nil {
		in.mu.Unlock()
		return
	}
	logf, err := os.OpenFile(in.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		in.mu.Unlock()
		in.t.Fatalf("opening influxd log: %v", err)
	}
	cmd := exec.Command(in.bin, "-config", in.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = influxdProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		in.mu.Unlock()
		in.t.Fatalf("starting influxd: %v", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	in.cmd, in.done = cmd, done
	in.mu.Unlock()

	deadline := time.Now().Add(120 * time.Second)
	for {
		select {
		case <-done:
			in.t.Fatalf("influxd exited during startup; its log:\n%s", in.logTail())
		default:
		}
		resp, err := http.Get(in.URL() + "/ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return
			}
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("influxd on %s not answering /ping after 120s; its log:\n%s", in.httpAddr, in.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop shuts the server down (SIGTERM, then SIGKILL after 20 s) and waits
// until its port is closed; data stays for Start.
func (in *Influx) Stop() { in.stop(syscall.SIGTERM) }

// Kill stops the server with SIGKILL, as a crash would.
func (in *Influx) Kill() { in.stop(syscall.SIGKILL) }

func (in *Influx) stop(sig syscall.Signal) {
	in.mu.Lock()
	cmd, done := in.cmd, in.done
	in.cmd, in.done = nil, nil
	in.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Token is what a client sends: "user:password" with authentication on,
// else "".
func (in *Influx) Token() string {
	if in.user == "" {
		return ""
	}
	return in.user + ":" + in.password
}

// Exec runs an InfluxQL statement through /query.
func (in *Influx) Exec(stmt string) error {
	req, err := http.NewRequest(http.MethodPost, in.URL()+"/query", strings.NewReader(url.Values{"q": {stmt}}.Encode()))
	if err != nil {
		return fmt.Errorf("building InfluxQL request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if in.user != "" && !strings.HasPrefix(stmt, "CREATE USER") {
		req.SetBasicAuth(in.user, in.password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("posting InfluxQL: %w", err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK || strings.Contains(body.String(), `"error"`) {
		return fmt.Errorf("InfluxQL %q: %s: %s", stmt, resp.Status, body.String())
	}
	return nil
}

// Client is an influxdb-client-go client for this server (org "", Token()).
func (in *Influx) Client() influxdb2.Client {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.client == nil {
		in.client = influxdb2.NewClientWithOptions(in.URL(), in.Token(),
			influxdb2.DefaultOptions().SetLogLevel(0).SetApplicationName("villagehub-test").SetHTTPRequestTimeout(60))
	}
	return in.client
}

// Query runs a Flux query through the client's QueryAPI and returns every
// record's values (columns such as _measurement, _field, _value, _time and
// the tags).
func (in *Influx) Query(flux string) ([]map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := in.Client().QueryAPI("").Query(ctx, flux)
	if err != nil {
		return nil, fmt.Errorf("flux query: %w", err)
	}
	defer res.Close()
	var rows []map[string]any
	for res.Next() {
		rows = append(rows, res.Record().Values())
	}
	if err := res.Err(); err != nil {
		return rows, fmt.Errorf("reading flux result: %w", err)
	}
	return rows, nil
}

// waitFlux waits until a first Flux query answers: with Flux on, /ping
// answers seconds before the query engine does.
func (in *Influx) waitFlux() {
	in.t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if _, err = in.Query(`from(bucket: "` + InfluxBucket + `") |> range(start: -1m) |> limit(n: 1)`); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	in.t.Fatalf("influxd Flux not answering after 120s: %v; its log:\n%s", err, in.logTail())
}

func (in *Influx) logTail() string {
	b, err := os.ReadFile(in.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
