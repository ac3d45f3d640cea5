package onvif

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DeviceInfo is GetDeviceInformation's answer.
type DeviceInfo struct {
	Manufacturer    string `xml:"Manufacturer"`
	Model           string `xml:"Model"`
	FirmwareVersion string `xml:"FirmwareVersion"`
	SerialNumber    string `xml:"SerialNumber"`
	HardwareID      string `xml:"HardwareId"`
}

// GetDeviceInformation asks the device its make, model and firmware.
func (c *Client) GetDeviceInformation(ctx context.Context) (DeviceInfo, error) {
	if err := c.ensureClock(ctx); err != nil {
		return DeviceInfo{}, err
	}
	var out DeviceInfo
	err := c.call(ctx, c.XAddr, nsDevice+"/GetDeviceInformation", true,
		struct {
			XMLName xml.Name `xml:"tds:GetDeviceInformation"`
			NS      string   `xml:"xmlns:tds,attr"`
		}{NS: nsDevice}, &out)
	return out, err
}

type xmlDateTime struct {
	Date struct {
		Year  int `xml:"Year"`
		Month int `xml:"Month"`
		Day   int `xml:"Day"`
	} `xml:"Date"`
	Time struct {
		Hour   int `xml:"Hour"`
		Minute int `xml:"Minute"`
		Second int `xml:"Second"`
	} `xml:"Time"`
}

func (d xmlDateTime) time() time.Time {
	return time.Date(d.Date.Year, time.Month(d.Date.Month), d.Date.Day, d.Time.Hour, d.Time.Minute, d.Time.Second, 0, time.UTC)
}

// GetSystemDateAndTime returns the camera's UTC clock. It needs no
// authentication (the specification lists it as pre-auth), which is what
// lets us correct the WS-Security timestamp before the first signed call.
func (c *Client) GetSystemDateAndTime(ctx context.Context) (time.Time, error) {
	var out struct {
		SystemDateAndTime struct {
			UTCDateTime   *xmlDateTime `xml:"UTCDateTime"`
			LocalDateTime *xmlDateTime `xml:"LocalDateTime"`
		} `xml:"SystemDateAndTime"`
	}
	err := c.call(ctx, c.XAddr, nsDevice+"/GetSystemDateAndTime", false,
		struct {
			XMLName xml.Name `xml:"tds:GetSystemDateAndTime"`
			NS      string   `xml:"xmlns:tds,attr"`
		}{NS: nsDevice}, &out)
	if err != nil {
		return time.Time{}, err
	}
	d := out.SystemDateAndTime.UTCDateTime
	if d == nil || d.Date.Year == 0 {
		return time.Time{}, errors.New("onvif: GetSystemDateAndTime has no UTCDateTime")
	}
	return d.time(), nil
}

// SyncClock measures the camera's clock offset (to the second the camera
// reports) and uses it for every later WS-Security timestamp.
func (c *Client) SyncClock(ctx context.Context) error {
	t0 := c.now()
	cam, err := c.GetSystemDateAndTime(ctx)
	if err != nil {
		return err
	}
	t1 := c.now()
	mid := t0.Add(t1.Sub(t0) / 2)
	// The camera answers in whole seconds: it said S while its clock was
	// somewhere in [S, S+1); take the middle.
	off := cam.Add(500 * time.Millisecond).Sub(mid)
	c.mu.Lock()
	c.offset, c.synced = off, true
	c.mu.Unlock()
	return nil
}

func (c *Client) ensureClock(ctx context.Context) error {
	c.mu.Lock()
	synced := c.synced
	c.mu.Unlock()
	if synced || c.Username == "" {
		return nil
	}
	if err := c.SyncClock(ctx); err != nil {
		// A camera without the operation still works when its clock is
		// right; carry on with no correction.
		var f *Fault
		if errors.As(err, &f) {
			c.mu.Lock()
			c.synced = true
			c.mu.Unlock()
			return nil
		}
		return err
	}
	return nil
}

// Services finds the media and events service URLs: GetServices first
// (ONVIF 2.0 and later), GetCapabilities for older cameras. media is the
// Media (ver10) service; a camera that offers only Media2 (ver20) answers
// "" there and is still usable through GetProfiles and GetStreamUri.
func (c *Client) Services(ctx context.Context) (media, events string, err error) {
	s, err := c.services(ctx)
	return s.media, s.events, err
}

func (c *Client) services(ctx context.Context) (services, error) {
	c.mu.Lock()
	s := c.svc
	c.mu.Unlock()
	if s.found {
		return s, nil
	}
	if err := c.ensureClock(ctx); err != nil {
		return s, err
	}
	var gs struct {
		Service []struct {
			Namespace string `xml:"Namespace"`
			XAddr     string `xml:"XAddr"`
		} `xml:"Service"`
	}
	err := c.call(ctx, c.XAddr, nsDevice+"/GetServices", true,
		struct {
			XMLName           xml.Name `xml:"tds:GetServices"`
			NS                string   `xml:"xmlns:tds,attr"`
			IncludeCapability bool     `xml:"tds:IncludeCapability"`
		}{NS: nsDevice}, &gs)
	if errors.Is(err, ErrUnauthorized) {
		return s, err
	}
	if err == nil {
		for _, sv := range gs.Service {
			switch strings.TrimSpace(sv.Namespace) {
			case nsMedia:
				s.media = strings.TrimSpace(sv.XAddr)
			case nsMedia2:
				s.media2 = strings.TrimSpace(sv.XAddr)
			case nsEvents:
				s.events = strings.TrimSpace(sv.XAddr)
			}
		}
	}
	if s.media == "" && s.media2 == "" {
		var caps struct {
			Capabilities struct {
				Media  struct{ XAddr string } `xml:"Media"`
				Events struct{ XAddr string } `xml:"Events"`
			} `xml:"Capabilities"`
		}
		err = c.call(ctx, c.XAddr, nsDevice+"/GetCapabilities", true,
			struct {
				XMLName  xml.Name `xml:"tds:GetCapabilities"`
				NS       string   `xml:"xmlns:tds,attr"`
				Category string   `xml:"tds:Category"`
			}{NS: nsDevice, Category: "All"}, &caps)
		if err != nil {
			return s, err
		}
		s.media = strings.TrimSpace(caps.Capabilities.Media.XAddr)
		s.events = strings.TrimSpace(caps.Capabilities.Events.XAddr)
	}
	if s.media == "" && s.media2 == "" {
		return s, fmt.Errorf("onvif: %s lists no media service", c.XAddr)
	}
	s.found = true
	c.mu.Lock()
	c.svc = s
	c.mu.Unlock()
	return s, nil
}
