package alert

import (
	"context"
	"encoding/json"
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
