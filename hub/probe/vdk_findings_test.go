package probe

// These tests pin down vdk v0.0.27's behaviour that the probe works
// around, one test per finding in docs/vdk-findings.md, by running vdk's
// client directly against the simulator or the fake camera. If one starts
// failing after a vdk upgrade, the behaviour changed: revisit the
// workaround and the document.

import (
	"errors"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deepch/vdk/format/rtspv2"

	"villagehub/devices/rtspcam"
	"villagehub/hub/testenv"
)

func vdkDialRaw(url string, rw time.Duration) (*rtspv2.RTSPClient, error) {
	return rtspv2.Dial(rtspv2.RTSPClientOptions{URL: url, DialTimeout: time.Second, ReadWriteTimeout: rw, DisableAudio: true})
}

// Finding: keyframes aggregated in STAP-A packets have IsKeyFrame false.
// The simulator's clip has a keyframe whose first slice fits, with SPS and
// PPS, in one STAP-A packet; gortsplib aggregates it.
func TestVDKFindingSTAPAKeyframeNotFlagged(t *testing.T) {
	t.Parallel()
	sim := newSim(t)
	cam := addCam(t, sim, "gate", rtspcam.CameraOptions{})
	c, err := vdkDialRaw(cam.URL(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer closeClient(c, false, time.Second)
	var idrFlagged, idrUnflagged int
	end := time.After(2500 * time.Millisecond)
	for {
		select {
		case p := <-c.OutgoingPacketQueue:
			if p.Data[4]&0x1f == 5 {
				if p.IsKeyFrame {
					idrFlagged++
				} else {
					idrUnflagged++
				}
			}
			continue
		case <-c.Signals:
			continue
		case <-end:
		}
		break
	}
	if idrUnflagged == 0 {
		t.Fatalf("every IDR slice was flagged (%d); vdk fixed the STAP-A keyframe flag?", idrFlagged)
	}
	t.Logf("IDR slices: %d flagged, %d not flagged by vdk", idrFlagged, idrUnflagged)
}

// Finding: vdk's reader goroutine signals codec changes on Signals
// (capacity 100) and blocks for good when nobody reads it, even after
// Close; draining Signals lets it end.
func TestVDKFindingSignalsMustBeDrained(t *testing.T) {
	t.Parallel()
	f := startFake(t, spsFloodBehavior)
	c, err := vdkDialRaw(f.url("x"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 2*time.Second, "vdk's Signals channel full", func() bool { return len(c.Signals) == cap(c.Signals) })
	c.Close()
	// Blocked sending on the full channel, the goroutine cannot notice
	// the Close: only a receive can free it, so seeing it parked there
	// after Close proves it stays.
	testenv.WaitFor(t, 2*time.Second, "vdk's reader parked on a channel send in CodecUpdateSPS", func() bool { return readerGoroutineBlocked(c) })
	// What closeClient does: drain until the end signal.
	ended := false
	timeout := time.After(2 * time.Second)
	for !ended {
		select {
		case s := <-c.Signals:
			ended = s == rtspv2.SignalStreamRTPStop
		case <-timeout:
			t.Fatal("no end signal after draining")
		}
	}
	// And the probe itself gets through such a camera without leaving it,
	// reading CodecData only once vdk's goroutine has ended (run with
	// -race: reading it on each SignalCodecUpdate races with the next).
	m := probeOnce(t, f.url("x"), ModeHandshake, Settings{})
	if !m.Up {
		t.Fatalf("handshake against the SPS flood: %s %s", m.Reason, m.Detail)
	}
	m = probeOnce(t, f.url("x"), ModeSample, Settings{NoVideoTimeout: 500 * time.Millisecond})
	if m.Up || m.Reason != ReasonNoVideo || m.Width != 320 || m.Height != 240 {
		t.Fatalf("sample against the SPS flood: %+v, want no_video with the SPS's 320x240", m)
	}
}

// readerGoroutineBlocked reports whether a goroutine is parked on a channel
// send inside vdk's CodecUpdateSPS. (Other tests run in parallel, so this
// only says "some", which is what the assertion above needs after Close.)
func readerGoroutineBlocked(*rtspv2.RTSPClient) bool {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(g, "rtspv2.(*RTSPClient).CodecUpdateSPS") && strings.Contains(header, "[chan send") {
			return true
		}
	}
	return false
}

// Finding: a camera that sends only RTCP keeps vdk's read deadline alive
// forever: no packet, no end signal. The probe's own watchdog reports it.
func TestVDKFindingRTCPOnlyNeverReported(t *testing.T) {
	t.Parallel()
	sim := newSim(t)
	cam := addCam(t, sim, "rtcp", rtspcam.CameraOptions{})
	cam.RTCPOnly(true)
	c, err := vdkDialRaw(cam.URL(), 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer closeClient(c, false, time.Second)
	select {
	case p := <-c.OutgoingPacketQueue:
		t.Fatalf("got a packet from an RTCP-only camera: %v", p)
	case s := <-c.Signals:
		t.Fatalf("vdk signalled %d within 4x its read timeout; finding no longer holds", s)
	case <-time.After(2 * time.Second):
	}
}

// Finding: ReadWriteTimeout is an absolute deadline set before each read;
// zero makes every read fail at once.
func TestVDKFindingZeroReadWriteTimeout(t *testing.T) {
	t.Parallel()
	sim := newSim(t)
	cam := addCam(t, sim, "gate", rtspcam.CameraOptions{})
	c, err := vdkDialRaw(cam.URL(), 0)
	if err == nil {
		c.Close()
		t.Fatal("Dial with ReadWriteTimeout 0 worked; finding no longer holds")
	}
	t.Logf("Dial with ReadWriteTimeout 0: %v", err)
}

// Finding: a wrong password is "RTSP Client Unauthorized 401" against a
// camera that challenges again, but a bare EOF against gortsplib (which
// answers 401 without a challenge and closes); vdk also takes that 401 as
// success and goes on to PLAY with no tracks.
func TestVDKFindingUnauthorizedShapes(t *testing.T) {
	t.Parallel()
	sim := newSim(t)
	addCam(t, sim, "closer", rtspcam.CameraOptions{Auth: rtspcam.Auth{Method: rtspcam.AuthDigest, Username: "u", Password: "right-pass"}})
	addCam(t, sim, "rechallenger", rtspcam.CameraOptions{Auth: rtspcam.Auth{Method: rtspcam.AuthDigest, Username: "u", Password: "right-pass", Rechallenge: true}})
	_, err := vdkDialRaw("rtsp://u:wrong-pass@"+sim.Addr()+"/closer", time.Second)
	// Depending on timing the close reads as EOF or, when the server's
	// receive buffer still held data, as a reset: the probe treats both
	// alike (measure.go).
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("wrong password against a closing server: %v, want EOF or a reset", err)
	}
	_, err = vdkDialRaw("rtsp://u:wrong-pass@"+sim.Addr()+"/rechallenger", time.Second)
	if err == nil || err.Error() != "RTSP Client Unauthorized 401" {
		t.Errorf("wrong password against a re-challenging camera: %v", err)
	}
}

// Finding: any reply other than 200 or 401 costs a 1 s sleep in Dial.
func TestVDKFindingSleepsOnErrorReplies(t *testing.T) {
	t.Parallel()
	sim := newSim(t)
	start := time.Now()
	_, err := vdkDialRaw("rtsp://"+sim.Addr()+"/nope", time.Second)
	if err == nil || time.Since(start) < 900*time.Millisecond {
		t.Fatalf("404 returned %v after %s; finding no longer holds", err, time.Since(start))
	}
}

// Finding: Dial does not close its connection when it fails after
// connecting; the socket stays open until the garbage collector finds it.
func TestVDKFindingFailedDialLeaksSocket(t *testing.T) {
	sim := newSim(t)
	addCam(t, sim, "locked", rtspcam.CameraOptions{Auth: rtspcam.Auth{Method: rtspcam.AuthDigest, Username: "u", Password: "right-pass", Rechallenge: true}})
	old := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(old)
	runtime.GC()
	before := countFDs(t)
	const n = 20
	for i := 0; i < n; i++ {
		if _, err := vdkDialRaw("rtsp://"+sim.Addr()+"/locked", time.Second); err == nil {
			t.Fatal("unauthorized Dial succeeded")
		}
	}
	// Each failed Dial leaves its client socket (and the server's side,
	// also in this process) open.
	if grew := countFDs(t) - before; grew < n {
		t.Fatalf("%d failed Dials left %d descriptors; finding no longer holds", n, grew)
	}
}

// Finding: the URL is HTML-unescaped before parsing, so a password with
// "&amp;" in it is sent as "&". Percent-escaping '&' (as buildURL does)
// avoids it.
func TestVDKFindingURLIsHTMLUnescaped(t *testing.T) {
	t.Parallel()
	sim := newSim(t)
	const pass = "a&amp;b"
	addCam(t, sim, "gate", rtspcam.CameraOptions{Auth: rtspcam.Auth{Method: rtspcam.AuthDigest, Username: "u", Password: pass, Rechallenge: true}})
	if _, err := vdkDialRaw("rtsp://u:"+pass+"@"+sim.Addr()+"/gate", time.Second); err == nil {
		t.Fatal("the raw URL worked; finding no longer holds")
	}
	u, _, _ := buildURL(Target{URL: "rtsp://u:" + pass + "@" + sim.Addr() + "/gate"})
	c, err := vdkDialRaw(u, time.Second)
	if err != nil {
		t.Fatalf("escaped URL: %v", err)
	}
	closeClient(c, false, time.Second)
}
