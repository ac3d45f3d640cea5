package probe

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// clip1080p makes (once per machine, cached) a 4-second 1080p25 H.264
// clip at about 4.6 Mb/s, a keyframe every 2 s, several slices per frame
// (x264's zerolatency sliced threads), like a mid-range IP camera's main
// stream. Noise keeps the encoder from compressing the test pattern to
// nothing.
func clip1080p(tb testing.TB) string {
	tb.Helper()
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "villagehub-bench")
	path := filepath.Join(dir, "clip-1080p25-4600k-v1.h264")
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		return path
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	tmp := path + ".tmp"
	cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25", "-vf", "noise=alls=8:allf=t",
		"-frames:v", "100", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
		"-pix_fmt", "yuv420p", "-b:v", "4600k", "-maxrate", "4600k", "-bufsize", "4600k",
		"-x264-params", "keyint=50:min-keyint=50:scenecut=0:bframes=0",
		"-bsf:v", "filter_units=remove_types=6,h264_metadata=aud=insert", "-f", "h264", tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("making the 1080p clip with ffmpeg: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
	return path
}

// BenchmarkSample1080p measures what one sample of a 1080p25 H.264 camera
// at 4.6 Mb/s costs in CPU, against ffprobe reading the same stream in the
// same run. The camera is served by the simulator in a process of its own,
// so this process's CPU is the probe's. Besides CPU (getrusage) it reports
// context switches (getrusage, voluntary and not) and read system calls
// (/proc/self/io) per sample: wake-ups are most of a sample's cost. Run it
// alone:
//
//	go test -run '^$' -bench Sample1080p -benchtime 1x ./hub/probe
//
// VILLAGEHUB_BENCH_SAMPLES sets the samples per round (default 6). The
// median is reported; all samples are logged.
func BenchmarkSample1080p(b *testing.B) {
	clip := clip1080p(b)
	ffprobePath, err := exec.LookPath("ffprobe")
	if err != nil {
		b.Fatalf("ffprobe (Debian's ffmpeg) is needed for the comparison: %v", err)
	}
	sim := startSimChild(b, 1, "VILLAGEHUB_SIM_CLIP="+clip, "VILLAGEHUB_SIM_CLIP_FPS=25")
	defer sim.stop()
	url := "rtsp://" + sim.addr + "/cam0000"
	samples := 6
	if n := envInt("VILLAGEHUB_BENCH_SAMPLES"); n > 0 {
		samples = n
	}
	set := Settings{Timeout: 5 * time.Second, SampleWindow: 2 * time.Second, MaxSampleWindow: 6 * time.Second, NoVideoTimeout: 3 * time.Second}

	// As a worker process runs (GOGC in the environment wins, as it does
	// for the worker).
	gc := debug.SetGCPercent(100)
	TuneWorkerRuntime()
	tuned := debug.SetGCPercent(100)
	debug.SetGCPercent(tuned)
	defer debug.SetGCPercent(gc)
	b.Logf("runtime as in a worker: GOMAXPROCS %d, GOGC %d", runtime.GOMAXPROCS(0), tuned)

	for i := 0; i < b.N; i++ {
		// Unaligned: every sample joins wherever the camera's GOP is (the
		// hub's first sample of a camera). Aligned: each sample sends PLAY
		// just before the next keyframe, from the previous sample's phase
		// (every later sample; keyphase.go). Rounds interleave so both
		// meet the same load; ffprobe runs in three of them.
		var ph keyPhase
		var rounds [2]sampleRound
		var ffCPU []time.Duration
		var last measurement
		for k := 0; k < 2*samples; k++ {
			aligned := k%2 == 1
			var p *keyPhase
			if aligned {
				p = &ph
			}
			u0 := selfUsage(b)
			m := probeAligned(b, url, ModeSample, set, p)
			u1 := selfUsage(b)
			if !m.Up {
				b.Fatalf("sample %d: %s %s", k, m.Reason, m.Detail)
			}
			if !aligned {
				ph.observe(m) // the phase a first sample leaves for the next
			}
			r := &rounds[k%2]
			r.cpus = append(r.cpus, u1.cpu-u0.cpu)
			r.csws = append(r.csws, u1.csw-u0.csw)
			r.reads = append(r.reads, u1.reads-u0.reads)
			// The video read: from the first frame to the end of the sample.
			r.video += m.Duration - m.TTFF
			last = m
			if len(ffCPU) < 3 && k%max(2, 2*samples/3) == 0 {
				cmd := exec.Command(ffprobePath, "-rtsp_transport", "tcp", "-v", "error", "-show_streams",
					"-count_frames", "-read_intervals", "%+2", url)
				out, err := cmd.Output()
				if err != nil || !strings.Contains(string(out), "codec_name=h264") {
					b.Fatalf("ffprobe: %v\n%s", err, out)
				}
				ffCPU = append(ffCPU, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
			}
		}
		ffMed := median(ffCPU)
		b.Logf("1080p H.264: %dx%d %.2f fps %.2f Mb/s keyint %d", last.Width, last.Height, last.FPS, last.BitrateBps/1e6, last.KeyframeInterval)
		for a, name := range []string{"unaligned", "aligned"} {
			r := rounds[a]
			med := median(r.cpus)
			secs := r.video.Seconds() / float64(len(r.cpus))
			per2s := time.Duration(float64(med) * 2 / secs)
			suffix := ""
			if a == 0 {
				suffix = "-unaligned"
			}
			b.ReportMetric(float64(med.Microseconds())/1000, "ms-cpu/sample"+suffix)
			b.ReportMetric(secs, "s-video/sample"+suffix)
			b.ReportMetric(float64(per2s.Microseconds())/1000, "ms-cpu/2s-video"+suffix)
			b.ReportMetric(float64(medianInt(r.csws)), "ctxsw/sample"+suffix)
			b.ReportMetric(float64(medianInt(r.reads)), "reads/sample"+suffix)
			b.ReportMetric(ffMed.Seconds()/med.Seconds(), "ffprobe/sample"+suffix)
			b.Logf("%s samples (median of %d): CPU %v, %.2f s of video (%v per 2 s), %d context switches, %d read calls; %.0fx less than ffprobe",
				name, len(r.cpus), med.Round(10*time.Microsecond), secs, per2s.Round(10*time.Microsecond), medianInt(r.csws), medianInt(r.reads), ffMed.Seconds()/med.Seconds())
			b.Logf("  all CPU %v; switches %v; reads %v", r.cpus, r.csws, r.reads)
		}
		b.ReportMetric(float64(ffMed.Microseconds())/1000, "ffprobe-ms-cpu")
		b.Logf("ffprobe CPU %v (median of %d; all %v), reading 2 s", ffMed, len(ffCPU), ffCPU)
	}
}

// sampleRound collects one kind of sample's figures.
type sampleRound struct {
	cpus        []time.Duration
	csws, reads []int64
	video       time.Duration
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, k int) bool { return s[i] < s[k] })
	return s[len(s)/2]
}

func medianInt(ns []int64) int64 {
	s := append([]int64(nil), ns...)
	sort.Slice(s, func(i, k int) bool { return s[i] < s[k] })
	return s[len(s)/2]
}

type usage struct {
	cpu        time.Duration
	csw, reads int64 // context switches (voluntary and not), read system calls
}

// selfUsage is this process's CPU and context switches (getrusage) and
// its read system calls (/proc/self/io syscr, which counts every read(2),
// the sampler's raw ones included).
func selfUsage(tb testing.TB) usage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	u := usage{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), csw: ru.Nvcsw + ru.Nivcsw}
	io, err := os.ReadFile("/proc/self/io")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(io), "\n") {
		if v, ok := strings.CutPrefix(line, "syscr: "); ok {
			u.reads, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return u
}

func envInt(name string) int {
	var n int
	_, _ = fmt.Sscan(os.Getenv(name), &n)
	return n
}
