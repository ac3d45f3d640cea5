package mqttclient

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"villagehub/hub/ingest"
	"villagehub/hub/testenv"
)

// A wrong or dead broker URL is logged at once and again periodically,
// with the reason; when the broker comes up the hub says so.
func TestUnreachableBrokerIsLogged(t *testing.T) {
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	m.Stop() // its address is now closed
	var logs testenv.SyncBuffer
	c, err := New(Config{
		URL: m.URL(), Queue: ingest.NewQueue(8), HubID: "mqtttest", Prefix: "village", ClientID: "mqtttest", KeepAlive: 5 * time.Second,
		Logger:           slog.New(slog.NewTextHandler(&logs, nil)),
		UnreachableAfter: 200 * time.Millisecond, UnreachableEvery: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testenv.WaitFor(t, 10*time.Second, "two unreachable-broker errors", func() bool {
		return strings.Count(logs.String(), "cannot reach the MQTT broker") >= 2
	})
	out := logs.String()
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "connection refused") || !strings.Contains(out, m.Addr) {
		t.Errorf("the log does not say which broker and why:\n%s", out)
	}
	m.Start()
	testenv.WaitFor(t, 30*time.Second, "reachable again", func() bool {
		return strings.Contains(logs.String(), "MQTT broker reachable again") && c.Connected()
	})
}
