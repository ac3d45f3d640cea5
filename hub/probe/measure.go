package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	mch265 "github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/deepch/vdk/av"
	"github.com/deepch/vdk/codec/h264parser"
	"github.com/deepch/vdk/codec/h265parser"
	"github.com/deepch/vdk/format/rtsp/sdp"
	"github.com/deepch/vdk/format/rtspv2"
)

// job is one probe as the supervisor hands it to a worker.
// URL carries the credentials; it only ever travels over the worker's stdin.
type job struct {
	ID              uint64        `json:"id"`
	URL             string        `json:"url"`
	Mode            Mode          `json:"mode"`
	Timeout         time.Duration `json:"timeout"`
	SampleWindow    time.Duration `json:"sample_window"`
	MaxSampleWindow time.Duration `json:"max_sample_window"`
	NoVideoTimeout  time.Duration `json:"no_video_timeout"`
	// KeyAt (a keyframe's arrival, Unix ns), KeyPeriod and PlayLead align
	// a sample's PLAY with the camera's next keyframe (keyphase.go).
	KeyAt     int64         `json:"key_at,omitempty"`
	KeyPeriod time.Duration `json:"key_period,omitempty"`
	PlayLead  time.Duration `json:"play_lead,omitempty"`
}

// measurement is what a worker reports back for a job.
type measurement struct {
	Up               bool          `json:"up"`
	Reason           string        `json:"reason,omitempty"`
	Detail           string        `json:"detail,omitempty"`
	Codec            string        `json:"codec,omitempty"`
	Width            int           `json:"width,omitempty"`
	Height           int           `json:"height,omitempty"`
	SDPFPS           int           `json:"sdp_fps,omitempty"`
	FPS              float64       `json:"fps,omitempty"`
	BitrateBps       float64       `json:"bitrate_bps,omitempty"`
	KeyframeInterval int           `json:"keyframe_interval,omitempty"`
	TTFF             time.Duration `json:"ttff,omitempty"`
	TTFK             time.Duration `json:"ttfk,omitempty"`
	Duration         time.Duration `json:"duration"`
	// For keyframe alignment (keyphase.go): the last keyframe's arrival
	// (Unix ns), the keyframe period from the RTP clock, the time from
	// sending PLAY to the first frame, and the wait before PLAY (counted
	// neither in TTFF nor in Duration).
	LastKeyAt   int64         `json:"last_key_at,omitempty"`
	KeyPeriod   time.Duration `json:"key_period,omitempty"`
	PlayToFrame time.Duration `json:"play_to_frame,omitempty"`
	Waited      time.Duration `json:"waited,omitempty"`

	codecChanged bool // read CodecData again once vdk's goroutine has ended
}

func (m *measurement) fail(reason, detail string) {
	m.Up, m.Reason, m.Detail = false, reason, detail
}

// hardDeadline bounds a whole probe, whatever vdk does inside.
func (j job) hardDeadline() time.Duration {
	d := j.Timeout + vdkErrorSleep + firstPacketWait
	if j.Mode == ModeSample {
		d += j.NoVideoTimeout + j.MaxSampleWindow + j.KeyPeriod
	}
	return d
}

// runProbe runs one probe in this process and returns only after vdk's
// reader goroutine has ended (plus panicGrace). That ordering is what lets
// the supervisor blame the right camera: vdk's goroutine announces its end
// from a deferred function, which also runs while it panics, so a result
// written right away could leave a dying worker just before the crash and
// the camera that caused it would go unblamed.
//
// A Dial abandoned at its deadline finishes in the background, tracked by
// background, so a worker can wait for it before exiting.
func runProbe(ctx context.Context, j job, background *sync.WaitGroup) measurement {
	start := time.Now()
	sc := newScrubber(j.URL, "", "")
	ctx, cancel := context.WithTimeout(ctx, j.hardDeadline())
	defer cancel()

	c, m, ended := probeStream(ctx, j, start, background)
	m.Duration = time.Since(start) - m.Waited
	m.Detail = sc.clean(m.Detail)
	if c != nil && closeClient(c, ended, j.Timeout) && m.codecChanged {
		// vdk's goroutine has ended, so its last CodecData write happened
		// before this read: in-band parameter changes are seen here.
		readResolution(c, &m)
	}
	return m
}

// panicGrace is how long a worker keeps a probe's result after vdk's reader
// goroutine has signalled its end, so a goroutine that signalled while
// panicking has killed the process before the result is out.
const panicGrace = 100 * time.Millisecond

// probeStream does the work of runProbe. It returns vdk's client (nil if
// Dial failed) for the caller to close, and whether vdk's reader goroutine
// has already signalled its end.
func probeStream(ctx context.Context, j job, start time.Time, background *sync.WaitGroup) (c *rtspv2.RTSPClient, m measurement, ended bool) {
	u, err := url.Parse(j.URL)
	if err != nil || (u.Scheme != "rtsp" && u.Scheme != "rtsps") || u.Host == "" {
		m.fail(ReasonOther, "invalid RTSP URL")
		return nil, m, false
	}
	if j.Mode == ModeSample {
		return nil, sampleStream(ctx, j, start), false
	}
	c, err = dial(ctx, j, background)
	if err != nil {
		m.Reason, m.Detail = classifyDialError(ctx, j, err)
		return nil, m, false
	}

	// SDPRaw and FPS are written during Dial, before vdk starts its
	// goroutine, so reading them here is race-free.
	_, medias := sdp.Parse(string(c.SDPRaw))
	var video *sdp.Media
	for i := range medias {
		if medias[i].AVType == rtspv2.VIDEO {
			video = &medias[i]
			break
		}
	}
	if video == nil {
		m.fail(ReasonNoVideo, "the stream has no video track")
		return c, m, false
	}
	m.Codec = codecName(video.Type)
	m.SDPFPS = c.FPS
	// vdk's reader goroutine, running since Dial returned, writes
	// CodecData unsynchronised whenever in-band parameter sets differ from
	// the SDP's, even when WaitCodec is false. So resolution comes from
	// the SDP here, and from CodecData only once that goroutine has ended
	// (runProbe), when a change was signalled or the SDP had none.
	resolutionFromSDP(video, &m)
	if m.Width == 0 {
		m.codecChanged = true
	}
	m.Up = true
	if video.Type != av.H264 && video.Type != av.H265 {
		return c, m, false // vdk demuxes only H.264/H.265: no packet to wait for
	}
	m.Up = true
	return c, m, awaitFirstPacket(c, &m)
}

// firstPacketWait bounds how long a handshake waits for the first video
// packet after PLAY.
const firstPacketWait = 500 * time.Millisecond

// awaitFirstPacket holds a handshake open until vdk's reader goroutine has
// demuxed the first video packet (or firstPacketWait passes; a handshake
// does not fail without video). Closing right after PLAY would let vdk's
// goroutine see the stream or not depending on scheduling, so a stream
// that crashes vdk's demuxer (vdk-findings.md, finding 1) would crash
// the worker only sometimes, and the supervisor could not find and
// isolate it reliably. It reports whether the goroutine has ended.
func awaitFirstPacket(c *rtspv2.RTSPClient, m *measurement) (ended bool) {
	t := time.NewTimer(firstPacketWait)
	defer t.Stop()
	for {
		select {
		case <-c.OutgoingPacketQueue:
			return false
		case s := <-c.Signals:
			switch s {
			case rtspv2.SignalCodecUpdate:
				m.codecChanged = true
			case rtspv2.SignalStreamRTPStop:
				return true
			}
		case <-t.C:
			return false
		}
	}
}

func codecName(t av.CodecType) string {
	switch t {
	case av.H264:
		return "h264"
	case av.H265:
		return "h265"
	case av.JPEG:
		return "mjpeg"
	case 0:
		return "unknown"
	}
	return strings.ToLower(t.String())
}

// resolutionFromSDP parses the SPS announced in the SDP.
func resolutionFromSDP(v *sdp.Media, m *measurement) {
	defer func() { _ = recover() }() // a malformed SPS just leaves 0x0
	switch v.Type {
	case av.H264:
		if len(v.SpropParameterSets) > 0 && len(v.SpropParameterSets[0]) > 4 {
			if info, err := h264parser.ParseSPS(v.SpropParameterSets[0]); err == nil {
				m.Width, m.Height = int(info.Width), int(info.Height)
			}
		}
	case av.H265:
		if w, h, ok := h265Resolution(v.SpropSPS); ok {
			m.Width, m.Height = w, h
		}
	}
}

// h265Resolution reads the displayed size from an H.265 SPS NAL unit.
// vdk v0.0.27's h265parser.ParseSPS reads the conformance window and
// throws it away, so a 1080p stream (coded as 1088 rows, cropped by 8)
// comes out as 1920x1088 (vdk-findings.md, finding 13). mediacommon's
// parser, which gortsplib already brings in, applies the crop; vdk's is
// only the fallback for an SPS mediacommon refuses.
func h265Resolution(sps []byte) (w, h int, ok bool) {
	if len(sps) <= 4 {
		return 0, 0, false
	}
	var s mch265.SPS
	if err := s.Unmarshal(sps); err == nil && s.Width() > 0 && s.Height() > 0 {
		return s.Width(), s.Height(), true
	}
	defer func() {
		if recover() != nil {
			w, h, ok = 0, 0, false // vdk's parser panics on some malformed input
		}
	}()
	if info, err := h265parser.ParseSPS(sps); err == nil && info.Width > 0 {
		return int(info.Width), int(info.Height), true
	}
	return 0, 0, false
}

// readResolution reads vdk's CodecData; only call it when vdk's reader
// goroutine has ended.
func readResolution(c *rtspv2.RTSPClient, m *measurement) {
	for _, cd := range c.CodecData {
		if cd == nil || !cd.Type().IsVideo() {
			continue
		}
		if h, ok := cd.(h265parser.CodecData); ok {
			// vdk's Width/Height ignore the conformance window.
			if w, ht, ok := h265Resolution(h.SPS()); ok {
				m.Width, m.Height = w, ht
			}
			continue
		}
		if v, ok := cd.(av.VideoCodecData); ok {
			m.Width, m.Height = v.Width(), v.Height()
		}
	}
}

type dialResult struct {
	c   *rtspv2.RTSPClient
	err error
}

// errDialPanic marks a panic inside vdk's Dial (it parses SPS/PPS from the
// SDP on the caller's goroutine, so that one can be recovered).
var errDialPanic = errors.New("vdk panicked during the handshake")

// vdkErrorSleep is how long vdk's Dial sleeps before returning any reply
// other than 200 or 401 (a 404, a 500...).
const vdkErrorSleep = time.Second

// dial runs vdk's Dial under ctx and j.Timeout (plus vdk's error sleep, so
// a 404 is reported as such and not as a timeout). Dial cannot be
// cancelled, so on timeout it is left to finish in the background, and a
// client it returns after we gave up is closed there.
func dial(ctx context.Context, j job, background *sync.WaitGroup) (*rtspv2.RTSPClient, error) {
	hsCtx, cancel := context.WithTimeout(ctx, j.Timeout+vdkErrorSleep)
	defer cancel()
	var (
		mu     sync.Mutex
		gaveUp bool
		done   = make(chan dialResult, 1)
	)
	background.Add(1)
	go func() {
		defer background.Done()
		r := vdkDial(j)
		mu.Lock()
		if !gaveUp {
			done <- r
			mu.Unlock()
			return
		}
		mu.Unlock()
		if r.c != nil {
			closeClient(r.c, false, j.Timeout)
		}
	}()
	select {
	case r := <-done:
		return r.c, r.err
	case <-hsCtx.Done():
		mu.Lock()
		defer mu.Unlock()
		select {
		case r := <-done: // finished just in time
			return r.c, r.err
		default:
			gaveUp = true
			return nil, hsCtx.Err()
		}
	}
}

func vdkDial(j job) (r dialResult) {
	defer func() {
		if p := recover(); p != nil {
			r = dialResult{err: fmt.Errorf("%w: %v", errDialPanic, p)}
		}
	}()
	c, err := rtspv2.Dial(rtspv2.RTSPClientOptions{
		URL:         j.URL,
		DialTimeout: j.Timeout,
		// vdk sets this as a deadline per request and per read; zero
		// would make every read fail at once.
		ReadWriteTimeout: j.Timeout,
		DisableAudio:     true,
	})
	return dialResult{c: c, err: err}
}

// closeClient closes vdk's client and waits until its reader goroutine has
// ended. vdk's goroutine signals its end on Signals (capacity 100) and
// blocks forever if that is full, so Signals must be drained.
//
// It then waits panicGrace: the end signal is sent from a deferred call,
// so it also comes from a goroutine that is panicking.
//
// It reports whether the goroutine has ended (false if it is stuck).
func closeClient(c *rtspv2.RTSPClient, ended bool, timeout time.Duration) bool {
	c.Close()
	if !ended {
		t := time.NewTimer(timeout + time.Second)
		defer t.Stop()
	drain:
		for {
			select {
			case s := <-c.Signals:
				if s == rtspv2.SignalStreamRTPStop {
					break drain
				}
			case <-c.OutgoingPacketQueue:
			case <-t.C:
				return false // stuck: the worker will be recycled
			}
		}
	}
	time.Sleep(panicGrace)
	return true
}

var statusRE = regexp.MustCompile(`RTSP/\d\.\d (\d{3})`)

// classifyDialError maps vdk's untyped Dial errors onto a reason.
func classifyDialError(ctx context.Context, j job, err error) (reason, detail string) {
	var ne net.Error
	var dnsErr *net.DNSError
	msg := err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout, fmt.Sprintf("no complete RTSP handshake within %s", j.Timeout+vdkErrorSleep)
	case errors.Is(err, context.Canceled):
		return ReasonOther, "probe cancelled"
	case errors.Is(err, errDialPanic):
		return ReasonProtocol, "malformed stream description: " + msg
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReasonRefused, "connection refused"
	case errors.As(err, &dnsErr):
		return ReasonOther, "host not found"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout, fmt.Sprintf("no answer within %s", j.Timeout)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return ReasonTimeout, "host unreachable"
	case strings.Contains(msg, "Unauthorized 401"):
		// vdk's message when the camera challenges again after our answer.
		return ReasonUnauthorized, "credentials missing or rejected (401)"
	case strings.HasPrefix(msg, "Camera send status"):
		if m := statusRE.FindStringSubmatch(msg); m != nil {
			code, _ := strconv.Atoi(m[1])
			return statusReason(code), "camera replied " + strings.TrimPrefix(msg, "Camera send status")
		}
		return ReasonProtocol, "unreadable RTSP status line"
	case isConnDrop(err):
		// vdk reports a server that drops the connection after a failed
		// authentication (gortsplib/MediaMTX do) as a bare EOF, and also
		// takes a 401 without a new challenge as success. Ask the server
		// once more with a client that reports status codes.
		return diagnose(ctx, j)
	}
	return ReasonOther, "RTSP handshake failed: " + msg
}

func statusReason(code int) string {
	switch {
	case code == 401 || code == 403:
		return ReasonUnauthorized
	case code == 404:
		return ReasonNotFound
	case code >= 500:
		return ReasonOther
	case code >= 400:
		return ReasonProtocol // e.g. 461 Unsupported Transport
	}
	return ReasonProtocol
}

func isConnDrop(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// diagnose explains a handshake that vdk saw end in a dropped connection by
// repeating DESCRIBE with gortsplib's client, whose errors carry the status.
func diagnose(ctx context.Context, j job) (reason, detail string) {
	u, err := base.ParseURL(j.URL)
	if err != nil {
		return ReasonOther, "invalid RTSP URL"
	}
	tcp := gortsplib.TransportTCP
	timeout := j.Timeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < timeout {
			timeout = left
		}
	}
	if timeout <= 0 {
		return ReasonTimeout, "connection dropped during the handshake, no time left to diagnose"
	}
	c := gortsplib.Client{
		Scheme:       u.Scheme,
		Host:         u.Host,
		Transport:    &tcp,
		ReadTimeout:  timeout,
		WriteTimeout: timeout,
	}
	if err := c.Start2(); err != nil {
		return ReasonOther, "connection dropped during the handshake"
	}
	defer c.Close()
	_, _, err = c.Describe(u)
	var bad liberrors.ErrClientBadStatusCode
	switch {
	case err == nil:
		return ReasonProtocol, "the camera answers DESCRIBE but dropped the connection during SETUP/PLAY"
	case errors.As(err, &bad):
		r := statusReason(int(bad.Code))
		if r == ReasonUnauthorized {
			return r, "credentials missing or rejected (the camera closed the connection after authentication)"
		}
		return r, fmt.Sprintf("camera replied %d %s", bad.Code, bad.Message)
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReasonRefused, "connection refused"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ReasonTimeout, "connection dropped during the handshake, then no answer"
	}
	return ReasonOther, "connection dropped during the handshake"
}

// frameRec is one video frame seen during a sample.
type frameRec struct {
	at    time.Time
	bytes int
	key   bool
	// ts is the frame's RTP timestamp (90 kHz for every video payload
	// the sampler reads: RFC 6184, 7798, 2435).
	ts uint32
}
