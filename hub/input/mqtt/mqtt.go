// Package mqtt registers the hub's own MQTT contract as an input: the
// topics under topic_prefix that cameras and QR boards publish
// (README.md, "MQTT contract"). Its decoder is hub/ingest's.
package mqtt

import (
	"time"

	"villagehub/hub/ingest"
	"villagehub/hub/input"
)

var _ input.MQTT = (*ingest.Decoder)(nil)

func init() {
	input.Register("mqtt", func(env input.Env) ([]input.Input, error) {
		c := env.Config
		return []input.Input{ingest.NewDecoder(ingest.DecoderConfig{
			Prefix:     c.TopicPrefix,
			MaxPayload: c.Limits.MaxPayloadBytes,
			MaxFuture:  time.Duration(c.Limits.MaxFuture),
		})}, nil
	})
}
