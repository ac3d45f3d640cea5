package state_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"villagehub/hub/event"
	"villagehub/hub/ingest"
	"villagehub/hub/state"
	"villagehub/hub/store"
)

// hub is a state running on the real store (bbolt in a temp dir), that
// can be stopped and started again on the same directory.
type hub struct {
	t     *testing.T
	dir   string
	q     *ingest.Queue
	s     *state.State
	st    *store.Store
	stop  func()
	clock time.Time
}

func startHub(t *testing.T, dir string, boards []state.BoardInfo, cameras []state.CameraInfo) *hub {
	t.Helper()
	st, err := store.Open(store.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	h := &hub{t: t, dir: dir, q: ingest.NewQueue(64), st: st, clock: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)}
	h.s, err = state.New(state.Config{Queue: h.q, Store: st, Location: time.UTC,
		Sites: []state.Site{{ID: "s1"}}, Boards: boards, Cameras: cameras,
		Now:    func() time.Time { return h.clock },
		Mono:   func() time.Duration { return 0 },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.s.Run(ctx); close(done) }()
	h.stop = func() { cancel(); <-done; _ = st.Close() }
	t.Cleanup(func() {
		if h.stop != nil {
			h.stop()
		}
	})
	return h
}

func (h *hub) restart(boards []state.BoardInfo, cameras []state.CameraInfo) *hub {
	h.stop()
	h.stop = nil
	return startHub(h.t, h.dir, boards, cameras)
}

func (h *hub) send(topic, payload string) {
	h.t.Helper()
	done := make(chan struct{}, 1)
	if err := h.q.Push(context.Background(), ingest.Message{Topic: topic, Payload: []byte(payload), QoS: 1, Received: h.clock, Done: done}, true); err != nil {
		h.t.Fatal(err)
	}
	<-done
}

func (h *hub) rejected(k event.MsgKind) uint64 {
	return h.s.Counters().Rejected[k][event.RejectedDevice]
}

func hasBoard(s *state.State, id string) bool {
	_, ok := s.Board("s1", id)
	return ok
}

func hasCamera(s *state.State, id string) bool {
	for _, c := range s.Cameras() {
		if c.ID == id {
			return true
		}
	}
	return false
}

// TestForgetSurvivesRestart: an administrator rejects an auto-registered
// board and camera; they leave the state, their messages are rejected
// with rejected_device (also after a restart on the real store), a
// configured device cannot be forgotten, an unknown one is unknown, and
// adding the board to the config lifts its rejection (durably) with no
// history from before.
func TestForgetSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfgBoards := []state.BoardInfo{{ID: "market-07", Site: "s1"}}
	h := startHub(t, dir, cfgBoards, nil)
	h.send("village/s1/qr/market-7/scans", `{"total":5,"boot":"a"}`)
	h.send("village/s1/camera/stranger/motion", "ON")
	h.send("village/s1/qr/market-07/status", "online")
	if !hasBoard(h.s, "market-7") || !hasCamera(h.s, "stranger") {
		t.Fatal("the devices did not register")
	}

	for _, c := range []struct {
		kind, id string
		want     error
	}{
		{"board", "market-07", state.ErrConfigured},
		{"board", "nothing", state.ErrUnknownDevice},
		{"speaker", "market-7", state.ErrUnknownDevice},
		{"camera", "market-7", state.ErrUnknownDevice},
	} {
		if err := h.s.Forget(c.kind, "s1", c.id); !errors.Is(err, c.want) {
			t.Errorf("Forget(%s %s) = %v, want %v", c.kind, c.id, err, c.want)
		}
	}
	if err := h.s.Forget("board", "s1", "market-7"); err != nil {
		t.Fatal(err)
	}
	if err := h.s.Forget("camera", "s1", "stranger"); err != nil {
		t.Fatal(err)
	}
	if err := h.s.Forget("board", "s1", "market-7"); !errors.Is(err, state.ErrUnknownDevice) {
		t.Errorf("forgetting twice: %v", err)
	}
	if hasBoard(h.s, "market-7") || hasCamera(h.s, "stranger") {
		t.Fatal("a forgotten device is still listed")
	}
	if c := h.s.Counters(); c.AutoBoards != 0 || c.AutoCams != 0 || c.Boards != 1 {
		t.Fatalf("counts after forgetting: %+v", c)
	}
	h.send("village/s1/qr/market-7/scans", `{"total":6,"boot":"a"}`)
	h.send("village/s1/camera/stranger/motion", "OFF")
	if n, m := h.rejected(event.KindQRScans), h.rejected(event.KindMotion); n != 1 || m != 1 {
		t.Fatalf("rejected_device: qr_scans %d, motion %d; want 1 and 1", n, m)
	}
	if hasBoard(h.s, "market-7") {
		t.Fatal("a rejected board registered again")
	}

	// A restart on the same store: still forgotten and refused.
	h = h.restart(cfgBoards, nil)
	if hasBoard(h.s, "market-7") || hasCamera(h.s, "stranger") {
		t.Fatal("a forgotten device came back after a restart")
	}
	h.send("village/s1/qr/market-7/status", "online")
	h.send("village/s1/camera/stranger/status", "online")
	if n, m := h.rejected(event.KindBoardStatus), h.rejected(event.KindCameraStatus); n != 1 || m != 1 {
		t.Fatalf("after a restart, rejected_device: board_status %d, camera_status %d", n, m)
	}
	if c := h.s.Counters(); c.AutoBoards != 0 || c.AutoCams != 0 {
		t.Fatalf("after a restart: %+v", c)
	}

	// Added to the config: accepted again, from nothing; durable.
	cfgBoards = append(cfgBoards, state.BoardInfo{ID: "market-7", Site: "s1"})
	if err := h.s.SetDevices(context.Background(), []state.Site{{ID: "s1"}}, nil, cfgBoards); err != nil {
		t.Fatal(err)
	}
	h.send("village/s1/qr/market-7/scans", `{"total":2,"boot":"b"}`)
	if b, ok := h.s.Board("s1", "market-7"); !ok || !b.Configured || b.ScansTotal != 2 {
		t.Fatalf("the board added to the config: %+v %v", b, ok)
	}
	// Out of the config again after a restart: an ordinary
	// self-registered board, no longer rejected.
	h = h.restart(cfgBoards[:1], nil)
	h.send("village/s1/qr/market-7/scans", `{"total":3,"boot":"b"}`)
	if b, ok := h.s.Board("s1", "market-7"); !ok || b.Configured || b.ScansTotal != 3 {
		t.Fatalf("after the rejection was lifted and the board left the config: %+v %v", b, ok)
	}
	// The camera stays rejected.
	h.send("village/s1/camera/stranger/motion", "ON")
	if m := h.rejected(event.KindMotion); m != 1 {
		t.Fatalf("the camera's rejection: %d", m)
	}
}

// TestForgetLiftedByConfigAtStart: a rejected board that is in the config
// when the hub starts is accepted, and stays so.
func TestForgetLiftedByConfigAtStart(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t, dir, nil, nil)
	h.send("village/s1/qr/b9/scans", `{"total":4}`)
	if err := h.s.Forget("board", "s1", "b9"); err != nil {
		t.Fatal(err)
	}
	h = h.restart([]state.BoardInfo{{ID: "b9", Site: "s1"}}, nil)
	h.send("village/s1/qr/b9/scans", `{"total":5}`)
	b, ok := h.s.Board("s1", "b9")
	if !ok || !b.Configured || b.ScansTotal != 5 || h.rejected(event.KindQRScans) != 0 {
		t.Fatalf("a rejected board in the config at start: %+v %v, rejected %d", b, ok, h.rejected(event.KindQRScans))
	}
	h = h.restart(nil, nil)
	h.send("village/s1/qr/b9/scans", `{"total":6}`)
	if b, ok := h.s.Board("s1", "b9"); !ok || h.rejected(event.KindQRScans) != 0 || b.ScansTotal != 6 {
		t.Fatalf("the lifted rejection did not last: %+v %v", b, ok)
	}
}
