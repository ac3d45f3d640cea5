package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
		p, base := startHub(t, bin)
		got, ok := testenv.Scrape(t, base).Value("go_sched_gomaxprocs_threads")
		if !ok || got != c.want {
			t.Errorf("GOMAXPROCS=%q: go_sched_gomaxprocs_threads = %v (found %v), want %v", c.env, got, ok, c.want)
		}
		stopHub(t, p)
	}
}

// startHub starts the hub binary on free ports with a fresh data
// directory and the test's environment, and waits for its /healthz.
func startHub(t *testing.T, bin string, args ...string) (*testenv.Process, string) {
	t.Helper()
	httpAddr := testenv.FreeAddr(t)
	p := testenv.StartProcess(t, bin, nil, append(args, "--http-addr", httpAddr, "--broker-addr", testenv.FreeAddr(t),
		"--data-dir", t.TempDir(), "--log-level", "warn")...)
	base := "http://" + httpAddr
	testenv.WaitHTTP(t, base+"/healthz", time.Minute, p)
	return p, base
}

func stopHub(t *testing.T, p *testenv.Process) {
	t.Helper()
	if err := p.Stop(30 * time.Second); err != nil {
		t.Errorf("hub did not stop cleanly: %v\n%s", err, p.Output())
	}
}

// TestHubKeepsSysmonAwake: the hub re-executes itself with GODEBUG's
// schedtrace set (keepSysmonAwake), which the runtime honours: an idle
// hub's monitor thread wakes every 10 ms instead of parking (about 100
// voluntary context switches a second against about 10 without; the
// test asks for 50 a second). Its probe workers get the GODEBUG the hub
// was started with, not the hub's; a GODEBUG naming schedtrace is left
// alone (schedtrace=0 is the way to turn this off).
func TestHubKeepsSysmonAwake(t *testing.T) {
	bin := testenv.Build(t, "./cmd/villagehub")
	start := func(t *testing.T, godebug string, args ...string) *testenv.Process {
		t.Setenv("GODEBUG", godebug)
		p, _ := startHub(t, bin, args...)
		return p
	}

	t.Run("idle hub", func(t *testing.T) {
		p := start(t, "")
		pid := p.Cmd.Process.Pid
		wantGodebug(t, "hub", pid, sysmonGodebug, true)
		if v := procEnviron(t, pid)[godebugEnv]; v != "-" {
			t.Errorf("%s = %q, want \"-\" (no GODEBUG at start)", godebugEnv, v)
		}
		first := voluntarySwitches(t, pid)
		begun := time.Now()
		testenv.WaitFor(t, 5*time.Second, "200 voluntary context switches of an idle hub (sysmon awake)", func() bool {
			return voluntarySwitches(t, pid)-first >= 200
		})
		t.Logf("200 context switches in %v", time.Since(begun).Round(time.Millisecond))
		stopHub(t, p)
	})

	t.Run("workers get the GODEBUG the hub was given", func(t *testing.T) {
		p := start(t, "madvdontneed=1", "--demo")
		pid := p.Cmd.Process.Pid
		wantGodebug(t, "hub", pid, "madvdontneed=1,"+sysmonGodebug, true)
		var workers []int
		testenv.WaitFor(t, time.Minute, "a probe worker of the demo hub", func() bool {
			workers = testenv.ChildPIDs(pid, "probe-worker")
			return len(workers) > 0
		})
		wantGodebug(t, "probe worker", workers[0], "madvdontneed=1", false)
		stopHub(t, p)
	})

	t.Run("schedtrace set: left alone", func(t *testing.T) {
		p := start(t, "schedtrace=0")
		wantGodebug(t, "hub", p.Cmd.Process.Pid, "schedtrace=0", false)
		stopHub(t, p)
	})
}

// wantGodebug checks the GODEBUG process pid was executed with, and
// whether it carries the hub's record of the GODEBUG it was started with
// (which only a re-executed hub has).
func wantGodebug(t *testing.T, who string, pid int, godebug string, marked bool) {
	t.Helper()
	env := procEnviron(t, pid)
	if env["GODEBUG"] != godebug {
		t.Errorf("%s executed with GODEBUG=%q, want %q", who, env["GODEBUG"], godebug)
	}
	if v, ok := env[godebugEnv]; ok != marked {
		t.Errorf("%s: %s=%q set: %v, want %v", who, godebugEnv, v, ok, marked)
	}
}

// procEnviron is the environment process pid was executed with.
func procEnviron(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// voluntarySwitches sums the voluntary context switches of pid's threads.
func voluntarySwitches(t *testing.T, pid int) int {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	n := 0
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that ended
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
				c, _ := strconv.Atoi(strings.TrimSpace(v))
				n += c
			}
		}
	}
	return n
}
