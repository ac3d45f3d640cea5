package main

import (
	"log/slog"
	"os"
	"runtime"
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
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	prev := runtime.GOMAXPROCS(1)
	log.Debug("Go scheduler on one core (set GOMAXPROCS to change it)", "cpus", runtime.NumCPU(), "was", prev)
}
