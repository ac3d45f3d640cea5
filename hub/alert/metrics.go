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
		"Notices by notifier and result: sent, failed (gave up after retries or a permanent error, by reason: token, quota, recipient, group, bad_request, unavailable, rejected, other), dropped (queue full). reason is empty unless result is failed.",
		[]string{"notifier", "result", "reason"}, nil)
	descAttemptErrors = prometheus.NewDesc("villagehub_notification_errors_total",
		"Failed delivery attempts (retried or not), by notifier and reason.", []string{"notifier", "reason"}, nil)
	descNotifierUp = prometheus.NewDesc("villagehub_notifier_healthy",
		"1 when the notifier works (no NotifierFailing condition), 0 when failing or its token chain is broken.", []string{"notifier"}, nil)
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
	for _, d := range []*prometheus.Desc{descFiring, descSilenced, descNotifications, descAttemptErrors, descNotifierUp, descRetries, descQueue, descEval, descEvals} {
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
		for _, n := range []string{CameraDown, CameraDegraded, QRBoardSilent, FrigateDown} {
			firing[key{n, s.ID}] = 0
			silenced[key{n, s.ID}] = 0
		}
	}
	for _, n := range []string{HubDegraded, NotifierFailing} {
		firing[key{n, HubSite}] = 0
		silenced[key{n, HubSite}] = 0
	}
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
	after := e.cfg.Rules.NotifierFailing.After
	e.mu.Unlock()
	for k, v := range firing {
		ch <- prometheus.MustNewConstMetric(descFiring, prometheus.GaugeValue, v, k.alert, k.site)
	}
	for k, v := range silenced {
		ch <- prometheus.MustNewConstMetric(descSilenced, prometheus.GaugeValue, v, k.alert, k.site)
	}
	for _, s := range e.sendersNow() {
		n := s.cfg.Name
		ch <- prometheus.MustNewConstMetric(descNotifications, prometheus.CounterValue, float64(s.sent.Load()), n, "sent", "")
		ch <- prometheus.MustNewConstMetric(descNotifications, prometheus.CounterValue, float64(s.dropped.Load()), n, "dropped", "")
		for i, r := range failureReasons {
			ch <- prometheus.MustNewConstMetric(descNotifications, prometheus.CounterValue, float64(s.failed[i].Load()), n, "failed", r)
			ch <- prometheus.MustNewConstMetric(descAttemptErrors, prometheus.CounterValue, float64(s.errors[i].Load()), n, r)
		}
		up := 0.0
		if s.status(after).Healthy {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descNotifierUp, prometheus.GaugeValue, up, n)
		ch <- prometheus.MustNewConstMetric(descRetries, prometheus.CounterValue, float64(s.retries.Load()), n)
		ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(len(s.queue)), n)
	}
	ch <- prometheus.MustNewConstMetric(descEval, prometheus.GaugeValue, evalS)
	ch <- prometheus.MustNewConstMetric(descEvals, prometheus.CounterValue, float64(evals))
}
