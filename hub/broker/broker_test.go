package broker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"villagehub/hub/auth"
	"villagehub/hub/ingest"
	"villagehub/hub/testenv"
)

// rig is an embedded broker serving on a free loopback port, with its
// ingest queue, running until the test ends.
type rig struct {
	b     *Broker
	queue *ingest.Queue
	log   *testenv.Log
	url   string
	stop  func() // ends Run and waits for it
}

func startBroker(t *testing.T) *rig {
	t.Helper()
	tlog := testenv.NewLog(t)
	log := tlog.Logger
	hook, err := auth.New(auth.Config{AllowAnonymous: true, Prefix: "village", DataDir: t.TempDir(),
		PublishRate: 1e6, PublishBurst: 1000000, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	q := ingest.NewQueue(64)
	b, err := New(Config{Addr: testenv.FreeAddr(t), Prefix: "village", HubID: "hub1", Queue: q, Auth: hook, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	r := &rig{b: b, queue: q, log: tlog, url: "tcp://" + b.Addr()}
	stopped := false
	r.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	t.Cleanup(r.stop)
	return r
}

// pop takes the next queued message, failing after a deadline.
func (r *rig) pop(t *testing.T) ingest.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ms, err := r.queue.Pop(ctx, nil, 1)
	if err != nil || len(ms) != 1 {
		t.Fatalf("no message queued: %v", err)
	}
	return ms[0]
}

// subscribe collects what the broker sends to a subscriber of filter.
func subscribe(t *testing.T, url, filter string) chan paho.Message {
	t.Helper()
	got := make(chan paho.Message, 16)
	c := testenv.MQTT(t, url, "sub-"+strings.NewReplacer("#", "all", "/", "-", "+", "any").Replace(filter))
	tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) { got <- m })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return got
}

func receive(t *testing.T, ch chan paho.Message, what string) paho.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s", what)
		return nil
	}
}

// TestQoS1AckedAfterDurable: a device's QoS 1 message is queued, and the
// device gets its PUBACK (and subscribers the message, retain flag kept)
// only when the hub acknowledges it.
func TestQoS1AckedAfterDurable(t *testing.T) {
	r := startBroker(t)
	subs := subscribe(t, r.url, "village/s1/camera/#")
	dev := testenv.MQTT(t, r.url, "cam1")
	tok := dev.Publish("village/s1/camera/c1/status", 1, true, "online")
	m := r.pop(t)
	if m.Topic != "village/s1/camera/c1/status" || string(m.Payload) != "online" || m.QoS != 1 || m.Ack == nil {
		t.Fatalf("queued %+v", m)
	}
	// The PUBACK can only come from m.Ack, which nobody has called.
	select {
	case <-tok.Done():
		t.Fatal("the device got its PUBACK before the hub acknowledged the message")
	case m := <-subs:
		t.Fatalf("a subscriber got %s before the hub acknowledged it", m.Topic())
	default:
	}
	m.Ack()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("no PUBACK after Ack: %v", tok.Error())
	}
	fwd := receive(t, subs, "forwarded message")
	if fwd.Topic() != m.Topic || string(fwd.Payload()) != "online" {
		t.Fatalf("forwarded %s %q", fwd.Topic(), fwd.Payload())
	}
	// Retained: a late subscriber still gets it.
	late := subscribe(t, r.url, "village/s1/camera/c1/status")
	if got := receive(t, late, "retained status"); !got.Retained() || string(got.Payload()) != "online" {
		t.Fatalf("late subscriber got retained=%v %q", got.Retained(), got.Payload())
	}
}

// TestQoS0QueuedAndForwarded: QoS 0 needs no acknowledgement; it is queued
// and forwarded at once.
func TestQoS0QueuedAndForwarded(t *testing.T) {
	r := startBroker(t)
	subs := subscribe(t, r.url, "village/#")
	dev := testenv.MQTT(t, r.url, "board1")
	testenv.Publish(t, dev, "village/s1/qr/b1/scans", 0, false, `{"total":3}`)
	if m := r.pop(t); m.Topic != "village/s1/qr/b1/scans" || m.QoS != 0 || m.Ack != nil {
		t.Fatalf("queued %+v", m)
	}
	for {
		m := receive(t, subs, "forwarded scans")
		if m.Topic() == "village/s1/qr/b1/scans" {
			break
		}
	}
}

// TestHubTopicsNotIngested: the hub's own topics (_hub status, alerts)
// and anything outside the prefix never enter the ingest queue; the hub's
// own publishes (inline client) reach subscribers without being ingested.
func TestHubTopicsNotIngested(t *testing.T) {
	h := &ingestHook{match: ingest.NewDecoder(ingest.DecoderConfig{Prefix: "village"}).Match}
	for topic, want := range map[string]bool{
		"village/s1/camera/c1/motion": true, "village/s1/qr/b1/scans": true,
		"village/_hub/x/status": false, "village/s1/alerts/c1": false, "other/s1/camera/c1/motion": false, "village": false,
	} {
		if got := h.device(topic); got != want {
			t.Errorf("device(%q) = %v, want %v", topic, got, want)
		}
	}
	r := startBroker(t)
	subs := subscribe(t, r.url, "village/s1/alerts/#")
	if err := r.b.Publish("village/s1/alerts/c1", []byte(`{"alert":"CameraDown"}`), false, 1); err != nil {
		t.Fatal(err)
	}
	receive(t, subs, "alert from the hub")
	dev := testenv.MQTT(t, r.url, "cam1")
	testenv.Publish(t, dev, "village/s1/camera/c1/motion", 0, false, "ON")
	if m := r.pop(t); m.Topic != "village/s1/camera/c1/motion" {
		t.Fatalf("queued %s, want only device topics", m.Topic)
	}
}

// TestWillIngested: a device's last will (its offline status) reaches the
// hub although the broker publishes it without OnPublish.
func TestWillIngested(t *testing.T) {
	r := startBroker(t)
	o := paho.NewClientOptions().AddBroker(r.url).SetClientID("cam-will").SetAutoReconnect(false).
		SetWill("village/s1/camera/c9/status", "offline", 1, true)
	// Dial ourselves so the test can cut the TCP connection: no DISCONNECT
	// is sent, so the broker sends the will.
	var conn net.Conn
	o.SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
		c, err := net.Dial("tcp", u.Host)
		conn = c
		return c, err
	})
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	conn.Close()
	m := r.pop(t)
	if m.Topic != "village/s1/camera/c9/status" || string(m.Payload) != "offline" {
		t.Fatalf("queued %s %q, want the will", m.Topic, m.Payload)
	}
}

// TestHubStatusOnlineThenOffline: Run publishes the hub's retained online
// status and, when it ends, offline.
func TestHubStatusOnlineThenOffline(t *testing.T) {
	r := startBroker(t)
	subs := subscribe(t, r.url, "village/_hub/hub1/status")
	if m := receive(t, subs, "online status"); string(m.Payload()) != "online" {
		t.Fatalf("status %q", m.Payload())
	}
	r.stop()
	// It is also retained, for a restarted broker (or a bridge); that it
	// reaches live subscribers is TestOfflineStatusReachesSubscribers.
	ret := r.b.srv.Topics.Messages("village/_hub/hub1/status")
	if len(ret) != 1 || string(ret[0].Payload) != "offline" {
		t.Fatalf("retained status after Run: %+v, want offline", ret)
	}
}

// TestNewErrors: missing dependencies and an address in use are reported,
// the latter naming the setting to change.
func TestNewErrors(t *testing.T) {
	hook, err := auth.New(auth.Config{AllowAnonymous: true, Prefix: "village", DataDir: t.TempDir(), Logger: testenv.NewLog(t).Logger})
	if err != nil {
		t.Fatal(err)
	}
	q := ingest.NewQueue(4)
	for _, c := range []Config{
		{Addr: "127.0.0.1:0", Prefix: "village", HubID: "h", Auth: hook},
		{Addr: "127.0.0.1:0", Prefix: "village", HubID: "h", Queue: q},
		{Addr: "127.0.0.1:0", HubID: "h", Queue: q, Auth: hook},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = New(Config{Addr: ln.Addr().String(), Prefix: "village", HubID: "h", Queue: q, Auth: hook})
	if err == nil || !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), "broker.addr") {
		t.Fatalf("address in use: %v", err)
	}
}

// TestLogDropsPacket: mochi's "pk" attribute (a whole packet, a CONNECT's
// password included) never reaches the hub's log, and records under the
// floor are dropped.
func TestLogDropsPacket(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(&levelFloor{h: slog.NewTextHandler(&buf, nil), min: slog.LevelWarn})
	log.Info("client connected", "client", "a")
	log.Warn("bad packet", "client", "b", "pk", "password=hunter2")
	out := buf.String()
	if strings.Contains(out, "hunter2") || strings.Contains(out, "client connected") || !strings.Contains(out, "client=b") {
		t.Fatalf("log: %s", out)
	}
}

// TestQoS1BatchedAcks: a device with many QoS 1 messages in flight gets
// every PUBACK once the hub acknowledges them as a batch (they are written
// together), none before; a subscriber gets every message, in order.
func TestQoS1BatchedAcks(t *testing.T) {
	r := startBroker(t)
	subs := make(chan paho.Message, 64)
	sc := testenv.MQTT(t, r.url, "sub-batch")
	if tok := sc.Subscribe("village/s1/qr/#", 1, func(_ paho.Client, m paho.Message) { subs <- m }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	dev := testenv.MQTT(t, r.url, "board1")
	const n = 40
	toks := make([]paho.Token, n)
	for i := range n {
		toks[i] = dev.Publish("village/s1/qr/b1/scans", 1, false, fmt.Sprintf(`{"total":%d,"boot":"x"}`, i+1))
	}
	var msgs []ingest.Message
	for range n {
		msgs = append(msgs, r.pop(t))
	}
	for i, tok := range toks {
		if tok.WaitTimeout(0) {
			t.Fatalf("message %d acknowledged before the hub acknowledged it", i)
		}
	}
	for _, m := range msgs {
		m.Ack()
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("no PUBACK for message %d: %v", i, tok.Error())
		}
	}
	for i := range n {
		got := receive(t, subs, "forwarded report")
		if want := fmt.Sprintf(`{"total":%d,"boot":"x"}`, i+1); string(got.Payload()) != want {
			t.Fatalf("forward %d: %q, want %q", i, got.Payload(), want)
		}
	}
}
