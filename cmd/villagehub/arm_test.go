package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"villagehub/hub/testenv"
)

// TestArm64DemoUnderQemu builds the linux/arm64 binary a Raspberry Pi 4/5
// runs and starts its demo under qemu user emulation: the hub must answer
// /healthz, count scans the simulated boards publish, and probe the
// simulated cameras' RTSP streams through probe workers, which it starts
// by re-executing itself (so they are arm64 processes too).
func TestArm64DemoUnderQemu(t *testing.T) {
	start := time.Now()
	bin := filepath.Join(t.TempDir(), "villagehub-linux-arm64")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building for linux/arm64: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	machine := f.Machine
	f.Close()
	if machine != elf.EM_AARCH64 {
		t.Fatalf("built %v, want EM_AARCH64", machine)
	}
	testenv.EnableQemu(t, "arm64")
	t.Logf("built linux/arm64 in %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()

	httpAddr, brokerAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	p := testenv.StartProcess(t, bin, nil, "--demo", "--http-addr", httpAddr, "--broker-addr", brokerAddr,
		"--data-dir", t.TempDir(), "--log-level", "warn")
	base := "http://" + httpAddr
	// Emulation is 5-20x slower than native, and the machine is shared.
	testenv.WaitHTTP(t, base+"/healthz", 2*time.Minute, p)
	t.Logf("arm64 hub answered /healthz %v after start", time.Since(start).Round(time.Millisecond))
	testenv.WaitFor(t, 3*time.Minute, "a scan counted and a camera probed up by the arm64 hub", func() bool {
		if p.Exited() {
			t.Fatalf("arm64 hub exited:\n%s", p.Output())
		}
		m, err := testenv.TryScrape(base)
		if err != nil {
			return false
		}
		scans, _ := m.Value("villagehub_qr_scans_total")
		up, _ := m.Value("villagehub_camera_up", "camera=gate")
		_, sampled := m.Value("villagehub_camera_stream_fps", "camera=gate")
		return scans > 0 && up > 0 && sampled
	})
	t.Logf("arm64 hub counted a scan and probed a camera up %v after start", time.Since(start).Round(time.Millisecond))
	m := testenv.Scrape(t, base)
	if v, _ := m.Value("villagehub_camera_stream_fps", "camera=gate"); v < 5 || v > 15 {
		t.Errorf("gate camera fps under emulation = %v, want about 10", v)
	}
	if err := p.Stop(30 * time.Second); err != nil {
		t.Errorf("arm64 hub did not stop cleanly: %v\n%s", err, p.Output())
	}
}
