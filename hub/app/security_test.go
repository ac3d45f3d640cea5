package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"villagehub/hub/auth"
	"villagehub/hub/config"
	"villagehub/hub/state"
	"villagehub/hub/testenv"
)

// TestSecuredHub: the hub with device credentials made by `villagehub
// device add`, anonymous access off, MQTT over TLS and HTTPS from a village
// CA. A device publishes its own reports over TLS and they count; its
// reports under another board's topic do not; a wrong password and a
// client that does not trust the village CA are refused; the dashboard API
// answers over HTTPS.
func TestSecuredHub(t *testing.T) {
	dir := t.TempDir()
	ca := testenv.NewTestCA(t, dir)
	cert, key := filepath.Join(dir, "hub.crt"), filepath.Join(dir, "hub.key")
	ca.Issue(t, cert, key, "127.0.0.1", "localhost")
	var tlsAddr string
	h := startHub(t, func(c *config.Config) {
		c.Broker.AllowAnonymous = false
		tlsAddr = testenv.FreeAddr(t)
		c.Broker.TLSAddr = tlsAddr
		c.Broker.TLS.CertFile, c.Broker.TLS.KeyFile = cert, key
		c.HTTP.TLS.CertFile, c.HTTP.TLS.KeyFile = cert, key
		c.HTTP.PublicURL = "https://" + c.HTTP.Addr
		var out, errb bytes.Buffer
		if code := auth.DeviceCommand([]string{"add", "qr", "tan-ngu-2", "market-07"}, &out, &errb, c.Broker.CredentialsPath(c.DataDir)); code != 0 {
			t.Fatalf("device add: %s", errb.String())
		}
		m := regexp.MustCompile(`password: (\S+)`).FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("device add printed no password: %q", out.String())
		}
		t.Setenv("TEST_DEVICE_PASSWORD", m[1])
	})
	https := &http.Client{Transport: &http.Transport{TLSClientConfig: ca.ClientConfig("127.0.0.1")}, Timeout: 5 * time.Second}
	board := func() state.BoardView {
		resp, err := https.Get("https://" + h.HTTPAddr() + "/api/v1/qr-boards/market-07")
		if err != nil {
			t.Fatalf("HTTPS: %v", err)
		}
		defer resp.Body.Close()
		var b state.BoardView
		if err := jsonDecode(resp.Body, &b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	password := os.Getenv("TEST_DEVICE_PASSWORD")
	connect := func(id, user, pw string, trust bool) (paho.Client, error) {
		tc := ca.ClientConfig("127.0.0.1")
		if !trust {
			tc.RootCAs = nil // system roots only: the village CA is unknown
		}
		c := paho.NewClient(paho.NewClientOptions().AddBroker("ssl://" + tlsAddr).SetClientID(id).
			SetUsername(user).SetPassword(pw).SetTLSConfig(tc).SetProtocolVersion(4).
			SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(3 * time.Second))
		tok := c.Connect()
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			return nil, fmt.Errorf("connect: %v", tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(50) })
		return c, nil
	}
	if _, err := connect("wrong", "tan-ngu-2/qr/market-07", "not-the-password", true); err == nil {
		t.Error("a wrong password was accepted")
	}
	if _, err := connect("untrusting", "tan-ngu-2/qr/market-07", password, false); err == nil {
		t.Error("a client that does not trust the village CA connected")
	}
	dev, err := connect("market-07:board", "tan-ngu-2/qr/market-07", password, true)
	if err != nil {
		t.Fatalf("the device with its password: %v", err)
	}
	testenv.Publish(t, dev, "village/tan-ngu-2/qr/market-07/scans", 1, false, `{"total":4,"boot":"a"}`)
	testenv.WaitFor(t, 5*time.Second, "the device's own report counted", func() bool { return board().ScansTotal == 4 })
	// Under another board's topic: refused by the ACL (the broker drops
	// the connection of a 3.1.1 client that publishes where it may not).
	dev.Publish("village/tan-ngu-2/qr/nobootboard/scans", 1, false, `{"total":99,"boot":"x"}`).WaitTimeout(2 * time.Second)
	// The broker counts the denial when it drops the publish: after that
	// the message can no longer reach the hub.
	testenv.WaitFor(t, 10*time.Second, "the ACL denial counted", func() bool {
		v, _ := testenv.ScrapeWith(t, "https://"+h.HTTPAddr(), https).Value("villagehub_broker_acl_denied_total")
		return v >= 1
	})
	resp, err := https.Get("https://" + h.HTTPAddr() + "/api/v1/qr-boards/nobootboard")
	if err != nil {
		t.Fatal(err)
	}
	var other state.BoardView
	jsonDecode(resp.Body, &other)
	resp.Body.Close()
	if other.ScansTotal != 0 {
		t.Errorf("a device published another board's scans: %d", other.ScansTotal)
	}
	m := testenv.ScrapeWith(t, "https://"+h.HTTPAddr(), https)
	if v, _ := m.Value("villagehub_broker_auth_failures_total"); v < 1 {
		t.Errorf("auth failures not counted: %v", v)
	}
	if v, _ := m.Value("villagehub_broker_acl_denied_total"); v < 1 {
		t.Errorf("ACL denial not counted: %v", v)
	}
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
