package event

// The kinds the hub knows, each declared once, here. Everything that keeps
// something per kind (the state's counters, the store's device records,
// the metrics' labels, the InfluxDB measurements) is sized from or looks up
// these tables, so adding a kind is adding a row (and the code that applies
// it), never hunting for arrays to resize.

// Kind is a kind of device.
type Kind uint8

const (
	Camera Kind = iota + 1
	Board
	// NumKinds sizes per-kind arrays (hub/state's device tables). Keep it
	// last.
	NumKinds
)

// A new device kind is a constant above and a row below, then its state
// (hub/state/<kind>.go: its device type, codec, view and rules, registered
// with registerKind), its metrics (hub/metrics) and the input that decodes
// its messages (docs/architecture.md has a worked example).

// KindInfo describes a device kind.
type KindInfo struct {
	// Name is the kind's name in labels (villagehub_device_online{kind}),
	// events and InfluxDB tags.
	Name string
	// StoreKey is the first byte of the kind's device records in the
	// store ("c/<site>/<id>"); hub/state holds their codec.
	StoreKey byte
}

var kinds = [NumKinds]KindInfo{
	Camera: {Name: "camera", StoreKey: 'c'},
	Board:  {Name: "board", StoreKey: 'b'},
}

// Info returns the kind's row of the table.
func (k Kind) Info() KindInfo {
	if k < NumKinds {
		return kinds[k]
	}
	return KindInfo{}
}

func (k Kind) String() string {
	if n := k.Info().Name; n != "" {
		return n
	}
	return "unknown"
}

// Kinds lists every device kind.
func Kinds() []Kind {
	ks := make([]Kind, 0, NumKinds-1)
	for k := Kind(1); k < NumKinds; k++ {
		ks = append(ks, k)
	}
	return ks
}

// KindByName finds the kind called name ("camera", "board").
func KindByName(name string) (Kind, bool) {
	for k := Kind(1); k < NumKinds; k++ {
		if kinds[k].Name == name {
			return k, true
		}
	}
	return 0, false
}

// KindByStoreKey finds the kind whose device records start with b.
func KindByStoreKey(b byte) (Kind, bool) {
	for k := Kind(1); k < NumKinds; k++ {
		if kinds[k].StoreKey == b {
			return k, true
		}
	}
	return 0, false
}

// InfluxDB measurements written by the hub (docs/influxdb.md has the
// schema). hub/influx builds their points.
const (
	MeasurementQRScans          = "qr_scans"
	MeasurementQRVisits         = "qr_visits"
	MeasurementCameraMotion     = "camera_motion"
	MeasurementDeviceStatus     = "device_status"
	MeasurementCameraHealth     = "camera_health"
	MeasurementCameraDetections = "camera_detections"
	MeasurementCameraStats      = "camera_stats"
	MeasurementInputStatus      = "input_status"
)

// MsgKind classifies a message an input received, for the per-kind
// message counters (villagehub_mqtt_messages_total{kind}).
type MsgKind uint8

const (
	KindUnknown MsgKind = iota
	KindMotion
	KindCameraStatus
	KindQRScans
	KindBoardStatus
	// KindDetection: an object detection (a Frigate event).
	KindDetection
	// KindCameraStats: a camera's processing figures (Frigate's stats).
	KindCameraStats
	// KindInputStatus: an input's own availability (Frigate's available).
	KindInputStatus
	// NumMsgKinds sizes per-kind arrays. Keep it last.
	NumMsgKinds
)

// MsgKindInfo describes a message kind.
type MsgKindInfo struct {
	// Label is the kind's metric label value; fixed once published.
	Label string
	// Device is the kind of device the message is about (0: none).
	Device Kind
	// Measurement is the InfluxDB measurement its changes are written to
	// ("" for none).
	Measurement string
}

var msgKinds = [NumMsgKinds]MsgKindInfo{
	KindUnknown:      {Label: "unknown"},
	KindMotion:       {Label: "motion", Device: Camera, Measurement: MeasurementCameraMotion},
	KindCameraStatus: {Label: "camera_status", Device: Camera, Measurement: MeasurementDeviceStatus},
	KindQRScans:      {Label: "qr_scans", Device: Board, Measurement: MeasurementQRScans},
	KindBoardStatus:  {Label: "board_status", Device: Board, Measurement: MeasurementDeviceStatus},
	KindDetection:    {Label: "detection", Device: Camera, Measurement: MeasurementCameraDetections},
	KindCameraStats:  {Label: "camera_stats", Device: Camera},
	KindInputStatus:  {Label: "input_status", Measurement: MeasurementInputStatus},
}

// Info returns the message kind's row of the table.
func (k MsgKind) Info() MsgKindInfo {
	if k < NumMsgKinds {
		return msgKinds[k]
	}
	return msgKinds[KindUnknown]
}

func (k MsgKind) String() string { return k.Info().Label }

// MsgKinds lists every message kind, KindUnknown first.
func MsgKinds() []MsgKind {
	ks := make([]MsgKind, 0, NumMsgKinds)
	for k := MsgKind(0); k < NumMsgKinds; k++ {
		ks = append(ks, k)
	}
	return ks
}
