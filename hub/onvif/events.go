package onvif

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Subscription is a pull-point subscription on a camera.
type Subscription struct {
	// Address is the subscription manager / pull point URL the camera
	// handed out (WS-Addressing EndpointReference).
	Address string
	// CameraTerminates is the termination time on the camera's clock;
	// Deadline is the same instant on ours (from the camera's CurrentTime
	// in the same reply, so the clock offset does not matter).
	CameraTerminates time.Time
	Deadline         time.Time
}

// Notification is one WS-BaseNotification message, flattened.
type Notification struct {
	Topic             string            // e.g. "tns1:RuleEngine/CellMotionDetector/Motion"
	UtcTime           time.Time         // on the camera's clock
	PropertyOperation string            // Initialized, Changed, Deleted
	Source            map[string]string // tt:Source SimpleItems
	Data              map[string]string // tt:Data SimpleItems
}

type xmlItems struct {
	SimpleItem []struct {
		Name  string `xml:"Name,attr"`
		Value string `xml:"Value,attr"`
	} `xml:"SimpleItem"`
}

func (x *xmlItems) m() map[string]string {
	if x == nil {
		return nil
	}
	m := make(map[string]string, len(x.SimpleItem))
	for _, it := range x.SimpleItem {
		m[it.Name] = it.Value
	}
	return m
}

type xmlTTMessage struct {
	UtcTime           string    `xml:"UtcTime,attr"`
	PropertyOperation string    `xml:"PropertyOperation,attr"`
	Source            *xmlItems `xml:"Source"`
	Data              *xmlItems `xml:"Data"`
}

type xmlNotification struct {
	Topic   string `xml:"Topic"`
	Message struct {
		Message *xmlTTMessage `xml:"Message"`
		// Some cameras put the attributes and items straight on
		// wsnt:Message, without the tt:Message wrapper.
		UtcTime           string    `xml:"UtcTime,attr"`
		PropertyOperation string    `xml:"PropertyOperation,attr"`
		Source            *xmlItems `xml:"Source"`
		Data              *xmlItems `xml:"Data"`
	} `xml:"Message"`
}

func (x xmlNotification) notification() Notification {
	m := x.Message.Message
	if m == nil {
		m = &xmlTTMessage{UtcTime: x.Message.UtcTime, PropertyOperation: x.Message.PropertyOperation, Source: x.Message.Source, Data: x.Message.Data}
	}
	n := Notification{
		Topic:             strings.TrimSpace(x.Topic),
		PropertyOperation: m.PropertyOperation,
		Source:            m.Source.m(),
		Data:              m.Data.m(),
	}
	n.UtcTime, _ = parseTime(m.UtcTime)
	return n
}

func parseTime(s string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
}

// parseDuration reads the xs:duration forms cameras use (PT60S, PT1M,
// PT1H30M, P1D...). Only days, hours, minutes and seconds.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "P") {
		return 0, fmt.Errorf("not an xs:duration: %q", s)
	}
	var d time.Duration
	inTime := false
	num := ""
	for _, r := range s[1:] {
		switch {
		case r == 'T':
			inTime = true
		case (r >= '0' && r <= '9') || r == '.':
			num += string(r)
		default:
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("not an xs:duration: %q", s)
			}
			var unit time.Duration
			switch {
			case r == 'D' && !inTime:
				unit = 24 * time.Hour
			case r == 'H' && inTime:
				unit = time.Hour
			case r == 'M' && inTime:
				unit = time.Minute
			case r == 'S' && inTime:
				unit = time.Second
			default:
				return 0, fmt.Errorf("unsupported xs:duration: %q", s)
			}
			d += time.Duration(f * float64(unit))
			num = ""
		}
	}
	if num != "" {
		return 0, fmt.Errorf("not an xs:duration: %q", s)
	}
	return d, nil
}

func xsDuration(d time.Duration) string {
	return "PT" + strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10) + "S"
}

// termination turns a reply's CurrentTime and TerminationTime (camera
// clock) into a Subscription's times. A camera that omits CurrentTime is
// taken to be at our corrected clock.
func (c *Client) termination(current, term string) (camTerm, deadline time.Time, err error) {
	camTerm, err = parseTime(term)
	if err != nil {
		// A few cameras answer a relative duration here.
		d, derr := parseDuration(term)
		if derr != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("onvif: bad TerminationTime %q", term)
		}
		return c.CameraNow().Add(d), c.now().Add(d), nil
	}
	cur, err := parseTime(current)
	if err != nil {
		cur = c.CameraNow()
	}
	return camTerm, c.now().Add(camTerm.Sub(cur)), nil
}

// CreatePullPointSubscription subscribes to every event of the camera
// (motion is filtered here, not by a topic filter, which many cameras
// implement badly) for d.
func (c *Client) CreatePullPointSubscription(ctx context.Context, d time.Duration) (*Subscription, error) {
	_, events, err := c.Services(ctx)
	if err != nil {
		return nil, err
	}
	if events == "" {
		return nil, fmt.Errorf("onvif: %s lists no events service", c.XAddr)
	}
	var out struct {
		SubscriptionReference struct {
			Address string `xml:"Address"`
		} `xml:"SubscriptionReference"`
		CurrentTime     string `xml:"CurrentTime"`
		TerminationTime string `xml:"TerminationTime"`
	}
	err = c.call(ctx, events, nsEvents+"/EventPortType/CreatePullPointSubscriptionRequest", true,
		struct {
			XMLName xml.Name `xml:"tev:CreatePullPointSubscription"`
			NS      string   `xml:"xmlns:tev,attr"`
			Term    string   `xml:"tev:InitialTerminationTime"`
		}{NS: nsEvents, Term: xsDuration(d)}, &out)
	if err != nil {
		return nil, err
	}
	addr := strings.TrimSpace(out.SubscriptionReference.Address)
	if addr == "" {
		return nil, errors.New("onvif: CreatePullPointSubscription gave no address")
	}
	s := &Subscription{Address: addr}
	s.CameraTerminates, s.Deadline, err = c.termination(out.CurrentTime, out.TerminationTime)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// toHeader is the WS-Addressing To header: several cameras (Hikvision
// among them) route pull-point requests by it rather than by URL.
type toHeader struct {
	XMLName xml.Name `xml:"wsa:To"`
	Must    string   `xml:"s:mustUnderstand,attr"`
	Value   string   `xml:",chardata"`
}

type actionHeader struct {
	XMLName xml.Name `xml:"wsa:Action"`
	Value   string   `xml:",chardata"`
}

// PullMessages waits up to timeout (on the camera) for at most limit
// messages, and updates s's termination time from the reply.
func (c *Client) PullMessages(ctx context.Context, s *Subscription, timeout time.Duration, limit int) ([]Notification, error) {
	var out struct {
		CurrentTime         string            `xml:"CurrentTime"`
		TerminationTime     string            `xml:"TerminationTime"`
		NotificationMessage []xmlNotification `xml:"NotificationMessage"`
	}
	action := nsEvents + "/PullPointSubscription/PullMessagesRequest"
	err := c.call(ctx, s.Address, action, true,
		struct {
			XMLName      xml.Name `xml:"tev:PullMessages"`
			NS           string   `xml:"xmlns:tev,attr"`
			Timeout      string   `xml:"tev:Timeout"`
			MessageLimit int      `xml:"tev:MessageLimit"`
		}{NS: nsEvents, Timeout: xsDuration(timeout), MessageLimit: limit}, &out,
		actionHeader{Value: action}, toHeader{Must: "1", Value: s.Address})
	if err != nil {
		return nil, err
	}
	if out.TerminationTime != "" {
		if ct, dl, err := c.termination(out.CurrentTime, out.TerminationTime); err == nil {
			s.CameraTerminates, s.Deadline = ct, dl
		}
	}
	ns := make([]Notification, 0, len(out.NotificationMessage))
	for _, x := range out.NotificationMessage {
		ns = append(ns, x.notification())
	}
	return ns, nil
}

// Renew extends the subscription by d.
func (c *Client) Renew(ctx context.Context, s *Subscription, d time.Duration) error {
	var out struct {
		CurrentTime     string `xml:"CurrentTime"`
		TerminationTime string `xml:"TerminationTime"`
	}
	action := nsWSNT + "/SubscriptionManager/RenewRequest"
	err := c.call(ctx, s.Address, action, true,
		struct {
			XMLName xml.Name `xml:"wsnt:Renew"`
			NS      string   `xml:"xmlns:wsnt,attr"`
			Term    string   `xml:"wsnt:TerminationTime"`
		}{NS: nsWSNT, Term: xsDuration(d)}, &out,
		actionHeader{Value: action}, toHeader{Must: "1", Value: s.Address})
	if err != nil {
		return err
	}
	ct, dl, err := c.termination(out.CurrentTime, out.TerminationTime)
	if err != nil {
		return err
	}
	s.CameraTerminates, s.Deadline = ct, dl
	return nil
}

// Unsubscribe ends the subscription on the camera.
func (c *Client) Unsubscribe(ctx context.Context, s *Subscription) error {
	action := nsWSNT + "/SubscriptionManager/UnsubscribeRequest"
	return c.call(ctx, s.Address, action, true,
		struct {
			XMLName xml.Name `xml:"wsnt:Unsubscribe"`
			NS      string   `xml:"xmlns:wsnt,attr"`
		}{NS: nsWSNT}, nil,
		actionHeader{Value: action}, toHeader{Must: "1", Value: s.Address})
}

// motionTopics maps the end of a topic to the data item that carries its
// boolean. Matching the end lets "tns1:", "tns:" or a vendor prefix
// through. Sources: the ONVIF Core specification's topic set and Home
// Assistant's onvif parsers (docs/onvif.md lists them).
var motionTopics = []struct{ suffix, item string }{
	{"RuleEngine/CellMotionDetector/Motion", "IsMotion"}, // ONVIF Analytics; Hikvision, Dahua, TP-Link, Reolink
	{"VideoSource/MotionAlarm", "State"},                 // ONVIF Core; Dahua/Amcrest, Uniview, Hikvision
	{"RuleEngine/MotionRegionDetector/Motion", "State"},  // ONVIF Analytics 2.x region detector; Reolink, Uniview
	{"VideoAnalytics/tnsaxis:MotionDetection", "motion"}, // Axis (legacy VMD)
}

// Motion reports whether n is a motion notification and whether motion is
// active.
func Motion(n Notification) (active, ok bool) {
	topic := n.Topic
	for _, t := range motionTopics {
		if !strings.HasSuffix(topic, t.suffix) {
			continue
		}
		v, found := n.Data[t.item]
		if !found {
			return false, false
		}
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "1":
			return true, true
		case "false", "0":
			return false, true
		}
		return false, false
	}
	return false, false
}
