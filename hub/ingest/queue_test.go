package ingest

import (
	"context"
	"testing"
	"time"
)

func TestQueueOrderAndBackPressure(t *testing.T) {
	q := NewQueue(2)
	ctx := context.Background()
	for i := range 2 {
		if err := q.Push(ctx, Message{QoS: byte(i)}, true); err != nil {
			t.Fatal(err)
		}
	}
	// Full: a waiting producer blocks until there is room...
	pushed := make(chan struct{})
	go func() {
		_ = q.Push(ctx, Message{Topic: "waited"}, true)
		close(pushed)
	}()
	select {
	case <-pushed:
		t.Fatal("Push with wait did not wait on a full queue")
	case <-time.After(50 * time.Millisecond):
	}
	// ...while a QoS 1 message from paho goes past the capacity.
	if err := q.Push(ctx, Message{Topic: "over"}, false); err != nil {
		t.Fatal(err)
	}
	if w, o := q.Stats(); w != 1 || o != 1 {
		t.Fatalf("stats = %d waits, %d overflows; want 1, 1", w, o)
	}
	got, err := q.Pop(ctx, nil, 10)
	if err != nil || len(got) != 3 || got[0].QoS != 0 || got[1].QoS != 1 || got[2].Topic != "over" {
		t.Fatalf("Pop = %+v, %v", got, err)
	}
	<-pushed
	got, _ = q.Pop(ctx, got, 10)
	if len(got) != 1 || got[0].Topic != "waited" {
		t.Fatalf("second Pop = %+v", got)
	}
	// A waiting producer gives up when its context ends.
	q2 := NewQueue(1)
	_ = q2.Push(ctx, Message{}, true)
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := q2.Push(cctx, Message{}, true); err == nil {
		t.Fatal("Push on a full queue returned nil after its context ended")
	}
	if q2.Len() != 1 {
		t.Fatalf("Len = %d after a cancelled push", q2.Len())
	}
}
