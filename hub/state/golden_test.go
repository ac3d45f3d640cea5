package state

import (
	"encoding/hex"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"villagehub/hub/event"
	"villagehub/hub/ingest"
	"villagehub/hub/probe"
	"villagehub/hub/scan"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/store-format.golden from the current code")

// TestStoreFormatGolden: the bytes the state hands the store for cameras
// and boards (keys and records), after a fixed history of messages, probes,
// printed and gateway scans, detections and a config reload, are exactly
// those in testdata/store-format.golden, which was written by the code
// before the per-kind registry (kinds.go) replaced the camera and board
// maps. A changed byte means records written by one version would read
// differently in the other. The records read back into a second State
// encode to the same bytes again.
func TestStoreFormatGolden(t *testing.T) {
	st := &memStore{devs: map[string][]byte{}}
	now := t1
	reloaded := false
	newState := func() *State {
		cfg := Config{
			Queue: ingest.NewQueue(16), Store: st, Location: time.UTC,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Now:    func() time.Time { return now },
			Mono:   func() time.Duration { return now.Sub(t1) },
			Sites:  []Site{{ID: "s1", Name: "Site"}},
			Cameras: []CameraInfo{{ID: "gate", Site: "s1", Name: "Gate"},
				{ID: "yard", Site: "s1"}},
			Boards: []BoardInfo{{ID: "b1", Site: "s1", Name: "Board"}, {ID: "b2", Site: "s1"}},
		}
		if reloaded {
			cfg.Cameras = []CameraInfo{{ID: "gate", Site: "s1"}}
			cfg.Boards = []BoardInfo{{ID: "b1", Site: "s1"}, {ID: "b2", Site: "s1"}, {ID: "auto-b", Site: "s1"}}
		}
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := newState()
	commit := func() {
		s.collectDirty()
		if err := st.Commit(&s.batch); err != nil {
			t.Fatal(err)
		}
		s.batch.reset()
	}
	msg := func(sec int, topic, payload string) {
		now = t1.Add(time.Duration(sec) * time.Second)
		m := ingest.Message{Topic: topic, Payload: []byte(payload), QoS: 1, Received: now, PacketID: uint16(sec + 1), Session: "dev"}
		s.mu.Lock()
		s.applyMessage(&m)
		commit()
		s.mu.Unlock()
	}
	local := func(sec int, l *ingest.Local) {
		now = t1.Add(time.Duration(sec) * time.Second)
		s.mu.Lock()
		s.applyLocal(l)
		commit()
		s.mu.Unlock()
	}
	msg(1, "village/s1/camera/gate/status", "online")
	msg(2, "village/s1/camera/gate/motion", `{"active":true,"zone":"gate","score":0.9,"ts":"2026-11-27T08:00:02.5Z"}`)
	msg(5, "village/s1/camera/gate/motion", "OFF")
	msg(6, "village/s1/camera/auto-cam/motion", "ON")
	msg(7, "village/s1/qr/b1/status", "online")
	msg(8, "village/s1/qr/b1/scans", `{"total":5,"boot":"a1","ts":1795766408000}`)
	msg(9, "village/s1/qr/b1/scans", `{"total":9,"boot":"a1"}`)
	msg(10, "village/s1/qr/b1/scans", `{"total":2,"boot":"a2"}`)
	msg(11, "village/s1/qr/auto-b/scans", `{"total":3}`)
	msg(12, "village/s1/qr/b2/status", "offline")
	local(13, &ingest.Local{Probe: &probe.Result{Camera: "gate", Site: "s1", Mode: probe.ModeSample, Up: true, Codec: "h264",
		Width: 1280, Height: 720, FPS: 10, At: t1.Add(13 * time.Second), Duration: time.Second, Grade: "good"}})
	local(14, &ingest.Local{Probe: &probe.Result{Camera: "yard", Site: "s1", Mode: probe.ModeHandshake, Up: false, Reason: "timeout",
		At: t1.Add(14 * time.Second), Duration: 3 * time.Second}})
	local(15, &ingest.Local{Scan: &scan.Scan{Board: "b1", Site: "s1", At: t1.Add(15 * time.Second), Class: scan.ClassHuman, Unique: true}})
	local(16, &ingest.Local{Scan: &scan.Scan{Board: "b1", Site: "s1", At: t1.Add(16 * time.Second), Class: scan.ClassBot}})
	local(17, &ingest.Local{Scan: &scan.Scan{Board: "b2", Site: "s1", At: t1.Add(17 * time.Second), Class: scan.ClassRateLimited}})
	local(18, &ingest.Local{Scan: &scan.Scan{Board: "b2", Site: "s1", At: t1.Add(18 * time.Second), Class: scan.ClassHuman, ID: strings.Repeat("ab", 16)}})
	d := detection("ev1", 19, 0)
	local(19, &ingest.Local{Event: d})
	local(25, &ingest.Local{Event: detection("ev1", 19, 25)})
	// A reload: yard leaves the config (auto now), auto-b joins it.
	local(26, &ingest.Local{Call: func() {
		s.applyDevices(&deviceList{sites: []Site{{ID: "s1"}},
			cameras: []CameraInfo{{ID: "gate", Site: "s1"}},
			boards:  []BoardInfo{{ID: "b1", Site: "s1"}, {ID: "b2", Site: "s1"}, {ID: "auto-b", Site: "s1"}}})
	}})

	got := dumpDevices(st.devs)
	path := filepath.Join("testdata", "store-format.golden")
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("the store format changed:\n got:\n%s\nwant:\n%s", got, want)
	}

	// Read back by a restarted state, every record encodes to its bytes.
	reloaded = true
	s2 := newState()
	s2.mu.Lock()
	s2.markAllDirty()
	s2.collectDirty()
	again := map[string][]byte{}
	for _, r := range s2.batch.Devices {
		again[r.Key] = append([]byte(nil), r.Value...)
	}
	s2.mu.Unlock()
	for k, v := range st.devs {
		if strings.HasPrefix(k, inputKeyPrefix) {
			continue
		}
		if hex.EncodeToString(again[k]) != hex.EncodeToString(v) {
			t.Errorf("%s re-encoded after a restart:\n%x\nwant\n%x", k, again[k], v)
		}
	}
	if _, ok := event.KindByStoreKey('c'); !ok {
		t.Fatal("cameras lost their store key")
	}
}

func dumpDevices(devs map[string][]byte) string {
	keys := make([]string, 0, len(devs))
	for k := range devs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + " " + hex.EncodeToString(devs[k]) + "\n")
	}
	return b.String()
}

// markAllDirty marks every camera and board to be written.
func (s *State) markAllDirty() {
	s.cameras().markAllDirty()
	s.boards().markAllDirty()
}

func (t *devices[D]) markAllDirty() {
	for _, d := range t.m {
		t.dirty[d] = struct{}{}
	}
}
