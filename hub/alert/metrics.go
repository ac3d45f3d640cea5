package alert

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descFiring = prometheus.NewDesc("villagehub_alerts_firing",
		"Alerts firing now (silenced ones included), by alert and site.", []string{"alert", "site"}, nil)
	descSilenced = prometheus.NewDesc("villagehub_alerts_silenced",
		"Firing alerts that a silence or maintenance window keeps quiet, by alert and site.", []string{"alert", "site"}, nil)
	descNotifications = prometheus.NewDesc("villagehub_notifications_total",
		"Notices by notifier and result: sent, failed (gave up after retries or a permanent error), dropped (queue full).",
		[]string{"notifier", "result"}, nil)
	descRetries = prometheus.NewDesc("villagehub_notification_retries_total",
		"Delivery attempts that failed and were retried, by notifier.", []string{"notifier"}, nil)
	descQueue = prometheus.NewDesc("villagehub_notification_queue_length",
		"Notices waiting in a notifier's queue.", []string{"notifier"}, nil)
	descEval = prometheus.NewDesc("villagehub_alert_evaluation_seconds",
		"How long the last evaluation of every alert rule took.", nil, nil)
	descEvals = prometheus.NewDesc("villagehub_alert_evaluations_total",
		"Evaluations of the alert rules.", nil, nil)
)

// Describe implements prometheus.Collector: register the Engine with the
// hub's registry.
func (e *Engine) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFiring, descSilenced, descNotifications, descRetries, descQueue, descEval, descEvals} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Every known site has a series
// per camera and board alert (0 when nothing fires), and the hub has its
// HubDegraded series, so dashboards and rules see zeros, not gaps.
func (e *Engine) Collect(ch chan<- prometheus.Metric) {
	type key struct{ alert, site string }
	firing, silenced := map[key]float64{}, map[key]float64{}
	for _, s := range e.deps.State.Sites() {
		for _, n := range []string{CameraDown, CameraDegraded, QRBoardSilent} {
			firing[key{n, s.ID}] = 0
			silenced[key{n, s.ID}] = 0
		}
	}
	firing[key{HubDegraded, HubSite}] = 0
	silenced[key{HubDegraded, HubSite}] = 0
	now := e.now()
	e.mu.Lock()
	for _, a := range e.firing {
		k := key{a.Name, a.Site}
		firing[k]++
		if e.isSilenced(a, now) {
			silenced[k]++
		} else if _, ok := silenced[k]; !ok {
			silenced[k] = 0
		}
	}
	evalS, evals := float64(e.evalNanos)/1e9, e.evals
	e.mu.Unlock()
	for k, v := range firing {
		ch <- prometheus.MustNewConstMetric(descFiring, prometheus.GaugeValue, v, k.alert, k.site)
	}
	for k, v := range silenced {
		ch <- prometheus.MustNewConstMetric(descSilenced, prometheus.GaugeValue, v, k.alert, k.site)
	}
	for _, s := range e.senders {
		n := s.cfg.Name
		ch <- prometheus.MustNewConstMetric(descNotifications, prometheus.CounterValue, float64(s.sent.Load()), n, "sent")
		ch <- prometheus.MustNewConstMetric(descNotifications, prometheus.CounterValue, float64(s.failed.Load()), n, "failed")
		ch <- prometheus.MustNewConstMetric(descNotifications, prometheus.CounterValue, float64(s.dropped.Load()), n, "dropped")
		ch <- prometheus.MustNewConstMetric(descRetries, prometheus.CounterValue, float64(s.retries.Load()), n)
		ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(len(s.queue)), n)
	}
	ch <- prometheus.MustNewConstMetric(descEval, prometheus.GaugeValue, evalS)
	ch <- prometheus.MustNewConstMetric(descEvals, prometheus.CounterValue, float64(evals))
}
