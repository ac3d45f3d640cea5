package main

import (
	"testing"
	"time"

	"villagehub/hub/testenv"
)

// TestHubRunsOnOneCore: the hub process schedules its Go code on one core
// (tuneHubRuntime) unless GOMAXPROCS is set, which then wins; the runtime
// says which in its go_sched_gomaxprocs_threads metric.
func TestHubRunsOnOneCore(t *testing.T) {
	bin := testenv.Build(t, "./cmd/villagehub")
	for _, c := range []struct {
		env  string
		want float64
	}{{"", 1}, {"3", 3}} {
		// Empty is unset for the runtime and for the hub alike; the
		// process inherits the test's environment.
		t.Setenv("GOMAXPROCS", c.env)
		httpAddr := testenv.FreeAddr(t)
		p := testenv.StartProcess(t, bin, nil, "--http-addr", httpAddr, "--broker-addr", testenv.FreeAddr(t),
			"--data-dir", t.TempDir(), "--log-level", "warn")
		base := "http://" + httpAddr
		testenv.WaitHTTP(t, base+"/healthz", time.Minute, p)
		got, ok := testenv.Scrape(t, base).Value("go_sched_gomaxprocs_threads")
		if !ok || got != c.want {
			t.Errorf("GOMAXPROCS=%q: go_sched_gomaxprocs_threads = %v (found %v), want %v", c.env, got, ok, c.want)
		}
		if err := p.Stop(30 * time.Second); err != nil {
			t.Errorf("hub did not stop cleanly: %v\n%s", err, p.Output())
		}
	}
}
