package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// Alert is one alert: a rule's condition on one device. Firing alerts live
// in memory and in alerts.db; resolved ones move to the history.
type Alert struct {
	// ID is "<alert>/<site>/<device>": at most one alert per rule and
	// device is open at a time.
	ID         string `json:"id"`
	Name       string `json:"alert"`
	Site       string `json:"site"`
	SiteName   string `json:"site_name,omitempty"`
	Device     string `json:"device"`
	DeviceName string `json:"device_name,omitempty"`
	Severity   string `json:"severity"`
	// State: firing or resolved.
	State string `json:"state"`
	// Since is when the trouble began (the first failed probe, the last
	// report of a silent board), not when the alert fired.
	Since      time.Time  `json:"since"`
	FiredAt    time.Time  `json:"fired_at"`
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
	// Reason is a short machine word (a probe failure reason, "offline",
	// "low_fps", "silent", "disconnected", ...); Detail is for people.
	Reason string `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Flapping: the device went bad and good repeatedly; Flaps counts the
	// times in this alert.
	Flapping bool `json:"flapping"`
	Flaps    int  `json:"flaps"`
	// Notified: the firing notice went out (it does not while silenced);
	// a resolved notice is sent exactly when the firing one was.
	Notified     bool      `json:"notified"`
	LastNotified time.Time `json:"last_notified,omitzero"`
	Repeats      int       `json:"repeats,omitempty"`
	// Configured: the device was in the config when the alert fired; if
	// it leaves the config the alert resolves with reason "removed".
	Configured bool `json:"configured,omitempty"`
	// Unwatched: the alert was restored after a hub restart; the hub was
	// not watching before this moment, so an end seen first after it may
	// have come earlier.
	Unwatched time.Time `json:"unwatched_until,omitzero"`

	// Filled in API answers only.
	Silenced   bool     `json:"silenced"`
	SilencedBy []string `json:"silenced_by,omitempty"`
	DurationS  float64  `json:"duration_s"`
}

func alertID(name, site, device string) string { return name + "/" + site + "/" + device }

// Duration of the outage so far, or in all when resolved.
func (a *Alert) Duration(now time.Time) time.Duration {
	end := now
	if a.ResolvedAt != nil {
		end = *a.ResolvedAt
	}
	return end.Sub(a.Since)
}

// Notice kinds.
const (
	KindFiring   = "firing"
	KindResolved = "resolved"
	KindRepeat   = "repeat"
	// KindTest: a test message (villagehub notify test, the UI's "Gửi thử").
	KindTest = "test"
)

// Notification is what every notifier is given. Templates see its fields.
type Notification struct {
	// Key is the idempotency key: the same for every attempt and every
	// re-send after a restart of the same notice, different for each
	// notice. Receivers drop a key they have seen.
	Key  string `json:"idempotency_key"`
	Kind string `json:"kind"` // firing, resolved, repeat
	// State of the alert: firing (also for repeats) or resolved.
	State      string     `json:"state"`
	Alert      string     `json:"alert"`
	Severity   string     `json:"severity"`
	Site       string     `json:"site"`
	SiteName   string     `json:"site_name,omitempty"`
	Device     string     `json:"device"`
	DeviceName string     `json:"device_name,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	Detail     string     `json:"detail,omitempty"`
	Since      time.Time  `json:"since"`
	FiredAt    time.Time  `json:"fired_at"`
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
	// DurationS is how long the outage has lasted (so far, for firing).
	DurationS float64 `json:"duration_s"`
	Flapping  bool    `json:"flapping"`
	Flaps     int     `json:"flaps,omitempty"`
	Repeat    int     `json:"repeat,omitempty"`
	HubID     string  `json:"hub_id,omitempty"`
	// URL links to the hub's dashboard (http.public_url).
	URL string `json:"url,omitempty"`
	// At is when the notice was made.
	At time.Time `json:"at"`
	// Vars are the notifier's own values (e.g. a chat ID), for templates.
	Vars map[string]string `json:"-"`

	loc *time.Location
}

// Local converts t to the village's time zone, for templates:
// {{ (.Local .Since).Format "15:04 02/01/2006" }}.
func (n *Notification) Local(t time.Time) time.Time {
	if n.loc == nil {
		return t
	}
	return t.In(n.loc)
}

// Duration is DurationS as a time.Duration, for templates.
func (n *Notification) Duration() time.Duration {
	return time.Duration(n.DurationS * float64(time.Second))
}

// Place is the device and site, by name when known.
func (n *Notification) Place() string {
	d, s := n.DeviceName, n.SiteName
	if d == "" {
		d = n.Device
	}
	if s == "" {
		s = n.Site
	}
	if n.Alert == NotifierFailing {
		return "notifier " + n.Device
	}
	if n.Site == HubSite {
		return "hub " + n.HubID
	}
	return d + " – " + s
}

func newNotification(a *Alert, kind string, now time.Time, hubID, link string) Notification {
	n := Notification{
		Kind: kind, State: a.State, Alert: a.Name, Severity: a.Severity,
		Site: a.Site, SiteName: a.SiteName, Device: a.Device, DeviceName: a.DeviceName,
		Reason: a.Reason, Detail: a.Detail, Since: a.Since, FiredAt: a.FiredAt, ResolvedAt: a.ResolvedAt,
		DurationS: a.Duration(now).Seconds(), Flapping: a.Flapping, Flaps: a.Flaps, HubID: hubID, URL: link, At: now,
	}
	if kind == KindRepeat {
		n.Repeat = a.Repeats
	}
	// One key per notice of one episode: the alert, when it began, which
	// notice. Hashed so it is short and opaque.
	h := sha256.Sum256([]byte(hubID + "\x00" + a.ID + "\x00" + strconv.FormatInt(a.Since.UnixNano(), 10) + "\x00" + kind + "\x00" + strconv.Itoa(n.Repeat)))
	n.Key = hex.EncodeToString(h[:16])
	return n
}
