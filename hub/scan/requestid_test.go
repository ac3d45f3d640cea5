package scan

import (
	"fmt"
	"testing"
	"time"
)

// The load balancer's request id and start time (Config.RequestIDHeader):
// the same request seen at two handlers gives the same key and time;
// another request another key; no header, an untrusted sender or a start
// time far from the clock falls back to no key and the handler's clock.
func TestRequestIDFromTrustedProxy(t *testing.T) {
	withID := func(c *Config) { c.RequestIDHeader = "X-Request-ID" }
	a, b := newHub(t, withID), newHub(t, withID)
	untrusted := newHub(t, func(c *Config) { withID(c); c.TrustedProxies = []string{"10.0.0.1"} })
	off := newHub(t, nil)
	ua := humanAgents["zalo-android"]
	now := a.clock.Now()
	start := func(d time.Duration) string {
		at := now.Add(d)
		return fmt.Sprintf("t=%d.%03d", at.Unix(), at.Nanosecond()/1e6)
	}
	hdr := func(id string, d time.Duration) map[string]string {
		return map[string]string{"X-Request-ID": id, "X-Request-Start": start(d)}
	}
	for _, x := range []*hub{a, b, untrusted, off} {
		x.scan(t, noFollow, "GET", "market-07", "203.0.113.10", ua, hdr("7f3c9a", -1500*time.Millisecond))
		x.scan(t, noFollow, "GET", "market-07", "203.0.113.10", ua, hdr("8e4d0b", -time.Hour)) // a proxy with a wrong clock
		x.scan(t, noFollow, "GET", "market-07", "203.0.113.10", ua, nil)
	}
	last := func(x *hub) []Scan {
		x.rec.mu.Lock()
		defer x.rec.mu.Unlock()
		return append([]Scan(nil), x.rec.scans...)
	}
	sa, sb := last(a), last(b)
	ka, ok := sa[0].RequestKey()
	if kb, _ := sb[0].RequestKey(); !ok || ka != kb {
		t.Fatalf("the same request id gave keys %x (ok %v) and %x", ka, ok, kb)
	}
	if want := now.Add(-1500 * time.Millisecond); !sa[0].At.Equal(want) || !sb[0].At.Equal(want) {
		t.Fatalf("scan times %v and %v, want the proxy's start %v", sa[0].At, sb[0].At, want)
	}
	if k1, ok := sa[1].RequestKey(); !ok || k1 == ka {
		t.Fatalf("another request id gave key %x (ok %v), the first %x", k1, ok, ka)
	}
	if !sa[1].At.Equal(now) {
		t.Fatalf("a start an hour off was believed: %v, want the clock's %v", sa[1].At, now)
	}
	if _, ok := sa[2].RequestKey(); ok {
		t.Fatal("a request without an id got a request key")
	}
	for name, x := range map[string]*hub{"untrusted sender": untrusted, "no request_id_header": off} {
		for _, s := range last(x) {
			if _, ok := s.RequestKey(); ok || !s.At.Equal(now) {
				t.Fatalf("%s: scan has a request key (%v) or the proxy's time %v", name, ok, s.At)
			}
		}
	}
	if _, err := NewHandler(Config{PublicURL: "http://hub.example.vn", RequestIDHeader: "X Request"}, a.boards, a.rec); err == nil {
		t.Fatal("a header name with a space was accepted")
	}
}
