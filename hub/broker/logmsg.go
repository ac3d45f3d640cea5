package broker

import (
	"errors"
	"log/slog"

	"github.com/mochi-mqtt/server/v2/packets"
)

// mochiMessage gives a message to mochi's records that have none: its
// listeners log every connection that ended with an error as
// Warn("", "error", err), which came out as msg="" (one per refused login,
// one per client at shutdown). keep is false for the expected ones: a
// client cut off because the hub is shutting down.
func mochiMessage(r slog.Record) (msg string, keep bool) {
	if r.Message != "" {
		return r.Message, true
	}
	var err error
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" {
			err, _ = a.Value.Any().(error)
			return false
		}
		return true
	})
	var code packets.Code
	switch {
	case err == nil:
		return "MQTT broker message", true
	case errors.Is(err, packets.ErrServerShuttingDown):
		return "", false
	case errors.As(err, &code) && code.Code >= packets.ErrUnspecifiedError.Code:
		// A CONNECT refused (bad credentials, not authorised, banned) or a
		// protocol violation: the connection was closed for it.
		return "MQTT connection refused or closed by the broker", true
	default:
		return "MQTT connection ended with an error", true
	}
}
