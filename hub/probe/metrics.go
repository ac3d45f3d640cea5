package probe

import (
	"github.com/prometheus/client_golang/prometheus"
)

// The supervisor's own health. Camera metrics (villagehub_camera_*) are
// not here: the caller derives them from Results, which state owns.
var (
	descWorkers = prometheus.NewDesc("villagehub_probe_workers",
		"Probe worker processes running (shared and single-camera).", nil, nil)
	descWorkerStarts = prometheus.NewDesc("villagehub_probe_worker_starts_total",
		"Probe worker processes started.", nil, nil)
	descWorkerCrashes = prometheus.NewDesc("villagehub_probe_worker_crashes_total",
		"Probe worker processes that died unexpectedly (crashed or were killed as stuck).", nil, nil)
	descWorkerRecycles = prometheus.NewDesc("villagehub_probe_worker_recycles_total",
		"Probe worker processes retired after their probe quota.", nil, nil)
	descIsolated = prometheus.NewDesc("villagehub_probe_isolated_cameras",
		"Cameras whose stream crashed a worker and are now probed in a process of their own.", nil, nil)
	descInFlight = prometheus.NewDesc("villagehub_probe_in_flight",
		"Probes running now.", nil, nil)
	descQueued = prometheus.NewDesc("villagehub_probe_queued",
		"Cameras due for a probe but waiting for a free slot (raise the concurrency if this stays above zero).", nil, nil)
	descTargets = prometheus.NewDesc("villagehub_probe_targets",
		"Cameras the supervisor probes.", nil, nil)
	descProbes = prometheus.NewDesc("villagehub_probe_probes_total",
		"Probes completed, by mode.", []string{"mode"}, nil)
)

// Describe implements prometheus.Collector.
func (s *Supervisor) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWorkers, descWorkerStarts, descWorkerCrashes,
		descWorkerRecycles, descIsolated, descInFlight, descQueued, descTargets, descProbes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. It reads counters kept for
// this purpose and the target table; it never waits for a probe.
func (s *Supervisor) Collect(ch chan<- prometheus.Metric) {
	m := &s.metrics
	now := s.now()
	s.mu.Lock()
	targets, queued := len(s.cams), 0
	for _, cs := range s.cams {
		if !cs.busy && !cs.next.After(now) {
			queued++
		}
	}
	s.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descWorkers, prometheus.GaugeValue, float64(m.workers.Load()))
	ch <- prometheus.MustNewConstMetric(descWorkerStarts, prometheus.CounterValue, float64(m.workerStarts.Load()))
	ch <- prometheus.MustNewConstMetric(descWorkerCrashes, prometheus.CounterValue, float64(m.workerCrashes.Load()))
	ch <- prometheus.MustNewConstMetric(descWorkerRecycles, prometheus.CounterValue, float64(m.workerRecycles.Load()))
	ch <- prometheus.MustNewConstMetric(descIsolated, prometheus.GaugeValue, float64(m.isolated.Load()))
	ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(m.inFlight.Load()))
	ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(queued))
	ch <- prometheus.MustNewConstMetric(descTargets, prometheus.GaugeValue, float64(targets))
	ch <- prometheus.MustNewConstMetric(descProbes, prometheus.CounterValue, float64(m.handshakes.Load()), string(ModeHandshake))
	ch <- prometheus.MustNewConstMetric(descProbes, prometheus.CounterValue, float64(m.samples.Load()), string(ModeSample))
}
