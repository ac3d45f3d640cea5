package main

import (
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
)

// tuneHubRuntime runs the hub's Go code on one core unless GOMAXPROCS is
// set in the environment, which wins as it does for GOGC in
// probe.TuneWorkerRuntime (docs/performance.md, "Fourth pass").
//
// Like Mosquitto's one thread and nginx's one worker, one scheduler P is
// what a village's or a district's load needs (a district's hub took 23 %
// of a core): the RTSP probes, the only heavy work, run in worker
// processes of their own (hub/probe), which are not touched here and keep
// every core. With two Ps the runtime wakes the idle one, through a futex,
// whenever the network poller or a commit readies a goroutine; on the
// 2-core machine of the measurements one P cost ~10 % less CPU per message
// on the embedded-broker path, and /q/'s tail was shorter in the same run.
// A hub that needs more (an unusual load on a 4-core Pi) sets
// GOMAXPROCS=N, as for any Go program; the workers inherit it.
func tuneHubRuntime(log *slog.Logger) {
	if sysmonNote != "" {
		log.Debug("Go runtime monitor (sysmon)", "setting", sysmonNote)
	}
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	prev := runtime.GOMAXPROCS(1)
	log.Debug("Go scheduler on one core (set GOMAXPROCS to change it)", "cpus", runtime.NumCPU(), "was", prev)
}

// sysmonGodebug keeps the Go runtime's monitor thread (sysmon) out of its
// deep sleep in the hub process: with GODEBUG schedtrace set, sysmon never
// parks when every P is idle (runtime/proc.go says so beside the check)
// and its period backs off to 10 ms. The value is the largest the runtime
// accepts, so the trace line that setting prints comes at most once per
// 24.8 days of the machine's uptime.
//
// Why: with one P (tuneHubRuntime) the hub's P goes idle and busy again
// hundreds of times a second under load. Each time, sysmon parks; the
// next system call wakes it, and a wake from a system call resets its
// period to 20 µs for at least the next millisecond, during which it
// also takes the P away from every store fdatasync it sees (a futex
// wake of another thread, and one more to stop it when the sync ends).
// Measured on the embedded-broker bench: ~3,000 sysmon sleeps and
// ~1,700 futex calls a second, about 10 % of the hub's samples (perf) in
// the monitor's sleeps and wake-ups; with the setting 100 and 7 a second,
// and 5.8-6.5 µs of CPU per message against 7.2-8.4 in alternating runs
// (docs/performance.md, "Fifth pass"). The cost: an idle hub's sysmon
// wakes 100 times a second (0.2-0.4 % of a core on the 2-vCPU VM of the
// measurements). The probe workers do not inherit it (keepSysmonAwake
// puts GODEBUG back once the runtime has read it).
// A GODEBUG that already names schedtrace is left alone: schedtrace=0
// turns this off.
const sysmonGodebug = "schedtrace=2147483647"

// godebugEnv carries the GODEBUG the hub was started with across its
// re-execution ("-" for none), so that it can be put back for children.
const godebugEnv = "VILLAGEHUB_STARTED_GODEBUG"

// sysmonNote says what keepSysmonAwake did, for tuneHubRuntime's log.
var sysmonNote string

// keepSysmonAwake re-executes the hub with sysmonGodebug added to GODEBUG
// (the runtime reads schedtrace only at start) and, in the re-executed
// process, puts the environment back as it was so that the probe workers
// the hub starts run with the user's settings: the runtime keeps the
// value it read at start. It returns only when it does not re-execute.
// Called from main, for the hub and the demo only, before anything has
// been started.
func keepSysmonAwake() {
	if started, ok := os.LookupEnv(godebugEnv); ok {
		os.Unsetenv(godebugEnv)
		if started == "-" {
			os.Unsetenv("GODEBUG")
		} else {
			os.Setenv("GODEBUG", started)
		}
		sysmonNote = "GODEBUG " + sysmonGodebug
		return
	}
	started, set := os.LookupEnv("GODEBUG")
	for _, kv := range strings.Split(started, ",") {
		if strings.HasPrefix(strings.TrimSpace(kv), "schedtrace=") {
			sysmonNote = "GODEBUG sets schedtrace: left as it is"
			return
		}
	}
	exe, err := os.Executable()
	if err != nil {
		sysmonNote = "not re-executed: " + err.Error()
		return
	}
	godebug, saved := sysmonGodebug, "-"
	if set && started != "" {
		godebug, saved = started+","+sysmonGodebug, started
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GODEBUG=") })
	env = append(env, "GODEBUG="+godebug, godebugEnv+"="+saved)
	err = syscall.Exec(exe, os.Args, env)
	sysmonNote = "not re-executed: " + err.Error() // Exec returns only on failure
}
