package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

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
	log    interface{ Warn(string, ...any) }
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
		return &mqttNotifier{cfg: n, pub: d.Publisher, prefix: d.Prefix, firing: d.Firing, log: d.Log}, nil
	},
}

// run republishes the retained message of every alert firing at start: a
// restarted hub with the embedded broker (which keeps no retained
// messages across restarts) would otherwise leave a siren or LED board
// that reconnects knowing nothing, while /api/v1/alerts shows the alert.
// The message and its key are the ones first sent, so receivers that
// remember keys ignore it.
func (m *mqttNotifier) run(ctx context.Context) error {
	if !*m.cfg.Retain || m.firing == nil {
		return nil
	}
	for _, n := range m.firing() {
		if err := m.deliver(ctx, &n); err != nil {
			m.log.Warn("republishing a firing alert failed", "alert", n.Alert, "device", n.Device, "err", err)
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
