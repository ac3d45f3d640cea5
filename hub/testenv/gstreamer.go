package testenv

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// GstPython is the interpreter that runs the GStreamer RTSP server: Debian's
// own, which has the gi module (python3-gi); a python3 earlier on PATH may
// be another interpreter without it.
const GstPython = "/usr/bin/python3"

// GstMount is one path served by GStreamer's gst-rtsp-server: a
// gst-launch style pipeline in parentheses whose payloaders are named
// pay0, pay1... With User set, the path requires digest authentication
// with User and Password (which may hold any characters). Put protected
// mounts on a server of their own: on a server that also has open mounts,
// gst-rtsp-server answers an unauthenticated request for a protected
// mount 404, not 401.
type GstMount struct {
	Path     string `json:"path"` // e.g. "/h264"
	Launch   string `json:"launch"`
	User     string `json:"user,omitempty"`
	Password string `json:"password,omitempty"`
}

// GstRTSPServer is a running gst-rtsp-server (Debian 12: GStreamer 1.22),
// a real third-party RTSP server, started by hub/testenv/testdata/gst_rtsp_server.py.
type GstRTSPServer struct {
	Addr    string // 127.0.0.1:port
	Version string // e.g. "GStreamer 1.22.0"
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	out     *syncBuffer
	done    chan struct{}
}

// StartGstRTSPServer serves mounts on a free loopback port until the test
// ends. A server that cannot start (GStreamer, gst-rtsp-server or an
// element missing: see scripts/install-deps.sh) fails the test.
func StartGstRTSPServer(t testing.TB, mounts ...GstMount) *GstRTSPServer {
	t.Helper()
	spec, err := json.Marshal(mounts)
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(moduleRoot(), "hub", "testenv", "testdata", "gst_rtsp_server.py")
	port := FreePort(t)
	s := &GstRTSPServer{out: &syncBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(GstPython, script, strconv.Itoa(port), string(spec))
	s.cmd.Stderr = s.out
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// The server exits when its stdin closes, so it cannot outlive the
	// test process even if the test is killed.
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("testenv: starting gst-rtsp-server (%s): %v", GstPython, err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "READY ") || strings.HasPrefix(line, "ERROR ") {
				select {
				case ready <- line:
				default:
				}
			}
			fmt.Fprintln(s.out, line)
		}
		_ = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(s.stop)
	select {
	case line := <-ready:
		f := strings.Fields(line)
		if f[0] != "READY" || len(f) < 2 || f[1] != strconv.Itoa(port) {
			t.Fatalf("testenv: gst-rtsp-server did not start: %s\n%s", line, s.out.String())
		}
		s.Version = strings.Join(f[2:], " ")
	case <-s.done:
		t.Fatalf("testenv: gst-rtsp-server exited at start (are python3-gi, gir1.2-gst-rtsp-server-1.0 and the GStreamer plugins installed? scripts/install-deps.sh):\n%s", s.out.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("testenv: gst-rtsp-server not ready after 30s:\n%s", s.out.String())
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return s
}

// URL is the RTSP URL of path, without credentials.
func (s *GstRTSPServer) URL(path string) string { return "rtsp://" + s.Addr + path }

// URLWithAuth is the RTSP URL of path with user and password in it,
// percent-escaped.
func (s *GstRTSPServer) URLWithAuth(path, user, password string) string {
	u := url.URL{Scheme: "rtsp", Host: s.Addr, Path: path, User: url.UserPassword(user, password)}
	return u.String()
}

// Output is what the server printed (its log and GStreamer's warnings).
func (s *GstRTSPServer) Output() string { return s.out.String() }

func (s *GstRTSPServer) stop() {
	_ = s.stdin.Close()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// FFmpegClip makes a clip with ffmpeg once per machine (cached in the user
// cache directory under a name from its ffmpeg arguments, which include
// the output format) and returns its path. Clips are encoded ahead, not
// live: encoding live, x265 needs about 150 ms of CPU per 1080p frame, and
// on a busy machine a live encoder falls behind and sends fewer frames
// than it announces.
func FFmpegClip(name string, args []string) (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "villagehub-test")
	sum := sha256.Sum256([]byte(strings.Join(args, " ")))
	path := filepath.Join(dir, fmt.Sprintf("gst-%s-%x.mkv", name, sum[:6]))
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	full := append([]string{"-nostdin", "-v", "error", "-y"}, args...)
	if out, err := exec.Command("ffmpeg", append(full, tmp)...).CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("making the %s clip with ffmpeg: %v\n%s", name, err, out)
	}
	return path, os.Rename(tmp, path)
}

// H265Clip1080p is ffmpeg's arguments for a 15 s H.265 1920x1080 5 fps
// clip coded as 1088 rows with a conformance window (min-cu-size=16, as
// camera encoders and GStreamer's x265enc code), a keyframe every second;
// H265Launch1080p serves it (%s is the clip's path).
var (
	H265Clip1080p = []string{"-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=5", "-frames:v", "75", "-c:v", "libx265", "-preset", "ultrafast",
		"-x265-params", "log-level=none:keyint=5:min-keyint=5:scenecut=0:bframes=0:min-cu-size=16", "-b:v", "1500k", "-f", "matroska"}
	H265Launch1080p = "( filesrc location=%s ! matroskademux ! h265parse ! rtph265pay name=pay0 pt=96 config-interval=-1 )"
)
