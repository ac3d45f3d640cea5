// Package ingest is the hub's MQTT contract and its pipeline inbox: the
// Decoder parses the contract's topics and decodes and validates their
// payloads into typed events (the "mqtt" input, registered in
// hub/input/mqtt), and the Queue carries messages and the hub's own typed
// traffic between the MQTT network loops and hub/state with back-pressure.
package ingest

import (
	"bytes"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"villagehub/hub/event"
)

// Defaults from the contract.
const (
	DefaultPrefix     = "village"
	DefaultMaxPayload = 4096
	DefaultMaxFuture  = 24 * time.Hour
	// maxBootLen and maxZoneLen bound free-text fields so one device cannot
	// make the hub keep large strings.
	maxBootLen = 64
	maxZoneLen = 64
)

// minTS is the earliest payload timestamp taken at face value. Devices
// without a real-time clock report 1970; such a ts is treated as missing
// (time received) rather than rejecting the message and losing its scans.
var minTS = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// DecoderConfig configures a Decoder.
type DecoderConfig struct {
	// Prefix is the topic prefix, "village" by default.
	Prefix string
	// MaxPayload is the largest accepted payload in bytes (4 KiB default).
	MaxPayload int
	// MaxFuture is how far in the future a payload ts may be (24 h default).
	MaxFuture time.Duration
}

// Decoder decodes messages. It reuses its JSON parser, so it is not safe for
// concurrent use: each goroutine that decodes has its own.
type Decoder struct {
	prefix     string // with trailing slash
	maxPayload int
	maxFuture  time.Duration
	p          fastjson.Parser
}

// NewDecoder returns a Decoder with defaults filled in.
func NewDecoder(cfg DecoderConfig) *Decoder {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	if cfg.MaxFuture <= 0 {
		cfg.MaxFuture = DefaultMaxFuture
	}
	return &Decoder{
		prefix:     strings.TrimSuffix(cfg.Prefix, "/") + "/",
		maxPayload: cfg.MaxPayload,
		maxFuture:  cfg.MaxFuture,
	}
}

// ParseTopic splits a device topic into its parts. It does not allocate:
// site and device are substrings of topic.
func ParseTopic(prefix, topic string) (kind event.MsgKind, site, device string, r event.Reason) {
	rest, ok := strings.CutPrefix(topic, prefix)
	if !ok {
		return event.KindUnknown, "", "", event.BadTopic
	}
	// rest = <site>/<camera|qr>/<id>/<leaf>
	var parts [4]string
	n := 0
	for n < 4 {
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			parts[n] = rest
			n++
			rest = ""
			break
		}
		if n == 3 {
			return event.KindUnknown, "", "", event.BadTopic // too many levels
		}
		parts[n] = rest[:i]
		rest = rest[i+1:]
		n++
	}
	if n != 4 || rest != "" {
		return event.KindUnknown, "", "", event.BadTopic
	}
	switch parts[1] + "/" + parts[3] {
	case "camera/motion":
		kind = event.KindMotion
	case "camera/status":
		kind = event.KindCameraStatus
	case "qr/scans":
		kind = event.KindQRScans
	case "qr/status":
		kind = event.KindBoardStatus
	default:
		return event.KindUnknown, "", "", event.BadTopic
	}
	if !event.ValidID(parts[0]) || !event.ValidID(parts[2]) {
		return kind, "", "", event.BadID
	}
	return kind, parts[0], parts[2], event.OK
}

// Name names the input.
func (d *Decoder) Name() string { return "mqtt" }

// Filters are the contract's two device subtrees; topics of the wrong
// shape beneath them still arrive and are counted as rejected.
func (d *Decoder) Filters() []string {
	return []string{d.prefix + "+/camera/+/+", d.prefix + "+/qr/+/+"}
}

// Match says whether a topic published on the embedded broker is a device
// topic of the contract: anything under the prefix except the hub's own
// publications (<prefix>/_hub/..., <prefix>/<site>/alerts/...), so that a
// device topic of the wrong shape is counted as rejected, not ignored.
func (d *Decoder) Match(topic string) bool {
	rest, ok := strings.CutPrefix(topic, d.prefix)
	return ok && !strings.HasPrefix(rest, "_hub/") && !strings.Contains(rest, "/alerts/")
}

// Decode appends the event one message carries to evs (hub/state's
// Decoder), or says why the message is rejected.
func (d *Decoder) Decode(topic string, payload []byte, received time.Time, evs []event.Event) ([]event.Event, event.MsgKind, event.Reason) {
	ev, kind, r := d.DecodeOne(topic, payload, received)
	if r == event.OK {
		evs = append(evs, ev)
	}
	return evs, kind, r
}

// DecodeOne turns one message into an event, or says why it is rejected.
// The returned event's Site, Device and BootBytes point into topic,
// payload and the decoder's parser: they are valid until the next call.
func (d *Decoder) DecodeOne(topic string, payload []byte, received time.Time) (ev event.Event, kind event.MsgKind, r event.Reason) {
	kind, site, device, r := ParseTopic(d.prefix, topic)
	if r != event.OK {
		return ev, kind, r
	}
	if len(payload) > d.maxPayload {
		return ev, kind, event.TooLarge
	}
	if !utf8.Valid(payload) {
		return ev, kind, event.BadUTF8
	}
	ev.Site, ev.Device = site, device
	ev.Received, ev.Time = received, received
	switch kind {
	case event.KindMotion:
		ev.Type, ev.Kind = event.Motion, event.Camera
		r = d.motion(&ev, payload)
	case event.KindCameraStatus:
		ev.Type, ev.Kind = event.Status, event.Camera
		r = status(&ev, payload)
	case event.KindQRScans:
		ev.Type, ev.Kind = event.QRTotal, event.Board
		r = d.qrTotal(&ev, payload)
	case event.KindBoardStatus:
		ev.Type, ev.Kind = event.Status, event.Board
		r = d.boardStatus(&ev, payload)
	}
	return ev, kind, r
}

func status(ev *event.Event, payload []byte) event.Reason {
	switch string(bytes.TrimSpace(payload)) {
	case "online":
		ev.Online = true
	case "offline":
		ev.Online = false
	default:
		return event.BadValue
	}
	return event.OK
}

// Bounds of a board's health readings (README, "MQTT contract").
const (
	minBattery, maxBattery = 0, 100
	minRSSI, maxRSSI       = -150, 0
)

// boardStatus reads a board's status: online or offline as text, or a JSON
// object {"status":"online","battery":87,"rssi":-67} for a board that
// reports its health with it.
func (d *Decoder) boardStatus(ev *event.Event, payload []byte) event.Reason {
	p := bytes.TrimSpace(payload)
	if len(p) == 0 || p[0] != '{' {
		return status(ev, payload)
	}
	o, st, r := d.required(p, "status")
	if r != event.OK {
		return r
	}
	if st.Type() != fastjson.TypeString {
		return event.BadType
	}
	sb, _ := st.StringBytes()
	if r := status(ev, sb); r != event.OK {
		return r
	}
	return health(ev, o)
}

// health reads the optional battery and rssi of a board's payload: a
// number in range, or null for none.
func health(ev *event.Event, o *fastjson.Object) event.Reason {
	var r event.Reason
	if ev.Battery, ev.HasBattery, r = bounded(o.Get("battery"), minBattery, maxBattery); r != event.OK {
		return r
	}
	ev.RSSI, ev.HasRSSI, r = bounded(o.Get("rssi"), minRSSI, maxRSSI)
	return r
}

func bounded(v *fastjson.Value, lo, hi float64) (float64, bool, event.Reason) {
	if v == nil || v.Type() == fastjson.TypeNull {
		return 0, false, event.OK
	}
	if v.Type() != fastjson.TypeNumber {
		return 0, false, event.BadType
	}
	f, err := v.Float64()
	if err != nil || math.IsNaN(f) || f < lo || f > hi {
		return 0, false, event.BadValue
	}
	return f, true, event.OK
}

func (d *Decoder) motion(ev *event.Event, payload []byte) event.Reason {
	p := bytes.TrimSpace(payload)
	switch string(p) {
	case "ON":
		ev.Active = true
		return event.OK
	case "OFF":
		ev.Active = false
		return event.OK
	}
	if len(p) == 0 || p[0] != '{' {
		return event.BadValue
	}
	o, a, r := d.required(p, "active")
	if r != event.OK {
		return r
	}
	switch a.Type() {
	case fastjson.TypeTrue:
		ev.Active = true
	case fastjson.TypeFalse:
		ev.Active = false
	default:
		return event.BadType
	}
	if z := o.Get("zone"); z != nil {
		if z.Type() != fastjson.TypeString {
			if z.Type() != fastjson.TypeNull {
				return event.BadType
			}
		} else {
			zb, _ := z.StringBytes()
			if len(zb) > maxZoneLen {
				return event.BadValue
			}
			ev.Zone = string(zb)
		}
	}
	if s := o.Get("score"); s != nil && s.Type() != fastjson.TypeNull {
		if s.Type() != fastjson.TypeNumber {
			return event.BadType
		}
		f, err := s.Float64()
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return event.BadValue
		}
		ev.Score = f
	}
	return d.ts(ev, o.Get("ts"))
}

func (d *Decoder) qrTotal(ev *event.Event, payload []byte) event.Reason {
	o, t, r := d.required(payload, "total")
	if r != event.OK {
		return r
	}
	if t.Type() != fastjson.TypeNumber {
		return event.BadType
	}
	n, err := t.Int64()
	if err != nil {
		// A fraction or a number too large for int64.
		return event.BadType
	}
	if n < 0 {
		return event.NegativeTotal
	}
	ev.Total = n
	if b := o.Get("boot"); b != nil {
		switch b.Type() {
		case fastjson.TypeString:
			bb, _ := b.StringBytes()
			if len(bb) > maxBootLen {
				return event.BadValue
			}
			ev.BootBytes = bb
		case fastjson.TypeNumber:
			// Some firmware sends a numeric boot counter; its text is
			// as good an identifier as a string.
			ev.BootBytes = b.MarshalTo(nil)
		case fastjson.TypeNull:
		default:
			return event.BadType
		}
	}
	if r := health(ev, o); r != event.OK {
		return r
	}
	return d.ts(ev, o.Get("ts"))
}

// required parses payload as a JSON object and finds its required key:
// not JSON is bad_json, not an object bad_type, no such key bad_value.
func (d *Decoder) required(payload []byte, key string) (*fastjson.Object, *fastjson.Value, event.Reason) {
	v, err := d.p.ParseBytes(payload)
	if err != nil {
		return nil, nil, event.BadJSON
	}
	o, err := v.Object()
	if err != nil {
		return nil, nil, event.BadType
	}
	f := o.Get(key)
	if f == nil {
		return nil, nil, event.BadValue
	}
	return o, f, event.OK
}

// ts reads a payload timestamp: RFC 3339 text or unix milliseconds.
func (d *Decoder) ts(ev *event.Event, v *fastjson.Value) event.Reason {
	if v == nil {
		return event.OK
	}
	var t time.Time
	switch v.Type() {
	case fastjson.TypeNull:
		return event.OK
	case fastjson.TypeString:
		sb, _ := v.StringBytes()
		var err error
		t, err = time.Parse(time.RFC3339Nano, string(sb))
		if err != nil {
			return event.BadTS
		}
	case fastjson.TypeNumber:
		ms, err := v.Int64()
		if err != nil {
			f, ferr := v.Float64()
			if ferr != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e15 {
				return event.BadTS
			}
			ms = int64(f)
		}
		if ms < -1e15 || ms > 1e15 {
			return event.BadTS
		}
		t = time.UnixMilli(ms)
	default:
		return event.BadType
	}
	if t.After(ev.Received.Add(d.maxFuture)) {
		return event.FutureTS
	}
	if t.Before(minTS) {
		return event.OK // a device without a clock; keep the time received
	}
	ev.Time, ev.HasTS = t, true
	return event.OK
}
