package auth_test

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"villagehub/hub/testenv"
	"villagehub/hub/tlscert"
)

// TestEmbeddedTLS: the embedded broker's TLS listener, serving a
// certificate from files through tlscert: a device trusting the village
// CA connects (and still needs its password); one that does not trust it
// is refused; after the files are replaced and reloaded, new connections
// get the new certificate.
func TestEmbeddedTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testenv.NewTestCA(t, dir)
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	serial1 := ca.Issue(t, certFile, keyFile, "hub.lan", "127.0.0.1")
	rl, err := tlscert.New(tlscert.Config{CertFile: certFile, KeyFile: keyFile, Name: "broker"})
	if err != nil {
		t.Fatal(err)
	}
	r := startRig(t, rigOptions{tls: rl.TLSConfig()})
	u, pw := addUser(t, r.creds, "camera", "s", "gate")
	url := "ssl://" + r.tlsAddr
	trusting := func(o *paho.ClientOptions) { o.SetTLSConfig(ca.ClientConfig("")) }

	c := mustConnect(t, url, "gate", u, pw, trusting)
	w := watch(t, c, "village/s/camera/gate/cmd/#")
	publish(t, c, "village/s/camera/gate/motion", 1, "ON")
	if err := r.srv.Publish("village/s/camera/gate/cmd/ping", []byte("over tls"), false, 1); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "village/s/camera/gate/cmd/ping", "over tls")

	if _, err := connect(t, url, "gate-badpw", u, pw+"x", trusting); err == nil {
		t.Error("TLS let a wrong password in")
	}
	other := testenv.NewTestCA(t, "")
	_, err = connect(t, url, "gate-untrusting", u, pw, func(o *paho.ClientOptions) { o.SetTLSConfig(other.ClientConfig("")) })
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Errorf("client not trusting the village CA: %v, want an unknown authority error", err)
	}
	// The system roots do not know the village CA either.
	if _, err := connect(t, url, "gate-system-roots", u, pw, func(o *paho.ClientOptions) { o.SetTLSConfig(&tls.Config{}) }); err == nil {
		t.Error("a client trusting only the system roots connected")
	}
	// Plain MQTT to the TLS port is not MQTT to it.
	if _, err := connect(t, "tcp://"+r.tlsAddr, "gate-plain", u, pw); err == nil {
		t.Error("plain MQTT connected to the TLS listener")
	}

	if got := ca.PeerSerial(t, r.tlsAddr, "hub.lan"); got.Cmp(serial1) != 0 {
		t.Fatalf("served serial %x, want %x", got, serial1)
	}
	serial2 := ca.Issue(t, certFile, keyFile, "hub.lan", "127.0.0.1")
	if err := rl.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := ca.PeerSerial(t, r.tlsAddr, "hub.lan"); got.Cmp(serial2) != 0 {
		t.Fatalf("after reload served serial %x, want %x", got, serial2)
	}
	// The connection made before the reload carries on.
	publish(t, c, "village/s/camera/gate/motion", 1, "OFF")
	mustConnect(t, url, "gate:after-reload", u, pw, trusting)
}

// TestEmbeddedWebSocketTLS: MQTT over secure WebSocket (for browser
// devices) on mochi's WebSocket listener with the same reloadable
// certificate and the same credentials and ACL.
func TestEmbeddedWebSocketTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testenv.NewTestCA(t, dir)
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	ca.Issue(t, certFile, keyFile, "127.0.0.1")
	rl, err := tlscert.New(tlscert.Config{CertFile: certFile, KeyFile: keyFile, Name: "broker"})
	if err != nil {
		t.Fatal(err)
	}
	r := startRig(t, rigOptions{tls: rl.TLSConfig(), wss: true})
	u, pw := addUser(t, r.creds, "qr", "s", "kiosk")
	_, vpw := addUser(t, r.creds, "viewer", "v")
	w := watch(t, mustConnect(t, r.url, "v", "_v", vpw), "village/#")
	url := "wss://" + r.wssAddr + "/mqtt"
	// The WebSocket listener binds in Serve's goroutine, not in
	// AddListener: wait for it.
	testenv.WaitFor(t, 5*time.Second, "the WebSocket listener", func() bool {
		c, err := net.Dial("tcp", r.wssAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	c := mustConnect(t, url, "kiosk", u, pw, func(o *paho.ClientOptions) { o.SetTLSConfig(ca.ClientConfig("")) })
	publish(t, c, "village/s/qr/other/scans", 0, `{"total":5}`)
	c2 := mustConnect(t, url, "kiosk:2", u, pw, func(o *paho.ClientOptions) { o.SetTLSConfig(ca.ClientConfig("")) })
	publish(t, c2, "village/s/qr/kiosk/scans", 1, `{"total":1}`)
	w.waitFor(t, "village/s/qr/kiosk/scans", `{"total":1}`)
	if w.count("village/s/qr/other/scans") != 0 {
		t.Error("the ACL does not hold over WebSocket")
	}
	if _, err := connect(t, url, "kiosk-bad", u, pw+"x", func(o *paho.ClientOptions) { o.SetTLSConfig(ca.ClientConfig("")) }); err == nil {
		t.Error("wrong password accepted over WebSocket")
	}
}
