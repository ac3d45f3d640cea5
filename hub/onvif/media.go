package onvif

import (
	"cmp"
	"context"
	"encoding/xml"
	"errors"
	"net/url"
	"strings"
)

// Profile is one media profile (a stream the camera encodes).
type Profile struct {
	Token    string
	Name     string
	Encoding string // H264, H265, JPEG...
	Width    int
	Height   int
}

// GetProfiles lists the camera's media profiles, main stream first as
// cameras order them. Where the camera offers Media2 (ONVIF ver20, Profile
// T) it is asked there first: Media (ver10) cannot name H.265 (its
// Encoding is one of JPEG, MPEG4 and H264), so an H.265 main stream is
// missing or mislabelled there. A Media2 that answers with a fault (a
// firmware listing the service without implementing it) falls back to
// Media.
func (c *Client) GetProfiles(ctx context.Context) ([]Profile, error) {
	s, err := c.services(ctx)
	if err != nil {
		return nil, err
	}
	if s.media2 != "" {
		ps, err := c.getProfiles2(ctx, s.media2)
		var f *Fault
		switch {
		case err == nil:
			c.mu.Lock()
			c.svc.profilesFrom2 = true
			c.mu.Unlock()
			return ps, nil
		case !errors.As(err, &f) || s.media == "":
			return nil, err
		}
	}
	var out profilesReply
	err = c.call(ctx, s.media, nsMedia+"/GetProfiles", true,
		struct {
			XMLName xml.Name `xml:"trt:GetProfiles"`
			NS      string   `xml:"xmlns:trt,attr"`
		}{NS: nsMedia}, &out)
	if err != nil {
		return nil, err
	}
	return out.profiles(), nil
}

// profilesReply is a GetProfilesResponse of either media service: Media
// (ver10) holds the encoder in VideoEncoderConfiguration, Media2 in
// Configurations/VideoEncoder, with the same Encoding and Resolution.
type profilesReply struct {
	Profiles []struct {
		Token  string           `xml:"token,attr"`
		Name   string           `xml:"Name"`
		Video  *videoEncoderXML `xml:"VideoEncoderConfiguration"`
		Video2 *videoEncoderXML `xml:"Configurations>VideoEncoder"`
	} `xml:"Profiles"`
}

type videoEncoderXML struct {
	Encoding   string `xml:"Encoding"`
	Resolution struct {
		Width  int `xml:"Width"`
		Height int `xml:"Height"`
	} `xml:"Resolution"`
}

func (r *profilesReply) profiles() []Profile {
	ps := make([]Profile, 0, len(r.Profiles))
	for _, p := range r.Profiles {
		q := Profile{Token: p.Token, Name: strings.TrimSpace(p.Name)}
		if v := cmp.Or(p.Video, p.Video2); v != nil {
			q.Encoding = strings.TrimSpace(v.Encoding)
			q.Width, q.Height = v.Resolution.Width, v.Resolution.Height
		}
		ps = append(ps, q)
	}
	return ps
}

// getProfiles2 is Media2's GetProfiles (ONVIF Media2 Service
// Specification, 5.2.1), asking for the video encoder configuration only.
func (c *Client) getProfiles2(ctx context.Context, xaddr string) ([]Profile, error) {
	var out profilesReply
	err := c.call(ctx, xaddr, nsMedia2+"/GetProfiles", true,
		struct {
			XMLName xml.Name `xml:"tr2:GetProfiles"`
			NS      string   `xml:"xmlns:tr2,attr"`
			Type    string   `xml:"tr2:Type"`
		}{NS: nsMedia2, Type: "VideoEncoder"}, &out)
	if err != nil {
		return nil, err
	}
	return out.profiles(), nil
}

// GetStreamUri returns the RTSP URL of a profile (RTP over RTSP over TCP,
// i.e. TCP-interleaved, what the hub's probe uses: Media's "RTP-Unicast"
// over "RTSP", Media2's protocol "RTSP"), with any user:password the
// camera put in it removed: credentials live in the config's
// username/password fields, never in a URL. A profile listed by Media2 is
// asked there.
func (c *Client) GetStreamUri(ctx context.Context, profileToken string) (string, error) {
	s, err := c.services(ctx)
	if err != nil {
		return "", err
	}
	if s.media2 != "" && (s.profilesFrom2 || s.media == "") {
		var out struct {
			Uri string `xml:"Uri"`
		}
		err = c.call(ctx, s.media2, nsMedia2+"/GetStreamUri", true,
			struct {
				XMLName      xml.Name `xml:"tr2:GetStreamUri"`
				NS           string   `xml:"xmlns:tr2,attr"`
				Protocol     string   `xml:"tr2:Protocol"`
				ProfileToken string   `xml:"tr2:ProfileToken"`
			}{NS: nsMedia2, Protocol: "RTSP", ProfileToken: profileToken}, &out)
		if err != nil {
			return "", err
		}
		return StripCredentials(strings.TrimSpace(out.Uri)), nil
	}
	type transport struct {
		Protocol string `xml:"tt:Protocol"`
	}
	type setup struct {
		Stream    string    `xml:"tt:Stream"`
		Transport transport `xml:"tt:Transport"`
	}
	var out struct {
		MediaUri struct {
			Uri string `xml:"Uri"`
		} `xml:"MediaUri"`
	}
	err = c.call(ctx, s.media, nsMedia+"/GetStreamUri", true,
		struct {
			XMLName      xml.Name `xml:"trt:GetStreamUri"`
			NS           string   `xml:"xmlns:trt,attr"`
			TT           string   `xml:"xmlns:tt,attr"`
			StreamSetup  setup    `xml:"trt:StreamSetup"`
			ProfileToken string   `xml:"trt:ProfileToken"`
		}{NS: nsMedia, TT: nsSchema, StreamSetup: setup{Stream: "RTP-Unicast", Transport: transport{Protocol: "RTSP"}}, ProfileToken: profileToken}, &out)
	if err != nil {
		return "", err
	}
	return StripCredentials(strings.TrimSpace(out.MediaUri.Uri)), nil
}

// StripCredentials removes user:password from a URL.
func StripCredentials(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}
