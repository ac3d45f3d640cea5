package influx

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Writer's own instruments; the gauges are read from the
// spool at scrape time so they cannot drift from it.
type metrics struct {
	written    prometheus.Counter
	spooled    prometheus.Counter
	spoolFull  prometheus.Counter
	deadLetter prometheus.Counter
	errors     *prometheus.CounterVec
	duration   prometheus.Histogram

	spoolPoints *prometheus.Desc
	spoolBytes  *prometheus.Desc
	spoolLimit  *prometheus.Desc
	lastSuccess *prometheus.Desc
}

func newMetrics() *metrics {
	m := &metrics{
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "villagehub_influx_points_written_total",
			Help: "Points InfluxDB confirmed as written.",
		}),
		spooled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "villagehub_influx_points_spooled_total",
			Help: "Points made durable in the InfluxDB spool by Append.",
		}),
		spoolFull: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "villagehub_influx_spool_full_total",
			Help: "Append calls refused because the spool reached its size limit or the disk was full.",
		}),
		deadLetter: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "villagehub_influx_dead_letter_points_total",
			Help: "Points moved to the dead-letter file (refused by InfluxDB as malformed, or not encodable).",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "villagehub_influx_write_errors_total",
			Help: "Failed InfluxDB write requests by class (network, timeout, server_error, rate_limited, bad_request, other).",
		}, []string{"class"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "villagehub_influx_write_duration_seconds",
			Help:    "Duration of InfluxDB write requests, failed ones included.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14), // 2 ms .. 16 s
		}),
		spoolPoints: prometheus.NewDesc("villagehub_influx_spool_points",
			"Points waiting on disk for InfluxDB to confirm them.", nil, nil),
		spoolBytes: prometheus.NewDesc("villagehub_influx_spool_bytes",
			"Bytes of the spool's segment files on disk.", nil, nil),
		spoolLimit: prometheus.NewDesc("villagehub_influx_spool_limit_bytes",
			"Configured spool size limit (influx.spool_max_bytes).", nil, nil),
		lastSuccess: prometheus.NewDesc("villagehub_influx_last_success_timestamp_seconds",
			"Unix time of the last write InfluxDB confirmed (0 if none since start).", nil, nil),
	}
	for _, c := range errorClasses {
		m.errors.WithLabelValues(c) // export every class from the start, at 0
	}
	return m
}

// Describe implements prometheus.Collector.
func (w *Writer) Describe(ch chan<- *prometheus.Desc) {
	w.m.written.Describe(ch)
	w.m.spooled.Describe(ch)
	w.m.spoolFull.Describe(ch)
	w.m.deadLetter.Describe(ch)
	w.m.errors.Describe(ch)
	w.m.duration.Describe(ch)
	ch <- w.m.spoolPoints
	ch <- w.m.spoolBytes
	ch <- w.m.spoolLimit
	ch <- w.m.lastSuccess
}

// Collect implements prometheus.Collector.
func (w *Writer) Collect(ch chan<- prometheus.Metric) {
	w.m.written.Collect(ch)
	w.m.spooled.Collect(ch)
	w.m.spoolFull.Collect(ch)
	w.m.deadLetter.Collect(ch)
	w.m.errors.Collect(ch)
	w.m.duration.Collect(ch)
	ch <- prometheus.MustNewConstMetric(w.m.spoolPoints, prometheus.GaugeValue, float64(max(w.spool.waiting(), 0)))
	ch <- prometheus.MustNewConstMetric(w.m.spoolBytes, prometheus.GaugeValue, float64(w.spool.diskBytes.Load()))
	ch <- prometheus.MustNewConstMetric(w.m.spoolLimit, prometheus.GaugeValue, float64(w.spool.maxBytes))
	last := 0.0
	if ns := w.lastSuccess.Load(); ns != 0 {
		last = float64(ns) / float64(time.Second)
	}
	ch <- prometheus.MustNewConstMetric(w.m.lastSuccess, prometheus.GaugeValue, last)
}
