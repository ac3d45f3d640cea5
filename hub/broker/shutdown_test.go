package broker

import (
	"bytes"
	"errors"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"villagehub/hub/testenv"
)

// lockedBuf collects a process's output while it runs.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestOfflineStatusReachesSubscribers: when the hub stops, its retained
// "offline" status reaches every subscriber before the connection closes:
// a paho client at QoS 1 and at QoS 0, and mosquitto_sub over MQTT 3.1.1
// (which must not get a DISCONNECT, forbidden from a server in 3.1.1 and
// reported as "Protocol error") and over MQTT 5. Issue 17, item 11: with
// the embedded broker subscribers got "online", then a protocol error.
func TestOfflineStatusReachesSubscribers(t *testing.T) {
	const topic = "village/_hub/hub1/status"
	r := startBroker(t)
	sub1 := subscribe(t, r.url, topic)
	sub0 := make(chan string, 4)
	c0 := testenv.MQTT(t, r.url, "sub-qos0")
	if tok := c0.Subscribe("village/#", 0, func(_ paho.Client, m paho.Message) {
		if m.Topic() == topic {
			sub0 <- string(m.Payload())
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	tool, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		t.Fatalf("mosquitto_sub not found (apt-get install -y mosquitto-clients): %v", err)
	}
	host, port, _ := strings.Cut(r.b.Addr(), ":")
	type proc struct {
		cmd            *exec.Cmd
		stdout, stderr *lockedBuf
		done           chan error
	}
	var procs []*proc
	for _, v := range []string{"mqttv311", "mqttv5"} {
		p := &proc{stdout: &lockedBuf{}, stderr: &lockedBuf{}, done: make(chan error, 1)}
		p.cmd = exec.Command(tool, "-h", host, "-p", port, "-t", topic, "-q", "1", "-V", v, "-i", "shutdown-"+v)
		p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.done <- p.cmd.Wait() }()
		t.Cleanup(func() { p.cmd.Process.Kill(); <-p.done })
		procs = append(procs, p)
		testenv.WaitFor(t, 10*time.Second, "mosquitto_sub "+v+" got online", func() bool { return p.stdout.String() == "online\n" })
	}
	if m := receive(t, sub1, "online status"); string(m.Payload()) != "online" {
		t.Fatalf("status %q", m.Payload())
	}
	select {
	case s := <-sub0:
		if s != "online" {
			t.Fatalf("QoS 0 status %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("QoS 0 subscriber: no online status")
	}

	r.stop()

	if m := receive(t, sub1, "offline status at QoS 1"); string(m.Payload()) != "offline" {
		t.Errorf("QoS 1 subscriber got %q after shutdown, want offline", m.Payload())
	}
	select {
	case s := <-sub0:
		if s != "offline" {
			t.Errorf("QoS 0 subscriber got %q after shutdown, want offline", s)
		}
	case <-time.After(10 * time.Second):
		t.Error("QoS 0 subscriber: no offline status")
	}
	for i, v := range []string{"mqttv311", "mqttv5"} {
		p := procs[i]
		testenv.WaitFor(t, 10*time.Second, "mosquitto_sub "+v+" got offline", func() bool { return p.stdout.String() == "online\noffline\n" })
		if e := p.stderr.String(); strings.Contains(e, "rotocol error") {
			t.Errorf("mosquitto_sub %s: %s", v, e)
		}
	}
	// Clients cut off by the shutdown are expected: no warning for them,
	// and no record without a message.
	if l := r.log.String(); strings.Contains(l, `msg=""`) || strings.Contains(l, "shutting down") || strings.Contains(l, "not every subscriber") {
		t.Errorf("broker log at shutdown:\n%s", l)
	}
}

// TestMochiRecordsGetAMessage: mochi logs a connection that ended with an
// error as Warn("", "error", err); the hub's log names what happened.
func TestMochiRecordsGetAMessage(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(&levelFloor{h: slog.NewTextHandler(&buf, nil), min: slog.LevelWarn})
	log.Warn("", "error", packets.ErrNotAuthorized)
	log.Warn("", "error", errors.New("read tcp: connection reset by peer"))
	log.Warn("", "error", packets.ErrServerShuttingDown)
	out := buf.String()
	if strings.Contains(out, `msg=""`) || strings.Contains(out, "shutting down") ||
		!strings.Contains(out, `msg="MQTT connection refused or closed by the broker"`) || !strings.Contains(out, `msg="MQTT connection ended with an error"`) {
		t.Fatalf("log:\n%s", out)
	}
}
