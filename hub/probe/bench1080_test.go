package probe

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
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
// so this process's CPU is the probe's. Run it alone:
//
//	go test -run '^$' -bench Sample1080p -benchtime 1x ./hub/probe
//
// VILLAGEHUB_BENCH_SAMPLES sets the samples per round (default 6).
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

	for i := 0; i < b.N; i++ {
		var cpus []time.Duration
		var read time.Duration
		var last measurement
		for k := 0; k < samples; k++ {
			cpu0 := selfCPU()
			m := probeOnce(b, url, ModeSample, set)
			cpus = append(cpus, selfCPU()-cpu0)
			if !m.Up {
				b.Fatalf("sample %d: %s %s", k, m.Reason, m.Detail)
			}
			read += m.Duration
			last = m
		}
		var ffCPU []time.Duration
		for k := 0; k < 3; k++ {
			cmd := exec.Command(ffprobePath, "-rtsp_transport", "tcp", "-v", "error", "-show_streams",
				"-count_frames", "-read_intervals", "%+2", url)
			out, err := cmd.Output()
			if err != nil || !strings.Contains(string(out), "codec_name=h264") {
				b.Fatalf("ffprobe: %v\n%s", err, out)
			}
			ffCPU = append(ffCPU, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
		}
		med := median(cpus)
		ffMed := median(ffCPU)
		b.ReportMetric(float64(med.Microseconds())/1000, "ms-cpu/sample")
		b.ReportMetric(float64(ffMed.Microseconds())/1000, "ffprobe-ms-cpu")
		b.ReportMetric(ffMed.Seconds()/med.Seconds(), "ffprobe/sample")
		b.Logf("1080p H.264: %dx%d %.1f fps %.2f Mb/s keyint %d; probe CPU per sample %v (median of %d; all %v; %.1f s of video per sample); ffprobe CPU %v (median of 3; all %v); ratio %.0fx",
			last.Width, last.Height, last.FPS, last.BitrateBps/1e6, last.KeyframeInterval,
			med, samples, cpus, read.Seconds()/float64(samples), ffMed, ffCPU, ffMed.Seconds()/med.Seconds())
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, k int) bool { return s[i] < s[k] })
	return s[len(s)/2]
}

func envInt(name string) int {
	var n int
	_, _ = fmt.Sscan(os.Getenv(name), &n)
	return n
}
