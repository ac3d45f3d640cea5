// Package payload holds the device side of the MQTT contract: topic names
// and payload types, as a camera, a QR board or a bridge publishes them.
package payload

import (
	"encoding/json"
	"time"
)

// DefaultPrefix is the default first topic level.
const DefaultPrefix = "village"

// Status payloads (retained; a device sets "offline" as its last will).
const (
	Online  = "online"
	Offline = "offline"
)

// Motion payloads as Frigate publishes them.
const (
	MotionOn  = "ON"
	MotionOff = "OFF"
)

func MotionTopic(prefix, site, camera string) string {
	return prefix + "/" + site + "/camera/" + camera + "/motion"
}

func CameraStatusTopic(prefix, site, camera string) string {
	return prefix + "/" + site + "/camera/" + camera + "/status"
}

func QRScansTopic(prefix, site, board string) string {
	return prefix + "/" + site + "/qr/" + board + "/scans"
}

func BoardStatusTopic(prefix, site, board string) string {
	return prefix + "/" + site + "/qr/" + board + "/status"
}

func AlertTopic(prefix, site, device string) string {
	return prefix + "/" + site + "/alerts/" + device
}

// Motion is the JSON form of a motion message.
type Motion struct {
	Active bool    `json:"active"`
	TS     string  `json:"ts,omitempty"` // RFC 3339; unix milliseconds also accepted by the hub
	Zone   string  `json:"zone,omitempty"`
	Score  float64 `json:"score,omitempty"`
}

// QRScans is a QR board's report: its cumulative scan count since Boot.
type QRScans struct {
	Total int64  `json:"total"`
	Boot  string `json:"boot,omitempty"`
	// TS is unix milliseconds (RFC 3339 text is also accepted).
	TS int64 `json:"ts,omitempty"`
}

// Alert is what the hub publishes on <prefix>/<site>/alerts/<device>.
type Alert struct {
	Alert  string    `json:"alert"`
	State  string    `json:"state"` // firing, resolved
	Site   string    `json:"site"`
	Device string    `json:"device"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
}

// Marshal encodes v; payload types never fail to encode.
func Marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
