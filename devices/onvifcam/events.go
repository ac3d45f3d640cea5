package onvifcam

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

type message struct {
	topic, item, op string
	value           bool
	at              time.Time
	source          string
}

type subscription struct {
	id       string
	deadline time.Time // camera clock
	queue    []message
	wake     chan struct{} // closed and replaced on push
	closed   bool
}

func (s *subscription) push(ms ...message) {
	s.queue = append(s.queue, ms...)
	close(s.wake)
	s.wake = make(chan struct{})
}

func (s *subscription) close() {
	if !s.closed {
		s.closed = true
		close(s.wake)
	}
}

// motionMessages are what a Hikvision sends for one change: both the
// analytics cell-motion topic and the video-source alarm.
func motionMessages(at time.Time, on bool, op string) []message {
	return []message{
		{topic: "tns1:RuleEngine/CellMotionDetector/Motion", item: "IsMotion", value: on, at: at, op: op,
			source: `<tt:SimpleItem Name="VideoSourceConfigurationToken" Value="VideoSourceToken"/><tt:SimpleItem Name="VideoAnalyticsConfigurationToken" Value="VideoAnalyticsToken"/><tt:SimpleItem Name="Rule" Value="MyMotionDetectorRule"/>`},
		{topic: "tns1:VideoSource/MotionAlarm", item: "State", value: on, at: at, op: op,
			source: `<tt:SimpleItem Name="Source" Value="VideoSource_1"/>`},
	}
}

func (m message) xml() string {
	return fmt.Sprintf(`<wsnt:NotificationMessage><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">%s</wsnt:Topic><wsnt:Message><tt:Message UtcTime="%s" PropertyOperation="%s"><tt:Source>%s</tt:Source><tt:Data><tt:SimpleItem Name="%s" Value="%t"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>`,
		m.topic, m.at.Format("2006-01-02T15:04:05Z"), m.op, m.source, m.item, m.value)
}

// parseXSDuration reads PTnS / PTnM / PTnH (what clients send).
func parseXSDuration(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, "PT")
	if !ok || len(rest) < 2 {
		return 0, false
	}
	n, err := strconv.ParseFloat(rest[:len(rest)-1], 64)
	if err != nil {
		return 0, false
	}
	unit := map[byte]time.Duration{'S': time.Second, 'M': time.Minute, 'H': time.Hour}[rest[len(rest)-1]]
	if unit == 0 {
		return 0, false
	}
	return time.Duration(n * float64(unit)), true
}

// termination reads an InitialTerminationTime / TerminationTime: a
// duration, or an absolute time on the camera's clock. Default 60 s.
func (c *Camera) termination(s string, now time.Time) time.Time {
	if d, ok := parseXSDuration(s); ok && d > 0 {
		return now.Add(d)
	}
	if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s)); err == nil && t.After(now) {
		return t
	}
	return now.Add(time.Minute)
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func (c *Camera) createPullPoint(w http.ResponseWriter, body []byte) {
	var q struct {
		InitialTerminationTime string `xml:"InitialTerminationTime"`
	}
	_ = xml.Unmarshal(body, &q)
	c.mu.Lock()
	now := c.Now()
	c.nextID++
	// The boot number in the reference makes an old reference unknown
	// after a reboot, as on a real camera.
	id := fmt.Sprintf("%d-%d", c.boot, c.nextID)
	s := &subscription{id: id, deadline: c.termination(q.InitialTerminationTime, now), wake: make(chan struct{})}
	// Property events start with their current state (Initialized).
	s.queue = motionMessages(now, c.motion, "Initialized")
	c.subs[id] = s
	c.stats.Subscribes++
	addr := "http://" + c.addr + "/onvif/Subscription?Idx=" + id
	c.mu.Unlock()
	reply(w, 200, fmt.Sprintf(`<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference><wsa5:Address>%s</wsa5:Address></tev:SubscriptionReference><wsnt:CurrentTime>%s</wsnt:CurrentTime><wsnt:TerminationTime>%s</wsnt:TerminationTime></tev:CreatePullPointSubscriptionResponse>`,
		xmlEscape(addr), ts(now), ts(s.deadline)))
}

// lookup finds the live subscription a request is for, or answers the
// fault a camera gives for an unknown or expired one.
func (c *Camera) lookup(w http.ResponseWriter, r *http.Request) *subscription {
	id := r.URL.Query().Get("Idx")
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.subs[id]
	if s != nil && c.Now().After(s.deadline) {
		s.close()
		delete(c.subs, id)
		s = nil
	}
	if s == nil {
		fault(w, http.StatusBadRequest, "SOAP-ENV:Receiver", "wsrf-r:ResourceUnknownFault", "subscription "+id+" unknown or expired")
	}
	return s
}

func (c *Camera) pullMessages(w http.ResponseWriter, r *http.Request, body []byte) {
	var q struct {
		Timeout      string `xml:"Timeout"`
		MessageLimit int    `xml:"MessageLimit"`
	}
	_ = xml.Unmarshal(body, &q)
	wait, ok := parseXSDuration(q.Timeout)
	if !ok || wait < 0 {
		wait = 0
	}
	if wait > 30*time.Second {
		wait = 30 * time.Second
	}
	if q.MessageLimit <= 0 {
		q.MessageLimit = 1
	}
	s := c.lookup(w, r)
	if s == nil {
		return
	}
	c.mu.Lock()
	c.stats.Pulls++
	c.mu.Unlock()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		c.mu.Lock()
		if s.closed {
			c.mu.Unlock()
			fault(w, http.StatusBadRequest, "SOAP-ENV:Receiver", "wsrf-r:ResourceUnknownFault", "subscription ended")
			return
		}
		if len(s.queue) > 0 {
			n := min(q.MessageLimit, len(s.queue))
			out := s.queue[:n]
			s.queue = append([]message(nil), s.queue[n:]...)
			now, deadline := c.Now(), s.deadline
			c.mu.Unlock()
			c.pullReply(w, now, deadline, out)
			return
		}
		wake := s.wake
		c.mu.Unlock()
		select {
		case <-wake:
		case <-timer.C:
			c.mu.Lock()
			now, deadline := c.Now(), s.deadline
			c.mu.Unlock()
			c.pullReply(w, now, deadline, nil)
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (c *Camera) pullReply(w http.ResponseWriter, now, deadline time.Time, ms []message) {
	var b strings.Builder
	fmt.Fprintf(&b, `<tev:PullMessagesResponse><tev:CurrentTime>%s</tev:CurrentTime><tev:TerminationTime>%s</tev:TerminationTime>`, ts(now), ts(deadline))
	for _, m := range ms {
		b.WriteString(m.xml())
	}
	b.WriteString(`</tev:PullMessagesResponse>`)
	reply(w, 200, b.String())
}

func (c *Camera) renew(w http.ResponseWriter, r *http.Request, body []byte) {
	var q struct {
		TerminationTime string `xml:"TerminationTime"`
	}
	_ = xml.Unmarshal(body, &q)
	s := c.lookup(w, r)
	if s == nil {
		return
	}
	c.mu.Lock()
	now := c.Now()
	s.deadline = c.termination(q.TerminationTime, now)
	deadline := s.deadline
	c.stats.Renews++
	c.mu.Unlock()
	reply(w, 200, fmt.Sprintf(`<wsnt:RenewResponse><wsnt:TerminationTime>%s</wsnt:TerminationTime><wsnt:CurrentTime>%s</wsnt:CurrentTime></wsnt:RenewResponse>`, ts(deadline), ts(now)))
}

func (c *Camera) unsubscribe(w http.ResponseWriter, r *http.Request) {
	s := c.lookup(w, r)
	if s == nil {
		return
	}
	c.mu.Lock()
	s.close()
	delete(c.subs, s.id)
	c.stats.Unsubscribes++
	c.mu.Unlock()
	reply(w, 200, `<wsnt:UnsubscribeResponse></wsnt:UnsubscribeResponse>`)
}
