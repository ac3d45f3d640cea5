package onvif

import (
	"context"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// WS-Discovery (the 2005/04 draft ONVIF uses) over SOAP-over-UDP.
const (
	MulticastAddr = "239.255.255.250:3702"
	nsWSD         = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
	nsWSA2004     = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
	nsDN          = "http://www.onvif.org/ver10/network/wsdl"
)

// ProbeMatch is one device's answer to a Probe.
type ProbeMatch struct {
	Endpoint string   // EndpointReference address, e.g. urn:uuid:...
	Types    []string // e.g. dn:NetworkVideoTransmitter
	Scopes   []string // onvif://www.onvif.org/name/..., .../hardware/...
	XAddrs   []string // device service URLs
	From     string   // UDP source address of the answer
}

// Scope returns the value of an onvif://www.onvif.org/<kind>/<value>
// scope (name, hardware, location...), unescaped.
func (m ProbeMatch) Scope(kind string) string {
	prefix := "onvif://www.onvif.org/" + kind + "/"
	for _, s := range m.Scopes {
		if v, ok := strings.CutPrefix(s, prefix); ok {
			if u, err := url.PathUnescape(v); err == nil {
				return u
			}
			return v
		}
	}
	return ""
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// ProbeMessage is the Probe for NetworkVideoTransmitter devices, with the
// given message ID.
func ProbeMessage(messageID string) []byte {
	return []byte(xml.Header + `<s:Envelope xmlns:s="` + nsSOAP + `" xmlns:a="` + nsWSA2004 + `" xmlns:d="` + nsWSD + `" xmlns:dn="` + nsDN + `">` +
		`<s:Header><a:Action s:mustUnderstand="1">` + nsWSD + `/Probe</a:Action>` +
		`<a:MessageID>` + messageID + `</a:MessageID>` +
		`<a:ReplyTo><a:Address>` + nsWSA2004 + `/role/anonymous</a:Address></a:ReplyTo>` +
		`<a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To></s:Header>` +
		`<s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body></s:Envelope>`)
}

type probeMatchesEnvelope struct {
	Header struct {
		RelatesTo string `xml:"RelatesTo"`
	} `xml:"Header"`
	Body struct {
		ProbeMatches struct {
			ProbeMatch []struct {
				EndpointReference struct {
					Address string `xml:"Address"`
				} `xml:"EndpointReference"`
				Types  string `xml:"Types"`
				Scopes string `xml:"Scopes"`
				XAddrs string `xml:"XAddrs"`
			} `xml:"ProbeMatch"`
		} `xml:"ProbeMatches"`
	} `xml:"Body"`
}

// ParseProbeMatches decodes a ProbeMatches message. relatesTo, when set,
// must equal the message's RelatesTo (answers to someone else's probe are
// dropped).
func ParseProbeMatches(data []byte, relatesTo string) ([]ProbeMatch, error) {
	var env probeMatchesEnvelope
	if err := xml.Unmarshal(data, &env); err != nil {
		return nil, err
	}
	if relatesTo != "" && strings.TrimSpace(env.Header.RelatesTo) != relatesTo {
		return nil, nil
	}
	var out []ProbeMatch
	for _, pm := range env.Body.ProbeMatches.ProbeMatch {
		out = append(out, ProbeMatch{
			Endpoint: strings.TrimSpace(pm.EndpointReference.Address),
			Types:    strings.Fields(pm.Types),
			Scopes:   strings.Fields(pm.Scopes),
			XAddrs:   strings.Fields(pm.XAddrs),
		})
	}
	return out, nil
}

// ProbeOptions configure Probe.
type ProbeOptions struct {
	// Timeout is how long answers are collected. Default 3 s (devices
	// wait a random 0-500 ms before answering, per SOAP-over-UDP).
	Timeout time.Duration
	// Addr is where the probe is sent. Default MulticastAddr.
	Addr string
	// Interface, when set, sends the probe out of that interface only
	// (the multicast route decides otherwise).
	Interface string
}

// Probe multicasts a WS-Discovery Probe and collects the ProbeMatches that
// arrive before the timeout (or ctx ends), one per endpoint.
func Probe(ctx context.Context, opts ProbeOptions) ([]ProbeMatch, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 3 * time.Second
	}
	if opts.Addr == "" {
		opts.Addr = MulticastAddr
	}
	dst, err := net.ResolveUDPAddr("udp4", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("onvif: probe address: %w", err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		return nil, fmt.Errorf("onvif: probe socket: %w", err)
	}
	defer conn.Close()
	if opts.Interface != "" {
		if err := setMulticastInterface(conn, opts.Interface); err != nil {
			return nil, err
		}
	}
	id := "urn:uuid:" + uuid()
	msg := ProbeMessage(id)
	// SOAP-over-UDP repeats multicast messages since UDP may drop one.
	for i := 0; i < 2; i++ {
		if _, err := conn.WriteToUDP(msg, dst); err != nil {
			return nil, fmt.Errorf("onvif: sending probe to %s: %w", opts.Addr, err)
		}
	}
	deadline := time.Now().Add(opts.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	if err := conn.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []ProbeMatch
	buf := make([]byte, 64<<10)
	for {
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return out, nil
			}
			return out, err
		}
		ms, err := ParseProbeMatches(buf[:n], id)
		if err != nil {
			continue // not for us or not XML: ignore, as the spec says
		}
		for _, m := range ms {
			key := m.Endpoint
			if key == "" {
				key = strings.Join(m.XAddrs, " ")
			}
			if seen[key] || len(m.XAddrs) == 0 {
				continue
			}
			seen[key] = true
			m.From = from.String()
			out = append(out, m)
		}
	}
}
