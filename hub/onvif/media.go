package onvif

import (
	"context"
	"encoding/xml"
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
// cameras order them.
func (c *Client) GetProfiles(ctx context.Context) ([]Profile, error) {
	media, _, err := c.Services(ctx)
	if err != nil {
		return nil, err
	}
	var out struct {
		Profiles []struct {
			Token string `xml:"token,attr"`
			Name  string `xml:"Name"`
			Video *struct {
				Encoding   string `xml:"Encoding"`
				Resolution struct {
					Width  int `xml:"Width"`
					Height int `xml:"Height"`
				} `xml:"Resolution"`
			} `xml:"VideoEncoderConfiguration"`
		} `xml:"Profiles"`
	}
	err = c.call(ctx, media, nsMedia+"/GetProfiles", true,
		struct {
			XMLName xml.Name `xml:"trt:GetProfiles"`
			NS      string   `xml:"xmlns:trt,attr"`
		}{NS: nsMedia}, &out)
	if err != nil {
		return nil, err
	}
	ps := make([]Profile, 0, len(out.Profiles))
	for _, p := range out.Profiles {
		q := Profile{Token: p.Token, Name: strings.TrimSpace(p.Name)}
		if p.Video != nil {
			q.Encoding = strings.TrimSpace(p.Video.Encoding)
			q.Width, q.Height = p.Video.Resolution.Width, p.Video.Resolution.Height
		}
		ps = append(ps, q)
	}
	return ps, nil
}

// GetStreamUri returns the RTSP URL of a profile (RTP-Unicast over RTSP,
// i.e. TCP-interleaved, what the hub's probe uses), with any user:password
// the camera put in it removed: credentials live in the config's
// username/password fields, never in a URL.
func (c *Client) GetStreamUri(ctx context.Context, profileToken string) (string, error) {
	media, _, err := c.Services(ctx)
	if err != nil {
		return "", err
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
	err = c.call(ctx, media, nsMedia+"/GetStreamUri", true,
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
