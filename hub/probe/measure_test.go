package probe

import (
	"math"
	"strings"
	"testing"
	"time"

	"villagehub/devices/rtspcam"
)

func within(got, want, frac float64) bool {
	return math.Abs(got-want) <= frac*want
}

func TestSampleHealthyStream(t *testing.T) {
	t.Parallel()
	sim := newSim(t)
	cam := addCam(t, sim, "gate", rtspcam.CameraOptions{})
	want := clipStats(t)

	m := probeOnce(t, cam.URL(), ModeSample, Settings{})
	if !m.Up {
		t.Fatalf("healthy camera down: %s %s", m.Reason, m.Detail)
	}
	if m.Codec != want.Codec || m.Width != want.Width || m.Height != want.Height {
		t.Errorf("codec %s %dx%d, want %s %dx%d", m.Codec, m.Width, m.Height, want.Codec, want.Width, want.Height)
	}
	if !within(m.FPS, want.FPS, 0.05) {
		t.Errorf("fps %.2f, want %.0f within 5%%", m.FPS, want.FPS)
	}
	if !within(m.BitrateBps, want.BitsPerSecond, 0.05) {
		t.Errorf("bitrate %.0f bit/s, want %.0f within 5%%", m.BitrateBps, want.BitsPerSecond)
	}
	if m.KeyframeInterval != want.KeyframeInterval {
		t.Errorf("keyframe interval %d, want %d", m.KeyframeInterval, want.KeyframeInterval)
	}
	if m.TTFF <= 0 || m.TTFF > 500*time.Millisecond {
		t.Errorf("time to first frame %s, want a frame within 0.5 s", m.TTFF)
	}
	gop := time.Duration(float64(want.KeyframeInterval) / want.FPS * float64(time.Second))
	if m.TTFK < m.TTFF || m.TTFK > m.TTFF+gop+200*time.Millisecond {
		t.Errorf("time to first keyframe %s, want between %s and one keyframe interval later", m.TTFK, m.TTFF)
	}
	// The window ends at the keyframe due 2 s of video after the first
	// frame even if it arrives a little early (half a frame's leeway).
	if video := m.Duration - m.TTFF; video < 2*time.Second-50*time.Millisecond || m.Duration > 4*time.Second {
		t.Errorf("sample took %s (%s from the first frame), want the 2 s window plus up to one keyframe interval", m.Duration, video)
	}
}

func TestHandshakeIsFastAndReadsSDP(t *testing.T) {
	t.Parallel()
	sim := newSim(t)
	cam := addCam(t, sim, "gate", rtspcam.CameraOptions{})
	want := clipStats(t)
	m := probeOnce(t, cam.URL(), ModeHandshake, Settings{})
	if !m.Up || m.Codec != "h264" || m.Width != want.Width || m.Height != want.Height {
		t.Fatalf("handshake = %+v, want up, h264 %dx%d", m, want.Width, want.Height)
	}
	if m.FPS != 0 || m.BitrateBps != 0 {
		t.Errorf("a handshake measured stream figures: %+v", m)
	}
	if m.Duration > 200*time.Millisecond {
		t.Errorf("handshake on loopback took %s", m.Duration)
	}
}

func TestLowFPSCamera(t *testing.T) {
	t.Parallel()
	sim := newSim(t)
	cam := addCam(t, sim, "slow", rtspcam.CameraOptions{FPS: 5})
	m := probeOnce(t, cam.URL(), ModeSample, Settings{MaxSampleWindow: 6 * time.Second, NoVideoTimeout: 3 * time.Second})
	if !m.Up || !within(m.FPS, 5, 0.05) {
		t.Fatalf("5 fps camera: up=%v fps=%.2f (%s)", m.Up, m.FPS, m.Detail)
	}
	if m.KeyframeInterval != clipStats(t).KeyframeInterval {
		t.Errorf("keyframe interval %d at 5 fps, want %d frames", m.KeyframeInterval, clipStats(t).KeyframeInterval)
	}
	if g := grade(true, m.FPS, 7.5); g != GradeFair {
		t.Errorf("%.2f of 7.5 expected fps graded %s, want fair", m.FPS, g)
	}
	if g := grade(true, m.FPS, 12); g != GradePoor {
		t.Errorf("%.2f of 12 expected fps graded %s, want poor", m.FPS, g)
	}
}

// Each failure gives its reason within its timeout.
func TestFailureReasons(t *testing.T) {
	t.Parallel()
	sim := newSim(t)
	addCam(t, sim, "open", rtspcam.CameraOptions{})
	for _, c := range []struct {
		name string
		auth rtspcam.Auth
	}{
		{"digest", rtspcam.Auth{Method: rtspcam.AuthDigest, Username: "admin", Password: "Gate-Pass-42"}},
		{"basic", rtspcam.Auth{Method: rtspcam.AuthBasic, Username: "admin", Password: "Gate-Pass-42"}},
		{"rechallenge", rtspcam.Auth{Method: rtspcam.AuthDigest, Username: "admin", Password: "Gate-Pass-42", Rechallenge: true}},
	} {
		addCam(t, sim, c.name, rtspcam.CameraOptions{Auth: c.auth})
	}
	stalled := addCam(t, sim, "stalled", rtspcam.CameraOptions{})
	stalled.Stall(true)
	rtcpOnly := addCam(t, sim, "rtcp", rtspcam.CameraOptions{})
	rtcpOnly.RTCPOnly(true)
	laterStall := addCam(t, sim, "laterstall", rtspcam.CameraOptions{})

	// A second simulator that is killed while a sample reads from it.
	doomed := newSim(t)
	addCam(t, doomed, "doomed", rtspcam.CameraOptions{})

	silent := startFake(t, silentBehavior)
	fail500 := startFake(t, status500Behavior)

	host := sim.Addr()
	set := Settings{Timeout: 2 * time.Second, NoVideoTimeout: 1500 * time.Millisecond}
	cases := []struct {
		name   string
		url    string
		mode   Mode
		before func()
		want   string
		within time.Duration
	}{
		{"wrong path", "rtsp://" + host + "/nope", ModeHandshake, nil, ReasonNotFound, 1500 * time.Millisecond},
		{"digest wrong password", "rtsp://admin:wrong@" + host + "/digest", ModeHandshake, nil, ReasonUnauthorized, time.Second},
		{"digest no credentials", "rtsp://" + host + "/digest", ModeHandshake, nil, ReasonUnauthorized, time.Second},
		{"digest right password", "rtsp://admin:Gate-Pass-42@" + host + "/digest", ModeSample, nil, "", 5 * time.Second},
		{"basic wrong password", "rtsp://admin:wrong@" + host + "/basic", ModeHandshake, nil, ReasonUnauthorized, time.Second},
		{"basic no credentials", "rtsp://" + host + "/basic", ModeHandshake, nil, ReasonUnauthorized, time.Second},
		{"basic right password", "rtsp://admin:Gate-Pass-42@" + host + "/basic", ModeHandshake, nil, "", time.Second},
		{"rechallenging camera, wrong password", "rtsp://admin:wrong@" + host + "/rechallenge", ModeHandshake, nil, ReasonUnauthorized, time.Second},
		{"closed port", "rtsp://" + closedPort(t) + "/x", ModeHandshake, nil, ReasonRefused, 500 * time.Millisecond},
		{"accepts TCP, never answers", silent.url("x"), ModeHandshake, nil, ReasonTimeout, set.Timeout + 500*time.Millisecond},
		{"HTTP-500-like replies", fail500.url("x"), ModeHandshake, nil, ReasonOther, set.Timeout + 500*time.Millisecond},
		{"video stalls, connection open", "rtsp://" + host + "/stalled", ModeSample, nil, ReasonNoVideo, set.Timeout + set.NoVideoTimeout},
		{"handshake does not read video", "rtsp://" + host + "/stalled", ModeHandshake, nil, "", time.Second},
		{"RTCP only", "rtsp://" + host + "/rtcp", ModeSample, nil, ReasonNoVideo, set.Timeout + set.NoVideoTimeout},
		{"video stops mid-sample", "rtsp://" + host + "/laterstall", ModeSample, func() {
			time.AfterFunc(700*time.Millisecond, func() { laterStall.Stall(true) })
		}, ReasonNoVideo, 700*time.Millisecond + set.NoVideoTimeout + 500*time.Millisecond},
		{"server killed mid-stream", "rtsp://" + doomed.Addr() + "/doomed", ModeSample, func() {
			time.AfterFunc(700*time.Millisecond, func() { doomed.Close() })
		}, ReasonNoVideo, time.Second + 500*time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.before != nil {
				c.before()
			}
			m := probeOnce(t, c.url, c.mode, set)
			t.Logf("up=%v reason=%q detail=%q in %s", m.Up, m.Reason, m.Detail, m.Duration.Round(time.Millisecond))
			if c.want == "" {
				if !m.Up {
					t.Fatalf("want up, got %s (%s)", m.Reason, m.Detail)
				}
			} else if m.Up || m.Reason != c.want {
				t.Fatalf("got up=%v reason=%q (%s), want %q", m.Up, m.Reason, m.Detail, c.want)
			}
			if m.Duration > c.within {
				t.Errorf("took %s, want at most %s", m.Duration, c.within)
			}
			if strings.Contains(m.Detail, "Gate-Pass-42") || strings.Contains(m.Detail, "wrong") {
				t.Errorf("detail leaks a password: %q", m.Detail)
			}
		})
	}
}

// Passwords with characters that are special in URLs (and in HTML, which
// vdk unescapes) still work when given as separate Username/Password.
func TestSpecialCharacterPassword(t *testing.T) {
	t.Parallel()
	sim := newSim(t)
	const pass = "p@ss:w/rd&amp;%20?#"
	addCam(t, sim, "gate", rtspcam.CameraOptions{Auth: rtspcam.Auth{Method: rtspcam.AuthDigest, Username: "ad min", Password: pass}})
	u, _, _ := buildURL(Target{URL: sim.URL("gate"), Username: "ad min", Password: pass})
	m := probeOnce(t, u, ModeHandshake, Settings{})
	if !m.Up {
		t.Fatalf("probe with special-character password: %s (%s)", m.Reason, m.Detail)
	}
	if r := Redact(u); strings.Contains(r, "amp") || r != "rtsp://ad%20min:***@"+sim.Addr()+"/gate" {
		t.Fatalf("Redact(<url>) = %q", r)
	}
}

func TestShortSPSInSDPIsProtocol(t *testing.T) {
	t.Parallel()
	f := startFake(t, shortSpropBehavior)
	m := probeOnce(t, f.url("x"), ModeHandshake, Settings{})
	if m.Up || m.Reason != ReasonProtocol {
		t.Fatalf("2-byte SPS in the SDP: up=%v reason=%s (%s), want protocol", m.Up, m.Reason, m.Detail)
	}
}

// Keyframes that arrive inside STAP-A packets are counted (vdk's own
// IsKeyFrame is false for them).
func TestKeyframesInAggregatedPackets(t *testing.T) {
	t.Parallel()
	f := startFake(t, stapKeyframeBehavior)
	m := probeOnce(t, f.url("x"), ModeSample, Settings{})
	if !m.Up {
		t.Fatalf("STAP-A camera down: %s %s", m.Reason, m.Detail)
	}
	if m.KeyframeInterval != 5 {
		t.Fatalf("keyframe interval %d, want 5", m.KeyframeInterval)
	}
	if !within(m.FPS, 10, 0.05) {
		t.Fatalf("fps %.2f, want 10", m.FPS)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"rtsp://admin:secret@10.0.0.5/stream1":        "rtsp://admin:***@10.0.0.5/stream1",
		"rtsp://admin:s%40cr%3At@10.0.0.5:554/s?a=1":  "rtsp://admin:***@10.0.0.5:554/s?a=1",
		"rtsp://10.0.0.5/stream1":                     "rtsp://10.0.0.5/stream1",
		"rtsp://admin@10.0.0.5/stream1":               "rtsp://admin@10.0.0.5/stream1",
		"rtsp://admin:bad pass%zz@10.0.0.5/stream1":   "rtsp://***@10.0.0.5/stream1",
		"rtsps://u:p@cam.example.vn/live":             "rtsps://u:***@cam.example.vn/live",
		"rtsp://user:p@ss@10.0.0.5/stream1":           "rtsp://user:***@10.0.0.5/stream1",
		"rtsp://user:a%zzb@10.0.0.5/stream1?x=@y:z@w": "rtsp://***@10.0.0.5/stream1?x=@y:z@w",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestScrubber(t *testing.T) {
	sc := newScrubber("rtsp://admin:s%40cret-pass@10.0.0.5/x", "", "other-secret")
	in := "dial rtsp://admin:s%40cret-pass@10.0.0.5/x failed; pass s@cret-pass; other-secret; s%40cret-pass"
	out := sc.clean(in)
	for _, leak := range []string{"s@cret-pass", "s%40cret-pass", "other-secret"} {
		if strings.Contains(out, leak) {
			t.Errorf("scrubbed text %q still contains %q", out, leak)
		}
	}
}

func TestGrade(t *testing.T) {
	for _, c := range []struct {
		up            bool
		fps, expected float64
		want          string
	}{
		{false, 10, 10, GradeDown},
		{true, 10, 10, GradeGood},
		{true, 9, 10, GradeGood},
		{true, 8.9, 10, GradeFair},
		{true, 5, 10, GradeFair},
		{true, 4.9, 10, GradePoor},
		{true, 3, 0, GradeGood},
		{true, 0, 25, GradeGood},
	} {
		if got := grade(c.up, c.fps, c.expected); got != c.want {
			t.Errorf("grade(%v, %v, %v) = %s, want %s", c.up, c.fps, c.expected, got, c.want)
		}
	}
}
