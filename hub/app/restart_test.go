package app_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"villagehub/devices/sim"
	"villagehub/hub/state"
	"villagehub/hub/testenv"
)

// hubProcess runs the villagehub binary on a data directory.
type hubProcess struct {
	t       *testing.T
	bin     string
	cfgPath string
	http    string
	broker  string
	// mqttURL is where devices publish: Mosquitto, or the embedded broker.
	mqttURL string
	p       *testenv.Process
}

func newHubProcess(t *testing.T, mqttURL string) *hubProcess {
	dir := t.TempDir()
	h := &hubProcess{t: t, bin: testenv.Build(t, "./cmd/villagehub"), http: testenv.FreeAddr(t), broker: testenv.FreeAddr(t), mqttURL: mqttURL}
	if mqttURL == "" {
		h.mqttURL = "tcp://" + h.broker
	}
	yaml := fmt.Sprintf("hub_id: restart\ndata_dir: %s\nhttp: { addr: %s }\nbroker: { addr: %s, allow_anonymous: true, publish_rate: 1000000, publish_burst: 1000000 }\nsites: [{ id: s1, name: \"Thôn 1\" }]\n",
		filepath.Join(dir, "data"), h.http, h.broker)
	if mqttURL != "" {
		yaml += fmt.Sprintf("mqtt: { url: %s, client_id: villagehub-restart-test }\n", mqttURL)
	}
	h.cfgPath = filepath.Join(dir, "villagehub.yaml")
	if err := os.WriteFile(h.cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *hubProcess) start() {
	h.p = testenv.StartProcess(h.t, h.bin, nil, "--config", h.cfgPath, "--log-level", "warn")
	testenv.WaitHTTP(h.t, "http://"+h.http+"/readyz", 20*time.Second, h.p)
}

var settleSeq atomic.Int64

// settle waits until the hub has applied everything devices sent before
// it: it publishes a QoS 1 report for a new marker board and waits until
// the hub counts it. The broker delivers the hub's session in order (late
// redeliveries included) and the hub applies in order, so whatever was
// sent before the marker has been counted, or lost, by then.
func (h *hubProcess) settle() {
	h.t.Helper()
	id := fmt.Sprintf("settle-%d", settleSeq.Add(1))
	c := testenv.MQTT(h.t, h.mqttURL, id)
	testenv.Publish(h.t, c, "village/s1/qr/"+id+"/scans", 1, false, `{"total":1,"boot":"s"}`)
	testenv.WaitFor(h.t, 90*time.Second, "the hub to apply everything sent before "+id, func() bool {
		return h.boards()[sim.Device{Site: "s1", ID: id}] == 1
	})
	c.Disconnect(100)
}

// waitPublished waits until the fleet has published n more reports: the
// tests move on by what the devices did, not by time, so a busy machine
// slows them down instead of failing them.
func waitPublished(t *testing.T, fleet *sim.Fleet, n uint64, phase string) uint64 {
	t.Helper()
	target := fleet.Stats().Published + n
	testenv.WaitFor(t, 90*time.Second, fmt.Sprintf("%d more reports (%s)", n, phase), func() bool {
		return fleet.Stats().Published >= target
	})
	return fleet.Stats().Published
}

func (h *hubProcess) boards() map[sim.Device]int64 {
	var bs struct {
		Boards []state.BoardView `json:"qr_boards"`
	}
	getJSON(h.t, "http://"+h.http+"/api/v1/qr-boards", &bs)
	out := map[sim.Device]int64{}
	for _, b := range bs.Boards {
		out[sim.Device{Site: b.Site, ID: b.ID}] = int64(b.ScansTotal)
	}
	return out
}

// TestKillRestartMosquitto: the hub is killed with SIGKILL mid-stream and
// restarted on the same data directory while devices keep publishing QoS 1
// reports (with reboots and redeliveries) through Mosquitto. Every board's
// count must end exactly at what the devices published: nothing lost
// (the persistent session delivers what came while the hub was down) and
// nothing counted twice (idempotent counts and durable state).
func TestKillRestartMosquitto(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	h := newHubProcess(t, mq.URL())
	h.start()

	fleet, err := sim.NewFleet(sim.Config{
		Broker: mq.URL(), Boards: sim.Devices("board", 40, "s1"), Cameras: sim.Devices("cam", 5, "s1"),
		Rate: 800, QoS: 1, RebootProb: 0.02, RepeatProb: 0.1, Seed: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	fleetDone := make(chan error, 1)
	go func() { fleetDone <- fleet.Run(ctx) }()

	for round := range 3 {
		before := waitPublished(t, fleet, 800, "mid-stream")
		h.p.Kill()
		t.Logf("round %d: hub killed after %d published reports", round, before)
		// Devices keep publishing into the broker's session queue.
		waitPublished(t, fleet, 400, "while the hub is down")
		h.start()
	}
	waitPublished(t, fleet, 800, "after the last restart")
	cancel()
	if err := <-fleetDone; err != nil {
		t.Fatal(err)
	}
	st := fleet.Stats()
	if st.Errors > 0 {
		t.Fatalf("%d publishes failed", st.Errors)
	}
	var want int64
	for _, n := range st.ExpectedScans {
		want += n
	}
	t.Logf("devices published %d reports; expected %d scans over %d boards", st.Published, want, len(st.ExpectedScans))
	var got map[sim.Device]int64
	testenv.WaitFor(t, 30*time.Second, "hub counts to match the devices", func() bool {
		got = h.boards()
		for d, n := range st.ExpectedScans {
			if got[d] != n {
				return false
			}
		}
		return true
	})
	// And they stay there: nothing arrives late to be counted again.
	h.settle()
	for d, n := range st.ExpectedScans {
		if g := h.boards()[d]; g != n {
			t.Errorf("board %v: hub counted %d, devices published %d", d, g, n)
		}
	}
}

// TestAckMeansDurableEmbedded: with the embedded broker, a QoS 1 message
// the device got a PUBACK for is on disk: a SIGKILL right after the PUBACK
// loses nothing.
func TestAckMeansDurableEmbedded(t *testing.T) {
	h := newHubProcess(t, "")
	h.start()
	pub := testenv.MQTT(t, "tcp://"+h.broker, "durable-board")
	for i := 1; i <= 50; i++ {
		testenv.Publish(t, pub, "village/s1/qr/durable/scans", 1, false, fmt.Sprintf(`{"total":%d,"boot":"k"}`, i))
	}
	h.p.Kill() // immediately after the 50th PUBACK
	h.start()
	if got := h.boards()[sim.Device{Site: "s1", ID: "durable"}]; got != 50 {
		t.Fatalf("after SIGKILL the hub has %d scans, want the 50 that were acknowledged", got)
	}
}

// TestHubStatusTopic: the hub's retained status is online while it runs,
// offline by its last will when it is killed, and offline by its own word
// when it stops cleanly.
func TestHubStatusTopic(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	h := newHubProcess(t, mq.URL())
	status := func() string {
		// A fresh subscriber sees the retained value.
		c := testenv.MQTT(t, mq.URL(), fmt.Sprintf("status-%d", time.Now().UnixNano()))
		got := make(chan string, 1)
		c.Subscribe("village/_hub/restart/status", 1, func(_ paho.Client, m paho.Message) {
			select {
			case got <- string(m.Payload()):
			default:
			}
		})
		select {
		case s := <-got:
			return s
		case <-time.After(2 * time.Second):
			return "(none)"
		}
	}
	h.start()
	testenv.WaitFor(t, 5*time.Second, "status online", func() bool { return status() == "online" })
	h.p.Kill()
	testenv.WaitFor(t, 5*time.Second, "last will offline", func() bool { return status() == "offline" })
	h.start()
	testenv.WaitFor(t, 5*time.Second, "status online again", func() bool { return status() == "online" })
	if err := h.p.Stop(10 * time.Second); err != nil {
		t.Fatalf("clean stop: %v\n%s", err, h.p.Output())
	}
	if s := status(); s != "offline" {
		t.Fatalf("status after a clean stop = %q", s)
	}
}
