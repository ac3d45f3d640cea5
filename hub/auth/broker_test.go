package auth_test

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"villagehub/hub/auth"
	"villagehub/hub/testenv"
)

// TestEmbeddedRefusesBadCredentials: a wrong password, an unknown user and
// no username at all are refused and counted; the right password gets in.
func TestEmbeddedRefusesBadCredentials(t *testing.T) {
	r := startRig(t, rigOptions{})
	user, pw := addUser(t, r.creds, "camera", "tan-ngu-2", "gate")
	if user != "tan-ngu-2/camera/gate" {
		t.Fatalf("username = %q", user)
	}
	for _, c := range []struct{ name, user, pw string }{
		{"wrong password", user, pw + "x"},
		{"unknown user", "tan-ngu-2/camera/nobody", pw},
		{"anonymous", "", ""},
	} {
		_, err := connect(t, r.url, "bad-"+strings.ReplaceAll(c.name, " ", "-"), c.user, c.pw)
		if !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
			t.Errorf("%s: connect error = %v, want %v", c.name, err, packets.ErrorRefusedNotAuthorised)
		}
	}
	mustConnect(t, r.url, "gate", user, pw)
	if got := r.metric(t, "villagehub_broker_auth_failures_total"); got != 3 {
		t.Errorf("auth failures = %v, want 3", got)
	}
	if got := r.metric(t, "villagehub_broker_connections_refused_total", "reason=bad_credentials"); got != 2 {
		t.Errorf("refused{bad_credentials} = %v, want 2", got)
	}
	if got := r.metric(t, "villagehub_broker_connections_refused_total", "reason=anonymous"); got != 1 {
		t.Errorf("refused{anonymous} = %v, want 1", got)
	}
	if got := r.metric(t, "villagehub_broker_credentials", "role=device"); got != 1 {
		t.Errorf("credentials{device} = %v, want 1", got)
	}
}

// TestEmbeddedDeviceACL: a device's messages on its own topics arrive; on
// another device's topics (same site, other site, other kind, deeper,
// hub topics) they do not, at QoS 0 or 1, as a viewer subscribed to
// everything sees.
func TestEmbeddedDeviceACL(t *testing.T) {
	r := startRig(t, rigOptions{})
	gate, gatePW := addUser(t, r.creds, "camera", "tan-ngu-2", "gate")
	_, viewPW := addUser(t, r.creds, "viewer", "ha")
	viewer := mustConnect(t, r.url, "ha", "_ha", viewPW)
	w := watch(t, viewer, "village/#")

	dev := mustConnect(t, r.url, "gate", gate, gatePW)
	own := "village/tan-ngu-2/camera/gate/motion"
	publish(t, dev, own, 1, "ON")
	w.waitFor(t, own, "ON")

	forbidden := []string{
		"village/tan-ngu-2/camera/market/motion", // another camera
		"village/ban-chieng/camera/gate/motion",  // same ID, other site
		"village/tan-ngu-2/qr/gate/scans",        // same ID, other kind
		"village/tan-ngu-2/camera/gate/cmd/x",    // deeper than its data topics
		"village/tan-ngu-2/camera/gate",          // its own path, no leaf
		"village/_hub/villagehub/status",         // the hub's status
		"village/tan-ngu-2/alerts/gate",          // an alert
		"elsewhere/x",
	}
	// QoS 0: dropped silently; the connection stays, so a marker sent
	// after them on the same connection arriving proves they were not
	// delivered (a broker keeps one client's messages in order).
	for _, topic := range forbidden {
		publish(t, dev, topic, 0, "SPOOF")
	}
	publish(t, dev, own, 1, "MARK0")
	w.waitFor(t, own, "MARK0")
	// QoS 1: mochi disconnects an MQTT 3.1.1 client (it has no negative
	// PUBACK); reconnect for each.
	for i, topic := range forbidden[:3] {
		c := mustConnect(t, r.url, fmt.Sprintf("gate:q1-%d", i), gate, gatePW)
		c.Publish(topic, 1, false, "SPOOF1").WaitTimeout(2 * time.Second)
		testenv.WaitFor(t, 5*time.Second, "denied QoS 1 publisher to be disconnected", func() bool { return !c.IsConnectionOpen() })
	}
	mark := mustConnect(t, r.url, "gate:mark", gate, gatePW)
	publish(t, mark, own, 1, "MARK1")
	w.waitFor(t, own, "MARK1")
	for _, topic := range forbidden {
		if got := w.got(topic); len(got) > 0 {
			t.Errorf("%s arrived %v: the ACL let a device publish there", topic, got)
		}
	}
	if got := r.metric(t, "villagehub_broker_acl_denied_total", "action=publish"); got != float64(len(forbidden)+3) {
		t.Errorf("acl_denied{publish} = %v, want %d", got, len(forbidden)+3)
	}

	// The viewer may read but not write.
	publish(t, viewer, "village/tan-ngu-2/camera/gate/motion", 0, "FROM-VIEWER")
	publish(t, dev, own, 1, "MARK2")
	w.waitFor(t, own, "MARK2")
	for _, p := range w.got(own) {
		if p == "FROM-VIEWER" {
			t.Error("a viewer published a device message")
		}
	}
}

// TestEmbeddedDeviceSubscriptions: a device may subscribe to its own
// command topics only.
func TestEmbeddedDeviceSubscriptions(t *testing.T) {
	r := startRig(t, rigOptions{})
	gate, pw := addUser(t, r.creds, "qr", "tan-ngu-2", "market-07")
	dev := mustConnect(t, r.url, "market-07", gate, pw)
	for _, f := range []string{"village/#", "#", "village/tan-ngu-2/qr/+/cmd/#", "village/tan-ngu-2/qr/market-07/#", "village/tan-ngu-2/qr/market-08/cmd/#", "$SYS/#"} {
		tok := dev.Subscribe(f, 1, nil)
		if !tok.WaitTimeout(5 * time.Second) {
			t.Fatalf("subscribe %s: no SUBACK", f)
		}
		if code := tok.(*paho.SubscribeToken).Result()[f]; code != 0x80 {
			t.Errorf("subscribe %s: SUBACK code %#x, want 0x80 (refused)", f, code)
		}
	}
	w := watch(t, dev, "village/tan-ngu-2/qr/market-07/cmd/#")
	// The hub (inline client) sends commands; only the device's own arrive.
	if err := r.srv.Publish("village/tan-ngu-2/qr/market-08/cmd/reboot", []byte("x"), false, 1); err != nil {
		t.Fatal(err)
	}
	if err := r.srv.Publish("village/tan-ngu-2/qr/market-07/cmd/reboot", []byte("now"), false, 1); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "village/tan-ngu-2/qr/market-07/cmd/reboot", "now")
	if n := w.count("village/tan-ngu-2/qr/market-08/cmd/reboot"); n != 0 {
		t.Errorf("device got another device's command")
	}
	if got := r.metric(t, "villagehub_broker_acl_denied_total", "action=subscribe"); got != 6 {
		t.Errorf("acl_denied{subscribe} = %v, want 6", got)
	}
}

// TestEmbeddedWill: a last will on another device's topic is refused at
// connect (mochi publishes wills without an ACL check); one on the
// device's own status topic is delivered when the device drops.
func TestEmbeddedWill(t *testing.T) {
	r := startRig(t, rigOptions{})
	gate, pw := addUser(t, r.creds, "camera", "tan-ngu-2", "gate")
	_, hubPW := addUser(t, r.creds, "hub", "watch")
	w := watch(t, mustConnect(t, r.url, "watch", "_watch", hubPW), "village/#")

	other := "village/tan-ngu-2/camera/market/status"
	_, err := connect(t, r.url, "gate-forged-will", gate, pw, func(o *paho.ClientOptions) { o.SetWill(other, "offline", 1, true) })
	if !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
		t.Errorf("forged will: connect error = %v, want refused", err)
	}
	if got := r.metric(t, "villagehub_broker_connections_refused_total", "reason=will_denied"); got != 1 {
		t.Errorf("refused{will_denied} = %v, want 1", got)
	}

	own := "village/tan-ngu-2/camera/gate/status"
	c := mustConnect(t, r.url, "gate", gate, pw, func(o *paho.ClientOptions) { o.SetWill(own, "offline", 1, false) })
	publish(t, c, own, 1, "online")
	w.waitFor(t, own, "online")
	// Drop the connection without DISCONNECT, as a camera losing power
	// does: the broker sends the will.
	for _, cl := range r.srv.Clients.GetAll() {
		if cl.ID == "gate" {
			cl.Stop(errors.New("test: connection lost"))
		}
	}
	w.waitFor(t, own, "offline")
	if n := w.count(other); n != 0 {
		t.Errorf("forged will was delivered")
	}
}

// TestEmbeddedAnonymous: with allow_anonymous a client without a username
// may publish device messages, but not speak as the hub.
func TestEmbeddedAnonymous(t *testing.T) {
	r := startRig(t, rigOptions{cfg: auth.Config{AllowAnonymous: true}})
	anon := mustConnect(t, r.url, "anon", "", "")
	w := watch(t, anon, "village/#")
	publish(t, anon, "village/s/camera/c/motion", 1, "ON")
	w.waitFor(t, "village/s/camera/c/motion", "ON")
	publish(t, anon, "village/_hub/villagehub/status", 0, "offline")
	publish(t, anon, "village/s/alerts/c", 0, `{"alert":"CameraDown"}`)
	publish(t, anon, "village/s/camera/c/motion", 1, "OFF")
	w.waitFor(t, "village/s/camera/c/motion", "OFF")
	if w.count("village/_hub/villagehub/status")+w.count("village/s/alerts/c") != 0 {
		t.Error("an anonymous client spoke as the hub")
	}
	// A username with a wrong password is still refused.
	if _, err := connect(t, r.url, "anon-bad", "s/camera/c", "nope"); err == nil {
		t.Error("a wrong password was let in because anonymous access is on")
	}
}

// TestEmbeddedRateLimit: a client publishing far past publish_rate is
// slowed to it, loses nothing, and is counted, while another device's
// messages arrive promptly all along.
func TestEmbeddedRateLimit(t *testing.T) {
	const rate, burst, flood = 100, 10, 300
	r := startRig(t, rigOptions{cfg: auth.Config{PublishRate: rate, PublishBurst: burst}})
	fu, fpw := addUser(t, r.creds, "camera", "s", "flood")
	qu, qpw := addUser(t, r.creds, "qr", "s", "quiet")
	_, vpw := addUser(t, r.creds, "viewer", "v")
	w := watch(t, mustConnect(t, r.url, "v", "_v", vpw), "village/#")
	flooder := mustConnect(t, r.url, "flood", fu, fpw)
	quiet := mustConnect(t, r.url, "quiet", qu, qpw)

	floodTopic, quietTopic := "village/s/camera/flood/motion", "village/s/qr/quiet/scans"
	start := time.Now()
	toks := make([]paho.Token, flood)
	for i := range toks {
		toks[i] = flooder.Publish(floodTopic, 1, false, fmt.Sprint(i))
	}
	// While the flood is being throttled, the quiet device reports each
	// time another 15 flood messages got through (about every 150 ms at
	// the publish rate); each report must arrive quickly.
	var worst time.Duration
	for i := 0; i < 15; i++ {
		p := fmt.Sprintf(`{"total":%d}`, i)
		sent := time.Now()
		publish(t, quiet, quietTopic, 1, p)
		w.waitFor(t, quietTopic, p)
		at, _ := w.arrived(quietTopic, p)
		worst = max(worst, at.Sub(sent))
		progress := min(flood, w.count(floodTopic)+15)
		testenv.WaitFor(t, 20*time.Second, "the flood to progress", func() bool { return w.count(floodTopic) >= progress })
	}
	floodDoneDuringQuiet := w.count(floodTopic)
	for i, tok := range toks {
		if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
			t.Fatalf("flood message %d not acknowledged: %v", i, tok.Error())
		}
	}
	elapsed := time.Since(start)
	testenv.WaitFor(t, 10*time.Second, "every flood message to arrive", func() bool { return w.count(floodTopic) == flood })
	t.Logf("flood of %d at publish_rate %d/s burst %d took %v; %d had arrived after the quiet device's 15 reports; quiet device's worst latency %v",
		flood, rate, burst, elapsed, floodDoneDuringQuiet, worst)

	// Throttled: the flood cannot go faster than the bucket allows.
	if min := time.Duration(float64(flood-burst)/rate*float64(time.Second)) * 9 / 10; elapsed < min {
		t.Errorf("flood took %v, want at least %v at %d/s", elapsed, min, rate)
	}
	if floodDoneDuringQuiet >= flood {
		t.Errorf("the flood was not throttled: all %d arrived within the quiet device's reports", flood)
	}
	if worst > time.Second {
		t.Errorf("quiet device's worst latency %v during the flood, want < 1s", worst)
	}
	// Nothing lost, nothing twice.
	seen := map[string]bool{}
	for _, p := range w.got(floodTopic) {
		if seen[p] {
			t.Errorf("flood message %s delivered twice", p)
		}
		seen[p] = true
	}
	// A PUBLISH read when a token has accrued (the reader was slow, on a
	// loaded machine) is not over the rate and not counted, so the count
	// is at most flood-burst and, under load, some less.
	if got := r.metric(t, "villagehub_broker_rate_limited_total"); got < (flood-burst)/2 || got > flood-burst {
		t.Errorf("rate_limited_total = %v, want up to %d and at least half that", got, flood-burst)
	}
}

// TestEmbeddedMaxConnections: past max_connections a client is refused
// with "server unavailable" and counted; a slot freed is usable again.
func TestEmbeddedMaxConnections(t *testing.T) {
	r := startRig(t, rigOptions{cfg: auth.Config{AllowAnonymous: true, MaxConnections: 3}})
	var cs []paho.Client
	for i := 0; i < 3; i++ {
		cs = append(cs, mustConnect(t, r.url, fmt.Sprint("c", i), "", ""))
	}
	_, err := connect(t, r.url, "c3", "", "")
	if !errors.Is(err, packets.ErrorRefusedServerUnavailable) {
		t.Fatalf("4th connection: %v, want %v", err, packets.ErrorRefusedServerUnavailable)
	}
	if got := r.metric(t, "villagehub_broker_connections_refused_total", "reason=max_connections"); got != 1 {
		t.Errorf("refused{max_connections} = %v, want 1", got)
	}
	cs[0].Disconnect(50)
	testenv.WaitFor(t, 5*time.Second, "a free slot", func() bool {
		c, err := connect(t, r.url, "c4", "", "")
		if err == nil {
			c.Disconnect(10)
		}
		return err == nil
	})
}

// TestEmbeddedMaxPacketSize: a packet over max_packet_size disconnects its
// client and is counted; it is never delivered.
func TestEmbeddedMaxPacketSize(t *testing.T) {
	r := startRig(t, rigOptions{cfg: auth.Config{AllowAnonymous: true, MaxPacketSize: 1024}})
	w := watch(t, mustConnect(t, r.url, "w", "", ""), "village/#")
	c := mustConnect(t, r.url, "big", "", "")
	c.Publish("village/s/qr/b/scans", 0, false, bytes.Repeat([]byte("x"), 2000))
	testenv.WaitFor(t, 5*time.Second, "oversized publisher to be disconnected", func() bool { return !c.IsConnectionOpen() })
	testenv.WaitFor(t, 5*time.Second, "the limit to be counted", func() bool {
		return r.metric(t, "villagehub_broker_limit_disconnects_total", "limit=max_packet_size") == 1
	})
	if w.count("village/s/qr/b/scans") != 0 {
		t.Error("oversized message delivered")
	}
}

// TestEmbeddedCredentialChanges: `device add` works on a running broker at
// once, `device passwd` cuts off the old password (and its connection),
// `device remove` cuts off the device.
func TestEmbeddedCredentialChanges(t *testing.T) {
	r := startRig(t, rigOptions{})
	// Added after the broker started: found on the first connect.
	u, pw := addUser(t, r.creds, "camera", "s", "late")
	c := mustConnect(t, r.url, "late", u, pw)

	var out, errb bytes.Buffer
	if code := auth.DeviceCommand([]string{"passwd", u}, &out, &errb, r.creds); code != 0 {
		t.Fatalf("passwd: %d %s", code, errb.String())
	}
	_, pw2 := parseSecret(t, out.String())
	testenv.WaitFor(t, 10*time.Second, "the client with the old password to be cut off", func() bool { return !c.IsConnectionOpen() })
	if _, err := connect(t, r.url, "late-old", u, pw); err == nil {
		t.Error("old password still accepted after passwd")
	}
	c2 := mustConnect(t, r.url, "late:new", u, pw2)

	out.Reset()
	if code := auth.DeviceCommand([]string{"remove", "camera", "s", "late"}, &out, &errb, r.creds); code != 0 {
		t.Fatalf("remove: %d %s", code, errb.String())
	}
	testenv.WaitFor(t, 10*time.Second, "the removed device to be cut off", func() bool { return !c2.IsConnectionOpen() })
	if _, err := connect(t, r.url, "late:again", u, pw2); err == nil {
		t.Error("removed device still accepted")
	}
	if got := r.metric(t, "villagehub_broker_credentials", "role=device"); got != 0 {
		t.Errorf("credentials{device} = %v after remove, want 0", got)
	}
}

// TestEmbeddedBadCredentialsFileKeepsOld: a broken file is refused with
// its line, and the users loaded before stay in force.
func TestEmbeddedBadCredentialsFileKeepsOld(t *testing.T) {
	r := startRig(t, rigOptions{})
	u, pw := addUser(t, r.creds, "camera", "s", "keep")
	mustConnect(t, r.url, "keep", u, pw)
	if err := writeFile(r.creds, "users:\n  - username: s/camera/x\n    role: device\n    bcrypt: not-a-hash\n"); err != nil {
		t.Fatal(err)
	}
	err := r.hook.Reload()
	if err == nil || !strings.Contains(err.Error(), ":2:") || !strings.Contains(err.Error(), "not a bcrypt hash") {
		t.Fatalf("Reload of a broken file: %v, want the line and the reason", err)
	}
	mustConnect(t, r.url, "keep:2", u, pw)
}

// TestEmbeddedReconfigure: turning anonymous access off cuts off the
// anonymous clients; an invalid configuration changes nothing.
func TestEmbeddedReconfigure(t *testing.T) {
	cfg := auth.Config{AllowAnonymous: true}
	r := startRig(t, rigOptions{cfg: cfg})
	anon := mustConnect(t, r.url, "anon", "", "")
	bad := auth.Config{AllowAnonymous: false, PublishRate: 0.1, DataDir: filepath.Dir(r.creds)}
	if err := r.hook.Reconfigure(bad); err == nil || !strings.Contains(err.Error(), "publish_rate") {
		t.Fatalf("invalid config: %v", err)
	}
	if !anon.IsConnectionOpen() {
		t.Fatal("an invalid config changed something")
	}
	if err := r.hook.Reconfigure(auth.Config{AllowAnonymous: false, DataDir: filepath.Dir(r.creds)}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the anonymous client to be cut off", func() bool { return !anon.IsConnectionOpen() })
	if _, err := connect(t, r.url, "anon-2", "", ""); !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
		t.Errorf("anonymous after reconfigure: %v", err)
	}
}
