package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"villagehub/hub/event"
	"villagehub/hub/state"
	"villagehub/hub/state/statetest"
)

type broker bool

func (b broker) Connected() bool { return bool(b) }

// newState runs a state pipeline and returns a function that applies
// messages and events and waits until they are committed.
func newState(t *testing.T) (*state.State, func(topic, payload string), func(event.Event)) {
	s := statetest.Start(t, state.Config{MaxAutoCameras: 5, MaxAutoBoards: 7})
	return s.State, s.Send, s.Submit
}

func TestCollectorReadsState(t *testing.T) {
	s, send, submit := newState(t)
	send("village/s1/camera/gate/motion", "ON")
	send("village/s1/camera/gate/status", "online")
	send("village/s1/qr/b1/scans", `{"total":5,"boot":"a"}`)
	send("village/s1/qr/b1/scans", `{"total":5,"boot":"a"}`)
	send("village/s1/qr/b1/scans", `{"total":-1}`)
	// Board health: b1 sends battery and signal with its status, b2 a
	// battery with its report, b3 neither; an out-of-range reading is
	// rejected and changes nothing.
	send("village/s1/qr/b1/status", `{"status":"online","battery":87,"rssi":-67}`)
	send("village/s1/qr/b2/scans", `{"total":1,"battery":12.5}`)
	send("village/s1/qr/b3/status", "online")
	send("village/s1/qr/b1/status", `{"status":"online","battery":120}`)
	now := time.Now()
	submit(event.Event{Type: event.Detection, Kind: event.Camera, Site: "s1", Device: "door", Source: "frigate/nvr",
		Detection: &event.DetectionInfo{ID: "1-a", Label: "person", Start: now}})
	submit(event.Event{Type: event.CameraStats, Kind: event.Camera, Site: "s1", Device: "door", Source: "frigate/nvr",
		Stats: &event.Stats{CameraFPS: 5, ProcessFPS: 4.5, SkippedFPS: 0.5, DetectionFPS: 1}})
	submit(event.Event{Type: event.Motion, Kind: event.Camera, Site: "s1", Device: "door", Source: "frigate/nvr", Active: true})
	submit(event.Event{Type: event.InputStatus, Site: "s1", Source: "frigate/nvr", Online: false})

	m, err := New(Config{State: s, Broker: broker(true), Latency: NewLatency(), ProbeDuration: NewProbeDuration()})
	if err != nil {
		t.Fatal(err)
	}
	want := `
# HELP villagehub_camera_detections_total Object detections (Frigate events) counted once per event id, per camera and label.
# TYPE villagehub_camera_detections_total counter
villagehub_camera_detections_total{camera="door",label="person",site="s1"} 1
# HELP villagehub_camera_motion_active 1 while a camera reports motion.
# TYPE villagehub_camera_motion_active gauge
villagehub_camera_motion_active{camera="gate",site="s1"} 1
# HELP villagehub_camera_motion_events_total Motion events started, per camera (a repeated ON while active is not a new event).
# TYPE villagehub_camera_motion_events_total counter
villagehub_camera_motion_events_total{camera="door",site="s1"} 1
villagehub_camera_motion_events_total{camera="gate",site="s1"} 1
# HELP villagehub_frigate_process_fps Frames per second Frigate processes for the camera (process_fps).
# TYPE villagehub_frigate_process_fps gauge
villagehub_frigate_process_fps{camera="door",site="s1"} 4.5
# HELP villagehub_input_online 1 if the input (a Frigate: frigate/<name>) last said it is online, 0 if offline or stopped; absent until it says.
# TYPE villagehub_input_online gauge
villagehub_input_online{input="frigate/nvr",site="s1"} 0
# HELP villagehub_device_online 1 if the device's last MQTT status was online, 0 if offline; absent until it reports one.
# TYPE villagehub_device_online gauge
villagehub_device_online{device="b1",kind="board",site="s1"} 1
villagehub_device_online{device="b3",kind="board",site="s1"} 1
villagehub_device_online{device="gate",kind="camera",site="s1"} 1
# HELP villagehub_board_battery_percent The battery level a QR board last reported (percent); absent for boards that never sent one.
# TYPE villagehub_board_battery_percent gauge
villagehub_board_battery_percent{board="b1",site="s1"} 87
villagehub_board_battery_percent{board="b2",site="s1"} 12.5
# HELP villagehub_board_rssi_dbm The signal strength a QR board last reported (dBm, nearer 0 is stronger); absent for boards that never sent one.
# TYPE villagehub_board_rssi_dbm gauge
villagehub_board_rssi_dbm{board="b1",site="s1"} -67
# HELP villagehub_qr_scans_total QR scans counted per board, from board reports and printed codes.
# TYPE villagehub_qr_scans_total counter
villagehub_qr_scans_total{board="b1",site="s1"} 5
villagehub_qr_scans_total{board="b2",site="s1"} 1
villagehub_qr_scans_total{board="b3",site="s1"} 0
# HELP villagehub_mqtt_rejected_total Rejected device MQTT messages by kind and reason.
# TYPE villagehub_mqtt_rejected_total counter
villagehub_mqtt_rejected_total{kind="board_status",reason="bad_value"} 1
villagehub_mqtt_rejected_total{kind="qr_scans",reason="negative_total"} 1
# HELP villagehub_devices Devices known to the hub by kind and origin (configured, or auto-registered from MQTT).
# TYPE villagehub_devices gauge
villagehub_devices{kind="board",origin="auto"} 3
villagehub_devices{kind="board",origin="configured"} 0
villagehub_devices{kind="camera",origin="auto"} 2
villagehub_devices{kind="camera",origin="configured"} 0
# HELP villagehub_auto_register_limit Most devices of a kind that may be auto-registered.
# TYPE villagehub_auto_register_limit gauge
villagehub_auto_register_limit{kind="board"} 7
villagehub_auto_register_limit{kind="camera"} 5
# HELP villagehub_broker_connected 1 if the hub is connected to its MQTT broker (always 1 with the embedded broker).
# TYPE villagehub_broker_connected gauge
villagehub_broker_connected 1
`
	names := []string{"villagehub_camera_detections_total", "villagehub_camera_motion_active", "villagehub_camera_motion_events_total",
		"villagehub_frigate_process_fps", "villagehub_input_online", "villagehub_device_online", "villagehub_qr_scans_total",
		"villagehub_board_battery_percent", "villagehub_board_rssi_dbm",
		"villagehub_mqtt_rejected_total", "villagehub_devices", "villagehub_auto_register_limit", "villagehub_broker_connected"}
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	// Every message kind and result has a series, zero or not.
	if n, err := testutil.GatherAndCount(m.Registry, "villagehub_mqtt_messages_total"); err != nil || n != len(event.MsgKinds())*len(state.Results()) {
		t.Fatalf("villagehub_mqtt_messages_total: %d series (%v), want %d", n, err, len(event.MsgKinds())*len(state.Results()))
	}
	if problems, err := testutil.GatherAndLint(m.Registry); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}
