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

// QueuedSample is one sample in a queue directory on disk.
type QueuedSample struct {
	Labels map[string]string
	TS     int64 // ms
	Value  float64
}

// ReadQueue lists the samples queued in dir (by a hub that is not
// running), oldest request first.
func ReadQueue(dir string) ([]QueuedSample, error) {
	q, err := openQueue(dir, 1<<40, func(int, string) {})
	if err != nil {
		return nil, err
	}
	var out []QueuedSample
	for _, m := range q.peek(1 << 30) {
		ss, err := q.read(m)
		if err != nil {
			return nil, err
		}
		for _, s := range ss {
			ls := map[string]string{}
			for _, l := range s.Labels {
				ls[l.Name] = l.Value
			}
			for _, x := range s.Samples {
				out = append(out, QueuedSample{Labels: ls, TS: x.TS, Value: x.Value})
			}
		}
	}
	return out, nil
}
