package onvifcam

import (
	"encoding/xml"
	"fmt"
	"net"
	"net/url"
	"strings"
)

type probe struct {
	Header struct {
		MessageID string `xml:"MessageID"`
		Action    string `xml:"Action"`
	} `xml:"Header"`
	Body struct {
		Probe *struct {
			Types string `xml:"Types"`
		} `xml:"Probe"`
	} `xml:"Body"`
}

// startDiscovery joins the WS-Discovery group and answers Probes for
// NetworkVideoTransmitter (or for any type) with a unicast ProbeMatches.
// Called with c.mu held.
func (c *Camera) startDiscovery() error {
	group, err := net.ResolveUDPAddr("udp4", c.cfg.DiscoveryAddr)
	if err != nil {
		return fmt.Errorf("onvifcam: discovery address: %w", err)
	}
	var ifi *net.Interface
	if c.cfg.DiscoveryInterface != "" {
		if ifi, err = net.InterfaceByName(c.cfg.DiscoveryInterface); err != nil {
			return fmt.Errorf("onvifcam: %w", err)
		}
	}
	conn, err := net.ListenMulticastUDP("udp4", ifi, group)
	if err != nil {
		return fmt.Errorf("onvifcam: joining %s: %w", c.cfg.DiscoveryAddr, err)
	}
	c.disc = conn
	xaddr := "http://" + c.addr + "/onvif/device_service"
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		buf := make([]byte, 64<<10)
		seq := 0
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			var p probe
			if xml.Unmarshal(buf[:n], &p) != nil || p.Body.Probe == nil {
				continue
			}
			if t := p.Body.Probe.Types; t != "" && !strings.Contains(t, "NetworkVideoTransmitter") && !strings.Contains(t, "Device") {
				continue
			}
			seq++
			_, _ = conn.WriteToUDP([]byte(c.probeMatches(strings.TrimSpace(p.Header.MessageID), xaddr, seq)), from)
		}
	}()
	return nil
}

// probeMatches is shaped like a gSOAP camera's answer (agsh/onvif
// test/serverMockup/Probe.xml).
func (c *Camera) probeMatches(relatesTo, xaddr string, seq int) string {
	scopes := []string{
		"onvif://www.onvif.org/type/video_encoder",
		"onvif://www.onvif.org/Profile/Streaming",
		"onvif://www.onvif.org/Profile/T",
		"onvif://www.onvif.org/hardware/" + url.PathEscape(c.cfg.Model),
		"onvif://www.onvif.org/name/" + url.PathEscape(firstNonEmpty(c.cfg.Name, c.cfg.Manufacturer)),
		"onvif://www.onvif.org/location/" + url.PathEscape(c.cfg.Location),
	}
	return fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:wsdd="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:dn="http://www.onvif.org/ver10/network/wsdl"><SOAP-ENV:Header><wsa:MessageID>urn:uuid:%s</wsa:MessageID><wsa:RelatesTo>%s</wsa:RelatesTo><wsa:To SOAP-ENV:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To><wsa:Action SOAP-ENV:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action><wsdd:AppSequence MessageNumber="%d" InstanceId="%d"></wsdd:AppSequence></SOAP-ENV:Header><SOAP-ENV:Body><wsdd:ProbeMatches><wsdd:ProbeMatch><wsa:EndpointReference><wsa:Address>urn:uuid:%s</wsa:Address></wsa:EndpointReference><wsdd:Types>dn:NetworkVideoTransmitter tds:Device</wsdd:Types><wsdd:Scopes>%s</wsdd:Scopes><wsdd:XAddrs>%s</wsdd:XAddrs><wsdd:MetadataVersion>1</wsdd:MetadataVersion></wsdd:ProbeMatch></wsdd:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>`,
		newUUID(), xmlEscape(relatesTo), seq, c.boot, c.uuid, xmlEscape(strings.Join(scopes, " ")), xmlEscape(xaddr))
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
