package web

import (
	"net"
	"testing"
	"time"
)

// TestSlowlorisCutOff: a client that sends its request headers a byte at a
// time is disconnected once the header deadline passes, while a normal
// request on another connection is served meanwhile.
func TestSlowlorisCutOff(t *testing.T) {
	srv := newTestServer(t, time.UTC, nil, nil)
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
