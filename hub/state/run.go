package state

import (
	"context"
	"errors"
	"os"
	"strconv"
	"time"

	"villagehub/hub/ingest"
)

// DefaultCommitGap is how far apart commits are at least (Config.CommitGap).
const DefaultCommitGap = 10 * time.Millisecond

// Run applies queued messages until ctx ends. For each batch it applies
// every message, commits the batch to the store, and only then
// acknowledges the messages: a message a device was told was delivered is
// on disk. If the store fails, Run keeps the batch and retries (with
// backoff) without acknowledging anything, so the queue fills and the
// brokers hold the rest: back-pressure instead of loss.
func (s *State) Run(ctx context.Context) error {
	buf := make([]ingest.Message, 0, s.cfg.BatchSize)
	lastCommit := time.Duration(-1 << 62) // long before the first
	for {
		msgs, err := s.cfg.Queue.Pop(ctx, buf, s.cfg.BatchSize)
		if err == nil && len(msgs) < s.cfg.BatchSize && s.cfg.CommitGap > 0 {
			// Within the gap of the previous commit: let the group grow
			// until the gap has passed.
			if wait := s.cfg.CommitGap - (s.mono() - lastCommit); wait > 0 {
				s.cfg.Wait(ctx, wait)
				if s.cfg.Queue.Len() > 0 && ctx.Err() == nil {
					var more []ingest.Message
					more, err = s.cfg.Queue.Pop(ctx, msgs[len(msgs):], s.cfg.BatchSize-len(msgs))
					msgs = append(msgs, more...) // more already sits after msgs: a copy in place
				}
			}
		}
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return err
		}
		lastCommit = s.mono()
		s.mu.Lock()
		rc := s.clk.receipts()
		for i := range msgs {
			if l := msgs[i].Local; l != nil {
				s.applyLocal(l)
				continue
			}
			s.applyReceived(&msgs[i], rc)
		}
		s.collectDirty()
		s.mu.Unlock()

		if err := s.commit(ctx); err != nil {
			return nil // ctx ended while the store was failing: nothing acked
		}
		s.failpoint()
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
			if s.cfg.ObserveLatency != nil && m.Local == nil {
				s.cfg.ObserveLatency(now.Sub(m.Received).Seconds())
			}
		}
		select {
		case s.changed <- struct{}{}:
		default:
		}
		clear(msgs) // drop payload references
		buf = msgs[:0]
	}
}

// collectDirty encodes the persisted state of every device changed in this
// batch into s.batch.Devices. Called with s.mu held.
func (s *State) collectDirty() {
	// All records of a batch share one buffer, reused from batch to batch.
	buf := s.batch.arena[:0]
	for _, t := range s.tables {
		if t != nil {
			buf, s.batch.Devices = t.collect(buf, s.batch.Devices)
		}
	}
	// Records written before the buffer last grew point into its older
	// array, which stays valid until they are dropped.
	s.batch.arena = buf
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

// FailpointEnv names the environment variable of a test failpoint: set to
// n, the process kills itself with SIGKILL right after its n-th store
// commit, before acknowledging that batch: the moment at which a
// redelivered message must not be counted twice (hub/app's exactly-once
// test). Nothing else reads it.
const FailpointEnv = "VILLAGEHUB_FAILPOINT_KILL_AFTER_COMMIT"

func (s *State) failpoint() {
	if s.killAfter <= 0 {
		return
	}
	if s.killAfter--; s.killAfter == 0 {
		s.log.Warn("failpoint: killing the process after a commit, before the acknowledgements", "env", FailpointEnv)
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			_ = p.Kill()
			select {} // the signal is on its way
		}
	}
}

func failpointFromEnv() int {
	n, _ := strconv.Atoi(os.Getenv(FailpointEnv))
	return n
}
