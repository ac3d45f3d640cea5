package probe

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"villagehub/devices/rtspcam"
)

// runSimChild serves VILLAGEHUB_SIM_CAMERAS simulated cameras from a
// process of its own, so a benchmark can tell the probe's CPU and memory
// from the simulator's. It prints its address, then serves until stdin
// closes.
//
// With VILLAGEHUB_SIM_FLAP set, the whole server flaps (listening 300 ms,
// gone 100 ms) and camera cam0000 also flaps its path (60 ms on, 150 ms off), for leak
// tests.
func runSimChild() int {
	n, _ := strconv.Atoi(os.Getenv("VILLAGEHUB_SIM_CAMERAS"))
	flap := os.Getenv("VILLAGEHUB_SIM_FLAP") != ""
	cfg := rtspcam.Config{}
	if path := os.Getenv("VILLAGEHUB_SIM_CLIP"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		cfg.Clip = b
		cfg.ClipFPS, _ = strconv.ParseFloat(os.Getenv("VILLAGEHUB_SIM_CLIP_FPS"), 64)
	}
	serve := func(addr string) (*rtspcam.Server, error) {
		cfg.Addr = addr
		s, err := rtspcam.New(cfg)
		if err != nil {
			return nil, err
		}
		for i := 0; i < n; i++ {
			c, err := s.AddCamera(fmt.Sprintf("cam%04d", i), rtspcam.CameraOptions{})
			if err != nil {
				s.Close()
				return nil, err
			}
			if flap && i == 0 {
				c.Flap(60*time.Millisecond, 150*time.Millisecond)
			}
		}
		return s, nil
	}
	s, err := serve("127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	addr := s.Addr()
	fmt.Println(addr)
	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()
	if !flap {
		<-stdinClosed
		s.Close()
		return 0
	}
	for {
		select {
		case <-stdinClosed:
			s.Close()
			return 0
		case <-time.After(300 * time.Millisecond):
		}
		s.Close()
		select {
		case <-stdinClosed:
			return 0
		case <-time.After(100 * time.Millisecond):
		}
		if s, err = serve(addr); err != nil {
			fmt.Fprintln(os.Stderr, "re-listening:", err)
			return 1
		}
	}
}

type simChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
}

func startSimChild(b testing.TB, cameras int, env ...string) *simChild {
	b.Helper()
	cmd := exec.Command(os.Args[0], "rtspcam-sim")
	cmd.Env = append(append(os.Environ(), fmt.Sprintf("VILLAGEHUB_SIM_CAMERAS=%d", cameras)), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting simulator process: %v", err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("simulator process gave no address: %v", err)
	}
	return &simChild{cmd: cmd, stdin: stdin, addr: strings.TrimSpace(line)}
}

func (s *simChild) stop() {
	s.stdin.Close()
	_ = s.cmd.Wait()
}

// usage is the simulator process's CPU time and peak memory (after stop).
func (s *simChild) usage() (time.Duration, int64) {
	ps := s.cmd.ProcessState
	if ps == nil {
		return 0, 0
	}
	return ps.UserTime() + ps.SystemTime(), maxRSSKiB(ps)
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func selfMaxRSSKiB() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return int64(ru.Maxrss)
}

// cycleFigures is what one probe cycle over all cameras cost.
type cycleFigures struct {
	wall, supervisorCPU, workerCPU time.Duration
	workerPeakKiB                  int64
	results                        []Result
}

// probeCycle probes every camera once in mode through a fresh supervisor
// and its workers, and measures it. The workers' CPU comes from their
// rusage when the supervisor stops them.
func probeCycle(b *testing.B, addr string, cameras int, mode Mode) cycleFigures {
	var mu sync.Mutex
	var f cycleFigures
	all := make(chan struct{})
	sup, err := NewSupervisor(Config{
		WorkerCommand: workerCommand(),
		Workers:       2,
		Concurrency:   64,
		RecycleAfter:  100000,
		Defaults:      Settings{Mode: mode, Interval: time.Hour},
		Logger:        newLogger(&logBuffer{}),
	}, func(r Result) {
		mu.Lock()
		defer mu.Unlock()
		f.results = append(f.results, r)
		if len(f.results) == cameras {
			close(all)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	targets := make([]Target, cameras)
	for k := range targets {
		targets[k] = Target{ID: fmt.Sprintf("cam%04d", k), Site: "bench", URL: fmt.Sprintf("rtsp://%s/cam%04d", addr, k)}
	}
	cpu0 := selfCPU()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	t0 := time.Now()
	sup.SetTargets(targets)
	<-all
	f.wall = time.Since(t0)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	f.supervisorCPU = selfCPU() - cpu0
	f.workerCPU = time.Duration(sup.metrics.workerCPUNanos.Load())
	f.workerPeakKiB = sup.metrics.workerMaxRSS.Load()
	for _, r := range f.results {
		if !r.Up || r.Mode != mode {
			b.Fatalf("%s cycle: %s %s up=%v %s %s", mode, r.Camera, r.Mode, r.Up, r.Reason, r.Detail)
		}
	}
	return f
}

// BenchmarkProbe500Cameras probes 500 simulated cameras (served by a
// separate process) through the supervisor and its worker processes, one
// cycle of samples and one of handshakes, then probes the same cameras
// with ffprobe, and reports CPU per 100 probes, peak memory and wall time
// per cycle. Run it alone on a quiet machine:
//
//	go test -run '^$' -bench Probe500 -benchtime 1x ./hub/probe
//
// VILLAGEHUB_BENCH_CAMERAS overrides the 500 (for a quick smoke run).
func BenchmarkProbe500Cameras(b *testing.B) {
	cameras := 500
	if n, err := strconv.Atoi(os.Getenv("VILLAGEHUB_BENCH_CAMERAS")); err == nil && n > 0 {
		cameras = n
	}
	ffprobePath, err := exec.LookPath("ffprobe")
	if err != nil {
		b.Fatalf("ffprobe (Debian's ffmpeg) is needed for the comparison: %v", err)
	}
	sim := startSimChild(b, cameras)
	defer sim.stop()

	for i := 0; i < b.N; i++ {
		s := probeCycle(b, sim.addr, cameras, ModeSample)
		h := probeCycle(b, sim.addr, cameras, ModeHandshake)
		ffCPU, ffWall, ffOK := runFFprobes(b, ffprobePath, sim.addr, cameras, 16)
		if ffOK != cameras {
			b.Fatalf("ffprobe succeeded on %d of %d cameras", ffOK, cameras)
		}

		per100 := func(d time.Duration) float64 { return d.Seconds() / float64(cameras) * 100 }
		sampleCPU := s.supervisorCPU + s.workerCPU
		hsCPU := h.supervisorCPU + h.workerCPU
		b.ReportMetric(per100(sampleCPU), "cpu-s/100samples")
		b.ReportMetric(per100(s.supervisorCPU), "supervisor-cpu-s/100samples")
		b.ReportMetric(per100(s.workerCPU), "worker-cpu-s/100samples")
		b.ReportMetric(per100(hsCPU), "cpu-s/100handshakes")
		b.ReportMetric(per100(ffCPU), "ffprobe-cpu-s/100probes")
		b.ReportMetric(ffCPU.Seconds()/sampleCPU.Seconds(), "ffprobe/sample-cpu-ratio")
		b.ReportMetric(s.wall.Seconds(), "s/sample-cycle")
		b.ReportMetric(h.wall.Seconds(), "s/handshake-cycle")
		b.ReportMetric(ffWall.Seconds(), "s/ffprobe-cycle")
		b.ReportMetric(float64(selfMaxRSSKiB())/1024, "supervisor-peak-MiB")
		b.ReportMetric(float64(max(s.workerPeakKiB, h.workerPeakKiB))/1024, "worker-peak-MiB")
		// 1,000 cameras, handshake every 10 s and sample every 60 s: per
		// minute each camera gets 1 sample and 5 handshakes.
		coresFor1000 := 1000 * (sampleCPU.Seconds() + 5*hsCPU.Seconds()) / float64(cameras) / 60
		b.ReportMetric(coresFor1000, "cores-for-1000cams")

		fps := 0.0
		for _, r := range s.results {
			fps += r.FPS
		}
		b.Logf("samples: %d cameras in %s, supervisor CPU %s, workers CPU %s; handshakes: %s, supervisor CPU %s, workers CPU %s",
			cameras, s.wall.Round(time.Millisecond), s.supervisorCPU.Round(time.Millisecond), s.workerCPU.Round(time.Millisecond),
			h.wall.Round(time.Millisecond), h.supervisorCPU.Round(time.Millisecond), h.workerCPU.Round(time.Millisecond))
		b.Logf("ffprobe: %d cameras in %s, CPU %s; mean sampled fps %.2f", cameras, ffWall.Round(time.Millisecond), ffCPU.Round(time.Millisecond), fps/float64(len(s.results)))
	}
	b.StopTimer()
	sim.stop()
	simCPU, simRSS := sim.usage()
	b.Logf("simulator process (%d cameras, all cycles): CPU %s, peak RSS %.1f MiB", cameras, simCPU.Round(time.Millisecond), float64(simRSS)/1024)
}

// runFFprobes runs the cron-style ffprobe check on every camera and
// returns the CPU the ffprobe processes used (from their rusage).
func runFFprobes(b *testing.B, ffprobe, addr string, cameras, parallel int) (cpu, wall time.Duration, ok int) {
	var mu sync.Mutex
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	t0 := time.Now()
	for k := 0; k < cameras; k++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(k int) {
			defer wg.Done()
			defer func() { <-sem }()
			cmd := exec.Command(ffprobe, "-rtsp_transport", "tcp", "-v", "error", "-show_streams",
				"-count_frames", "-read_intervals", "%+2", fmt.Sprintf("rtsp://%s/cam%04d", addr, k))
			out, err := cmd.Output()
			mu.Lock()
			defer mu.Unlock()
			if ps := cmd.ProcessState; ps != nil {
				cpu += ps.UserTime() + ps.SystemTime()
			}
			if err == nil && strings.Contains(string(out), "codec_name=h264") {
				ok++
			}
		}(k)
	}
	wg.Wait()
	return cpu, time.Since(t0), ok
}
