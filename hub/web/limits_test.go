package web

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"villagehub/hub/ingest"
	"villagehub/hub/state"
	"villagehub/hub/store"
)

// TestSlowlorisCutOff: a client that sends its request headers a byte at a
// time is disconnected once the header deadline passes, while a normal
// request on another connection is served meanwhile.
func TestSlowlorisCutOff(t *testing.T) {
	st, err := store.Open(store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := state.New(state.Config{Queue: ingest.NewQueue(16), Store: st, Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Addr: "127.0.0.1:0", State: s, Events: st, QR: st, Location: time.UTC,
		Access: AccessConfig{Anonymous: RoleViewer}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv.srv.ReadHeaderTimeout = time.Second // the default is 5 s; same mechanism
	go srv.srv.Serve(srv.ln)
	defer srv.srv.Close()

	c, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	closed := false
	for _, b := range []byte("GET /healthz HTTP/1.1\r\nHost: hub\r\nX-Slow: " + string(make([]byte, 40))) {
		if _, err := c.Write([]byte{b}); err != nil {
			closed = true
			break
		}
		// The pause is the behaviour under test (a client trickling its
		// headers), not synchronisation: it stays a real sleep.
		time.Sleep(60 * time.Millisecond)
		if time.Since(start) > 3*time.Second {
			break
		}
	}
	if !closed {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		if err == nil && n > 0 && string(buf[:12]) != "HTTP/1.1 408" {
			t.Fatalf("slow client got %q", buf[:n])
		}
	}
	if el := time.Since(start); el > 4*time.Second {
		t.Fatalf("slow client kept the connection %v", el)
	}
	// The server is fine.
	c2, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write([]byte("GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n"))
	buf := make([]byte, 64)
	c2.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, _ := c2.Read(buf); n < 12 || string(buf[:12]) != "HTTP/1.1 200" {
		t.Fatalf("normal request after the slow one: %q", buf[:n])
	}
}
