// Package onvifcam is a simulated ONVIF camera (Profile S subset): it
// answers WS-Discovery probes, the device service (GetSystemDateAndTime,
// GetDeviceInformation, GetServices, GetCapabilities), the media service
// (GetProfiles, GetStreamUri) and the events service (pull-point
// subscriptions with PullMessages, Renew, Unsubscribe), with
// WS-UsernameToken PasswordDigest checked against its own (skewable) clock
// and optional HTTP Digest. Its stream URIs can point at devices/rtspcam.
//
// Its replies follow the ONVIF Core, Media and Events specifications and
// the shapes real cameras answer with, as published in public test
// fixtures (agsh/onvif test/serverMockup, a gSOAP-based camera; jimm98y/
// SharpOnvif, a Hikvision PullMessagesResponse): gSOAP-style prefixes
// (SOAP-ENV, tt, tds, trt, tev, wsnt, wsa5), the motion topics
// tns1:RuleEngine/CellMotionDetector/Motion (IsMotion) and
// tns1:VideoSource/MotionAlarm (State), Initialized messages on subscribe.
package onvifcam

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// AuthMode says what the camera demands of a request (the pre-auth
// operations excepted).
type AuthMode int

const (
	// AuthWSSE: a WS-UsernameToken PasswordDigest whose Created is within
	// MaxSkew of the camera's clock (the common case).
	AuthWSSE AuthMode = iota
	// AuthDigest: HTTP Digest (RFC 7616, MD5, qop=auth); the SOAP header
	// is ignored.
	AuthDigest
	// AuthBoth: HTTP Digest and a valid UsernameToken.
	AuthBoth
)

// Config configures a Camera.
type Config struct {
	// Addr is the HTTP listen address, e.g. "127.0.0.1:0".
	Addr     string
	Username string
	Password string
	Auth     AuthMode
	// ClockSkew is added to the real time to make the camera's clock (a
	// camera never set runs years behind).
	ClockSkew time.Duration
	// MaxSkew is how far a token's Created may be from the camera's clock.
	// Default 30 s.
	MaxSkew time.Duration

	Manufacturer, Model, Firmware, Serial string
	// Name and Location go into the discovery scopes.
	Name, Location string
	// MainURI and SubURI are the profiles' RTSP URLs (e.g. rtspcam
	// paths). Default rtsp://<host>:554/Streaming/Channels/101 and 102.
	MainURI, SubURI string

	// Media2 makes the camera list and answer the Media2 service (ONVIF
	// ver20, Profile T) at /onvif/media2_service, as cameras that can
	// encode H.265 do. MainEncoding is the main profile's codec ("H264",
	// the default, or "H265"). An H.265 main profile is answered by the
	// Media (ver10) service without its VideoEncoderConfiguration, since
	// that service cannot name H.265: what Dahua confirmed its cameras do
	// (GuilhermeC18/node-onvif issue 78); others label it H264
	// (quatanium/python-onvif issue 96). NoMedia1 drops the ver10 service
	// altogether (cameras that offer only Media2: Jazea/Onvif.Core
	// issue 43).
	Media2       bool
	MainEncoding string
	NoMedia1     bool

	// OldFirmware makes the camera answer GetServices with
	// ActionNotSupported, as ONVIF 1.x firmwares do: clients must fall back
	// to GetCapabilities.
	OldFirmware bool

	// Discovery makes the camera answer WS-Discovery probes on the
	// multicast group, joined on DiscoveryInterface (e.g. "lo" inside a
	// test's network namespace). Empty interface: the system's choice.
	Discovery          bool
	DiscoveryInterface string
	DiscoveryAddr      string // default 239.255.255.250:3702
}

// Stats count what the camera was asked.
type Stats struct {
	Subscribes, Renews, Unsubscribes, Pulls int
	AuthFailures                            int
	LiveSubscriptions                       int
}

// Camera is one simulated camera.
type Camera struct {
	cfg  Config
	uuid string

	mu     sync.Mutex
	addr   string // host:port, fixed after the first listen
	srv    *http.Server
	boot   int
	nonces map[string]time.Time
	subs   map[string]*subscription
	nextID int
	motion bool
	stats  Stats
	dnonce string // HTTP Digest server nonce of this boot
	disc   *net.UDPConn
	wg     sync.WaitGroup
}

// New starts the camera. Close stops it.
func New(cfg Config) (*Camera, error) {
	if cfg.Addr == "" {
		return nil, errors.New("onvifcam: Config.Addr is empty")
	}
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = 30 * time.Second
	}
	if cfg.Manufacturer == "" {
		cfg.Manufacturer = "HIKVISION"
	}
	if cfg.Model == "" {
		cfg.Model = "DS-2CD1023G0E-I"
	}
	if cfg.Firmware == "" {
		cfg.Firmware = "V5.7.3 build 220112"
	}
	if cfg.Serial == "" {
		cfg.Serial = "DS-2CD1023G0E-I20220315AAWRJ12345678"
	}
	if cfg.DiscoveryAddr == "" {
		cfg.DiscoveryAddr = "239.255.255.250:3702"
	}
	if cfg.MainEncoding == "" {
		cfg.MainEncoding = "H264"
	}
	c := &Camera{cfg: cfg, uuid: newUUID(), addr: cfg.Addr}
	if err := c.PowerOn(); err != nil {
		return nil, err
	}
	return c, nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// Now is the camera's clock.
func (c *Camera) Now() time.Time { return time.Now().Add(c.cfg.ClockSkew).UTC() }

// Addr is the HTTP host:port.
func (c *Camera) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr
}

// XAddr is the device service URL.
func (c *Camera) XAddr() string { return "http://" + c.Addr() + "/onvif/device_service" }

// Endpoint is the camera's WS-Discovery endpoint reference.
func (c *Camera) Endpoint() string { return "urn:uuid:" + c.uuid }

// Stats returns the counters.
func (c *Camera) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.LiveSubscriptions = len(c.subs)
	return s
}

// PowerOn starts serving (after New, or after PowerOff) on the same
// address; subscriptions start empty, as after a real reboot.
func (c *Camera) PowerOn() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv != nil {
		return nil
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("onvifcam: %w", err)
	}
	c.addr = ln.Addr().String()
	c.boot++
	c.subs = map[string]*subscription{}
	c.nonces = map[string]time.Time{}
	var nb [12]byte
	_, _ = rand.Read(nb[:])
	c.dnonce = hex.EncodeToString(nb[:])
	mux := http.NewServeMux()
	mux.HandleFunc("/", c.serveSOAP)
	c.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	srv := c.srv
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		_ = srv.Serve(ln)
	}()
	if c.cfg.Discovery {
		if err := c.startDiscovery(); err != nil {
			_ = srv.Close()
			c.srv = nil
			return err
		}
	}
	return nil
}

// PowerOff stops serving: connections are dropped, subscriptions are
// forgotten, new connections are refused until PowerOn.
func (c *Camera) PowerOff() {
	c.mu.Lock()
	srv, disc := c.srv, c.disc
	c.srv, c.disc = nil, nil
	for id, s := range c.subs {
		s.close()
		delete(c.subs, id)
	}
	c.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	if disc != nil {
		_ = disc.Close()
	}
	c.wg.Wait()
}

// Reboot is PowerOff then PowerOn: every subscription reference the camera
// handed out is unknown afterwards.
func (c *Camera) Reboot() error {
	c.PowerOff()
	return c.PowerOn()
}

// Close stops the camera.
func (c *Camera) Close() { c.PowerOff() }

// SetMotion changes the motion state; every live subscription gets a
// Changed message on both motion topics.
func (c *Camera) SetMotion(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.motion == on {
		return
	}
	c.motion = on
	now := c.Now()
	for _, s := range c.subs {
		s.push(motionMessages(now, on, "Changed")...)
	}
}

// digestChallenge is the WWW-Authenticate value of this boot.
func (c *Camera) digestChallenge() string {
	return fmt.Sprintf(`Digest realm="IP Camera(onvif)", qop="auth", nonce="%s", algorithm=MD5, stale="FALSE"`, c.dnonce)
}
