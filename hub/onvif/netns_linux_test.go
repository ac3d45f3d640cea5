package onvif_test

import (
	"context"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"villagehub/devices/onvifcam"
	"villagehub/devices/rtspcam"
	"villagehub/hub/onvif"
	"villagehub/hub/testenv"
)

func TestDiscoverInNetworkNamespace(t *testing.T) {
	if !testenv.InNetns(t) {
		return
	}
	rs, err := rtspcam.New(rtspcam.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Close() })
	main, err := rs.AddCamera("gate", rtspcam.CameraOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := rs.AddCamera("gate-sub", rtspcam.CameraOptions{FPS: 5})
	if err != nil {
		t.Fatal(err)
	}
	gate := newCam(t, onvifcam.Config{Username: "admin", Password: "pw", Discovery: true, DiscoveryInterface: "lo",
		Name: "Cổng làng", Model: "DS-2CD1023G0E-I", MainURI: main.URL(), SubURI: sub.URL(), ClockSkew: -3 * time.Hour})
	market := newCam(t, onvifcam.Config{Username: "admin", Password: "other", Discovery: true, DiscoveryInterface: "lo",
		Manufacturer: "Dahua", Model: "IPC-HFW1230S", Auth: onvifcam.AuthDigest})

	devs, err := onvif.Discover(context.Background(), onvif.DiscoverOptions{
		Probe:    onvif.ProbeOptions{Timeout: 2 * time.Second, Interface: "lo"},
		Username: "admin", Password: "pw",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 {
		t.Fatalf("found %d cameras, want 2: %+v", len(devs), devs)
	}
	byAddr := map[string]onvif.Device{}
	for _, d := range devs {
		byAddr[d.XAddr] = d
	}
	g, m := byAddr[gate.XAddr()], byAddr[market.XAddr()]
	if g.Endpoint != gate.Endpoint() || g.Name != "Cổng làng" || g.Model != "DS-2CD1023G0E-I" || g.Error != "" {
		t.Fatalf("gate = %+v", g)
	}
	if g.MainURI != main.URL() || g.SubURI != sub.URL() {
		t.Fatalf("gate streams %q %q, want %q %q", g.MainURI, g.SubURI, main.URL(), sub.URL())
	}
	if !near(g.ClockOffset, -3*time.Hour, 2*time.Second) {
		t.Fatalf("gate clock offset %v", g.ClockOffset)
	}
	// The market camera has another password: listed, marked unauthorized.
	if m.Endpoint != market.Endpoint() || !m.Unauthorized || m.MainURI != "" {
		t.Fatalf("market = %+v", m)
	}
	// The stream URL found is served (by the RTSP simulator).
	u, err := base.ParseURL(g.MainURI)
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp}
	if err := c.Start2(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.Describe(u); err != nil {
		t.Fatalf("DESCRIBE %s: %v", g.MainURI, err)
	}

	// A probe times out cleanly when nobody answers (another group).
	none, err := onvif.Probe(context.Background(), onvif.ProbeOptions{Timeout: 300 * time.Millisecond, Addr: "239.255.255.251:3702"})
	if err != nil || len(none) != 0 {
		t.Fatalf("probe of an empty group = %v, %v", none, err)
	}
}
