// Package statetest runs a real hub/state pipeline in a test, without a
// store on disk, for packages that read the state (metrics, the dashboard).
package statetest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"villagehub/hub/event"
	"villagehub/hub/ingest"
	"villagehub/hub/state"
)

// NopStore keeps nothing: LoadDevices finds no device, Commit accepts all.
type NopStore struct{}

// LoadDevices finds nothing.
func (NopStore) LoadDevices(func(string, []byte) error) error { return nil }

// Commit accepts the batch and keeps none of it.
func (NopStore) Commit(*state.Batch) error { return nil }

// State is a running state pipeline.
type State struct {
	*state.State
	t   testing.TB
	q   *ingest.Queue
	ctx context.Context
}

// Start runs state.New(cfg) until the test ends. cfg's Queue is made here;
// a nil Store is NopStore, a nil Logger discards, a nil Location is UTC.
func Start(t testing.TB, cfg state.Config) *State {
	t.Helper()
	cfg.Queue = ingest.NewQueue(64)
	if cfg.Store == nil {
		cfg.Store = NopStore{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	s, err := state.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &State{State: s, t: t, q: cfg.Queue, ctx: ctx}
}

// Send hands the state one MQTT message (QoS 1) and waits until it is
// committed and acknowledged.
func (s *State) Send(topic, payload string) {
	s.t.Helper()
	ack := make(chan struct{}, 1)
	if err := s.q.Push(s.ctx, ingest.Message{Topic: topic, Payload: []byte(payload), QoS: 1, Received: time.Now(), Done: ack}, true); err != nil {
		s.t.Fatal(err)
	}
	<-ack
}

// Submit hands the state one event from a non-MQTT input.
func (s *State) Submit(ev event.Event) {
	s.t.Helper()
	if err := s.SubmitEvent(s.ctx, ev); err != nil {
		s.t.Fatal(err)
	}
}
