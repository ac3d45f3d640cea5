package onvifcam

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/icholy/digest"

	"villagehub/hub/onvif"
)

// envelopeOpen is the gSOAP-style envelope real cameras answer with (the
// namespace list abridged to what the bodies use).
const envelopeOpen = `<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa5="http://www.w3.org/2005/08/addressing" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tr2="http://www.onvif.org/ver20/media/wsdl" xmlns:tev="http://www.onvif.org/ver10/events/wsdl" xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:wsrf-r="http://docs.oasis-open.org/wsrf/r-2" xmlns:tns1="http://www.onvif.org/ver10/topics" xmlns:ter="http://www.onvif.org/ver10/error">`

type request struct {
	Header struct {
		Security *struct {
			UsernameToken struct {
				Username string `xml:"Username"`
				Password string `xml:"Password"`
				Nonce    string `xml:"Nonce"`
				Created  string `xml:"Created"`
			} `xml:"UsernameToken"`
		} `xml:"Security"`
	} `xml:"Header"`
	Body struct {
		Inner []byte `xml:",innerxml"`
	} `xml:"Body"`
}

// operation is the local name of the body's first element.
func operation(body []byte) string {
	d := xml.NewDecoder(bytes.NewReader(body))
	for {
		t, err := d.Token()
		if err != nil {
			return ""
		}
		if se, ok := t.(xml.StartElement); ok {
			return se.Name.Local
		}
	}
}

func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "%s<SOAP-ENV:Body>%s</SOAP-ENV:Body></SOAP-ENV:Envelope>", envelopeOpen, body)
}

func fault(w http.ResponseWriter, status int, code, subcode, reason string) {
	reply(w, status, fmt.Sprintf(`<SOAP-ENV:Fault><SOAP-ENV:Code><SOAP-ENV:Value>%s</SOAP-ENV:Value><SOAP-ENV:Subcode><SOAP-ENV:Value>%s</SOAP-ENV:Value></SOAP-ENV:Subcode></SOAP-ENV:Code><SOAP-ENV:Reason><SOAP-ENV:Text xml:lang="en">%s</SOAP-ENV:Text></SOAP-ENV:Reason></SOAP-ENV:Fault>`, code, subcode, xmlEscape(reason)))
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// preAuth are the operations the Core specification lets anyone call.
var preAuth = map[string]bool{"GetSystemDateAndTime": true, "GetServices": true, "GetCapabilities": true}

func (c *Camera) serveSOAP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "SOAP wants POST", http.StatusMethodNotAllowed)
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	var req request
	if err := xml.Unmarshal(data, &req); err != nil {
		fault(w, http.StatusBadRequest, "SOAP-ENV:Sender", "ter:WellFormed", "not a SOAP envelope")
		return
	}
	op := operation(req.Body.Inner)
	if !preAuth[op] {
		if c.cfg.Auth == AuthDigest || c.cfg.Auth == AuthBoth {
			if !c.checkDigest(r) {
				c.authFailed()
				w.Header().Set("WWW-Authenticate", c.digestChallenge())
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		if c.cfg.Auth == AuthWSSE || c.cfg.Auth == AuthBoth {
			if why := c.checkToken(&req); why != "" {
				c.authFailed()
				fault(w, http.StatusBadRequest, "SOAP-ENV:Sender", "ter:NotAuthorized", "Sender not Authorized: "+why)
				return
			}
		}
	}
	if op == "GetServices" && c.cfg.OldFirmware {
		op = "unsupported GetServices"
	}
	// Media and Media2 share operation names; the service URL tells them
	// apart.
	media2 := strings.HasSuffix(r.URL.Path, "/media2_service")
	if (media2 && !c.cfg.Media2) || (!media2 && c.cfg.NoMedia1 && (op == "GetProfiles" || op == "GetStreamUri")) {
		op = "unsupported " + op
	}
	switch op {
	case "GetSystemDateAndTime":
		c.getSystemDateAndTime(w)
	case "GetDeviceInformation":
		reply(w, 200, fmt.Sprintf(`<tds:GetDeviceInformationResponse><tds:Manufacturer>%s</tds:Manufacturer><tds:Model>%s</tds:Model><tds:FirmwareVersion>%s</tds:FirmwareVersion><tds:SerialNumber>%s</tds:SerialNumber><tds:HardwareId>88</tds:HardwareId></tds:GetDeviceInformationResponse>`,
			xmlEscape(c.cfg.Manufacturer), xmlEscape(c.cfg.Model), xmlEscape(c.cfg.Firmware), xmlEscape(c.cfg.Serial)))
	case "GetServices":
		base := "http://" + c.Addr() + "/onvif/"
		reply(w, 200, `<tds:GetServicesResponse>`+
			svc("http://www.onvif.org/ver10/device/wsdl", base+"device_service", 2, 61)+
			c.mediaServices(base)+
			svc("http://www.onvif.org/ver10/events/wsdl", base+"event_service", 2, 60)+
			`</tds:GetServicesResponse>`)
	case "GetCapabilities":
		base := "http://" + c.Addr() + "/onvif/"
		reply(w, 200, `<tds:GetCapabilitiesResponse><tds:Capabilities>`+
			`<tt:Device><tt:XAddr>`+base+`device_service</tt:XAddr></tt:Device>`+
			`<tt:Events><tt:XAddr>`+base+`event_service</tt:XAddr><tt:WSSubscriptionPolicySupport>true</tt:WSSubscriptionPolicySupport><tt:WSPullPointSupport>true</tt:WSPullPointSupport></tt:Events>`+
			`<tt:Media><tt:XAddr>`+base+`media_service</tt:XAddr><tt:StreamingCapabilities><tt:RTPMulticast>true</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>`+
			`</tds:Capabilities></tds:GetCapabilitiesResponse>`)
	case "GetProfiles":
		if media2 {
			reply(w, 200, `<tr2:GetProfilesResponse>`+
				profile2("Profile_1", "mainStream", c.cfg.MainEncoding, 1920, 1080, 25)+
				profile2("Profile_2", "subStream", "H264", 640, 360, 15)+
				`</tr2:GetProfilesResponse>`)
			return
		}
		reply(w, 200, `<trt:GetProfilesResponse>`+
			profile("Profile_1", "mainStream", c.cfg.MainEncoding, 1920, 1080, 25)+
			profile("Profile_2", "subStream", "H264", 640, 360, 15)+
			`</trt:GetProfilesResponse>`)
	case "GetStreamUri":
		c.getStreamUri(w, req.Body.Inner, media2)
	case "CreatePullPointSubscription":
		c.createPullPoint(w, req.Body.Inner)
	case "PullMessages":
		c.pullMessages(w, r, req.Body.Inner)
	case "Renew":
		c.renew(w, r, req.Body.Inner)
	case "Unsubscribe":
		c.unsubscribe(w, r)
	default:
		fault(w, http.StatusBadRequest, "SOAP-ENV:Sender", "ter:ActionNotSupported", "operation "+op+" not supported")
	}
}

func svc(ns, xaddr string, major, minor int) string {
	return fmt.Sprintf(`<tds:Service><tds:Namespace>%s</tds:Namespace><tds:XAddr>%s</tds:XAddr><tds:Version><tt:Major>%d</tt:Major><tt:Minor>%d</tt:Minor></tds:Version></tds:Service>`, ns, xaddr, major, minor)
}

// mediaServices are the GetServices entries of the media services the
// camera offers.
func (c *Camera) mediaServices(base string) string {
	s := ""
	if !c.cfg.NoMedia1 {
		s += svc("http://www.onvif.org/ver10/media/wsdl", base+"media_service", 2, 60)
	}
	if c.cfg.Media2 {
		s += svc("http://www.onvif.org/ver20/media/wsdl", base+"media2_service", 2, 60)
	}
	return s
}

// profile is a Media (ver10) profile. Its encoder configuration can only
// say JPEG, MPEG4 or H264: an H.265 profile goes without one.
func profile(token, name, enc string, w, h, fps int) string {
	encoder := ""
	if enc == "H264" {
		encoder = fmt.Sprintf(`<tt:VideoEncoderConfiguration token="VideoEncoderToken_%s"><tt:Name>VideoEncoder_%s</tt:Name><tt:UseCount>1</tt:UseCount><tt:Encoding>H264</tt:Encoding><tt:Resolution><tt:Width>%d</tt:Width><tt:Height>%d</tt:Height></tt:Resolution><tt:Quality>3</tt:Quality><tt:RateControl><tt:FrameRateLimit>%d</tt:FrameRateLimit><tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>2048</tt:BitrateLimit></tt:RateControl><tt:H264><tt:GovLength>50</tt:GovLength><tt:H264Profile>Main</tt:H264Profile></tt:H264><tt:SessionTimeout>PT5S</tt:SessionTimeout></tt:VideoEncoderConfiguration>`,
			token, token, w, h, fps)
	}
	return fmt.Sprintf(`<trt:Profiles token="%s" fixed="true"><tt:Name>%s</tt:Name>`+
		`<tt:VideoSourceConfiguration token="VideoSourceToken"><tt:Name>VideoSourceConfig</tt:Name><tt:UseCount>2</tt:UseCount><tt:SourceToken>VideoSource_1</tt:SourceToken><tt:Bounds x="0" y="0" width="1920" height="1080"></tt:Bounds></tt:VideoSourceConfiguration>`+
		`%s</trt:Profiles>`, token, name, encoder)
}

// profile2 is a Media2 profile, shaped as the GetProfilesResponse a real
// camera answered with in agsh/onvif issue 233 (tr2:Configurations holding
// tr2:VideoSource and tr2:VideoEncoder with Profile and GovLength
// attributes).
func profile2(token, name, enc string, w, h, fps int) string {
	return fmt.Sprintf(`<tr2:Profiles fixed="true" token="%s"><tr2:Name>%s</tr2:Name><tr2:Configurations>`+
		`<tr2:VideoSource token="VideoSourceToken"><tt:Name>VideoSourceConfig</tt:Name><tt:UseCount>2</tt:UseCount><tt:SourceToken>VideoSource_1</tt:SourceToken><tt:Bounds height="1080" width="1920" y="0" x="0"/></tr2:VideoSource>`+
		`<tr2:VideoEncoder Profile="Main" GovLength="50" token="VideoEncoderToken_%s"><tt:Name>VideoEncoder_%s</tt:Name><tt:UseCount>1</tt:UseCount><tt:Encoding>%s</tt:Encoding><tt:Resolution><tt:Width>%d</tt:Width><tt:Height>%d</tt:Height></tt:Resolution><tt:RateControl><tt:FrameRateLimit>%d</tt:FrameRateLimit><tt:BitrateLimit>2048</tt:BitrateLimit></tt:RateControl><tt:Quality>3</tt:Quality></tr2:VideoEncoder>`+
		`</tr2:Configurations></tr2:Profiles>`, token, name, token, token, enc, w, h, fps)
}

func (c *Camera) getSystemDateAndTime(w http.ResponseWriter) {
	t := c.Now()
	reply(w, 200, fmt.Sprintf(`<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>Manual</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings><tt:TimeZone><tt:TZ>CST-7:00:00</tt:TZ></tt:TimeZone>`+
		`<tt:UTCDateTime><tt:Time><tt:Hour>%d</tt:Hour><tt:Minute>%d</tt:Minute><tt:Second>%d</tt:Second></tt:Time><tt:Date><tt:Year>%d</tt:Year><tt:Month>%d</tt:Month><tt:Day>%d</tt:Day></tt:Date></tt:UTCDateTime>`+
		`</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>`,
		t.Hour(), t.Minute(), t.Second(), t.Year(), int(t.Month()), t.Day()))
}

func (c *Camera) getStreamUri(w http.ResponseWriter, body []byte, media2 bool) {
	var q struct {
		ProfileToken string `xml:"ProfileToken"`
		Protocol     string `xml:"Protocol"` // Media2
	}
	_ = xml.Unmarshal(body, &q)
	host, _, _ := strings.Cut(c.Addr(), ":")
	var uri string
	switch strings.TrimSpace(q.ProfileToken) {
	case "Profile_1":
		uri = c.cfg.MainURI
		if uri == "" {
			uri = "rtsp://" + host + ":554/Streaming/Channels/101?transportmode=unicast&profile=Profile_1"
		}
	case "Profile_2":
		uri = c.cfg.SubURI
		if uri == "" {
			uri = "rtsp://" + host + ":554/Streaming/Channels/102?transportmode=unicast&profile=Profile_2"
		}
	default:
		fault(w, http.StatusBadRequest, "SOAP-ENV:Sender", "ter:NoProfile", "no such profile")
		return
	}
	if media2 {
		// Media2 names the transport with one word; "RTSP" is RTP over
		// RTSP over TCP (the only one this camera serves).
		if p := strings.TrimSpace(q.Protocol); p != "RTSP" {
			fault(w, http.StatusBadRequest, "SOAP-ENV:Sender", "ter:InvalidArgVal", "protocol "+p+" not supported")
			return
		}
		reply(w, 200, `<tr2:GetStreamUriResponse><tr2:Uri>`+xmlEscape(uri)+`</tr2:Uri></tr2:GetStreamUriResponse>`)
		return
	}
	reply(w, 200, `<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>`+xmlEscape(uri)+`</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT60S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>`)
}

func (c *Camera) authFailed() {
	c.mu.Lock()
	c.stats.AuthFailures++
	c.mu.Unlock()
}

// checkToken verifies the WS-UsernameToken; it returns why it is refused,
// or "".
func (c *Camera) checkToken(req *request) string {
	sec := req.Header.Security
	if sec == nil {
		return "no UsernameToken"
	}
	tok := sec.UsernameToken
	if strings.TrimSpace(tok.Username) != c.cfg.Username {
		return "unknown user"
	}
	nonce, err := base64.StdEncoding.DecodeString(strings.TrimSpace(tok.Nonce))
	if err != nil || len(nonce) == 0 {
		return "bad nonce"
	}
	created := strings.TrimSpace(tok.Created)
	ct, err := time.Parse(time.RFC3339Nano, created)
	if err != nil {
		return "bad Created"
	}
	now := c.Now()
	if d := ct.Sub(now); d > c.cfg.MaxSkew || d < -c.cfg.MaxSkew {
		// What cameras do with a client whose clock is off: refuse.
		return "Created too far from the camera's clock"
	}
	if onvif.PasswordDigest(nonce, created, c.cfg.Password) != strings.TrimSpace(tok.Password) {
		return "wrong password"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for n, t := range c.nonces {
		if now.Sub(t) > 2*c.cfg.MaxSkew {
			delete(c.nonces, n)
		}
	}
	if _, seen := c.nonces[tok.Nonce]; seen {
		return "nonce replayed"
	}
	c.nonces[tok.Nonce] = now
	return ""
}

// checkDigest verifies an HTTP Digest Authorization against this boot's
// nonce.
func (c *Camera) checkDigest(r *http.Request) bool {
	cred, err := digest.ParseCredentials(r.Header.Get("Authorization"))
	if err != nil || cred.Username != c.cfg.Username {
		return false
	}
	c.mu.Lock()
	nonce := c.dnonce
	c.mu.Unlock()
	if cred.Nonce != nonce {
		return false
	}
	want, err := digest.Digest(&digest.Challenge{Realm: "IP Camera(onvif)", Nonce: nonce, Algorithm: "MD5", QOP: []string{"auth"}},
		digest.Options{Method: r.Method, URI: cred.URI, Count: cred.Nc, Cnonce: cred.Cnonce, Username: c.cfg.Username, Password: c.cfg.Password})
	return err == nil && want.Response == cred.Response && cred.URI == r.URL.RequestURI()
}
