package state

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"villagehub/hub/ingest"
)

// Run applies queued messages until ctx ends. For each batch it applies
// every message, commits the batch to the store, and only then
// acknowledges the messages: a message a device was told was delivered is
// on disk. If the store fails, Run keeps the batch and retries (with
// backoff) without acknowledging anything, so the queue fills and the
// brokers hold the rest: back-pressure instead of loss.
func (s *State) Run(ctx context.Context) error {
	buf := make([]ingest.Message, 0, s.cfg.BatchSize)
	for {
		msgs, err := s.cfg.Queue.Pop(ctx, buf, s.cfg.BatchSize)
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return err
		}
		s.mu.Lock()
		for i := range msgs {
			s.applyMessage(&msgs[i])
		}
		s.collectDirty()
		s.mu.Unlock()

		if err := s.commit(ctx); err != nil {
			return nil // ctx ended while the store was failing: nothing acked
		}
		now := s.now()
		for i := range msgs {
			m := &msgs[i]
			if m.Ack != nil {
				m.Ack()
			}
			if m.Done != nil {
				select {
				case m.Done <- struct{}{}:
				default: // buffered; a producer that gave up left it full
				}
			}
			if s.cfg.ObserveLatency != nil {
				s.cfg.ObserveLatency(now.Sub(m.Received).Seconds())
			}
		}
		clear(msgs) // drop payload references
		buf = msgs[:0]
	}
}

// collectDirty encodes the persisted state of every device changed in this
// batch into s.batch.Devices. Called with s.mu held.
func (s *State) collectDirty() {
	for c := range s.dirtyCams {
		v, err := json.Marshal(&c.cameraPersisted)
		if err != nil { // cannot happen for these plain types
			panic(err)
		}
		s.batch.Devices = append(s.batch.Devices, DeviceRecord{Key: cameraKey(c.Site, c.ID), Value: v})
	}
	clear(s.dirtyCams)
	for b := range s.dirtyBrds {
		v, err := json.Marshal(&b.boardPersisted)
		if err != nil {
			panic(err)
		}
		s.batch.Devices = append(s.batch.Devices, DeviceRecord{Key: boardKey(b.Site, b.ID), Value: v})
	}
	clear(s.dirtyBrds)
}

// commit writes s.batch, retrying until it succeeds or ctx ends.
func (s *State) commit(ctx context.Context) error {
	if s.batch.Empty() {
		return nil
	}
	backoff := 50 * time.Millisecond
	for {
		err := s.cfg.Store.Commit(&s.batch)
		s.mu.Lock()
		if err == nil {
			s.commits++
			s.lastCommit = s.now()
			s.storeErr = nil
			s.mu.Unlock()
			s.batch.reset()
			return nil
		}
		s.commitErrs++
		first := s.storeErr == nil
		s.storeErr = err
		s.mu.Unlock()
		if first {
			s.log.Error("store commit failed; holding messages unacknowledged and retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
