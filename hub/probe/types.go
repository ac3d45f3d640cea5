// Package probe checks that cameras deliver video: it opens each camera's
// RTSP stream, either just the handshake (DESCRIBE/SETUP/PLAY, with
// github.com/deepch/vdk's format/rtspv2) or a short sample of video (with
// its own RTP reader, sampler.go: H.264, H.265, MJPEG), and reports
// up/down with a reason from a fixed set, plus fps, bitrate, resolution,
// codec, keyframe interval and time to first frame/keyframe.
//
// vdk panics in its own goroutines on some malformed RTP, which would kill the
// hub, so probes run in worker processes (ServeWorker, started as
// `villagehub probe-worker`) under a Supervisor that restarts crashed
// workers, finds and isolates the camera that crashed them, and recycles
// workers after a number of probes. See docs/rtsp-probe.md and
// docs/vdk-findings.md.
package probe

import (
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Mode is what a probe does.
type Mode string

// Modes.
const (
	// ModeAuto (the default) samples every SampleInterval and does a
	// handshake every Interval in between; a camera's first probe, and every
	// probe while it is down, is a sample.
	ModeAuto Mode = "auto"
	// ModeHandshake connects, runs DESCRIBE/SETUP/PLAY, reads codec and
	// resolution from the SDP, waits (at most 0.5 s) for the first video
	// packet, and closes: reachability and auth only.
	ModeHandshake Mode = "handshake"
	// ModeSample also reads video for a window and measures it.
	ModeSample Mode = "sample"
)

// Failure reasons: a fixed set, safe as a metric label.
const (
	ReasonTimeout      = "timeout"      // no answer in time (TCP connect or RTSP)
	ReasonRefused      = "refused"      // TCP connection refused
	ReasonUnauthorized = "unauthorized" // missing or wrong credentials (401/403)
	ReasonNotFound     = "not_found"    // no such stream path (404)
	ReasonNoVideo      = "no_video"     // RTSP works but no video arrives, or it stops
	ReasonProtocol     = "protocol"     // malformed RTSP/RTP; includes streams that crash the decoder
	ReasonOther        = "other"        // anything else (server errors 5xx, DNS, bad URL)
)

// Reasons lists every failure reason, e.g. to initialise counters at zero.
var Reasons = []string{ReasonTimeout, ReasonRefused, ReasonUnauthorized, ReasonNotFound, ReasonNoVideo, ReasonProtocol, ReasonOther}

// Grades of connection quality.
const (
	GradeGood = "good" // video at >= 90% of the expected fps
	GradeFair = "fair" // >= 50%
	GradePoor = "poor" // < 50%
	GradeDown = "down" // no video
)

// Settings are per-camera probe settings. Zero fields take the Supervisor's
// defaults (Config.Defaults), whose zero fields take the built-in defaults.
type Settings struct {
	Mode Mode
	// Interval between two probes of a camera (the handshake cadence in
	// ModeAuto). Default 10 s.
	Interval time.Duration
	// SampleInterval between two samples in ModeAuto. Default 60 s.
	SampleInterval time.Duration
	// Timeout for connecting and the whole RTSP handshake. Default 5 s.
	Timeout time.Duration
	// SampleWindow is the least video a sample reads, from its first frame
	// (by RTP time, less half a frame). A sample goes on past it until it
	// has seen two keyframes (so figures cover whole keyframe intervals),
	// up to MaxSampleWindow; keyphase.go times PLAY so that is one GOP.
	// Defaults 2 s and 6 s.
	SampleWindow    time.Duration
	MaxSampleWindow time.Duration
	// NoVideoTimeout: a sample with no new frame for this long is
	// no_video, whatever the connection does. Default 3 s.
	NoVideoTimeout time.Duration
}

// Built-in defaults.
const (
	DefaultInterval        = 10 * time.Second
	DefaultSampleInterval  = 60 * time.Second
	DefaultTimeout         = 5 * time.Second
	DefaultSampleWindow    = 2 * time.Second
	DefaultMaxSampleWindow = 6 * time.Second
	DefaultNoVideoTimeout  = 3 * time.Second
)

// merged fills s's zero fields from d.
func (s Settings) merged(d Settings) Settings {
	if s.Mode == "" {
		s.Mode = d.Mode
	}
	if s.Interval <= 0 {
		s.Interval = d.Interval
	}
	if s.SampleInterval <= 0 {
		s.SampleInterval = d.SampleInterval
	}
	if s.Timeout <= 0 {
		s.Timeout = d.Timeout
	}
	if s.SampleWindow <= 0 {
		s.SampleWindow = d.SampleWindow
	}
	if s.MaxSampleWindow <= 0 {
		s.MaxSampleWindow = d.MaxSampleWindow
	}
	if s.NoVideoTimeout <= 0 {
		s.NoVideoTimeout = d.NoVideoTimeout
	}
	return s
}

var builtinSettings = Settings{
	Mode:            ModeAuto,
	Interval:        DefaultInterval,
	SampleInterval:  DefaultSampleInterval,
	Timeout:         DefaultTimeout,
	SampleWindow:    DefaultSampleWindow,
	MaxSampleWindow: DefaultMaxSampleWindow,
	NoVideoTimeout:  DefaultNoVideoTimeout,
}

// Target is one camera to probe.
type Target struct {
	ID, Site string
	// URL is rtsp:// or rtsps://; it may carry user:password
	// (percent-escaped). Username/Password, when set, replace them.
	URL                string
	Username, Password string
	// ExpectedFPS grades the camera; 0 uses the SDP's a=framerate if any,
	// else any video grades good.
	ExpectedFPS float64
	Settings    Settings
}

// Result is the outcome of one probe. It never contains a secret: URL is
// redacted and Detail is built from scrubbed text.
type Result struct {
	Camera, Site string
	URL          string // redacted, e.g. rtsp://admin:***@10.0.0.5/stream1
	Mode         Mode   // ModeHandshake or ModeSample: what this probe did
	Up           bool
	Reason       string // one of Reasons when !Up, "" when Up
	Detail       string // short human explanation, for logs and the UI (never a label)

	Codec         string // "h264", "h265", "mjpeg", or the SDP's name for others
	Width, Height int

	// Stream figures: measured on samples only (zero on handshakes).
	FPS                 float64
	BitrateBps          float64 // video payload bits per second
	KeyframeInterval    int     // frames between the last two keyframes; 0 if fewer than two seen
	TimeToFirstFrame    time.Duration
	TimeToFirstKeyframe time.Duration

	Duration time.Duration // wall time of the whole probe
	At       time.Time     // when the probe started
	// Grade is good/fair/poor/down. A handshake result is graded with the
	// fps of the camera's last sample.
	Grade string
	// Isolated: this camera once crashed a worker and is now probed in a
	// process of its own.
	Isolated bool
}

// Redact hides the password in an RTSP URL:
// rtsp://admin:secret@10.0.0.5/stream1 -> rtsp://admin:***@10.0.0.5/stream1.
// Unparseable input is redacted wholesale between "//" and the last "@".
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" && u.User == nil {
		return redactLoose(raw)
	}
	if u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); !has {
		return raw
	}
	// url.URL would escape the asterisks; splice the userinfo in instead.
	user := url.User(u.User.Username()).String()
	u.User = nil
	plain := u.String()
	i := strings.Index(plain, "//")
	if i < 0 {
		return redactLoose(raw)
	}
	return plain[:i+2] + user + ":***@" + plain[i+2:]
}

func redactLoose(raw string) string {
	i := strings.Index(raw, "//")
	if i < 0 {
		i = -2
	}
	rest := raw[i+2:]
	end := len(rest)
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		end = j
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		return raw[:i+2] + "***" + rest[at:]
	}
	return raw
}

var urlInText = regexp.MustCompile(`rtsps?://[^\s"'<>]+`)

// scrubber removes known secrets from free text before it leaves a probe:
// errors from libraries may echo a URL or a header.
type scrubber struct {
	secrets []string
}

func newScrubber(rawURL, username, password string) scrubber {
	var s scrubber
	add := func(v string) {
		if len(v) >= 3 { // shorter strings would mangle ordinary text
			s.secrets = append(s.secrets, v)
		}
	}
	add(password)
	add(url.QueryEscape(password))
	add(url.PathEscape(password))
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			add(p)
			add(url.QueryEscape(p))
			add(url.PathEscape(p))
		}
	}
	if i := strings.Index(rawURL, "://"); i >= 0 {
		rest := rawURL[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if c := strings.Index(rest[:at], ":"); c >= 0 {
				add(rest[c+1 : at]) // the password exactly as written in the URL
			}
		}
	}
	return s
}

func (s scrubber) clean(text string) string {
	text = urlInText.ReplaceAllStringFunc(text, Redact)
	for _, v := range s.secrets {
		text = strings.ReplaceAll(text, v, "***")
	}
	return text
}
