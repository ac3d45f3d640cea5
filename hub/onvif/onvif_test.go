package onvif_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"villagehub/devices/onvifcam"
	"villagehub/hub/onvif"
	"villagehub/hub/testenv"
)

// The worked example of the ONVIF Application Programmer's Guide
// (UsernameToken with PasswordDigest).
func TestPasswordDigestKnownAnswer(t *testing.T) {
	nonce := []byte{0x2c, 0xaa, 0x88, 0xe8, 0x6f, 0xc0, 0x8a, 0x42, 0x82, 0x42, 0xb3, 0x74, 0xce, 0xa6, 0x45, 0x96}
	got := onvif.PasswordDigest(nonce, "2010-09-16T07:50:45Z", "userpassword")
	if got != "tuOSpGlFlIXsozq4HFNeeGeFLEI=" {
		t.Fatalf("PasswordDigest = %s", got)
	}
}

func newCam(t *testing.T, cfg onvifcam.Config) *onvifcam.Camera {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	c, err := onvifcam.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func near(a, b, tol time.Duration) bool { d := a - b; return d < tol && d > -tol }

func TestInspectCameraWithOldClock(t *testing.T) {
	// A camera whose clock was never set: 26 years behind.
	skew := -26*365*24*time.Hour - 3*time.Hour
	cam := newCam(t, onvifcam.Config{Username: "admin", Password: "Cổng-làng#1", ClockSkew: skew,
		Manufacturer: "HIKVISION", Model: "DS-2CD1023G0E-I", Firmware: "V5.7.3",
		MainURI: "rtsp://127.0.0.1:8554/gate", SubURI: "rtsp://127.0.0.1:8554/gate-sub"})
	d := onvif.Inspect(context.Background(), cam.XAddr(), onvif.DiscoverOptions{Username: "admin", Password: "Cổng-làng#1"})
	if d.Error != "" {
		t.Fatalf("Inspect: %s", d.Error)
	}
	if d.Manufacturer != "HIKVISION" || d.Model != "DS-2CD1023G0E-I" || d.Firmware != "V5.7.3" {
		t.Fatalf("device info = %+v", d)
	}
	if d.MainURI != "rtsp://127.0.0.1:8554/gate" || d.SubURI != "rtsp://127.0.0.1:8554/gate-sub" {
		t.Fatalf("streams: main %q sub %q", d.MainURI, d.SubURI)
	}
	if len(d.Streams) != 2 || d.Streams[0].Width != 1920 || d.Streams[1].Height != 360 || d.Streams[0].Encoding != "H264" {
		t.Fatalf("streams = %+v", d.Streams)
	}
	if !near(d.ClockOffset, skew, 2*time.Second) {
		t.Fatalf("clock offset %v, want %v", d.ClockOffset, skew)
	}
}

// rawCall sends a signed GetDeviceInformation with a token created at
// `created` (our clock, uncorrected): what a client that ignores the
// camera's clock would send.
func rawCall(t *testing.T, xaddr, user, pass string, created time.Time) int {
	t.Helper()
	nonce := []byte("0123456789abcdef")
	cr := created.UTC().Format("2006-01-02T15:04:05.000Z")
	body := fmt.Sprintf(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"><s:Header><wsse:Security><wsse:UsernameToken><wsse:Username>%s</wsse:Username><wsse:Password>%s</wsse:Password><wsse:Nonce>MDEyMzQ1Njc4OWFiY2RlZg==</wsse:Nonce><wsu:Created>%s</wsu:Created></wsse:UsernameToken></wsse:Security></s:Header><s:Body><tds:GetDeviceInformation xmlns:tds="http://www.onvif.org/ver10/device/wsdl"/></s:Body></s:Envelope>`,
		user, onvif.PasswordDigest(nonce, cr, pass), cr)
	resp, err := http.Post(xaddr, "application/soap+xml", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestDigestAuthWithSkewedCameraClock(t *testing.T) {
	skew := 2*time.Hour + 13*time.Minute
	cam := newCam(t, onvifcam.Config{Username: "admin", Password: "p@ss:w\"rd", ClockSkew: skew, Auth: onvifcam.AuthBoth})
	// The camera does refuse a token on our uncorrected clock...
	if code := rawCall(t, cam.XAddr(), "admin", "p@ss:w\"rd", time.Now()); code != http.StatusUnauthorized {
		t.Fatalf("uncorrected request without HTTP digest: HTTP %d, want 401", code)
	}
	wsse := newCam(t, onvifcam.Config{Username: "admin", Password: "pw", ClockSkew: skew})
	if code := rawCall(t, wsse.XAddr(), "admin", "pw", time.Now()); code != http.StatusBadRequest {
		t.Fatalf("uncorrected token: HTTP %d, want 400 (ter:NotAuthorized)", code)
	}
	if code := rawCall(t, wsse.XAddr(), "admin", "pw", time.Now().Add(skew)); code != http.StatusOK {
		t.Fatalf("token on the camera's clock: HTTP %d, want 200", code)
	}
	// ...and the client, with HTTP Digest and the corrected token, gets in.
	c := &onvif.Client{XAddr: cam.XAddr(), Username: "admin", Password: "p@ss:w\"rd"}
	info, err := c.GetDeviceInformation(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Manufacturer != "HIKVISION" {
		t.Fatalf("info = %+v", info)
	}
	if !near(c.ClockOffset(), skew, 2*time.Second) {
		t.Fatalf("offset %v, want %v", c.ClockOffset(), skew)
	}
	uri, err := c.GetStreamUri(context.Background(), "Profile_1")
	if err != nil || !strings.HasPrefix(uri, "rtsp://127.0.0.1:554/Streaming/Channels/101") {
		t.Fatalf("GetStreamUri = %q, %v", uri, err)
	}
}

func TestWrongPassword(t *testing.T) {
	for _, mode := range []onvifcam.AuthMode{onvifcam.AuthWSSE, onvifcam.AuthDigest} {
		cam := newCam(t, onvifcam.Config{Username: "admin", Password: "right-one", Auth: mode})
		c := &onvif.Client{XAddr: cam.XAddr(), Username: "admin", Password: "wrong-one"}
		_, err := c.GetDeviceInformation(context.Background())
		if !errors.Is(err, onvif.ErrUnauthorized) {
			t.Fatalf("mode %d: err = %v, want ErrUnauthorized", mode, err)
		}
		if strings.Contains(err.Error(), "wrong-one") || strings.Contains(err.Error(), "right-one") {
			t.Fatalf("error leaks a password: %v", err)
		}
		d := onvif.Inspect(context.Background(), cam.XAddr(), onvif.DiscoverOptions{Username: "admin", Password: "wrong-one"})
		if !d.Unauthorized || d.Error != "unauthorized" || d.MainURI != "" {
			t.Fatalf("mode %d: Inspect = %+v", mode, d)
		}
	}
}

type motionLog struct {
	mu sync.Mutex
	ev []onvif.MotionEvent
}

func (m *motionLog) add(e onvif.MotionEvent) { m.mu.Lock(); m.ev = append(m.ev, e); m.mu.Unlock() }
func (m *motionLog) get() []onvif.MotionEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]onvif.MotionEvent(nil), m.ev...)
}
func (m *motionLog) last() (onvif.MotionEvent, int) {
	ev := m.get()
	if len(ev) == 0 {
		return onvif.MotionEvent{}, 0
	}
	return ev[len(ev)-1], len(ev)
}

func startWatcher(t *testing.T, cam *onvifcam.Camera, period time.Duration) (*onvif.Watcher, *motionLog, context.CancelFunc, chan error) {
	t.Helper()
	ml := &motionLog{}
	w := &onvif.Watcher{
		Client:      &onvif.Client{XAddr: cam.XAddr(), Username: "admin", Password: "pw"},
		OnMotion:    ml.add,
		Period:      period,
		PullTimeout: time.Second,
		MaxBackoff:  time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w, ml, cancel, done
}

func TestWatcherMotionRenewUnsubscribe(t *testing.T) {
	// An ONVIF 1.x camera wanting UsernameToken, and a newer one wanting
	// HTTP Digest.
	for _, cfg := range []onvifcam.Config{
		{Username: "admin", Password: "pw", ClockSkew: -90 * time.Minute, OldFirmware: true},
		{Username: "admin", Password: "pw", ClockSkew: -90 * time.Minute, Auth: onvifcam.AuthDigest},
	} {
		t.Run(fmt.Sprintf("auth=%d,old=%v", cfg.Auth, cfg.OldFirmware), func(t *testing.T) { watchRenewUnsubscribe(t, cfg) })
	}
}

func watchRenewUnsubscribe(t *testing.T, cfg onvifcam.Config) {
	cam := newCam(t, cfg)
	w, ml, cancel, done := startWatcher(t, cam, 3*time.Second)
	testenv.WaitFor(t, 10*time.Second, "subscribed", func() bool { return w.Stats().Subscribed })
	if n := len(ml.get()); n != 0 {
		t.Fatalf("Initialized 'no motion' produced %d events", n)
	}

	before := time.Now()
	cam.SetMotion(true)
	testenv.WaitFor(t, 10*time.Second, "motion on", func() bool { e, n := ml.last(); return n == 1 && e.Active })
	e, _ := ml.last()
	// The camera stamps in whole seconds, on a clock 90 minutes behind:
	// the event time comes back on ours.
	if e.At.Before(before.Add(-2*time.Second)) || e.At.After(time.Now().Add(2*time.Second)) {
		t.Fatalf("event time %v not corrected (now %v)", e.At, time.Now())
	}
	cam.SetMotion(false)
	testenv.WaitFor(t, 10*time.Second, "motion off", func() bool { e, n := ml.last(); return n == 2 && !e.Active })

	// The subscription is 3 s long: it must be renewed, not lost.
	// The camera counts a renewal when it answers, the watcher when it has
	// read the answer: wait for both sides, or a busy machine reads the
	// watcher between the two.
	testenv.WaitFor(t, 15*time.Second, "two renewals", func() bool { return cam.Stats().Renews >= 2 && w.Stats().Renewals >= 2 })
	if s := w.Stats(); s.Subscribes != 1 || s.Renewals < 2 {
		t.Fatalf("watcher stats %+v: want one subscription kept alive by renewals", s)
	}
	if s := cam.Stats(); s.Subscribes != 1 || s.LiveSubscriptions != 1 {
		t.Fatalf("camera stats %+v", s)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil // for the cleanup
	if s := cam.Stats(); s.Unsubscribes != 1 || s.LiveSubscriptions != 0 {
		t.Fatalf("after shutdown camera stats %+v: want the subscription unsubscribed", s)
	}
}

func TestWatcherCameraReboot(t *testing.T) {
	cam := newCam(t, onvifcam.Config{Username: "admin", Password: "pw"})
	w, ml, _, _ := startWatcher(t, cam, 20*time.Second)
	testenv.WaitFor(t, 10*time.Second, "subscribed", func() bool { return w.Stats().Subscribed })
	cam.SetMotion(true)
	testenv.WaitFor(t, 10*time.Second, "motion on", func() bool { _, n := ml.last(); return n == 1 })

	// Reboot mid-subscription: the reference the watcher holds is gone.
	if err := cam.Reboot(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 15*time.Second, "subscribed again after reboot", func() bool {
		s := w.Stats()
		return s.Subscribes == 2 && s.Subscribed
	})
	// Motion is still on after the reboot (Initialized true): not a new event.
	if _, n := ml.last(); n != 1 {
		t.Fatalf("reboot produced %d events, want still 1", n)
	}
	cam.SetMotion(false)
	testenv.WaitFor(t, 10*time.Second, "motion off after reboot", func() bool { e, n := ml.last(); return n == 2 && !e.Active })

	// Powered off for a while (connection refused), then back.
	cam.PowerOff()
	testenv.WaitFor(t, 15*time.Second, "failures while off", func() bool { return w.Stats().Failures >= 2 })
	if err := cam.PowerOn(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 15*time.Second, "subscribed after power on", func() bool {
		s := w.Stats()
		return s.Subscribes == 3 && s.Subscribed
	})
	cam.SetMotion(true)
	testenv.WaitFor(t, 10*time.Second, "motion after power on", func() bool { e, n := ml.last(); return n == 3 && e.Active })
}

// fixtureServer answers each SOAP operation with a testdata file.
func fixtureServer(t *testing.T, files map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(r.Body)
		for op, file := range files {
			if strings.Contains(buf.String(), ":"+op+">") || strings.Contains(buf.String(), ":"+op+" ") || strings.Contains(buf.String(), ":"+op+"/>") {
				data, err := os.ReadFile("testdata/" + file)
				if err != nil {
					t.Error(err)
				}
				data = bytes.ReplaceAll(data, []byte("http://192.168.1.64/"), []byte("http://"+r.Host+"/"))
				w.Header().Set("Content-Type", "application/soap+xml")
				_, _ = w.Write(data)
				return
			}
		}
		http.Error(w, "no fixture", http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRealCameraReplies(t *testing.T) {
	srv := fixtureServer(t, map[string]string{
		"GetServices":                 "GetServices.xml",
		"GetDeviceInformation":        "GetDeviceInformation.xml",
		"GetStreamUri":                "GetStreamUri.xml",
		"CreatePullPointSubscription": "CreatePullPointSubscription.xml",
		"PullMessages":                "PullMessages-hikvision.xml",
	})
	// No username: nothing signed, so no clock measurement is needed.
	c := &onvif.Client{XAddr: srv.URL + "/onvif/device_service"}
	ctx := context.Background()
	info, err := c.GetDeviceInformation(ctx)
	if err != nil || info.Manufacturer != "Dahua" || info.Model != "IPC-HFW1230S" || info.FirmwareVersion != "2.800.0000000.25.R" {
		t.Fatalf("GetDeviceInformation = %+v, %v", info, err)
	}
	media, events, err := c.Services(ctx)
	if err != nil || media != srv.URL+"/onvif/Media" || events != srv.URL+"/onvif/Events" {
		t.Fatalf("Services = %q %q %v", media, events, err)
	}
	uri, err := c.GetStreamUri(ctx, "000")
	if err != nil || uri != "rtsp://192.168.1.108:554/cam/realmonitor?channel=1&subtype=0&unicast=true&proto=Onvif" {
		t.Fatalf("GetStreamUri = %q, %v (credentials must be stripped)", uri, err)
	}
	sub, err := c.CreatePullPointSubscription(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Address != srv.URL+"/onvif/services?SubscriptionId=0" {
		t.Fatalf("subscription address %q", sub.Address)
	}
	// The camera's clock says 2000, its subscription lasts 5 minutes: the
	// deadline on our clock is 5 minutes from now.
	if left := time.Until(sub.Deadline); left < 4*time.Minute || left > 5*time.Minute {
		t.Fatalf("deadline in %v, want about 5m", left)
	}
	ns, err := c.PullMessages(ctx, sub, time.Second, 10)
	if err != nil || len(ns) != 4 {
		t.Fatalf("PullMessages = %d messages, %v", len(ns), err)
	}
	var motion []string
	for _, n := range ns {
		if on, ok := onvif.Motion(n); ok {
			motion = append(motion, fmt.Sprintf("%s=%v/%s", n.Topic, on, n.PropertyOperation))
		}
	}
	want := "tns1:VideoSource/MotionAlarm=false/Initialized tns1:RuleEngine/CellMotionDetector/Motion=true/Changed"
	if strings.Join(motion, " ") != want {
		t.Fatalf("motion = %v, want %s", motion, want)
	}
	if ns[2].Source["Rule"] != "MyMotionDetectorRule" || !ns[2].UtcTime.Equal(time.Date(2026, 5, 25, 23, 59, 40, 0, time.UTC)) {
		t.Fatalf("message 2 = %+v", ns[2])
	}
}

func TestProbeMatchesFixture(t *testing.T) {
	data, err := os.ReadFile("testdata/ProbeMatches.xml")
	if err != nil {
		t.Fatal(err)
	}
	if ms, _ := onvif.ParseProbeMatches(data, "urn:uuid:someone-else"); len(ms) != 0 {
		t.Fatalf("an answer to another probe was accepted: %+v", ms)
	}
	ms, err := onvif.ParseProbeMatches(data, "urn:uuid:01234567-dead-beef-baad-abcdeffedcba")
	if err != nil || len(ms) != 1 {
		t.Fatalf("ParseProbeMatches = %+v, %v", ms, err)
	}
	m := ms[0]
	if m.Endpoint != "urn:uuid:c9790c3a-701b-464d-a189-0060351c8ada" || len(m.XAddrs) != 2 || m.XAddrs[0] != "http://192.168.1.64/onvif/device_service" {
		t.Fatalf("match = %+v", m)
	}
	if m.Scope("name") != "Cổng làng" || m.Scope("hardware") != "DS-2CD1023G0E-I" || m.Scope("location") != "" {
		t.Fatalf("scopes: name %q hardware %q", m.Scope("name"), m.Scope("hardware"))
	}
}

func TestMotionTopics(t *testing.T) {
	cases := []struct {
		topic, item, value string
		active, ok         bool
	}{
		{"tns1:RuleEngine/CellMotionDetector/Motion", "IsMotion", "true", true, true},
		{"tns1:RuleEngine/CellMotionDetector/Motion", "IsMotion", "false", false, true},
		{"tns1:VideoSource/MotionAlarm", "State", "true", true, true},
		{"tns:VideoSource/MotionAlarm", "State", "false", false, true}, // prefix other than tns1
		{"tns1:RuleEngine/MotionRegionDetector/Motion", "State", "1", true, true},
		{"tns1:VideoAnalytics/tnsaxis:MotionDetection", "motion", "0", false, true},
		{"tns1:VideoSource/GlobalSceneChange/ImagingService", "State", "true", false, false},
		{"tns1:RuleEngine/FieldDetector/ObjectsInside", "IsInside", "true", false, false},
		{"tns1:RuleEngine/CellMotionDetector/Motion", "State", "true", false, false}, // wrong item
		{"tns1:VideoSource/MotionAlarm", "State", "maybe", false, false},
	}
	for _, c := range cases {
		active, ok := onvif.Motion(onvif.Notification{Topic: c.topic, Data: map[string]string{c.item: c.value}})
		if active != c.active || ok != c.ok {
			t.Errorf("%s %s=%s: got (%v,%v), want (%v,%v)", c.topic, c.item, c.value, active, ok, c.active, c.ok)
		}
	}
}

func TestPickXAddr(t *testing.T) {
	got := onvif.PickXAddr([]string{"http://[fe80::4619:b6ff:fe01:2345]/onvif/device_service", "http://192.168.1.64/onvif/device_service"})
	if got != "http://192.168.1.64/onvif/device_service" {
		t.Fatalf("picked %s", got)
	}
	if got := onvif.PickXAddr([]string{"http://[fe80::1]/x", "http://cam.local/x"}); got != "http://cam.local/x" {
		t.Fatalf("picked %s", got)
	}
}

// BenchmarkInspect: reading one camera in full (clock, information,
// services, profiles, two stream URIs) over loopback, with HTTP Digest and
// UsernameToken both required.
func BenchmarkInspect(b *testing.B) {
	cam, err := onvifcam.New(onvifcam.Config{Addr: "127.0.0.1:0", Username: "admin", Password: "pw", Auth: onvifcam.AuthBoth})
	if err != nil {
		b.Fatal(err)
	}
	defer cam.Close()
	opts := onvif.DiscoverOptions{Username: "admin", Password: "pw"}
	for b.Loop() {
		if d := onvif.Inspect(context.Background(), cam.XAddr(), opts); d.Error != "" {
			b.Fatal(d.Error)
		}
	}
}

// Older cameras answer faults in SOAP 1.1 shape; and an HTTP error page
// that is not SOAP is an error naming the status.
func TestFaultShapes(t *testing.T) {
	body := ""
	status := 500
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	c := &onvif.Client{XAddr: srv.URL}
	body = `<?xml version="1.0"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body><SOAP-ENV:Fault><faultcode>SOAP-ENV:Client</faultcode><faultstring>Action Not Implemented</faultstring></SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>`
	_, err := c.GetDeviceInformation(context.Background())
	var f *onvif.Fault
	if !errors.As(err, &f) || f.Code != "SOAP-ENV:Client" || f.Reason != "Action Not Implemented" || f.HTTPStatus != 500 {
		t.Fatalf("SOAP 1.1 fault: %v (%+v)", err, f)
	}
	body = `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>ter:NotAuthorized</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en">Sender not Authorized</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>`
	status = 400
	if _, err := c.GetDeviceInformation(context.Background()); !errors.Is(err, onvif.ErrUnauthorized) {
		t.Fatalf("NotAuthorized fault: %v", err)
	}
	body, status = "<html>Bad Gateway</html>", 502
	if _, err := c.GetDeviceInformation(context.Background()); err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("HTML error page: %v", err)
	}
}
