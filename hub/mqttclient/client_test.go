package mqttclient

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"villagehub/hub/ingest"
	"villagehub/hub/testenv"
)

// hubClient is a Client running against a broker until stop.
type hubClient struct {
	*Client
	queue *ingest.Queue
	stop  func()
}

func startClient(t *testing.T, brokerURL, clientID string) *hubClient {
	t.Helper()
	q := ingest.NewQueue(64)
	c, err := New(Config{URL: brokerURL, ClientID: clientID, KeepAlive: 5 * time.Second, Prefix: "village", HubID: "hub1",
		Queue: q, Logger: testenv.NewLog(t).Logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	hc := &hubClient{Client: c, queue: q}
	hc.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	t.Cleanup(hc.stop)
	testenv.WaitFor(t, 20*time.Second, "client connected and subscribed", c.Connected)
	return hc
}

func (hc *hubClient) pop(t *testing.T) ingest.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ms, err := hc.queue.Pop(ctx, nil, 1)
	if err != nil || len(ms) != 1 {
		t.Fatalf("no message queued: %v", err)
	}
	return ms[0]
}

func retained(t *testing.T, brokerURL, topic string) string {
	t.Helper()
	got := make(chan string, 1)
	c := testenv.MQTT(t, brokerURL, "check-"+strings.ReplaceAll(topic, "/", "-"))
	c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		select {
		case got <- string(m.Payload()):
		default:
		}
	})
	select {
	case s := <-got:
		c.Disconnect(100)
		return s
	case <-time.After(10 * time.Second):
		t.Fatalf("no retained message on %s", topic)
		return ""
	}
}

// TestStatusAndIngest: the hub's retained status goes online when it
// connects and offline when it stops; device messages arrive in the queue
// with their QoS, QoS 1 ones with an Ack; the hub's own topics are not
// subscribed.
func TestStatusAndIngest(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	hc := startClient(t, m.URL(), "villagehub-hub1")
	testenv.WaitFor(t, 10*time.Second, "online status", func() bool {
		return retained(t, m.URL(), "village/_hub/hub1/status") == "online"
	})
	dev := testenv.MQTT(t, m.URL(), "cam1")
	testenv.Publish(t, dev, "village/s1/alerts/c1", 1, false, "{}") // not a device topic: not subscribed
	testenv.Publish(t, dev, "village/s1/camera/c1/motion", 1, false, "ON")
	testenv.Publish(t, dev, "village/s1/qr/b1/scans", 0, false, `{"total":1}`)
	got := hc.pop(t)
	if got.Topic != "village/s1/camera/c1/motion" || string(got.Payload) != "ON" || got.QoS != 1 || got.Ack == nil {
		t.Fatalf("first queued %+v", got)
	}
	got.Ack()
	if got := hc.pop(t); got.Topic != "village/s1/qr/b1/scans" || got.QoS != 0 {
		t.Fatalf("second queued %+v", got)
	}
	hc.stop()
	if s := retained(t, m.URL(), "village/_hub/hub1/status"); s != "offline" {
		t.Fatalf("status after stop %q, want offline", s)
	}
}

// TestPersistentSession: a QoS 1 message the hub took but did not
// acknowledge, and one published while the hub was away, both arrive when
// the hub comes back with the same client ID (clean session off, manual
// acknowledgement after the store commit).
func TestPersistentSession(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	hc := startClient(t, m.URL(), "villagehub-persist")
	dev := testenv.MQTT(t, m.URL(), "cam1")
	testenv.Publish(t, dev, "village/s1/camera/c1/motion", 1, false, "ON")
	if got := hc.pop(t); string(got.Payload) != "ON" {
		t.Fatalf("queued %q", got.Payload)
	} // not acknowledged: the store "did not commit"
	hc.stop()
	testenv.Publish(t, dev, "village/s1/camera/c1/motion", 1, false, "OFF")

	hc2 := startClient(t, m.URL(), "villagehub-persist")
	seen := map[string]bool{}
	for len(seen) < 2 {
		got := hc2.pop(t)
		seen[string(got.Payload)] = true
		got.Ack()
	}
	if !seen["ON"] || !seen["OFF"] {
		t.Fatalf("after coming back the hub got %v, want ON (unacknowledged) and OFF (sent while away)", seen)
	}
}

// TestReconnectAfterBrokerRestart: the client notices the broker going
// away, reconnects by itself when it is back, and ingests again.
func TestReconnectAfterBrokerRestart(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	hc := startClient(t, m.URL(), "villagehub-reconnect")
	m.Stop()
	testenv.WaitFor(t, 20*time.Second, "disconnected seen", func() bool { return !hc.Connected() })
	m.Start()
	testenv.WaitFor(t, 40*time.Second, "reconnected", hc.Connected)
	dev := testenv.MQTT(t, m.URL(), "cam1")
	testenv.Publish(t, dev, "village/s1/camera/c2/status", 1, true, "online")
	got := hc.pop(t)
	if got.Topic != "village/s1/camera/c2/status" {
		t.Fatalf("queued %s", got.Topic)
	}
	got.Ack()
}

// TestPublishWaitsForQoS1: the hub's QoS 1 publish returns once the broker
// has the message; a subscriber gets it.
func TestPublishWaitsForQoS1(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	hc := startClient(t, m.URL(), "villagehub-pub")
	got := make(chan string, 1)
	sub := testenv.MQTT(t, m.URL(), "sub")
	if tok := sub.Subscribe("village/s1/alerts/#", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if err := hc.Publish("village/s1/alerts/c1", []byte(`{"alert":"CameraDown"}`), false, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p != `{"alert":"CameraDown"}` {
			t.Fatalf("got %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("subscriber got nothing")
	}
}

// TestNewRefusesAndRedacts: bad settings are refused; a broker URL's
// password never reaches the log.
func TestNewRefusesAndRedacts(t *testing.T) {
	q := ingest.NewQueue(4)
	ok := Config{URL: "tcp://127.0.0.1:1", ClientID: "x", KeepAlive: time.Second, Prefix: "village", HubID: "h", Queue: q}
	for name, change := range map[string]func(*Config){
		"no queue": func(c *Config) { c.Queue = nil }, "bad url": func(c *Config) { c.URL = "::nope" },
		"no prefix": func(c *Config) { c.Prefix = "" }, "no client id": func(c *Config) { c.ClientID = "" },
	} {
		c := ok
		change(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	u, _ := url.Parse("tcp://hub:s3cret@broker.lan:1883")
	if r := redact(u); strings.Contains(r, "s3cret") || !strings.Contains(r, "hub@broker.lan:1883") {
		t.Fatalf("redact: %s", r)
	}
}
