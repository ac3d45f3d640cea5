package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// alertmanager pushes alerts to Alertmanager's /api/v2/alerts, the way
// Prometheus does: firing alerts carry an endsAt a few resend intervals
// ahead and are pushed again every resend interval, so Alertmanager keeps
// them open while the hub does and closes them if the hub goes away;
// resolved alerts carry their real endsAt.
type alertmanager struct {
	cfg    *Notifier
	client *http.Client
	firing func() []Notification
	now    func() time.Time
	log    *slog.Logger
}

var alertmanagerType = notifierType{
	provision: func(n *Notifier, bad func(msg string, path ...any)) {
		n.needURL(bad)
		if n.ResendInterval == 0 {
			n.ResendInterval = Duration(time.Minute)
		} else if n.ResendInterval < Duration(time.Second) {
			bad("must be at least 1s", "resend_interval")
		}
	},
	build: func(n *Notifier, d notifierDeps) (deliverer, error) {
		return &alertmanager{cfg: n, client: d.HTTP, firing: d.Firing, now: d.Now, log: d.Log}, nil
	},
}

// amAlert is Alertmanager's postableAlert.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// toAM builds the postable alert at send time: a firing alert's endsAt
// counts from now, not from when the notice was made, so a notice
// delivered late (Alertmanager was down) does not arrive already ended.
func (am *alertmanager) toAM(n *Notification, now time.Time) amAlert {
	a := amAlert{
		Labels: map[string]string{
			"alertname": n.Alert, "site": n.Site, "device": n.Device, "severity": n.Severity,
		},
		Annotations: map[string]string{
			"summary":     title(n, en) + ": " + n.Place(),
			"summary_vi":  title(n, vi) + ": " + n.Place(),
			"description": describe(n),
			"reason":      n.Reason,
		},
		StartsAt:     n.Since,
		GeneratorURL: n.URL,
	}
	if n.HubID != "" {
		a.Labels["hub"] = n.HubID
	}
	if n.DeviceName != "" {
		a.Annotations["device_name"] = n.DeviceName
	}
	if n.Flapping {
		a.Annotations["flapping"] = "true"
	}
	if n.State == KindResolved && n.ResolvedAt != nil {
		a.EndsAt = *n.ResolvedAt
	} else {
		a.EndsAt = now.Add(4 * time.Duration(am.cfg.ResendInterval))
	}
	return a
}

func (am *alertmanager) deliver(ctx context.Context, n *Notification) error {
	return am.post(ctx, []amAlert{am.toAM(n, am.now())})
}

func (am *alertmanager) post(ctx context.Context, as []amAlert) error {
	body, err := json.Marshal(as)
	if err != nil {
		return backoff.Permanent(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(am.cfg.url, "/")+"/api/v2/alerts", bytes.NewReader(body))
	if err != nil {
		return backoff.Permanent(errors.New("building the request failed (check the url)"))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "villagehub-alert")
	_, err = doHTTP(ctx, am.client, req)
	return err
}

// run re-pushes every firing alert each resend interval (best effort: a
// failed re-push waits for the next one).
func (am *alertmanager) run(ctx context.Context) error {
	t := time.NewTicker(time.Duration(am.cfg.ResendInterval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		ns := am.firing()
		if len(ns) == 0 {
			continue
		}
		as := make([]amAlert, len(ns))
		for i := range ns {
			as[i] = am.toAM(&ns[i], am.now())
		}
		actx, cancel := context.WithTimeout(ctx, time.Duration(am.cfg.Timeout))
		err := am.post(actx, as)
		cancel()
		if err != nil && ctx.Err() == nil {
			am.log.Warn("re-pushing firing alerts to Alertmanager failed", "alerts", len(as), "err", err)
		}
	}
}

// describe is the reason in words, then the detail unless it only says
// the same again ("connection refused. connection refused").
func describe(n *Notification) string {
	r := reasonText(n.Reason, en)
	d := strings.TrimSpace(n.Detail)
	if d == "" || strings.Contains(strings.ToLower(d), strings.ToLower(r)) {
		if d != "" {
			return d
		}
		return r
	}
	return r + ". " + d
}
