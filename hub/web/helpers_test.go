package web

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"villagehub/hub/ingest"
	"villagehub/hub/state"
	"villagehub/hub/store"
)

// newTestServer is a Server on a loopback port over a fresh store, anyone
// a viewer, logs discarded; mod adjusts the state's and the server's
// config before they are built. The store closes when the test ends.
func newTestServer(tb testing.TB, loc *time.Location, modState func(*state.Config), mod func(*Config)) *Server {
	tb.Helper()
	st, err := store.Open(store.Config{Dir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	sc := state.Config{Queue: ingest.NewQueue(16), Store: st, Location: loc}
	if modState != nil {
		modState(&sc)
	}
	s, err := state.New(sc)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := Config{Addr: "127.0.0.1:0", State: s, Events: st, QR: st, Location: loc,
		Access: AccessConfig{Anonymous: RoleViewer}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return srv
}
