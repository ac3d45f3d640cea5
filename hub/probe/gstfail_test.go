package probe

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"villagehub/hub/testenv"
)

// gstPID is the process id of a gst-rtsp-server that testenv started.
func gstPID(t testing.TB, srv *testenv.GstRTSPServer) int {
	t.Helper()
	_, port, _ := strings.Cut(srv.Addr, ":")
	pids := testenv.ChildPIDs(os.Getpid(), testenv.GstPython, port)
	if len(pids) != 1 {
		t.Fatalf("want one gst-rtsp-server process on port %s, found %v", port, pids)
	}
	return pids[0]
}

// bytesSentFrom is what the kernel has sent from local port over
// established TCP connections (ss from iproute2: tcp_info bytes_sent).
func bytesSentFrom(t testing.TB, port string) int64 {
	t.Helper()
	out, err := exec.Command("ss", "-Htin", "state", "established", "( sport = :"+port+" )").Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	var sum int64
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "bytes_sent:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			sum += n
		}
	}
	return sum
}

// blackHole is a loopback address whose SYNs are dropped, as for a camera
// that is switched off or behind a dead link (no reply at all, not even a
// refusal), without leaving loopback: a listening socket that never
// accepts, with its accept queue filled. Linux drops a SYN to a listener
// whose accept queue is full.
func blackHole(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(sa.(*syscall.SockaddrInet4).Port)
	// Fill the queue: connections complete until it is full; then one
	// times out.
	for i := 0; ; i++ {
		if i == 16 {
			t.Fatalf("black hole %s: every connection still completes", addr)
		}
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			if !isTimeout(err) {
				t.Fatalf("black hole %s: %v", addr, err)
			}
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return addr
}

// Failures with a real third-party RTSP server (gst-rtsp-server), through
// the supervisor and its worker processes: the server's process stopped
// (SIGSTOP) before the handshake and in the middle of a sample, killed in
// the middle of a sample, plus a refused port and a black hole. Each is
// reported down with its reason within its timeout; the password (the
// servers want digest auth) shows in no result or log line; and once the
// supervisor stops, no worker process or goroutine is left.
//
// Not parallel, for goleak (and so as not to load the fps measurements of
// the other GStreamer test).
func TestGStreamerFailures(t *testing.T) {
	launch := gstLaunches(t)[gstStreams[0].path] // H.264 + PCMA, 10 fps, ~100 kB/s
	mount := func() testenv.GstMount {
		return testenv.GstMount{Path: "/cam", Launch: launch, User: "admin", Password: gstPassword}
	}
	stoppedEarly := testenv.StartGstRTSPServer(t, mount())
	stoppedLate := testenv.StartGstRTSPServer(t, mount())
	killed := testenv.StartGstRTSPServer(t, mount())
	hole := blackHole(t)
	refused := closedPort(t)

	// A stopped server is resumed before testenv stops it (cleanups run
	// last in, first out).
	sigcont := func(pid int) { t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) }) }
	earlyPID, latePID, killedPID := gstPID(t, stoppedEarly), gstPID(t, stoppedLate), gstPID(t, killed)
	sigcont(earlyPID)
	sigcont(latePID)
	if err := syscall.Kill(earlyPID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}

	before := goleak.IgnoreCurrent()
	set := Settings{Mode: ModeSample, Interval: time.Hour, Timeout: 2 * time.Second,
		SampleWindow: 4 * time.Second, MaxSampleWindow: 7 * time.Second, NoVideoTimeout: 2 * time.Second}
	res := newResults()
	var logs logBuffer
	// When each camera's first result reaches the hub: the bound on how
	// long a failure takes to be reported.
	var arrivedMu sync.Mutex
	arrived := map[string]time.Time{}
	sup, err := NewSupervisor(Config{Workers: 2, Logger: newLogger(&logs), Defaults: set.merged(testSettings), WorkerCommand: workerCommand()},
		func(r Result) {
			arrivedMu.Lock()
			if _, ok := arrived[r.Camera]; !ok {
				arrived[r.Camera] = time.Now()
			}
			arrivedMu.Unlock()
			res.add(r)
		})
	if err != nil {
		t.Fatal(err)
	}
	withAuth := func(srv *testenv.GstRTSPServer) string { return srv.URLWithAuth("/cam", "admin", gstPassword) }
	sup.SetTargets([]Target{
		{ID: "stopped-before-handshake", URL: withAuth(stoppedEarly)},
		{ID: "stopped-mid-sample", URL: withAuth(stoppedLate)},
		{ID: "killed-mid-sample", URL: withAuth(killed)},
		{ID: "black-hole", URL: "rtsp://" + hole + "/cam", Username: "admin", Password: gstPassword},
		{ID: "refused", URL: "rtsp://" + refused + "/cam", Username: "admin", Password: gstPassword},
	})
	stop := runSupervisor(t, sup)

	// Mid-sample: once the server has sent 100 kB (a second of video, far
	// past the handshake), stop one server and kill the other.
	var stoppedAt, killedAt time.Time
	_, latePort, _ := strings.Cut(stoppedLate.Addr, ":")
	_, killedPort, _ := strings.Cut(killed.Addr, ":")
	testenv.WaitFor(t, 15*time.Second, "video flowing from both servers", func() bool {
		if stoppedAt.IsZero() && bytesSentFrom(t, latePort) > 100_000 {
			stoppedAt = time.Now()
			if err := syscall.Kill(latePID, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
		}
		if killedAt.IsZero() && bytesSentFrom(t, killedPort) > 100_000 {
			killedAt = time.Now()
			if err := syscall.Kill(killedPID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
		return !stoppedAt.IsZero() && !killedAt.IsZero()
	})

	all := res.waitFor(t, 30*time.Second, "a result for every camera", func(rs []Result) bool {
		seen := map[string]bool{}
		for _, r := range rs {
			seen[r.Camera] = true
		}
		return len(seen) == 5
	})
	byCam := map[string]Result{}
	for _, r := range all {
		if _, ok := byCam[r.Camera]; !ok {
			byCam[r.Camera] = r
		}
	}
	slack := time.Second // a busy 2-core machine
	for _, c := range []struct {
		id, reason string
		from       time.Time     // zero: the probe's start
		within     time.Duration // from then to the result reaching the hub
	}{
		{"stopped-before-handshake", ReasonTimeout, time.Time{}, set.Timeout + slack},
		{"black-hole", ReasonTimeout, time.Time{}, set.Timeout + slack},
		{"refused", ReasonRefused, time.Time{}, slack},
		{"stopped-mid-sample", ReasonNoVideo, stoppedAt, set.NoVideoTimeout + slack},
		{"killed-mid-sample", ReasonNoVideo, killedAt, slack},
	} {
		r := byCam[c.id]
		from := c.from
		if from.IsZero() {
			from = r.At
		}
		arrivedMu.Lock()
		took := arrived[c.id].Sub(from)
		arrivedMu.Unlock()
		t.Logf("%-25s up=%v reason=%s detail=%q probe %v; result in the hub %v after the event", c.id, r.Up, r.Reason, r.Detail,
			r.Duration.Round(time.Millisecond), took.Round(time.Millisecond))
		if r.Up || r.Reason != c.reason {
			t.Errorf("%s: up=%v reason %q (%s), want %q", c.id, r.Up, r.Reason, r.Detail, c.reason)
		}
		if took > c.within {
			t.Errorf("%s: reported %v after the event, want within %v", c.id, took, c.within)
		}
		if r.URL != "" && strings.Contains(r.URL, "p%40ss") || strings.Contains(r.URL+r.Detail, "p@ss") {
			t.Errorf("%s: a result shows the password: %+v", c.id, r)
		}
	}
	if st, err := os.ReadFile("/proc/" + strconv.Itoa(latePID) + "/stat"); err != nil || !strings.Contains(string(st), ") T ") {
		t.Errorf("the server stopped mid-sample is not stopped any more: %s %v", st, err)
	}

	// The check below finds workers while they run.
	if pids := testenv.ChildPIDs(os.Getpid(), "probe-worker"); len(pids) < 2 {
		t.Errorf("found %d worker processes while the supervisor runs, want 2 or more: %v", len(pids), pids)
	}
	stop()
	if pids := testenv.ChildPIDs(os.Getpid(), "probe-worker"); len(pids) > 0 {
		t.Errorf("worker processes left after the supervisor stopped: %v", pids)
	}
	goleak.VerifyNone(t, before)
	checkNoPassword(t, logs.String(), gstPassword)
	if !strings.Contains(logs.String(), "supervisor stopped") {
		t.Errorf("no log line for the supervisor stopping")
	}
}
