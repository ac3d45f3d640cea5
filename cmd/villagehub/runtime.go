package main

import (
	"log/slog"
	"os"
	"runtime"
)

// tuneHubRuntime runs the hub's Go code on one core unless GOMAXPROCS is
// set in the environment (docs/performance.md, "One core for the hub").
//
// Like Mosquitto's one thread and nginx's one worker, one scheduler P is
// what a village's or a district's load needs: the RTSP probes, the only
// heavy work, run in worker processes of their own (hub/probe), which keep
// every core. With two Ps the runtime wakes the idle one, through a futex,
// whenever the network poller or a commit readies a goroutine; on the
// 2-core machine of the measurements that cost ~10 % of the hub's CPU per
// message on the embedded-broker path, and /q/'s p99 was at or under
// nginx's in every round with one P but not with two. A hub that needs
// more (an unusual load on a 4-core Pi) sets GOMAXPROCS=N, as for any Go
// program.
func tuneHubRuntime(log *slog.Logger) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	prev := runtime.GOMAXPROCS(1)
	log.Debug("Go scheduler on one core (set GOMAXPROCS to change it)", "cpus", runtime.NumCPU(), "was", prev)
}
