package rtspcam

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/auth"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// AuthMethod is how a camera asks for credentials.
type AuthMethod int

// Authentication methods.
const (
	AuthNone   AuthMethod = iota
	AuthDigest            // RFC 2617 Digest with MD5, what most IP cameras use
	AuthBasic
)

// Auth is a camera's access control.
type Auth struct {
	Method             AuthMethod
	Username, Password string
	// Rechallenge answers a wrong password with another 401 and challenge
	// and keeps the connection open, as most IP cameras do. Without it the
	// camera answers 401 and closes the connection, as gortsplib (and so
	// MediaMTX) does. Clients see the two very differently.
	Rechallenge bool
}

// CameraOptions configures a camera when it is added.
type CameraOptions struct {
	// FPS is the frame rate sent; 0 means the clip's own (10 for the embedded clip).
	FPS float64
	// Auth protects the camera's path; the zero value means open.
	Auth Auth
	// Stopped adds the camera switched off (its path answers 404).
	Stopped bool
}

const authRealm = "rtspcam"

// Camera is one simulated camera. Its methods are safe for concurrent use.
type Camera struct {
	s    *Server
	name string

	mu       sync.Mutex
	stream   *gortsplib.ServerStream // nil while stopped
	media    *description.Media
	fps      float64
	stall    bool
	rtcpOnly bool
	auth     Auth
	readers  int
	pacing   bool
	flapStop context.CancelFunc

	// Where the camera is in the clip and on its RTP clock. The clip keeps
	// "playing" while nobody watches, like a real camera, so a reader joins
	// at an arbitrary frame and waits for the next keyframe.
	pos       int
	idleSince time.Time
	epoch     time.Time
	tsBase    uint32
	seq       uint16
}

func newCamera(s *Server, name string, opts CameraOptions) *Camera {
	var r [6]byte
	_, _ = rand.Read(r[:]) // crypto/rand never fails on Linux
	now := time.Now()
	c := &Camera{
		s:         s,
		name:      name,
		fps:       opts.FPS,
		auth:      opts.Auth,
		idleSince: now,
		epoch:     now,
		tsBase:    binary.BigEndian.Uint32(r[:4]),
		seq:       binary.BigEndian.Uint16(r[4:]),
	}
	if c.fps <= 0 {
		c.fps = s.clip.fps
	}
	return c
}

// Name is the camera's path on the server.
func (c *Camera) Name() string { return c.name }

// URL is the camera's RTSP URL, without credentials.
func (c *Camera) URL() string { return c.s.URL(c.name) }

// Readers is how many clients are playing the camera right now.
func (c *Camera) Readers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readers
}

// Start switches the camera on (and ends flapping).
func (c *Camera) Start() error {
	c.stopFlapping()
	return c.start()
}

// Stop switches the camera off: its path disappears (DESCRIBE gets 404) and
// every reader is disconnected. It also ends flapping.
func (c *Camera) Stop() {
	c.stopFlapping()
	c.stop()
}

// Flap switches the camera off and on forever: up for `up`, down for
// `down`, starting up. Zero durations end flapping and leave it on.
func (c *Camera) Flap(up, down time.Duration) {
	c.stopFlapping()
	if up <= 0 || down <= 0 {
		_ = c.start()
		return
	}
	if c.s.ctx.Err() != nil {
		return // server closed
	}
	ctx, cancel := context.WithCancel(c.s.ctx)
	c.mu.Lock()
	c.flapStop = cancel
	c.mu.Unlock()
	c.s.wg.Add(1)
	go func() {
		defer c.s.wg.Done()
		t := time.NewTimer(0)
		defer t.Stop()
		on := false
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if on {
				c.stop()
				t.Reset(down)
			} else {
				if err := c.start(); err != nil {
					c.s.log.Warn("rtspcam: flapping camera could not start", "camera", c.name, "err", err)
				}
				t.Reset(up)
			}
			on = !on
		}
	}()
}

// SetFPS changes the frame rate sent (a camera dropping frames); 0 restores
// the clip's rate. RTP timestamps follow the wall clock, so they stay right.
func (c *Camera) SetFPS(fps float64) {
	if fps <= 0 {
		fps = c.s.clip.fps
	}
	c.mu.Lock()
	c.fps = fps
	c.mu.Unlock()
}

// Stall stops sending RTP while keeping every connection and session open
// (and still answering RTSP), like an encoder that froze.
func (c *Camera) Stall(on bool) {
	c.mu.Lock()
	c.stall = on
	c.mu.Unlock()
}

// RTCPOnly sends RTCP sender reports but no video, which keeps naive
// clients' read timeouts from ever firing.
func (c *Camera) RTCPOnly(on bool) {
	c.mu.Lock()
	c.rtcpOnly = on
	c.mu.Unlock()
}

// SetAuth changes the camera's access control for new requests.
func (c *Camera) SetAuth(a Auth) {
	c.mu.Lock()
	c.auth = a
	c.mu.Unlock()
}

func (c *Camera) stopFlapping() {
	c.mu.Lock()
	stop := c.flapStop
	c.flapStop = nil
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
}

func (c *Camera) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stream != nil {
		return nil
	}
	if c.s.ctx.Err() != nil {
		return fmt.Errorf("rtspcam: server closed")
	}
	cl := c.s.clip
	medi := &description.Media{
		Type: description.MediaTypeVideo,
		Formats: []format.Format{&format.H264{
			PayloadTyp:        rtpPayloadType,
			PacketizationMode: 1,
			SPS:               cl.sps,
			PPS:               cl.pps,
		}},
	}
	st := &gortsplib.ServerStream{
		Server: c.s.rtsp,
		Desc:   &description.Session{Medias: []*description.Media{medi}},
	}
	if err := st.Initialize(); err != nil {
		return fmt.Errorf("rtspcam: starting camera %s: %w", c.name, err)
	}
	c.stream, c.media = st, medi
	return nil
}

func (c *Camera) stop() {
	c.mu.Lock()
	st := c.stream
	c.stream, c.media = nil, nil
	c.mu.Unlock()
	// Closing the stream closes its sessions, whose close callbacks take
	// c.mu: do it unlocked.
	if st != nil {
		st.Close()
	}
}

func (c *Camera) currentStream() *gortsplib.ServerStream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stream
}

func (c *Camera) readerCame(st *sessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.playing {
		return
	}
	st.playing = true
	c.readers++
	if c.pacing || c.s.ctx.Err() != nil {
		return
	}
	// Catch the clip up with the time nobody watched.
	c.pos += int(time.Since(c.idleSince).Seconds() * c.fps)
	c.pacing = true
	c.s.wg.Add(1)
	go c.pace()
}

func (c *Camera) readerGone(st *sessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !st.playing {
		return
	}
	st.playing = false
	c.readers--
}

// authorize checks a DESCRIBE or SETUP request against the camera's Auth.
// It returns a nil response when the request may proceed.
func (c *Camera) authorize(sc *gortsplib.ServerConn, req *base.Request) (*base.Response, error) {
	c.mu.Lock()
	a := c.auth
	c.mu.Unlock()
	if a.Method == AuthNone {
		return nil, nil
	}
	cs, _ := sc.UserData().(*connState)
	if cs == nil {
		cs = &connState{}
		sc.SetUserData(cs)
	}
	if cs.nonce == "" {
		n, err := auth.GenerateNonce()
		if err != nil {
			return &base.Response{StatusCode: base.StatusInternalServerError}, nil
		}
		cs.nonce = n
	}
	methods := []auth.VerifyMethod{auth.VerifyMethodDigestMD5}
	if a.Method == AuthBasic {
		methods = []auth.VerifyMethod{auth.VerifyMethodBasic}
	}
	challenge := &base.Response{
		StatusCode: base.StatusUnauthorized,
		Header:     base.Header{"WWW-Authenticate": auth.GenerateWWWAuthenticate(methods, authRealm, cs.nonce)},
	}
	if _, ok := req.Header["Authorization"]; !ok {
		return challenge, nil
	}
	if err := auth.Verify(req, a.Username, a.Password, methods, authRealm, cs.nonce); err == nil {
		return nil, nil
	}
	if a.Rechallenge {
		return challenge, nil
	}
	// gortsplib writes this 401 (without a challenge) and closes the
	// connection when credentials were provided.
	return &base.Response{StatusCode: base.StatusUnauthorized}, liberrors.ErrServerAuth{}
}

// pace sends the clip to the camera's readers in real time. It runs only
// while someone is playing the camera.
func (c *Camera) pace() {
	defer c.s.wg.Done()
	cl := c.s.clip
	timer := time.NewTimer(0)
	defer timer.Stop()
	next := time.Now()
	for {
		select {
		case <-c.s.ctx.Done():
			c.mu.Lock()
			c.pacing = false
			c.mu.Unlock()
			return
		case <-timer.C:
		}

		c.mu.Lock()
		if c.readers == 0 || c.stream == nil {
			c.pacing = false
			c.idleSince = time.Now()
			c.mu.Unlock()
			return
		}
		st, medi := c.stream, c.media
		frame := &cl.frames[c.pos%len(cl.frames)]
		c.pos++
		stall, rtcpOnly := c.stall, c.rtcpOnly
		interval := time.Duration(float64(time.Second) / c.fps)
		seq := c.seq
		if !stall && !rtcpOnly {
			c.seq += uint16(len(frame.payloads))
		}
		// 90 kHz clock derived from the frame's scheduled wall time, so the
		// timestamps stay right whatever the frame rate does.
		ts := c.tsBase + uint32(next.Sub(c.epoch).Nanoseconds()*9/100000)
		c.mu.Unlock()

		switch {
		case rtcpOnly:
			_ = st.WritePacketRTCP(medi, &rtcp.SenderReport{
				SSRC:    c.tsBase, // any stable value; no RTP is sent to compare with
				NTPTime: ntpTime(next),
				RTPTime: ts,
			})
		case !stall:
			last := len(frame.payloads) - 1
			for i, p := range frame.payloads {
				// A fresh packet per write: the stream stamps its SSRC into it.
				pkt := &rtp.Packet{
					Header: rtp.Header{
						Version:        2,
						PayloadType:    rtpPayloadType,
						SequenceNumber: seq + uint16(i),
						Timestamp:      ts,
						Marker:         i == last,
					},
					Payload: p,
				}
				// Errors mean the stream was closed under us (Stop); the
				// next round notices.
				_ = st.WritePacketRTPWithNTP(medi, pkt, next)
			}
		}

		next = next.Add(interval)
		now := time.Now()
		if now.Sub(next) > time.Second {
			next = now // fell far behind (machine overloaded): don't burst
		}
		timer.Reset(next.Sub(now))
	}
}

func ntpTime(t time.Time) uint64 {
	s := uint64(t.UnixNano()) + 2208988800*1000000000
	return (s/1000000000)<<32 | (s%1000000000)<<32/1000000000
}
