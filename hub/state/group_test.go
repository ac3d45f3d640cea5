package state

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"villagehub/hub/ingest"
	"villagehub/hub/scan"
)

// countingStore records the size of each commit (messages acknowledged
// with it are counted by their Done channels).
type countingStore struct {
	nopStore
	mu      sync.Mutex
	commits int
	gate    chan struct{} // the first commit waits for it
}

func (c *countingStore) Commit(*Batch) error {
	c.mu.Lock()
	c.commits++
	first := c.commits == 1
	c.mu.Unlock()
	if first {
		<-c.gate
	}
	return nil
}

// TestCommitGroupsUnderLoad: a busy batch (BusyBatch messages or more)
// waits out the commit gap and takes what queued meanwhile into the same
// commit; a quiet batch commits at once, without waiting.
func TestCommitGroupsUnderLoad(t *testing.T) {
	q := ingest.NewQueue(10000)
	st := &countingStore{gate: make(chan struct{})}
	var waits []time.Duration
	var during func()
	// A gap of an hour with a fake wait: the second batch is always within
	// it, however slow this machine is.
	s, err := New(Config{Queue: q, Store: st, Location: time.UTC, BatchSize: 1000, CommitGap: time.Hour,
		Sites: []Site{{ID: "s1", Name: "Site"}}, Boards: []BoardInfo{{ID: "b1", Site: "s1", Name: "Board"}},
		Wait: func(_ context.Context, d time.Duration) {
			waits = append(waits, d)
			if during != nil {
				during()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 2000)
	push := func(n int) {
		for range n {
			sc := scan.Scan{Board: "b1", Site: "s1", At: time.Now(), Class: scan.ClassHuman}
			if !q.TryPush(ingest.Message{Local: &ingest.Local{Scan: &sc}, Received: time.Now(), Done: done}) {
				panic("queue full")
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first busy batch has no commit before it: no wait. While its
	// commit is held, a second busy batch queues; it comes within the gap
	// of the first, waits, and 300 more arrive during the wait.
	push(BusyBatch)
	during = func() { push(300) }
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	for q.Len() > 0 { // the first batch popped
		runtime.Gosched()
	}
	push(BusyBatch)
	close(st.gate)
	waitDone(t, done, 2*BusyBatch+300)
	st.mu.Lock()
	commits := st.commits
	st.mu.Unlock()
	if len(waits) != 1 || waits[0] <= 59*time.Minute || waits[0] > time.Hour {
		t.Fatalf("waits %v: want one, of the gap less the time since the first commit", waits)
	}
	if commits != 2 {
		t.Fatalf("%d commits, want 2 (the first batch; the second with what came during its wait)", commits)
	}
	// Quiet: one message commits without a wait.
	n := len(waits)
	during = nil
	push(1)
	waitDone(t, done, 1)
	if len(waits) != n || st.commits != 3 {
		t.Fatalf("a single message waited (%v) or was not committed alone (%d commits)", waits[n:], st.commits)
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
}

func waitDone(t *testing.T, done chan struct{}, n int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for i := range n {
		select {
		case <-done:
		case <-deadline:
			t.Fatalf("messages not committed: %d of %d", i, n)
		}
	}
}
