package app_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"villagehub/devices/sim"
	"villagehub/hub/state"
	"villagehub/hub/testenv"
)

// faultResult logs one row of the fault table: reports sent and scans
// stored, lost and duplicated, per the devices' own account.
func faultResult(t *testing.T, name string, st sim.Stats, got map[sim.Device]int64) {
	t.Helper()
	var want, lost, dup int64
	for d, n := range st.ExpectedScans {
		want += n
		switch g := got[d]; {
		case g < n:
			lost += n - g
		case g > n:
			dup += g - n
		}
	}
	t.Logf("FAULT %-28s reports sent %6d  scans expected %7d  stored %7d  lost %d  duplicated %d",
		name, st.Published, want, want-lost+dup, lost, dup)
	if lost != 0 || dup != 0 {
		t.Errorf("%s: %d scans lost, %d duplicated", name, lost, dup)
	}
}

// waitCounts waits until the hub's counts match the devices' (or, if
// some are lost or doubled, until everything sent has been applied) and
// returns them.
func waitCounts(t *testing.T, h *hubProcess, st sim.Stats) map[sim.Device]int64 {
	t.Helper()
	h.settle()
	return h.boards()
}

// TestFaultBrokerRestart: Mosquitto is restarted twice while devices
// publish QoS 1 reports through it to the hub.
func TestFaultBrokerRestart(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	h := newHubProcess(t, mq.URL())
	h.start()
	fleet, err := sim.NewFleet(sim.Config{Broker: mq.URL(), Boards: sim.Devices("board", 30, "s1"),
		Rate: 1500, QoS: 1, RebootProb: 0.01, RepeatProb: 0.05, Seed: 21})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fleet.Run(ctx) }()
	ready := func() bool {
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + h.http + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	for range 2 {
		waitPublished(t, fleet, 1500, "mid-stream")
		mq.Stop()
		testenv.WaitFor(t, 30*time.Second, "the hub to notice the broker is gone", func() bool { return !ready() })
		mq.Start()
		testenv.WaitFor(t, 60*time.Second, "the hub back on the broker", ready)
	}
	waitPublished(t, fleet, 3000, "after the restarts")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := fleet.Stats()
	if st.Errors > 0 {
		t.Fatalf("%d publishes failed", st.Errors)
	}
	faultResult(t, "broker restart x2", st, waitCounts(t, h, st))
	if t.Failed() {
		t.Logf("mosquitto log:\n%s\nhub log:\n%s", mq.Log(), h.p.Output())
	}
}

// TestFaultDiskFull: the data directory is a small tmpfs that fills up.
// The hub stops acknowledging and says so on /readyz; devices' messages
// wait in Mosquitto; once space is freed, everything is counted exactly.
func TestFaultDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a tmpfs for the data directory and must run as root (make test in CI does)")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mounting a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	h := newHubProcess(t, mq.URL())
	cfg, _ := os.ReadFile(h.cfgPath)
	os.WriteFile(h.cfgPath, []byte(strings.Replace(string(cfg), "data_dir: "+filepath.Join(filepath.Dir(h.cfgPath), "data"), "data_dir: "+mnt, 1)), 0o644)
	h.start()
	// Leave ~300 KB free.
	var fs syscall.Statfs_t
	syscall.Statfs(mnt, &fs)
	filler := filepath.Join(mnt, "filler")
	free := int64(fs.Bavail) * int64(fs.Bsize)
	if err := os.WriteFile(filler, make([]byte, free-300<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	// Motion events make the store grow (each is kept in the event log);
	// the boards' counts are what the test checks.
	fleet, err := sim.NewFleet(sim.Config{Broker: mq.URL(), Boards: sim.Devices("board", 50, "s1"),
		Cameras: sim.Devices("cam", 50, "s1"), Rate: 2000, QoS: 1, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fleet.Run(ctx) }()
	testenv.WaitFor(t, 60*time.Second, "the hub to report the full disk", func() bool {
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + h.http + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == 503
	})
	t.Logf("disk full after %d reports", fleet.Stats().Published)
	waitPublished(t, fleet, 2000, "disk full: Mosquitto queues")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	os.Remove(filler)
	st := fleet.Stats()
	faultResult(t, "disk full", st, waitCounts(t, h, st))
}

// TestFaultClockJump: a board's clock jumps back an hour and then ahead by
// most of a day while it reports; counts follow the boot and total, not
// the clock, and history keeps the reports in the hours they claim.
func TestFaultClockJump(t *testing.T) {
	h := newHubProcess(t, "")
	h.start()
	pub := testenv.MQTT(t, "tcp://"+h.broker, "jumpy")
	now := time.Now()
	offsets := []time.Duration{0, time.Minute, -time.Hour, -59 * time.Minute, 23 * time.Hour, 23*time.Hour + time.Minute, 2 * time.Minute}
	for i, off := range offsets {
		testenv.Publish(t, pub, "village/s1/qr/jumpy/scans", 1, false,
			fmt.Sprintf(`{"total":%d,"boot":"j","ts":%d}`, (i+1)*10, now.Add(off).UnixMilli()))
	}
	st := sim.Stats{Published: uint64(len(offsets)), ExpectedScans: map[sim.Device]int64{{Site: "s1", ID: "jumpy"}: int64(len(offsets) * 10)}}
	got := waitCounts(t, h, st)
	faultResult(t, "device clock jump", st, got)
	var series struct{ Points []struct{ Total uint64 } }
	getJSON(t, "http://"+h.http+"/api/v1/qr-boards/jumpy/scans?step=hour&from="+now.Add(-2*time.Hour).Format(time.RFC3339)+"&to="+now.Add(25*time.Hour).Format(time.RFC3339), &series)
	var sum uint64
	for _, p := range series.Points {
		sum += p.Total
	}
	if sum != uint64(len(offsets)*10) {
		t.Errorf("hourly history sums to %d, want %d", sum, len(offsets)*10)
	}
	var b state.BoardView
	getJSON(t, "http://"+h.http+"/api/v1/qr-boards/jumpy", &b)
	if b.ScansTotal != uint64(len(offsets)*10) {
		t.Errorf("board total %d", b.ScansTotal)
	}
}
