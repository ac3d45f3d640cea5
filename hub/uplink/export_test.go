package uplink

import (
	"context"
	"sync"
)

// StartSenders runs the senders without Run's gather ticker, for tests
// that gather themselves on a fake clock. drain lets the senders send
// what is queued (the deadline no longer holds it back) and returns once
// they stop: the queue is empty or a push failed.
func (u *Uplink) StartSenders() (drain func()) {
	ctx, cancel := context.WithCancel(context.Background())
	draining := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range u.remotes {
		wg.Go(func() { s.run(ctx, draining) })
	}
	return func() {
		close(draining)
		wg.Wait()
		cancel()
	}
}
