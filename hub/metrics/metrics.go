// Package metrics exposes the hub on /metrics. Device metrics are read from
// hub/state at scrape time by a custom collector, so /metrics, the JSON API
// and the dashboard can never disagree.
package metrics

import (
	"runtime"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"villagehub/hub/event"
	"villagehub/hub/ingest"
	"villagehub/hub/state"
)

// Version is the hub's version, set at build time.
var Version = "dev"

// Broker is what the collector asks the MQTT side.
type Broker interface {
	Connected() bool
}

// Config configures the hub's metrics.
type Config struct {
	State  *state.State
	Queue  *ingest.Queue
	Broker Broker
	// Latency is the processing latency histogram (NewLatency), observed
	// by the state pipeline.
	Latency prometheus.Histogram
	// ProbeDuration is the probe duration histogram (NewProbeDuration).
	ProbeDuration *prometheus.HistogramVec
	// Extra are other components' collectors, registered as they are:
	// the InfluxDB writer, the broker's access hook and TLS certificate, the
	// prober and the alert engine (hub/app newMetrics).
	Extra []prometheus.Collector
	// Outbox is the InfluxDB points committed but not yet in the writer's
	// spool, and whether InfluxDB is configured at all.
	Outbox func() (points int64, enabled bool)
}

// NewProbeDuration returns the RTSP probe duration histogram, observed by
// the state pipeline for every probe result.
func NewProbeDuration() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "villagehub_camera_probe_duration_seconds",
		Help:    "Wall time of RTSP probes (handshakes and samples), per site.",
		Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 2.5, 3, 4, 5, 7.5, 10, 15},
	}, []string{"site"})
}

// NewLatency returns the message processing latency histogram.
func NewLatency() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "villagehub_ingest_latency_seconds",
		Help: "Time from receiving an MQTT message to acknowledging it, after it was applied and committed to the store.",
		// 100 µs .. ~6.5 s
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 17),
	})
}

// Metrics owns the hub's registry.
type Metrics struct {
	Registry *prometheus.Registry
}

// New builds the registry with the Go runtime and process collectors, the
// hub's collector and cfg.Extra.
func New(cfg Config) (*Metrics, error) {
	reg := prometheus.NewRegistry()
	m := &Metrics{Registry: reg}
	cs := []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&hubCollector{cfg: cfg},
	}
	if cfg.Latency != nil {
		cs = append(cs, cfg.Latency)
	}
	if cfg.ProbeDuration != nil {
		cs = append(cs, cfg.ProbeDuration)
	}
	cs = append(cs, cfg.Extra...)
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

var (
	descMotionEvents = prometheus.NewDesc("villagehub_camera_motion_events_total",
		"Motion events started, per camera (a repeated ON while active is not a new event).", []string{"site", "camera"}, nil)
	descMotionActive = prometheus.NewDesc("villagehub_camera_motion_active",
		"1 while a camera reports motion.", []string{"site", "camera"}, nil)
	descOnline = prometheus.NewDesc("villagehub_device_online",
		"1 if the device's last MQTT status was online, 0 if offline; absent until it reports one.", []string{"site", "kind", "device"}, nil)
	descQRScans = prometheus.NewDesc("villagehub_qr_scans_total",
		"QR scans counted per board, from board reports and printed codes.", []string{"site", "board"}, nil)
	descQRScansSource = prometheus.NewDesc("villagehub_qr_scans_by_source_total",
		"QR scans counted per board and source: mqtt (board reports) or printed (scans of printed codes at /q/).", []string{"site", "board", "source"}, nil)
	descQRUnique = prometheus.NewDesc("villagehub_qr_unique_scans_total",
		"Printed-code scans from a phone that had not scanned the same board within the unique window.", []string{"site", "board"}, nil)
	descQRBots = prometheus.NewDesc("villagehub_qr_bot_visits_total",
		"Visits to a board's printed-code link by link previewers, crawlers, HEAD and prefetch requests: not counted as scans.", []string{"site", "board"}, nil)
	descQRLimited = prometheus.NewDesc("villagehub_qr_rate_limited_visits_total",
		"Visits to a board's printed-code link from a client over the rate limit: redirected, not counted as scans.", []string{"site", "board"}, nil)
	descBattery = prometheus.NewDesc("villagehub_board_battery_percent",
		"The battery level a QR board last reported (percent); absent for boards that never sent one.", []string{"site", "board"}, nil)
	descRSSI = prometheus.NewDesc("villagehub_board_rssi_dbm",
		"The signal strength a QR board last reported (dBm, nearer 0 is stronger); absent for boards that never sent one.", []string{"site", "board"}, nil)
	descQROrphans = prometheus.NewDesc("villagehub_qr_orphan_visits_total",
		"Visits to /q/<board> for boards the hub does not know.", nil, nil)
	descQRDropped = prometheus.NewDesc("villagehub_qr_scans_dropped_total",
		"Printed-code scans not counted because the hub's pipeline and its overflow tally were both full.", nil, nil)
	descMessages = prometheus.NewDesc("villagehub_mqtt_messages_total",
		"Device MQTT messages by kind and result.", []string{"kind", "result"}, nil)
	descRejected = prometheus.NewDesc("villagehub_mqtt_rejected_total",
		"Rejected device MQTT messages by kind and reason.", []string{"kind", "reason"}, nil)
	descQueueLen = prometheus.NewDesc("villagehub_ingest_queue_length",
		"Messages waiting in the ingest queue.", nil, nil)
	descQueueCap = prometheus.NewDesc("villagehub_ingest_queue_capacity",
		"Capacity of the ingest queue.", nil, nil)
	descQueueWaits = prometheus.NewDesc("villagehub_ingest_queue_full_total",
		"Times a producer found the ingest queue full and waited (back-pressure).", nil, nil)
	descQueueOver = prometheus.NewDesc("villagehub_ingest_queue_overflow_total",
		"QoS 1 messages held past the queue's capacity, unacknowledged, while the broker's in-flight window drained.", nil, nil)
	descCommits = prometheus.NewDesc("villagehub_store_commits_total",
		"Batches committed to the embedded store.", nil, nil)
	descCommitErrs = prometheus.NewDesc("villagehub_store_commit_errors_total",
		"Failed commits to the embedded store (the batch is retried; nothing is acknowledged meanwhile).", nil, nil)
	descLastCommit = prometheus.NewDesc("villagehub_store_last_commit_timestamp_seconds",
		"Unix time of the last successful commit.", nil, nil)
	descDevices = prometheus.NewDesc("villagehub_devices",
		"Devices known to the hub by kind and origin (configured, or auto-registered from MQTT).", []string{"kind", "origin"}, nil)
	descAutoCap = prometheus.NewDesc("villagehub_auto_register_limit",
		"Most devices of a kind that may be auto-registered.", []string{"kind"}, nil)
	descBroker = prometheus.NewDesc("villagehub_broker_connected",
		"1 if the hub is connected to its MQTT broker (always 1 with the embedded broker).", nil, nil)
	descUp = prometheus.NewDesc("villagehub_camera_up",
		"1 if the camera's last RTSP probe saw video, 0 if not; absent until the first probe.", []string{"site", "camera"}, nil)
	descFPS = prometheus.NewDesc("villagehub_camera_stream_fps",
		"Frames per second measured by the last sample probe (0 while down).", []string{"site", "camera"}, nil)
	descBitrate = prometheus.NewDesc("villagehub_camera_stream_bitrate_bits_per_second",
		"Video bitrate measured by the last sample probe (0 while down).", []string{"site", "camera"}, nil)
	descFailures = prometheus.NewDesc("villagehub_camera_probe_failures_total",
		"Failed RTSP probes by reason.", []string{"site", "camera", "reason"}, nil)
	descStreamInfo = prometheus.NewDesc("villagehub_camera_stream_info",
		"The camera's stream codec and resolution; the value is 1.", []string{"site", "camera", "codec", "resolution"}, nil)
	descTTFF = prometheus.NewDesc("villagehub_camera_time_to_first_frame_seconds",
		"Time from the start of the last sample probe (TCP connect and RTSP handshake included) to its first video frame.", []string{"site", "camera"}, nil)
	descKeyint = prometheus.NewDesc("villagehub_camera_keyframe_interval_frames",
		"Frames between keyframes in the last sample probe.", []string{"site", "camera"}, nil)
	descLastOK = prometheus.NewDesc("villagehub_camera_last_probe_success_timestamp_seconds",
		"Unix time of the camera's last successful probe.", []string{"site", "camera"}, nil)
	descQuality = prometheus.NewDesc("villagehub_camera_stream_quality",
		"Connection quality from fps against the expected fps: 3 good, 2 fair, 1 poor, 0 down.", []string{"site", "camera"}, nil)
	descOutbox = prometheus.NewDesc("villagehub_influx_outbox_points",
		"InfluxDB points committed with their change and not yet handed to the InfluxDB spool.", nil, nil)
	descDetections = prometheus.NewDesc("villagehub_camera_detections_total",
		"Object detections (Frigate events) counted once per event id, per camera and label.", []string{"site", "camera", "label"}, nil)
	descFrigateCameraFPS = prometheus.NewDesc("villagehub_frigate_camera_fps",
		"Frames per second Frigate receives from the camera (its stats' camera_fps); 0 means no video.", []string{"site", "camera"}, nil)
	descFrigateProcessFPS = prometheus.NewDesc("villagehub_frigate_process_fps",
		"Frames per second Frigate processes for the camera (process_fps).", []string{"site", "camera"}, nil)
	descFrigateSkippedFPS = prometheus.NewDesc("villagehub_frigate_skipped_fps",
		"Frames per second Frigate skips for the camera (skipped_fps).", []string{"site", "camera"}, nil)
	descFrigateDetectionFPS = prometheus.NewDesc("villagehub_frigate_detection_fps",
		"Object detections per second Frigate runs for the camera (detection_fps).", []string{"site", "camera"}, nil)
	descInputOnline = prometheus.NewDesc("villagehub_input_online",
		"1 if the input (a Frigate: frigate/<name>) last said it is online, 0 if offline or stopped; absent until it says.", []string{"input", "site"}, nil)
	descBuild = prometheus.NewDesc("villagehub_build_info",
		"Build information; the value is 1.", []string{"version", "goversion"}, nil)
)

type hubCollector struct{ cfg Config }

var qualities = map[string]float64{"good": 3, "fair": 2, "poor": 1, "down": 0}

func collectProbe(ch chan<- prometheus.Metric, site, id string, p *state.Probe) {
	g := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, site, id)
	}
	g(descUp, float64(p.Up))
	g(descFPS, p.FPS)
	g(descBitrate, p.BitrateBps)
	for i, r := range state.ProbeReasons() {
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(p.Failures[i]), site, id, r)
	}
	if p.Codec != "" {
		ch <- prometheus.MustNewConstMetric(descStreamInfo, prometheus.GaugeValue, 1, site, id, p.Codec, strconv.Itoa(p.Width)+"x"+strconv.Itoa(p.Height))
	}
	if p.TTFF > 0 {
		g(descTTFF, p.TTFF.Seconds())
	}
	if p.KeyframeInterval > 0 {
		g(descKeyint, float64(p.KeyframeInterval))
	}
	if !p.LastSuccess.IsZero() {
		g(descLastOK, float64(p.LastSuccess.UnixNano())/1e9)
	}
	if q, ok := qualities[p.Grade]; ok {
		g(descQuality, q)
	}
}

func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMotionEvents, descMotionActive, descOnline, descQRScans, descQRScansSource,
		descQRUnique, descQRBots, descQRLimited, descBattery, descRSSI, descQROrphans, descQRDropped,
		descMessages, descRejected, descQueueLen, descQueueCap, descQueueWaits, descQueueOver,
		descUp, descFPS, descBitrate, descFailures, descStreamInfo, descTTFF, descKeyint, descLastOK, descQuality, descOutbox,
		descCommits, descCommitErrs, descLastCommit, descDevices, descAutoCap, descBroker, descBuild,
		descDetections, descFrigateCameraFPS, descFrigateProcessFPS, descFrigateSkippedFPS, descFrigateDetectionFPS, descInputOnline} {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.cfg.State
	st.EachCamera(func(s state.CameraSample) {
		ch <- prometheus.MustNewConstMetric(descMotionEvents, prometheus.CounterValue, float64(s.MotionEvents), s.Site, s.ID)
		if !s.MotionUnknown { // absent while the input it comes from is down
			ch <- prometheus.MustNewConstMetric(descMotionActive, prometheus.GaugeValue, b2f(s.MotionActive), s.Site, s.ID)
		}
		for _, l := range s.Detections {
			ch <- prometheus.MustNewConstMetric(descDetections, prometheus.CounterValue, float64(l.N), s.Site, s.ID, l.Label)
		}
		if st := s.Stats; st != nil {
			ch <- prometheus.MustNewConstMetric(descFrigateCameraFPS, prometheus.GaugeValue, st.CameraFPS, s.Site, s.ID)
			ch <- prometheus.MustNewConstMetric(descFrigateProcessFPS, prometheus.GaugeValue, st.ProcessFPS, s.Site, s.ID)
			ch <- prometheus.MustNewConstMetric(descFrigateSkippedFPS, prometheus.GaugeValue, st.SkippedFPS, s.Site, s.ID)
			ch <- prometheus.MustNewConstMetric(descFrigateDetectionFPS, prometheus.GaugeValue, st.DetectionFPS, s.Site, s.ID)
		}
		if s.Online >= 0 {
			ch <- prometheus.MustNewConstMetric(descOnline, prometheus.GaugeValue, float64(s.Online), s.Site, "camera", s.ID)
		}
		if p := s.Probe; p != nil && p.Up >= 0 {
			collectProbe(ch, s.Site, s.ID, p)
		}
	})
	st.EachBoard(func(s state.BoardSample) {
		ch <- prometheus.MustNewConstMetric(descQRScans, prometheus.CounterValue, float64(s.ScansMQTT+s.ScansPrnt), s.Site, s.ID)
		ch <- prometheus.MustNewConstMetric(descQRScansSource, prometheus.CounterValue, float64(s.ScansMQTT), s.Site, s.ID, state.SourceMQTT)
		ch <- prometheus.MustNewConstMetric(descQRScansSource, prometheus.CounterValue, float64(s.ScansPrnt), s.Site, s.ID, state.SourcePrinted)
		ch <- prometheus.MustNewConstMetric(descQRUnique, prometheus.CounterValue, float64(s.PrintedUnique), s.Site, s.ID)
		ch <- prometheus.MustNewConstMetric(descQRBots, prometheus.CounterValue, float64(s.Bots), s.Site, s.ID)
		ch <- prometheus.MustNewConstMetric(descQRLimited, prometheus.CounterValue, float64(s.RateLimited), s.Site, s.ID)
		if s.Online >= 0 {
			ch <- prometheus.MustNewConstMetric(descOnline, prometheus.GaugeValue, float64(s.Online), s.Site, "board", s.ID)
		}
		if !s.BatteryAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(descBattery, prometheus.GaugeValue, s.Battery, s.Site, s.ID)
		}
		if !s.RSSIAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(descRSSI, prometheus.GaugeValue, s.RSSI, s.Site, s.ID)
		}
	})
	for _, in := range st.Inputs() {
		if in.Status != "unknown" {
			ch <- prometheus.MustNewConstMetric(descInputOnline, prometheus.GaugeValue, b2f(in.Status == "online"), in.Name, in.Site)
		}
	}
	cn := st.Counters()
	for _, k := range event.MsgKinds() {
		for _, r := range state.Results() {
			ch <- prometheus.MustNewConstMetric(descMessages, prometheus.CounterValue, float64(cn.Messages[k][r]), k.String(), r.String())
		}
		for _, r := range event.Reasons() {
			if n := cn.Rejected[k][r]; n > 0 {
				ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(n), k.String(), r.String())
			}
		}
	}
	if q := c.cfg.Queue; q != nil {
		waits, over := q.Stats()
		ch <- prometheus.MustNewConstMetric(descQueueLen, prometheus.GaugeValue, float64(q.Len()))
		ch <- prometheus.MustNewConstMetric(descQueueCap, prometheus.GaugeValue, float64(q.Cap()))
		ch <- prometheus.MustNewConstMetric(descQueueWaits, prometheus.CounterValue, float64(waits))
		ch <- prometheus.MustNewConstMetric(descQueueOver, prometheus.CounterValue, float64(over))
	}
	ch <- prometheus.MustNewConstMetric(descQROrphans, prometheus.CounterValue, float64(cn.Orphans))
	ch <- prometheus.MustNewConstMetric(descQRDropped, prometheus.CounterValue, float64(cn.ScansDropped))
	ch <- prometheus.MustNewConstMetric(descCommits, prometheus.CounterValue, float64(cn.Commits))
	ch <- prometheus.MustNewConstMetric(descCommitErrs, prometheus.CounterValue, float64(cn.CommitErrs))
	if !cn.LastCommit.IsZero() {
		ch <- prometheus.MustNewConstMetric(descLastCommit, prometheus.GaugeValue, float64(cn.LastCommit.UnixNano())/1e9)
	}
	// Every device kind, from the state's tables: a new kind is counted
	// here without a line of its own.
	for _, k := range event.Kinds() {
		d := cn.Devices[k]
		ch <- prometheus.MustNewConstMetric(descDevices, prometheus.GaugeValue, float64(d.Total-d.Auto), k.String(), "configured")
		ch <- prometheus.MustNewConstMetric(descDevices, prometheus.GaugeValue, float64(d.Auto), k.String(), "auto")
		ch <- prometheus.MustNewConstMetric(descAutoCap, prometheus.GaugeValue, float64(d.Limit), k.String())
	}
	if c.cfg.Broker != nil {
		ch <- prometheus.MustNewConstMetric(descBroker, prometheus.GaugeValue, b2f(c.cfg.Broker.Connected()))
	}
	if c.cfg.Outbox != nil {
		if n, on := c.cfg.Outbox(); on {
			ch <- prometheus.MustNewConstMetric(descOutbox, prometheus.GaugeValue, float64(n))
		}
	}
	ch <- prometheus.MustNewConstMetric(descBuild, prometheus.GaugeValue, 1, Version, runtime.Version())
}
