// Package rtspcam is a simulator of IP cameras: one real RTSP server
// (gortsplib) serving one path per simulated camera, each looping the same
// small H.264 clip with correct RTP timestamps. Each camera can be stopped,
// flapped, slowed down, stalled, switched to RTCP only, or put behind Digest or
// Basic authentication, so the hub's probes can be tested against every way a
// real camera fails.
//
// Video is only sent to cameras that have a reader, and all cameras share one
// packetized copy of the clip, so hundreds of idle cameras cost next to nothing.
package rtspcam

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// Config configures a Server.
type Config struct {
	// Addr is the TCP listen address, e.g. "127.0.0.1:8554".
	// Port 0 picks a free port; Addr() tells which.
	Addr string
	// Logger receives connection-level events at debug level. Optional.
	Logger *slog.Logger
	// Clip replaces the embedded 320x240 clip: an H.264 Annex-B stream
	// with an access unit delimiter before every frame (ffmpeg's
	// h264_metadata=aud=insert) and a first frame that is a keyframe,
	// played at ClipFPS. Benchmarks use it to serve 1080p.
	Clip    []byte
	ClipFPS float64
}

// Server is an RTSP server hosting simulated cameras.
// It serves TCP-interleaved RTSP only (what the hub's probe and
// `ffprobe -rtsp_transport tcp` use).
type Server struct {
	clip *clip
	log  *slog.Logger
	rtsp *gortsplib.Server
	addr string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // pacers and flappers

	mu      sync.RWMutex
	cameras map[string]*Camera

	closeOnce sync.Once
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// New starts listening and serving at cfg.Addr. Call Close (or Run) to stop.
// Binding in New, like httptest.NewServer, lets callers learn the address of
// a port-0 listener before anything connects.
func New(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		return nil, errors.New("rtspcam: Config.Addr is empty")
	}
	var c *clip
	var err error
	if cfg.Clip != nil {
		if cfg.ClipFPS <= 0 {
			return nil, errors.New("rtspcam: Config.Clip needs a ClipFPS")
		}
		c, err = parseClip(cfg.Clip, cfg.ClipFPS)
	} else {
		c, err = sharedClip()
	}
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{
		clip:    c,
		log:     log,
		cameras: make(map[string]*Camera),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	var ln net.Listener
	s.rtsp = &gortsplib.Server{
		Handler:     (*handler)(s),
		RTSPAddress: cfg.Addr,
		// Capture the listener to report the real port when Addr ends in :0.
		Listen: func(network, address string) (net.Listener, error) {
			l, err := net.Listen(network, address)
			ln = l
			return l, err
		},
	}
	if err := s.rtsp.Start(); err != nil {
		s.cancel()
		return nil, fmt.Errorf("rtspcam: listening on %s (set the simulator's RTSP address to a free port): %w", cfg.Addr, err)
	}
	s.addr = ln.Addr().String()
	return s, nil
}

// Addr is the address the server listens on, host:port.
func (s *Server) Addr() string { return s.addr }

// Run serves until ctx ends, then closes the server. It returns nil after a
// clean stop, or the server's error if it failed first.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.rtsp.Wait() }()
	select {
	case <-ctx.Done():
		s.Close()
		<-errc
		return nil
	case err := <-errc:
		s.Close()
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("rtspcam: serving: %w", err)
		}
		return nil
	}
}

// Close stops the server, disconnects every reader and waits for the
// simulator's goroutines to end. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.rtsp.Close()
		s.mu.RLock()
		cams := make([]*Camera, 0, len(s.cameras))
		for _, c := range s.cameras {
			cams = append(cams, c)
		}
		s.mu.RUnlock()
		for _, c := range cams {
			c.stop()
		}
		s.wg.Wait()
	})
	return nil
}

// AddCamera creates a camera served at rtsp://<addr>/<name>. The name must
// be a single path segment of letters, digits, '_', '.', '-'.
func (s *Server) AddCamera(name string, opts CameraOptions) (*Camera, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("rtspcam: camera name %q: want 1-128 of [A-Za-z0-9_.-]", name)
	}
	if s.ctx.Err() != nil {
		return nil, errors.New("rtspcam: server closed")
	}
	s.mu.Lock()
	if _, ok := s.cameras[name]; ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("rtspcam: camera %q already exists", name)
	}
	c := newCamera(s, name, opts)
	s.cameras[name] = c
	s.mu.Unlock()
	if !opts.Stopped {
		if err := c.start(); err != nil {
			s.RemoveCamera(name)
			return nil, err
		}
	}
	return c, nil
}

// RemoveCamera stops a camera and forgets it; its path answers 404.
func (s *Server) RemoveCamera(name string) {
	s.mu.Lock()
	c := s.cameras[name]
	delete(s.cameras, name)
	s.mu.Unlock()
	if c != nil {
		c.stopFlapping()
		c.stop()
	}
}

// Camera returns the camera with that name, or nil.
func (s *Server) Camera(name string) *Camera {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cameras[name]
}

// URL is the camera's RTSP URL, without credentials.
func (s *Server) URL(name string) string {
	return "rtsp://" + s.addr + "/" + name
}

func (s *Server) cameraForPath(path string) *Camera {
	return s.Camera(strings.Trim(path, "/"))
}

// handler implements gortsplib's server callbacks; a separate type keeps
// those methods out of Server's public API.
type handler Server

type connState struct {
	nonce string
}

type sessionState struct {
	cam     *Camera
	playing bool
}

func (h *handler) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	ctx.Conn.SetUserData(&connState{})
	h.log.Debug("rtspcam: connection opened", "remote", ctx.Conn.NetConn().RemoteAddr().String())
}

func (h *handler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	h.log.Debug("rtspcam: connection closed", "err", ctx.Error)
}

func (h *handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	if st, ok := ctx.Session.UserData().(*sessionState); ok {
		st.cam.readerGone(st)
	}
}

func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	cam := (*Server)(h).cameraForPath(ctx.Path)
	if cam == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	if res, err := cam.authorize(ctx.Conn, ctx.Request); res != nil {
		return res, nil, err
	}
	st := cam.currentStream()
	if st == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	cam := (*Server)(h).cameraForPath(ctx.Path)
	if cam == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	if res, err := cam.authorize(ctx.Conn, ctx.Request); res != nil {
		return res, nil, err
	}
	st := cam.currentStream()
	if st == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	if ctx.Session.UserData() == nil {
		ctx.Session.SetUserData(&sessionState{cam: cam})
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	st, ok := ctx.Session.UserData().(*sessionState)
	if !ok {
		return &base.Response{StatusCode: base.StatusBadRequest}, nil
	}
	st.cam.readerCame(st)
	return &base.Response{StatusCode: base.StatusOK}, nil
}
