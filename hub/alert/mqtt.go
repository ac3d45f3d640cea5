package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"villagehub/devices/payload"
)

// mqttNotifier publishes the contract's alert message on
// <prefix>/<site>/alerts/<device> (retained by default, so a siren or LED
// board that reconnects learns the current state).
type mqttNotifier struct {
	cfg    *Notifier
	pub    Publisher
	prefix string
	firing func() []Notification
	// atStart: what was firing when the notifier was built (at the
	// engine's start: the alerts restored from disk), for run.
	atStart []Notification
	log     interface{ Warn(string, ...any) }
}

var mqttType = notifierType{
	provision: func(n *Notifier, bad func(msg string, path ...any)) {
		if n.QoS == nil {
			q := 1
			n.QoS = &q
		} else if *n.QoS < 0 || *n.QoS > 2 {
			bad("must be 0, 1 or 2", "qos")
		}
		if n.Retain == nil {
			t := true
			n.Retain = &t
		}
	},
	build: func(n *Notifier, d notifierDeps) (deliverer, error) {
		if d.Publisher == nil {
			return nil, errors.New("an mqtt notifier needs the hub's MQTT publisher")
		}
		m := &mqttNotifier{cfg: n, pub: d.Publisher, prefix: d.Prefix, firing: d.Firing, log: d.Log}
		if d.Firing != nil {
			m.atStart = d.Firing()
		}
		return m, nil
	},
}

// run republishes the retained message of every alert firing at start: a
// restarted hub with the embedded broker (which keeps no retained
// messages across restarts) would otherwise leave a siren or LED board
// that reconnects knowing nothing, while /api/v1/alerts shows the alert.
// The message and its key are the ones first sent, so receivers that
// remember keys ignore it. Only what was firing when the notifier was
// built and still fires: an alert that fired since went out the normal
// way (republishing it would send it twice), and one resolved since must
// not be put back as firing.
func (m *mqttNotifier) run(ctx context.Context) error {
	if !*m.cfg.Retain || m.firing == nil || len(m.atStart) == 0 {
		return nil
	}
	now := map[string]bool{}
	for _, n := range m.firing() {
		now[n.Key] = true
	}
	var pending []Notification
	for _, n := range m.atStart {
		if now[n.Key] {
			pending = append(pending, n)
		}
	}
	// The broker may not be up yet when the engine starts: try for a
	// minute, a second apart.
	for try := 0; len(pending) > 0; try++ {
		var left []Notification
		for _, n := range pending {
			if err := m.deliver(ctx, &n); err != nil {
				left = append(left, n)
			}
		}
		pending = left
		if len(pending) == 0 {
			break
		}
		if try == 60 {
			m.log.Warn("republishing firing alerts failed", "alerts", len(pending))
			break
		}
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	return nil
}

// mqttAlert is the contract's payload plus the idempotency key.
type mqttAlert struct {
	payload.Alert
	Key string `json:"key"`
}

func (m *mqttNotifier) deliver(ctx context.Context, n *Notification) error {
	b, err := json.Marshal(mqttAlert{
		Alert: payload.Alert{Alert: n.Alert, State: n.State, Site: n.Site, Device: n.Device, Since: n.Since, Reason: n.Reason},
		Key:   n.Key,
	})
	if err != nil {
		return err
	}
	// Publish does not take a context; the broker side bounds it.
	if err := m.pub.Publish(payload.AlertTopic(m.prefix, n.Site, n.Device), b, *m.cfg.Retain, byte(*m.cfg.QoS)); err != nil {
		return fmt.Errorf("publishing: %w", err)
	}
	return ctx.Err()
}
