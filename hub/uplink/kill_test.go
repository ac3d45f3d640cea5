package uplink_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"villagehub/hub/testenv"
	"villagehub/hub/uplink"
)

// TestUplinkHelperProcess is not a test: TestKill9QueueDrains runs this
// test binary as a stand-in hub process (an uplink gathering a registry
// whose gauge counts the gathers) so that it can kill -9 it.
func TestUplinkHelperProcess(t *testing.T) {
	dir := os.Getenv("UPLINK_HELPER_DIR")
	if dir == "" {
		return
	}
	var seq atomic.Int64
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "helper_seq", Help: "Gathers so far in this run.", ConstLabels: prometheus.Labels{"run": os.Getenv("UPLINK_HELPER_RUN")},
	}, func() float64 { return float64(seq.Add(1)) }))
	cfg := uplink.Config{Interval: uplink.Duration(200 * time.Millisecond), RemoteWrite: []uplink.RemoteWrite{{
		Name: "central", URL: os.Getenv("UPLINK_HELPER_URL"), Dir: dir,
		Timeout: uplink.Duration(time.Second), MinBackoff: uplink.Duration(100 * time.Millisecond), MaxBackoff: uplink.Duration(300 * time.Millisecond),
		// Slow on purpose: the backlog takes a few requests to drain.
		MaxSamplesPerSend: 3, BatchSendDeadline: new(uplink.Duration(0)),
	}}}
	cfg.ApplyDefaults("")
	u, err := uplink.New(uplink.Options{
		Config: cfg, Place: uplink.Place{Province: "p", District: "d", Commune: "c", Village: "v"}, HubID: "killed",
		Gatherer: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	_ = u.Run(ctx)
	os.Exit(0)
}

func startHelper(t *testing.T, dir, run, url string) *testenv.Process {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return testenv.StartProcess(t, exe, []string{"UPLINK_HELPER_DIR=" + dir, "UPLINK_HELPER_RUN=" + run, "UPLINK_HELPER_URL=" + url},
		"-test.run=^TestUplinkHelperProcess$")
}

func queued(t *testing.T, dir string) int {
	m, err := filepath.Glob(filepath.Join(dir, "*.rec"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// TestKill9QueueDrains: a hub whose receiver is unreachable queues on disk
// and is killed with SIGKILL; restarted with the receiver reachable, it
// sends every queued sample once, in order, with its original timestamp.
func TestKill9QueueDrains(t *testing.T) {
	prom := testenv.StartPrometheus(t, `
storage: { tsdb: { out_of_order_time_window: 1h } }
`, nil, "--web.enable-remote-write-receiver")
	dir := filepath.Join(t.TempDir(), "queue") // made by the uplink

	// Run 1: nothing listens at the receiver's address.
	dead := "http://" + testenv.FreeAddr(t) + "/api/v1/write"
	p1 := startHelper(t, dir, "1", dead)
	testenv.WaitFor(t, 20*time.Second, "a queue of 8 requests on disk", func() bool { return queued(t, dir) >= 8 })
	p1.Kill()
	onDisk := queued(t, dir)
	for _, f := range append(mustGlob(t, filepath.Join(dir, "*")), dir) {
		if st, _ := os.Stat(f); st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is open to others: %v", f, st.Mode())
		}
	}

	// Run 2: the receiver is there.
	p2 := startHelper(t, dir, "2", prom.URL+"/api/v1/write")
	testenv.WaitFor(t, 30*time.Second, "run 1's queue at the centre", func() bool {
		v := prom.Query(t, `count_over_time(helper_seq{run="1"}[10m])`)
		return len(v) == 1 && int(v[0].Value) >= onDisk
	})
	testenv.WaitFor(t, 30*time.Second, "run 2 caught up", func() bool { return queued(t, dir) <= 1 })
	p2.Kill()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, _, _, err := prom.API.Query(ctx, `helper_seq{run="1",hub="killed",village="v"}[10m]`, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m := v.(model.Matrix)
	if len(m) != 1 {
		t.Fatalf("run 1 series: %v", m)
	}
	var got []int
	last := model.Time(0)
	for _, s := range m[0].Values {
		got = append(got, int(s.Value))
		if s.Timestamp <= last {
			t.Errorf("timestamps not increasing at %v", s)
		}
		last = s.Timestamp
	}
	want := make([]int, onDisk)
	for i := range want {
		want[i] = i + 1
	}
	// Every gather queued on disk before the kill is at the centre once,
	// in order (a gather being written at the kill was never queued).
	if !slices.Equal(got, want) {
		t.Errorf("run 1 at the centre: %v, queued on disk at the kill: 1..%d", got, onDisk)
	}
}

func mustGlob(t *testing.T, pat string) []string {
	m, err := filepath.Glob(pat)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
