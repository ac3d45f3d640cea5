package auth_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"villagehub/hub/auth"
)

// TestEmbeddedFrigateACL: the account `villagehub device add frigate nvr`
// makes may publish (and subscribe) under its Frigate's topic prefix only,
// with its last will on <prefix>/available; the contract's device topics,
// the hub's topics and another Frigate's prefix are refused and counted,
// as a hub account subscribed to everything sees. An account whose name
// has no frigate: entry may do nothing.
func TestEmbeddedFrigateACL(t *testing.T) {
	r := startRig(t, rigOptions{cfg: auth.Config{Frigates: map[string]string{"nvr": "frigate", "garage": "frigate2"}}})
	user, pw := addUser(t, r.creds, "frigate", "nvr")
	if user != "_frigate/nvr" {
		t.Fatalf("username = %q", user)
	}
	ghost, ghostPW := addUser(t, r.creds, "frigate", "ghost")
	_, hubPW := addUser(t, r.creds, "hub", "watch")
	w := watch(t, mustConnect(t, r.url, "watch", "_watch", hubPW), "#")

	// Frigate connects as frigate/comms/mqtt.py does: will "offline",
	// retained, on <prefix>/available.
	fr := mustConnect(t, r.url, "frigate", user, pw, func(o *paho.ClientOptions) {
		o.SetWill("frigate/available", "offline", 1, true)
	})
	if tok := fr.Publish("frigate/available", 1, true, "online"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	own := []string{"frigate/events", "frigate/stats", "frigate/front_door/motion", "frigate/front_door/person/snapshot", "frigate/front_door/detect/state"}
	for _, topic := range own {
		publish(t, fr, topic, 1, "x")
	}
	w.waitFor(t, "frigate/available", "online")
	for _, topic := range own {
		w.waitFor(t, topic, "x")
	}

	forbidden := []string{
		"village/tan-ngu-2/camera/gate/motion", // the contract's device topics
		"village/tan-ngu-2/camera/gate/status",
		"village/tan-ngu-2/qr/market-07/scans",
		"village/_hub/villagehub/status", // the hub's own
		"village/tan-ngu-2/alerts/gate",
		"frigate2/available", // another Frigate's prefix
		"frigate2/events",
		"frigatex/events", // shares the prefix's letters, not its level
		"frigate",         // the prefix itself, no level under it
		"elsewhere/x",
	}
	for _, topic := range forbidden {
		publish(t, fr, topic, 0, "SPOOF")
	}
	publish(t, fr, "frigate/events", 1, "MARK")
	w.waitFor(t, "frigate/events", "MARK")
	for _, topic := range forbidden {
		if got := w.got(topic); len(got) > 0 {
			t.Errorf("%s arrived %v: a frigate account published there", topic, got)
		}
	}
	if got := r.metric(t, "villagehub_broker_acl_denied_total", "action=publish"); got != float64(len(forbidden)) {
		t.Errorf("acl_denied{publish} = %v, want %d", got, len(forbidden))
	}

	// Subscriptions: its own prefix only.
	for f, want := range map[string]bool{"frigate/#": true, "frigate/front_door/detect/set": true, "#": false, "frigate2/#": false, "village/#": false} {
		tok := fr.Subscribe(f, 1, nil)
		if !tok.WaitTimeout(5 * time.Second) {
			t.Fatalf("subscribe %s: no SUBACK", f)
		}
		if code := tok.(*paho.SubscribeToken).Result()[f]; (code != 0x80) != want {
			t.Errorf("subscribe %s: SUBACK code %#x, allowed want %v", f, code, want)
		}
	}

	// Its available topic stays retained (the hub and a late subscriber
	// see whether Frigate runs); other retained topics lose the flag.
	late := watch(t, mustConnect(t, r.url, "late", "_watch", hubPW), "frigate/available")
	late.waitFor(t, "frigate/available", "online")
	if tok := fr.Publish("frigate/front_door/detect/state", 1, true, "ON"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	w.waitFor(t, "frigate/front_door/detect/state", "ON")
	if got := r.metric(t, "villagehub_broker_retain_refused_total", "reason=topic"); got != 1 {
		t.Errorf("retain_refused{topic} = %v, want 1 (only the state topic)", got)
	}

	// A last will anywhere else is refused, even under its prefix.
	for _, will := range []string{"frigate2/available", "frigate/events", "village/tan-ngu-2/camera/gate/status"} {
		_, err := connect(t, r.url, "frigate-will", user, pw, func(o *paho.ClientOptions) { o.SetWill(will, "offline", 1, true) })
		if !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
			t.Errorf("will on %s: connect error %v, want refused", will, err)
		}
	}
	if got := r.metric(t, "villagehub_broker_connections_refused_total", "reason=will_denied"); got != 3 {
		t.Errorf("refused{will_denied} = %v, want 3", got)
	}

	// No frigate: entry named ghost: it may publish nothing, not even
	// under a Frigate's prefix.
	g := mustConnect(t, r.url, "ghost", ghost, ghostPW)
	publish(t, g, "frigate/events", 0, "GHOST")
	publish(t, fr, "frigate/events", 1, "MARK2")
	w.waitFor(t, "frigate/events", "MARK2")
	for _, p := range w.got("frigate/events") {
		if p == "GHOST" {
			t.Error("a frigate account without a frigate: entry published")
		}
	}
	if got := r.metric(t, "villagehub_broker_credentials", "role=frigate"); got != 2 {
		t.Errorf("credentials{frigate} = %v, want 2", got)
	}

}

// TestDeviceAddFrigate: the CLI makes _frigate/<name> with role frigate
// and refuses names that are not IDs.
func TestDeviceAddFrigate(t *testing.T) {
	path := credsFile(t.TempDir())
	user, _ := addUser(t, path, "frigate", "nvr-2")
	if user != "_frigate/nvr-2" {
		t.Errorf("username %q", user)
	}
	var out, errb bytes.Buffer
	if code := auth.DeviceCommand([]string{"list"}, &out, &errb, path); code != 0 || !bytes.Contains(out.Bytes(), []byte("_frigate/nvr-2  frigate")) {
		t.Errorf("list: %d %s %s", code, out.String(), errb.String())
	}
	for _, bad := range []string{"Bad", "a/b", "_x"} {
		errb.Reset()
		if code := auth.DeviceCommand([]string{"add", "frigate", bad}, &out, &errb, path); code == 0 {
			t.Errorf("add frigate %q accepted", bad)
		}
	}
}

// TestMosquittoFrigateACL: the shipped ACL's _frigate/nvr block on real
// Mosquitto, with the account made the way `villagehub device add
// frigate nvr` prints: its prefix's topics reach the hub, the contract's
// device topics, the hub's and another Frigate's prefix do not (Mosquitto
// drops them and logs the denial), and its will on frigate/available is
// delivered.
func TestMosquittoFrigateACL(t *testing.T) {
	path := credsFile(t.TempDir())
	user, pw := addUser(t, path, "frigate", "nvr")
	m := startMosquittoWithACL(t, map[string]string{user: pw})
	w := watch(t, mustConnect(t, m.URL(), "hub", "_hub", "example-hub"), "#")
	forbidden := []string{"village/tan-ngu-2/camera/gate/motion", "village/tan-ngu-2/camera/gate/status", "village/_hub/villagehub/status", "frigate2/events", "elsewhere/x"}
	// Mosquitto may drop the connection after a denial: one each, closed
	// after the publish, which it handles in order.
	for i, topic := range forbidden {
		c := mustConnect(t, m.URL(), fmt.Sprint("frigate-", i), user, pw)
		c.Publish(topic, 0, false, "SPOOF").WaitTimeout(5 * time.Second)
		c.Disconnect(10)
	}
	fr := mustConnect(t, m.URL(), "frigate", user, pw)
	publish(t, fr, "frigate/events", 1, "MARK")
	w.waitFor(t, "frigate/events", "MARK")
	for _, topic := range forbidden {
		if got := w.got(topic); len(got) > 0 {
			t.Errorf("%s arrived %v: the ACL let a Frigate publish there", topic, got)
		}
	}
	c := rawConnect(t, m.Addr, "frigate-will", user, pw, "frigate/available")
	c.Close() // dropped without DISCONNECT: the will is due
	w.waitFor(t, "frigate/available", "offline")
	m.Stop()
	for i, topic := range forbidden {
		if !strings.Contains(m.Log(), fmt.Sprintf("Denied PUBLISH from frigate-%d (d0, q0, r0, m0, '%s'", i, topic)) {
			t.Errorf("mosquitto did not log the denial of %s", topic)
		}
	}
}
