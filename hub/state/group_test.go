package state

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
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

// TestCommitGroupsUnderLoad: a batch that comes within the commit gap of
// the previous commit waits out the gap and takes what queued meanwhile
// into the same commit; a message after a quiet spell commits at once.
// The gap is measured on a fake monotonic clock, and the wait is fake.
func TestCommitGroupsUnderLoad(t *testing.T) {
	q := ingest.NewQueue(10000)
	st := &countingStore{gate: make(chan struct{})}
	var mono atomic.Int64 // ns
	var waits []time.Duration
	var during func()
	s, err := New(Config{Queue: q, Store: st, Location: time.UTC, BatchSize: 1000,
		Sites: []Site{{ID: "s1", Name: "Site"}}, Boards: []BoardInfo{{ID: "b1", Site: "s1", Name: "Board"}},
		Mono: func() time.Duration { return time.Duration(mono.Load()) },
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
	// The first message has no commit before it: no wait. While its commit
	// is held, 50 more queue; they come within the gap (the fake clock
	// stands still), wait once, the full gap, and 300 more arrive during
	// the wait.
	mono.Store(int64(time.Hour))
	push(1)
	during = func() { push(300) }
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	for q.Len() > 0 { // the first batch popped
		runtime.Gosched()
	}
	push(50)
	close(st.gate)
	waitDone(t, done, 1+50+300)
	st.mu.Lock()
	commits := st.commits
	st.mu.Unlock()
	if len(waits) != 1 || waits[0] != DefaultCommitGap {
		t.Fatalf("waits %v: want one of %v", waits, DefaultCommitGap)
	}
	if commits != 2 {
		t.Fatalf("%d commits, want 2 (the first message; the 50 with the 300 that came during their wait)", commits)
	}
	// A quiet spell, then one message: committed at once.
	during = nil
	mono.Add(int64(time.Second))
	push(1)
	waitDone(t, done, 1)
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(waits) != 1 || st.commits != 3 {
		t.Fatalf("a message after a quiet spell waited (%v) or was not committed alone (%d commits)", waits[1:], st.commits)
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
