package rtspcam

import (
	"errors"
	"io"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"villagehub/hub/testenv"
)

func newServer(t *testing.T) *Server {
	t.Helper()
	s, err := New(Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("starting simulator: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func addCamera(t *testing.T, s *Server, name string, opts CameraOptions) *Camera {
	t.Helper()
	c, err := s.AddCamera(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// frame is one access unit as a gortsplib client received it.
type frame struct {
	ts  uint32
	at  time.Time
	key bool
}

type reception struct {
	mu     sync.Mutex
	frames []frame
	rtcp   int
	rtp    int
}

func (r *reception) snapshot() ([]frame, int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]frame(nil), r.frames...), r.rtp, r.rtcp
}

// play reads a camera with gortsplib's own client (independent of the
// probe under test) for d and returns what arrived.
func play(t *testing.T, rawURL string, d time.Duration) (*reception, *format.H264, error) {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp}
	if err := c.Start2(); err != nil {
		return nil, nil, err
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		return nil, nil, err
	}
	var forma *format.H264
	medi := desc.FindFormat(&forma)
	if medi == nil {
		t.Fatal("no H.264 media in SDP")
	}
	dec, err := forma.CreateDecoder()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		return nil, nil, err
	}
	r := &reception{}
	c.OnPacketRTP(medi, forma, func(pkt *rtp.Packet) {
		r.mu.Lock()
		r.rtp++
		r.mu.Unlock()
		au, err := dec.Decode(pkt)
		if err != nil {
			if !errors.Is(err, rtph264.ErrMorePacketsNeeded) && !errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
				t.Errorf("decoding RTP: %v", err)
			}
			return
		}
		r.mu.Lock()
		r.frames = append(r.frames, frame{ts: pkt.Timestamp, at: time.Now(), key: h264.IsRandomAccess(au)})
		r.mu.Unlock()
	})
	c.OnPacketRTCP(medi, func(rtcp.Packet) {
		r.mu.Lock()
		r.rtcp++
		r.mu.Unlock()
	})
	if _, err := c.Play(nil); err != nil {
		return nil, nil, err
	}
	// Observe the stream for d (what a camera sends in a window is the
	// point of these tests), or until the session fails.
	if d > 0 {
		ended := make(chan error, 1)
		go func() { ended <- c.Wait() }()
		select {
		case <-time.After(d):
		case err := <-ended:
			return r, forma, err
		}
	}
	return r, forma, nil
}

func TestClipFigures(t *testing.T) {
	st, err := Clip()
	if err != nil {
		t.Fatal(err)
	}
	if st.Width != 320 || st.Height != 240 || st.KeyframeInterval != 10 || st.Frames != 20 {
		t.Fatalf("clip = %+v, want 320x240, keyframe every 10 of 20 frames", st)
	}
	if st.BitsPerSecond < 40e3 || st.BitsPerSecond > 80e3 {
		t.Fatalf("clip bitrate %.0f bit/s, want ~60 kbit/s (15 KB over 2 s)", st.BitsPerSecond)
	}
}

func TestPlayServesClipInRealTime(t *testing.T) {
	s := newServer(t)
	cam := addCamera(t, s, "gate", CameraOptions{})
	st, _ := Clip()

	r, forma, err := play(t, cam.URL(), 2500*time.Millisecond)
	if err != nil {
		t.Fatalf("playing: %v", err)
	}
	var sps h264.SPS
	if err := sps.Unmarshal(forma.SPS); err != nil {
		t.Fatalf("SDP SPS: %v", err)
	}
	if sps.Width() != st.Width || sps.Height() != st.Height {
		t.Fatalf("SDP says %dx%d, clip is %dx%d", sps.Width(), sps.Height(), st.Width, st.Height)
	}
	frames, _, _ := r.snapshot()
	if len(frames) < 22 || len(frames) > 27 {
		t.Fatalf("got %d frames in 2.5 s, want ~25 at 10 fps", len(frames))
	}
	var keys []int
	for i := 1; i < len(frames); i++ {
		if d := frames[i].ts - frames[i-1].ts; d != 9000 {
			t.Fatalf("RTP timestamp step %d between frames %d and %d, want 9000 (90 kHz / 10 fps)", d, i-1, i)
		}
	}
	for i, f := range frames {
		if f.key {
			keys = append(keys, i)
		}
	}
	if len(keys) < 2 {
		t.Fatalf("keyframes at %v, want at least two", keys)
	}
	for i := 1; i < len(keys); i++ {
		if keys[i]-keys[i-1] != st.KeyframeInterval {
			t.Fatalf("keyframes at %v, want every %d frames", keys, st.KeyframeInterval)
		}
	}
	span := frames[len(frames)-1].at.Sub(frames[0].at).Seconds()
	if fps := float64(len(frames)-1) / span; fps < 9.5 || fps > 10.5 {
		t.Fatalf("arrival rate %.2f fps, want 10", fps)
	}
	if n := cam.Readers(); n != 0 {
		// The client closed on return from play; wait for the session to end.
		testenv.WaitFor(t, 2*time.Second, "no readers after the client left", func() bool { return cam.Readers() == 0 })
	}
}

func statusOf(err error) base.StatusCode {
	var bad liberrors.ErrClientBadStatusCode
	if errors.As(err, &bad) {
		return bad.Code
	}
	return 0
}

func TestStopStartAndUnknownPath(t *testing.T) {
	s := newServer(t)
	cam := addCamera(t, s, "gate", CameraOptions{})
	if _, _, err := play(t, s.URL("nope"), 0); statusOf(err) != base.StatusNotFound {
		t.Fatalf("unknown path: err %v, want 404", err)
	}
	cam.Stop()
	if _, _, err := play(t, cam.URL(), 0); statusOf(err) != base.StatusNotFound {
		t.Fatalf("stopped camera: err %v, want 404", err)
	}
	if err := cam.Start(); err != nil {
		t.Fatal(err)
	}
	r, _, err := play(t, cam.URL(), 500*time.Millisecond)
	if err != nil {
		t.Fatalf("restarted camera: %v", err)
	}
	if f, _, _ := r.snapshot(); len(f) < 3 {
		t.Fatalf("restarted camera sent %d frames in 0.5 s", len(f))
	}
}

func TestAuth(t *testing.T) {
	s := newServer(t)
	for _, tc := range []struct {
		name string
		auth Auth
	}{
		{"digest", Auth{Method: AuthDigest, Username: "admin", Password: "s3cret"}},
		{"basic", Auth{Method: AuthBasic, Username: "admin", Password: "s3cret"}},
		{"digest-rechallenge", Auth{Method: AuthDigest, Username: "admin", Password: "s3cret", Rechallenge: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cam := addCamera(t, s, tc.name, CameraOptions{Auth: tc.auth})
			base := "rtsp://" + s.Addr() + "/" + cam.Name()
			if _, _, err := play(t, base, 0); statusOf(err) != 401 {
				t.Fatalf("no credentials: err %v, want 401", err)
			}
			if _, _, err := play(t, "rtsp://admin:wrong@"+s.Addr()+"/"+cam.Name(), 0); statusOf(err) != 401 {
				t.Fatalf("wrong password: err %v, want 401", err)
			}
			r, _, err := play(t, "rtsp://admin:s3cret@"+s.Addr()+"/"+cam.Name(), 400*time.Millisecond)
			if err != nil {
				t.Fatalf("right password: %v", err)
			}
			if f, _, _ := r.snapshot(); len(f) == 0 {
				t.Fatal("no video with the right password")
			}
		})
	}
}

func TestStallRTCPOnlyAndLowFPS(t *testing.T) {
	s := newServer(t)

	stalled := addCamera(t, s, "stalled", CameraOptions{})
	stalled.Stall(true)
	r, _, err := play(t, stalled.URL(), time.Second)
	if err != nil {
		t.Fatalf("stalled camera must still answer RTSP: %v", err)
	}
	if _, n, _ := r.snapshot(); n != 0 {
		t.Fatalf("stalled camera sent %d RTP packets", n)
	}

	rtcpOnly := addCamera(t, s, "rtcp", CameraOptions{})
	rtcpOnly.RTCPOnly(true)
	r, _, err = play(t, rtcpOnly.URL(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, nRTP, nRTCP := r.snapshot(); nRTP != 0 || nRTCP < 5 {
		t.Fatalf("RTCP-only camera: %d RTP, %d RTCP packets in 1 s; want 0 and ~10", nRTP, nRTCP)
	}

	slow := addCamera(t, s, "slow", CameraOptions{FPS: 2})
	r, _, err = play(t, slow.URL(), 2100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	frames, _, _ := r.snapshot()
	if len(frames) < 4 || len(frames) > 6 {
		t.Fatalf("2 fps camera sent %d frames in 2.1 s", len(frames))
	}
	for i := 1; i < len(frames); i++ {
		if d := frames[i].ts - frames[i-1].ts; d != 45000 {
			t.Fatalf("2 fps camera: RTP step %d, want 45000", d)
		}
	}
}

func TestFlap(t *testing.T) {
	s := newServer(t)
	cam := addCamera(t, s, "flappy", CameraOptions{})
	cam.Flap(150*time.Millisecond, 150*time.Millisecond)
	var up, down int
	// Ask (every 20 ms) until both states were seen twice; the camera
	// changes state every 150 ms.
	testenv.WaitFor(t, 5*time.Second, "the flapping camera seen up and down", func() bool {
		_, _, err := play(t, cam.URL(), 0)
		switch {
		case err == nil:
			up++
		case statusOf(err) == base.StatusNotFound:
			down++
		case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
			// Stopped in the middle of this request: neither state.
		default:
			t.Fatalf("flapping camera: unexpected %v", err)
		}
		return up >= 2 && down >= 2
	})
	if up == 0 || down == 0 {
		t.Fatalf("flapping camera: %d up, %d down answers; want both", up, down)
	}
	cam.Flap(0, 0)
	if _, _, err := play(t, cam.URL(), 0); err != nil {
		t.Fatalf("after flapping ends the camera must be up: %v", err)
	}
}
