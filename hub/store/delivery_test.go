package store

import (
	"context"
	"testing"
	"time"

	"villagehub/hub/ingest"
	"villagehub/hub/state"
)

// TestMotionRedeliveryAfterRestart: a plain ON and OFF committed but never
// acknowledged come again marked DUP after a restart: not a second motion
// event. A new message reusing a packet ID without DUP is applied.
func TestMotionRedeliveryAfterRestart(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	on := ingest.Message{Topic: "village/s1/camera/gate/motion", Payload: []byte("ON"), QoS: 1, Session: "cam", PacketID: 7}
	off := ingest.Message{Topic: "village/s1/camera/gate/motion", Payload: []byte("OFF"), QoS: 1, Session: "cam", PacketID: 8}
	send := func(r *rig, ms ...ingest.Message) {
		t.Helper()
		done := make(chan struct{}, len(ms))
		for _, m := range ms {
			m.Received, m.Done = at, done
			if err := r.queue.Push(context.Background(), m, true); err != nil {
				t.Fatal(err)
			}
		}
		for range ms {
			<-done
		}
	}
	events := func(r *rig) uint64 {
		for _, c := range r.state.Cameras() {
			if c.ID == "gate" {
				return c.MotionEvents
			}
		}
		return 0
	}
	r := start(t, dir)
	send(r, on, off)
	r.stop()
	r = start(t, dir)
	on.Dup, off.Dup = true, true
	send(r, on, off)
	if n := events(r); n != 1 {
		t.Fatalf("after a redelivery the camera has %d motion events, want 1", n)
	}
	// The sender got its acknowledgements and reuses the IDs: new events.
	on.Dup, off.Dup = false, false
	send(r, on, off)
	if n := events(r); n != 2 {
		t.Fatalf("a new ON reusing a packet ID: %d motion events, want 2", n)
	}
	r.stop()
	_ = state.MaxDeliveries
}
