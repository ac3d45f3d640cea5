package testenv

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// MQTT connects a real paho client to brokerURL (tcp://...) and
// disconnects it at the end of the test.
func MQTT(t testing.TB, brokerURL, clientID string, opts ...func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(brokerURL).SetClientID(clientID).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	for _, f := range opts {
		f(o)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("testenv: connecting MQTT client %s to %s: %v", clientID, brokerURL, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// Publish publishes and waits for the broker's acknowledgement.
func Publish(t testing.TB, c paho.Client, topic string, qos byte, retain bool, payload any) {
	t.Helper()
	tok := c.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publishing to %s: %v", topic, tok.Error())
	}
}
