package auth_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"villagehub/hub/auth"
	"villagehub/hub/testenv"
)

// The shipped files, used as they are.
const (
	shippedACL    = "../../configs/mosquitto/acl"
	shippedPasswd = "../../configs/mosquitto/passwd.example"
	shippedAuth   = "../../configs/mosquitto/auth.conf"
)

// startMosquittoWithACL starts real Mosquitto with the shipped auth.conf
// lines, ACL file and example password file (plus extra users made with
// mosquitto_passwd), and returns its URL.
func startMosquittoWithACL(t *testing.T, extraUsers map[string]string) *testenv.Mosquitto {
	t.Helper()
	dir := t.TempDir()
	// Mosquitto started as root drops to user mosquitto, which must be
	// able to enter the directory (and the test's temporary root above
	// it, 0700 too) and read the files.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for src, dst := range map[string]string{shippedACL: "acl", shippedPasswd: "passwd"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for u, p := range extraUsers {
		// The workflow `villagehub device add` prints, non-interactive.
		if out, err := exec.Command("mosquitto_passwd", "-b", filepath.Join(dir, "passwd"), u, p).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
		}
	}
	conf, err := os.ReadFile(shippedAuth)
	if err != nil {
		t.Fatal(err)
	}
	extra := strings.ReplaceAll(string(conf), "/etc/mosquitto/villagehub/", dir+"/")
	if !strings.Contains(extra, "\nacl_file "+dir+"/acl") || !strings.Contains(extra, "\npassword_file "+dir+"/passwd") {
		t.Fatalf("auth.conf no longer names /etc/mosquitto/villagehub/{passwd,acl}:\n%s", conf)
	}
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{Extra: extra + "\nlog_type all\n", NoAnonymous: true})
	t.Cleanup(func() {
		if t.Failed() {
			m.Stop() // Log is safe to read once the broker has exited
			t.Logf("mosquitto log:\n%s", m.Log())
		}
	})
	return m
}

// TestMosquittoRefusesBadCredentials: the shipped password file refuses a
// wrong password, an unknown user and anonymous clients.
func TestMosquittoRefusesBadCredentials(t *testing.T) {
	m := startMosquittoWithACL(t, nil)
	for _, c := range []struct{ name, user, pw string }{
		{"wrong password", "tan-ngu-2/camera/gate", "example-market"},
		{"unknown user", "tan-ngu-2/camera/nobody", "example-nobody"},
		{"anonymous", "", ""},
	} {
		_, err := connect(t, m.URL(), "bad-"+strings.ReplaceAll(c.name, " ", "-"), c.user, c.pw)
		if !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
			t.Errorf("%s: connect error = %v, want %v", c.name, err, packets.ErrorRefusedNotAuthorised)
		}
	}
	mustConnect(t, m.URL(), "gate", "tan-ngu-2/camera/gate", "example-gate")
}

// TestMosquittoDeviceACL: the shipped ACL keeps a device to its own
// topics, as seen by the hub subscribed to everything. Mosquitto drops a
// denied publish without telling the publisher (even at QoS 1), so only
// a subscriber can tell.
func TestMosquittoDeviceACL(t *testing.T) {
	m := startMosquittoWithACL(t, nil)
	hub := mustConnect(t, m.URL(), "hub", "_hub", "example-hub")
	w := watch(t, hub, "village/#")
	dev := mustConnect(t, m.URL(), "gate", "tan-ngu-2/camera/gate", "example-gate")
	own := "village/tan-ngu-2/camera/gate/motion"
	publish(t, dev, own, 1, "ON")
	w.waitFor(t, own, "ON")

	forbidden := []string{
		"village/tan-ngu-2/camera/market/motion",
		"village/ban-chieng/camera/gate/motion",
		"village/tan-ngu-2/qr/gate/scans",
		"village/tan-ngu-2/camera/gate/cmd/x",
		"village/tan-ngu-2/camera/gate",
		"village/_hub/villagehub/status",
		"village/tan-ngu-2/alerts/gate",
		"elsewhere/x",
	}
	// Mosquitto 2.0.11 closes the connection of an MQTT 3.1.1 client
	// after a denied publish at QoS 0, and at QoS 1 answers with a PUBACK
	// carrying a reason code, which paho takes for a broken connection:
	// so one connection per attempt. Within a connection messages are
	// handled in order, so the DISCONNECT after the publish means it was
	// decided before the marker below is sent.
	for i, topic := range forbidden {
		for qos := byte(0); qos <= 1; qos++ {
			c := mustConnect(t, m.URL(), fmt.Sprint("gate-", i, "-", qos), "tan-ngu-2/camera/gate", "example-gate")
			c.Publish(topic, qos, false, fmt.Sprint("SPOOF", qos)).WaitTimeout(5 * time.Second)
			c.Disconnect(10)
		}
	}
	dev = mustConnect(t, m.URL(), "gate-2", "tan-ngu-2/camera/gate", "example-gate")
	publish(t, dev, own, 1, "MARK")
	w.waitFor(t, own, "MARK")
	for _, topic := range forbidden {
		if got := w.got(topic); len(got) > 0 {
			t.Errorf("%s arrived %v: the ACL let a device publish there", topic, got)
		}
	}

	// A viewer reads everything and writes nothing.
	viewer := mustConnect(t, m.URL(), "viewer", "_viewer", "example-viewer")
	vw := watch(t, viewer, "village/#")
	vp := mustConnect(t, m.URL(), "viewer-pub", "_viewer", "example-viewer")
	vp.Publish("village/tan-ngu-2/camera/market/motion", 1, false, "FROM-VIEWER").WaitTimeout(5 * time.Second)
	vp.Disconnect(10)
	publish(t, dev, own, 1, "MARK2")
	w.waitFor(t, own, "MARK2")
	vw.waitFor(t, own, "MARK2")
	if n := w.count("village/tan-ngu-2/camera/market/motion"); n != 0 {
		t.Error("a viewer published a device message")
	}
	// Mosquitto's own account of the denials (its log is safe to read
	// once it has exited).
	m.Stop()
	for i, topic := range forbidden {
		if !strings.Contains(m.Log(), fmt.Sprintf("Denied PUBLISH from gate-%d-0 (d0, q0, r0, m0, '%s'", i, topic)) {
			t.Errorf("mosquitto did not log the denial of %s", topic)
		}
	}
}

// TestMosquittoDeviceSubscriptions: a device subscribed to everything
// receives only its own commands.
func TestMosquittoDeviceSubscriptions(t *testing.T) {
	m := startMosquittoWithACL(t, nil)
	dev := mustConnect(t, m.URL(), "gate", "tan-ngu-2/camera/gate", "example-gate")
	all := &watcher{msgs: map[string][]string{}, at: map[string]time.Time{}}
	for _, f := range []string{"village/#", "village/tan-ngu-2/camera/gate/cmd/#"} {
		tok := dev.Subscribe(f, 1, func(_ paho.Client, msg paho.Message) {
			all.mu.Lock()
			defer all.mu.Unlock()
			all.msgs[msg.Topic()] = append(all.msgs[msg.Topic()], string(msg.Payload()))
			all.at[msg.Topic()+" "+string(msg.Payload())] = time.Now()
		})
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", f, tok.Error())
		}
	}
	market := mustConnect(t, m.URL(), "market", "tan-ngu-2/camera/market", "example-market")
	hub := mustConnect(t, m.URL(), "hub", "_hub", "example-hub")
	publish(t, market, "village/tan-ngu-2/camera/market/motion", 1, "ON")
	publish(t, hub, "village/tan-ngu-2/camera/market/cmd/reboot", 1, "x")
	publish(t, hub, "village/tan-ngu-2/alerts/market", 1, "{}")
	publish(t, hub, "village/tan-ngu-2/camera/gate/cmd/reboot", 1, "now")
	all.waitFor(t, "village/tan-ngu-2/camera/gate/cmd/reboot", "now")
	all.mu.Lock()
	defer all.mu.Unlock()
	for topic := range all.msgs {
		if !strings.HasPrefix(topic, "village/tan-ngu-2/camera/gate/cmd/") {
			t.Errorf("device received %s", topic)
		}
	}
}

// TestMosquittoWill: Mosquitto accepts a forged will but does not deliver
// it; a device's will on its own status is delivered.
func TestMosquittoWill(t *testing.T) {
	m := startMosquittoWithACL(t, nil)
	w := watch(t, mustConnect(t, m.URL(), "hub", "_hub", "example-hub"), "village/#")
	forged := rawConnect(t, m.Addr, "gate-forged", "tan-ngu-2/camera/gate", "example-gate", "village/tan-ngu-2/camera/market/status")
	forged.Close() // dropped without DISCONNECT: the will is due
	honest := rawConnect(t, m.Addr, "gate", "tan-ngu-2/camera/gate", "example-gate", "village/tan-ngu-2/camera/gate/status")
	honest.Close()
	w.waitFor(t, "village/tan-ngu-2/camera/gate/status", "offline")
	if n := w.count("village/tan-ngu-2/camera/market/status"); n != 0 {
		t.Error("forged will delivered")
	}
}

// TestMosquittoDeviceAddWorkflow: a device made with `villagehub device
// add` and put into Mosquitto's password file as the command says gets
// exactly its own topics under the shipped ACL.
func TestMosquittoDeviceAddWorkflow(t *testing.T) {
	creds := filepath.Join(t.TempDir(), "creds.yaml")
	u, pw := addUser(t, creds, "qr", "ban-chieng", "school-gate")
	var out, errb bytes.Buffer
	auth.DeviceCommand([]string{"add", "qr", "ban-chieng", "x"}, &out, &errb, creds)
	if !strings.Contains(out.String(), "mosquitto_passwd /etc/mosquitto/villagehub/passwd 'ban-chieng/qr/x'") {
		t.Errorf("device add does not print the mosquitto_passwd line:\n%s", out.String())
	}
	m := startMosquittoWithACL(t, map[string]string{u: pw})
	w := watch(t, mustConnect(t, m.URL(), "hub", "_hub", "example-hub"), "village/#")
	spoof := mustConnect(t, m.URL(), "school-gate-spoof", u, pw)
	spoof.Publish("village/ban-chieng/qr/school-gate-2/scans", 0, false, `{"total":9}`).WaitTimeout(5 * time.Second)
	spoof.Disconnect(10)
	dev := mustConnect(t, m.URL(), "school-gate", u, pw)
	publish(t, dev, "village/ban-chieng/qr/school-gate/scans", 1, `{"total":1}`)
	w.waitFor(t, "village/ban-chieng/qr/school-gate/scans", `{"total":1}`)
	if w.count("village/ban-chieng/qr/school-gate-2/scans") != 0 {
		t.Error("device published under a device whose ID extends its own")
	}
	if _, err := connect(t, m.URL(), "school-gate-bad", u, pw+"x"); err == nil {
		t.Error("wrong password accepted")
	}
}

// rawConnect opens an MQTT 3.1.1 connection by hand with a last will, so
// that closing it is a connection lost without DISCONNECT (paho always
// says goodbye).
func rawConnect(t *testing.T, addr, clientID, user, password, willTopic string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion, cp.CleanSession, cp.Keepalive = "MQTT", 4, true, 30
	cp.ClientIdentifier = clientID
	cp.UsernameFlag, cp.Username, cp.PasswordFlag, cp.Password = true, user, true, []byte(password)
	cp.WillFlag, cp.WillQos, cp.WillTopic, cp.WillMessage = true, 1, willTopic, []byte("offline")
	if err := cp.Write(c); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := packets.ReadPacket(c)
	if err != nil {
		t.Fatalf("reading CONNACK: %v", err)
	}
	ack, ok := p.(*packets.ConnackPacket)
	if !ok || ack.ReturnCode != 0 {
		t.Fatalf("CONNACK %v", p)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c
}
