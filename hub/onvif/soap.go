// Package onvif is a small ONVIF client: WS-Discovery, the device, media
// and events operations the hub needs, with WS-Security UsernameToken
// (PasswordDigest, corrected for the camera's clock) and HTTP Digest.
//
// No Go ONVIF library is served by the module proxy this project builds
// from, so the few operations are written here with encoding/xml. Replies
// are decoded by local element names only: cameras disagree on namespace
// prefixes (and a few on namespaces), never on the names the specification
// gives the elements. See docs/onvif.md.
package onvif

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/icholy/digest"
)

// Namespaces of the requests we send.
const (
	nsSOAP   = "http://www.w3.org/2003/05/soap-envelope"
	nsWSSE   = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
	nsWSU    = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
	nsDevice = "http://www.onvif.org/ver10/device/wsdl"
	nsMedia  = "http://www.onvif.org/ver10/media/wsdl"
	nsMedia2 = "http://www.onvif.org/ver20/media/wsdl"
	nsEvents = "http://www.onvif.org/ver10/events/wsdl"
	nsSchema = "http://www.onvif.org/ver10/schema"
	nsWSNT   = "http://docs.oasis-open.org/wsn/b-2"
	nsWSA    = "http://www.w3.org/2005/08/addressing"

	passwordDigestType = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
	nonceEncodingType  = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)

// maxReply bounds what one SOAP reply may take in memory: a camera is not
// trusted to end its answer.
const maxReply = 4 << 20

// ErrUnauthorized: the camera refused the credentials (HTTP 401 after the
// digest exchange, or a ter:NotAuthorized fault).
var ErrUnauthorized = errors.New("onvif: unauthorized (wrong username or password)")

// Fault is a SOAP fault a camera answered with.
type Fault struct {
	HTTPStatus int
	Code       string // e.g. "env:Sender"
	Subcode    string // e.g. "ter:NotAuthorized"; the innermost subcode
	Reason     string
}

func (f *Fault) Error() string {
	s := "onvif: fault " + f.Code
	if f.Subcode != "" {
		s += "/" + f.Subcode
	}
	if f.Reason != "" {
		s += ": " + f.Reason
	}
	return s
}

// localPart returns "NotAuthorized" for "ter:NotAuthorized".
func localPart(qname string) string {
	if i := strings.LastIndexByte(qname, ':'); i >= 0 {
		return qname[i+1:]
	}
	return qname
}

type xmlFault struct {
	Code struct {
		Value   string     `xml:"Value"`
		Subcode *xmlSubcod `xml:"Subcode"`
	} `xml:"Code"`
	Reason struct {
		Text []string `xml:"Text"`
	} `xml:"Reason"`
	// SOAP 1.1 shapes, which some cameras still send.
	FaultCode   string `xml:"faultcode"`
	FaultString string `xml:"faultstring"`
}

type xmlSubcod struct {
	Value   string     `xml:"Value"`
	Subcode *xmlSubcod `xml:"Subcode"`
}

func (x *xmlFault) fault(status int) *Fault {
	f := &Fault{HTTPStatus: status, Code: strings.TrimSpace(x.Code.Value)}
	for s := x.Code.Subcode; s != nil; s = s.Subcode {
		f.Subcode = strings.TrimSpace(s.Value)
	}
	if len(x.Reason.Text) > 0 {
		f.Reason = strings.TrimSpace(x.Reason.Text[0])
	}
	if f.Code == "" {
		f.Code = strings.TrimSpace(x.FaultCode)
		f.Reason = strings.TrimSpace(x.FaultString)
	}
	return f
}

// Client talks to one ONVIF device.
type Client struct {
	// XAddr is the device service URL, e.g. http://10.0.0.5/onvif/device_service.
	XAddr    string
	Username string
	Password string
	// HTTP is used for every request; its Transport is wrapped with HTTP
	// Digest when a username is set. Leave its Timeout 0: a PullMessages
	// legitimately waits on the camera; calls are bounded by their context
	// (CallTimeout when the context has no deadline).
	HTTP *http.Client
	// CallTimeout bounds a call whose context has no deadline. Default 15 s.
	CallTimeout time.Duration
	// Now is the local clock (tests inject one). Default time.Now.
	Now func() time.Time

	once   sync.Once
	hc     *http.Client
	mu     sync.Mutex
	offset time.Duration // camera clock minus local clock
	synced bool
	svc    services
}

// services are the service URLs learnt from the device service.
type services struct {
	media, media2, events string
	found                 bool
	// profilesFrom2: GetProfiles was answered by Media2, so its tokens are
	// asked for stream URIs there too.
	profilesFrom2 bool
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) httpClient() *http.Client {
	c.once.Do(func() {
		base := c.HTTP
		if base == nil {
			base = &http.Client{}
		}
		hc := *base
		if c.Username != "" {
			// Cameras that want HTTP Digest (many Hikvision and Dahua
			// firmwares, for some operations) answer 401 with a challenge;
			// the transport answers it and reuses it.
			hc.Transport = &digest.Transport{Username: c.Username, Password: c.Password, Transport: base.Transport}
		}
		c.hc = &hc
	})
	return c.hc
}

// ClockOffset is the camera's clock minus ours, as last measured.
func (c *Client) ClockOffset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}

// CameraNow is the current time on the camera's clock.
func (c *Client) CameraNow() time.Time { return c.now().Add(c.ClockOffset()) }

// usernameToken builds the WS-Security header: PasswordDigest =
// Base64(SHA1(nonce + created + password)), with created on the camera's
// clock, since cameras reject a token created too far from their own time.
func (c *Client) usernameToken() (*wsSecurity, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	created := c.CameraNow().UTC().Format("2006-01-02T15:04:05.000Z")
	return &wsSecurity{
		MustUnderstand: "1",
		Token: usernameToken{
			Username: c.Username,
			Password: wsPassword{Type: passwordDigestType, Value: PasswordDigest(nonce, created, c.Password)},
			Nonce:    wsNonce{EncodingType: nonceEncodingType, Value: base64.StdEncoding.EncodeToString(nonce)},
			Created:  created,
		},
	}, nil
}

// PasswordDigest is the WS-UsernameToken PasswordDigest of the raw nonce,
// the created timestamp exactly as sent, and the password.
func PasswordDigest(nonce []byte, created, password string) string {
	h := sha1.New()
	h.Write(nonce)
	h.Write([]byte(created))
	h.Write([]byte(password))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

type wsSecurity struct {
	XMLName        xml.Name      `xml:"wsse:Security"`
	MustUnderstand string        `xml:"s:mustUnderstand,attr"`
	Token          usernameToken `xml:"wsse:UsernameToken"`
}

type usernameToken struct {
	Username string     `xml:"wsse:Username"`
	Password wsPassword `xml:"wsse:Password"`
	Nonce    wsNonce    `xml:"wsse:Nonce"`
	Created  string     `xml:"wsu:Created"`
}

type wsPassword struct {
	Type  string `xml:"Type,attr"`
	Value string `xml:",chardata"`
}

type wsNonce struct {
	EncodingType string `xml:"EncodingType,attr"`
	Value        string `xml:",chardata"`
}

type reqEnvelope struct {
	XMLName xml.Name `xml:"s:Envelope"`
	S       string   `xml:"xmlns:s,attr"`
	WSSE    string   `xml:"xmlns:wsse,attr"`
	WSU     string   `xml:"xmlns:wsu,attr"`
	WSA     string   `xml:"xmlns:wsa,attr"`
	Header  struct {
		Security *wsSecurity
		Extra    []any
	} `xml:"s:Header"`
	Body struct {
		Content any
	} `xml:"s:Body"`
}

type respEnvelope struct {
	Body struct {
		Fault   *xmlFault `xml:"Fault"`
		Content []byte    `xml:",innerxml"`
	} `xml:"Body"`
}

// call posts one SOAP request to url and decodes the reply's body element
// into out (by local names). auth=false sends no WS-Security header (for
// the pre-authentication operations such as GetSystemDateAndTime).
func (c *Client) call(ctx context.Context, url, action string, auth bool, body, out any, headers ...any) error {
	if _, ok := ctx.Deadline(); !ok {
		d := c.CallTimeout
		if d <= 0 {
			d = 15 * time.Second
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	env := reqEnvelope{S: nsSOAP, WSSE: nsWSSE, WSU: nsWSU, WSA: nsWSA}
	if auth && c.Username != "" {
		tok, err := c.usernameToken()
		if err != nil {
			return err
		}
		env.Header.Security = tok
	}
	env.Header.Extra = headers
	env.Body.Content = body
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	if err := xml.NewEncoder(&buf).Encode(env); err != nil {
		return fmt.Errorf("onvif: encoding %s: %w", action, err)
	}
	payload := buf.Bytes()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("onvif: %w", err)
	}
	req.Header.Set("Content-Type", `application/soap+xml; charset=utf-8; action="`+action+`"`)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		return fmt.Errorf("onvif: reading reply: %w", err)
	}
	if len(data) > maxReply {
		return fmt.Errorf("onvif: reply larger than %d bytes", maxReply)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return ErrUnauthorized
	}
	var re respEnvelope
	if err := xml.Unmarshal(data, &re); err != nil {
		return fmt.Errorf("onvif: HTTP %d, reply is not a SOAP envelope: %w", resp.StatusCode, err)
	}
	if re.Body.Fault != nil {
		f := re.Body.Fault.fault(resp.StatusCode)
		switch localPart(f.Subcode) {
		case "NotAuthorized", "FailedAuthentication", "InvalidSecurity":
			return fmt.Errorf("%w (%s)", ErrUnauthorized, f.Subcode)
		}
		return f
	}
	if resp.StatusCode/100 != 2 {
		return &Fault{HTTPStatus: resp.StatusCode, Code: fmt.Sprintf("HTTP %d", resp.StatusCode)}
	}
	if out == nil {
		return nil
	}
	// The body's inner XML loses the envelope's namespace declarations,
	// which is fine: we match local names only.
	if err := xml.Unmarshal(re.Body.Content, out); err != nil {
		return fmt.Errorf("onvif: decoding %s reply: %w", localPart(action), err)
	}
	return nil
}
