package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"villagehub/hub/scan"
)

// placeLabels label every per-board series: IDs only, never a URL or a
// name.
var placeLabels = []string{"province", "district", "commune", "village", "site", "board"}

type metrics struct {
	g               *Gateway
	scans           *prometheus.CounterVec
	unique          *prometheus.CounterVec
	orphans         prometheus.Counter
	journalErrors   prometheus.Counter
	targetsRejected prometheus.Counter
	sentDown        prometheus.Counter
	sinkErrors      *prometheus.CounterVec
	targets         *prometheus.Desc
	connected       *prometheus.Desc
	lag             *prometheus.Desc
	asyncErrs       *prometheus.Desc
}

func newMetrics(g *Gateway) *metrics {
	return &metrics{
		g: g,
		scans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "villagehub_gateway_scans_total",
			Help: "Visits to /q/<village>/<board> counted by this instance, by class: human (a scan), bot (link previews, crawlers, HEAD, prefetch), rate_limited.",
		}, append(append([]string{}, placeLabels...), "class")),
		unique: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "villagehub_gateway_unique_scans_total",
			Help: "Human scans this instance saw as unique within its own unique window (exact across instances only in InfluxDB's qr_visits class=unique).",
		}, placeLabels),
		orphans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "villagehub_gateway_orphan_scans_total",
			Help: "Visits for a village/board with no known target (the friendly not-found page).",
		}),
		journalErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "villagehub_gateway_journal_errors_total",
			Help: "Scans that could not be journaled (redirected, not counted) or journal lines that could not be read.",
		}),
		targetsRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "villagehub_gateway_target_messages_rejected_total",
			Help: "Target messages from the broker that were malformed or over max_boards.",
		}),
		sentDown: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "villagehub_gateway_village_scans_sent_total",
			Help: "Scans published down to village hubs and acknowledged by the broker (a replay after a crash counts again).",
		}),
		sinkErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "villagehub_gateway_sink_errors_total",
			Help: "Failed attempts to hand journaled scans to a sink (influx, village); retried.",
		}, []string{"sink"}),
		targets:   prometheus.NewDesc("villagehub_gateway_targets", "Boards with a known target.", nil, nil),
		connected: prometheus.NewDesc("villagehub_gateway_broker_connected", "1 when connected to the province broker.", nil, nil),
		lag:       prometheus.NewDesc("villagehub_gateway_journal_pending_bytes", "Journaled scans a sink has not taken yet, in bytes.", []string{"sink"}, nil),
		asyncErrs: prometheus.NewDesc("villagehub_gateway_journal_async_write_errors_total", "Groups of scans (journal_async) whose write failed after their redirects were sent: those scans are lost.", nil, nil),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range []prometheus.Collector{m.scans, m.unique, m.orphans, m.journalErrors, m.targetsRejected, m.sentDown, m.sinkErrors} {
		c.Describe(ch)
	}
	ch <- m.targets
	ch <- m.connected
	ch <- m.lag
	ch <- m.asyncErrs
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range []prometheus.Collector{m.scans, m.unique, m.orphans, m.journalErrors, m.targetsRejected, m.sentDown, m.sinkErrors} {
		c.Collect(ch)
	}
	g := m.g
	if g.targets != nil {
		ch <- prometheus.MustNewConstMetric(m.targets, prometheus.GaugeValue, float64(g.targets.len()))
	}
	up := 0.0
	if g.connected.Load() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(m.connected, prometheus.GaugeValue, up)
	if g.journal != nil {
		g.journal.mu.Lock()
		n := g.journal.asyncErrs
		g.journal.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(m.asyncErrs, prometheus.CounterValue, float64(n))
		for name := range g.journal.cursors {
			ch <- prometheus.MustNewConstMetric(m.lag, prometheus.GaugeValue, float64(g.journal.lag(name)), name)
		}
	}
}

// targetMetrics are one board's counters, resolved once so the request
// path does no label hashing.
type targetMetrics struct {
	human, bot, limited, unique prometheus.Counter
}

func (t *Target) labels() []string {
	return []string{t.Place.Province, t.Place.District, t.Place.Commune, t.Village, t.Site, t.Board}
}

func (m *metrics) forTarget(t *Target) *targetMetrics {
	l := t.labels()
	return &targetMetrics{
		human:   m.scans.WithLabelValues(append(l, "human")...),
		bot:     m.scans.WithLabelValues(append(l, "bot")...),
		limited: m.scans.WithLabelValues(append(l, "rate_limited")...),
		unique:  m.unique.WithLabelValues(l...),
	}
}

// dropTarget deletes a removed board's series: metric cardinality follows
// the boards that exist.
func (m *metrics) dropTarget(t *Target) {
	l := t.labels()
	for _, c := range []string{"human", "bot", "rate_limited"} {
		m.scans.DeleteLabelValues(append(l, c)...)
	}
	m.unique.DeleteLabelValues(l...)
}

func (tm *targetMetrics) count(c scan.Class, unique bool) {
	switch c {
	case scan.ClassHuman:
		tm.human.Inc()
		if unique {
			tm.unique.Inc()
		}
	case scan.ClassBot:
		tm.bot.Inc()
	case scan.ClassRateLimited:
		tm.limited.Inc()
	}
}
