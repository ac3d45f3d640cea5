package onvif

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"sync"
	"time"
)

// DiscoverOptions configure Discover.
type DiscoverOptions struct {
	Probe ProbeOptions
	// Username and Password are tried on every camera found (most sites
	// use one account for all of them). Empty: only what a camera answers
	// without authentication (the clock) is read.
	Username, Password string
	// PerCamera bounds the questions to one camera. Default 10 s.
	PerCamera time.Duration
	// HTTP is the client for the SOAP calls (tests inject one).
	HTTP *http.Client
}

// Stream is one media profile and its RTSP URL (no credentials in it).
type Stream struct {
	Profile  string `json:"profile"`
	Name     string `json:"name"`
	Encoding string `json:"encoding,omitempty"`
	Width    int    `json:"width,omitempty"`
	Height   int    `json:"height,omitempty"`
	URI      string `json:"uri"`
}

// Device is a camera found on the network and what it told about itself.
type Device struct {
	Endpoint string   `json:"endpoint"`
	XAddr    string   `json:"xaddr"` // device service URL: the config's onvif.url
	Scopes   []string `json:"scopes,omitempty"`
	Name     string   `json:"name,omitempty"` // from the onvif://www.onvif.org/name/ scope
	Hardware string   `json:"hardware,omitempty"`
	Location string   `json:"location,omitempty"`

	Manufacturer string        `json:"manufacturer,omitempty"`
	Model        string        `json:"model,omitempty"`
	Firmware     string        `json:"firmware,omitempty"`
	Serial       string        `json:"serial,omitempty"`
	ClockOffset  time.Duration `json:"clock_offset_ns"`

	Streams []Stream `json:"streams,omitempty"`
	MainURI string   `json:"main_uri,omitempty"` // first profile's stream
	SubURI  string   `json:"sub_uri,omitempty"`  // second profile's stream

	// Error says why the camera could not be read fully ("unauthorized"
	// for a wrong password); the fields above hold what was read.
	Error string `json:"error,omitempty"`
	// Unauthorized is set when the camera refused the credentials.
	Unauthorized bool `json:"unauthorized,omitempty"`
}

// Discover probes the LAN for ONVIF cameras and reads each one's make,
// model, firmware, clock offset and stream URLs. A camera that cannot be
// read is still listed, with Error set; the error returned is only for a
// probe that could not be sent.
func Discover(ctx context.Context, opts DiscoverOptions) ([]Device, error) {
	matches, err := Probe(ctx, opts.Probe)
	if err != nil {
		return nil, err
	}
	devs := make([]Device, len(matches))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, m := range matches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			d := Device{Endpoint: m.Endpoint, XAddr: pickXAddr(m.XAddrs), Scopes: m.Scopes,
				Name: m.Scope("name"), Hardware: m.Scope("hardware"), Location: m.Scope("location")}
			inspect(ctx, &d, opts)
			devs[i] = d
		}()
	}
	wg.Wait()
	sort.Slice(devs, func(i, j int) bool { return devs[i].XAddr < devs[j].XAddr })
	return devs, nil
}

// pickXAddr prefers an IPv4 address among the ones a camera announces
// (Hikvision lists its IPv6 link-local address too, which needs a zone to
// be reached).
func pickXAddr(xs []string) string {
	for _, x := range xs {
		if u, err := url.Parse(x); err == nil {
			if ip, err := netip.ParseAddr(u.Hostname()); err == nil && ip.Is4() {
				return x
			}
		}
	}
	for _, x := range xs {
		if u, err := url.Parse(x); err == nil {
			if ip, err := netip.ParseAddr(u.Hostname()); err != nil || !ip.IsLinkLocalUnicast() {
				return x
			}
		}
	}
	return xs[0]
}

// Inspect reads one camera at its device service URL (for a camera on
// another subnet, which multicast does not reach).
func Inspect(ctx context.Context, xaddr string, opts DiscoverOptions) Device {
	d := Device{XAddr: xaddr}
	inspect(ctx, &d, opts)
	return d
}

func inspect(ctx context.Context, d *Device, opts DiscoverOptions) {
	per := opts.PerCamera
	if per <= 0 {
		per = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, per)
	defer cancel()
	c := &Client{XAddr: d.XAddr, Username: opts.Username, Password: opts.Password, HTTP: opts.HTTP}
	fail := func(err error) {
		if errors.Is(err, ErrUnauthorized) {
			d.Unauthorized = true
			d.Error = "unauthorized"
			return
		}
		d.Error = err.Error()
	}
	if err := c.SyncClock(ctx); err == nil {
		d.ClockOffset = c.ClockOffset()
	}
	info, err := c.GetDeviceInformation(ctx)
	if err != nil {
		fail(err)
		return
	}
	d.Manufacturer, d.Model, d.Firmware, d.Serial = info.Manufacturer, info.Model, info.FirmwareVersion, info.SerialNumber
	profiles, err := c.GetProfiles(ctx)
	if err != nil {
		fail(err)
		return
	}
	for _, p := range profiles {
		uri, err := c.GetStreamUri(ctx, p.Token)
		if err != nil {
			fail(err)
			return
		}
		d.Streams = append(d.Streams, Stream{Profile: p.Token, Name: p.Name, Encoding: p.Encoding, Width: p.Width, Height: p.Height, URI: uri})
	}
	if len(d.Streams) > 0 {
		d.MainURI = d.Streams[0].URI
	}
	if len(d.Streams) > 1 {
		d.SubURI = d.Streams[1].URI
	}
}
