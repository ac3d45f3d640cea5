package scan

import (
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
)

// TestServeParity: net/http's Serve (the hub over TLS, a connection that
// began with another path) and fasthttp's ServeFast (hub/fastlane) give
// every kind of visit the same answer and record the same scan.
func TestServeParity(t *testing.T) {
	cases := []struct {
		name, method, path, peer string
		hdr                      map[string]string
	}{
		{"phone behind the proxy", "GET", "market-07", "127.0.0.1:4000", map[string]string{"User-Agent": humanAgents["zalo-android"], "X-Forwarded-For": "203.0.113.7"}},
		{"same phone again", "GET", "market-07", "127.0.0.1:4000", map[string]string{"User-Agent": humanAgents["zalo-android"], "X-Forwarded-For": "203.0.113.7"}},
		{"spoofed chain", "GET", "market-07", "127.0.0.1:4000", map[string]string{"User-Agent": humanAgents["zalo-android"], "X-Forwarded-For": "1.2.3.4, 203.0.113.8"}},
		{"X-Real-IP", "GET", "gate", "127.0.0.1:4000", map[string]string{"User-Agent": humanAgents["zalo-android"], "X-Real-IP": "203.0.113.9"}},
		{"direct IPv6 phone", "GET", "gate", "[2001:db8:1:2::5]:4000", map[string]string{"User-Agent": humanAgents["zalo-android"]}},
		{"untrusted peer's XFF", "GET", "gate", "198.51.100.3:1", map[string]string{"User-Agent": humanAgents["zalo-android"], "X-Forwarded-For": "203.0.113.7"}},
		{"previewer", "GET", "market-07", "127.0.0.1:4000", map[string]string{"User-Agent": botAgents["facebookexternalhit"], "X-Forwarded-For": "203.0.113.7"}},
		{"no agent", "GET", "market-07", "127.0.0.1:4000", map[string]string{"X-Forwarded-For": "203.0.113.7"}},
		{"HEAD", "HEAD", "market-07", "127.0.0.1:4000", map[string]string{"User-Agent": humanAgents["zalo-android"]}},
		{"prefetch", "GET", "market-07", "127.0.0.1:4000", map[string]string{"User-Agent": humanAgents["zalo-android"], "Sec-Purpose": "prefetch;prerender"}},
		{"orphan", "GET", "market-99", "127.0.0.1:4000", map[string]string{"User-Agent": humanAgents["zalo-android"]}},
		{"orphan, not an id", "GET", "Market%20%3Cb%3E", "127.0.0.1:4000", map[string]string{"User-Agent": humanAgents["zalo-android"]}},
		{"board without a page", "GET", "no-page", "127.0.0.1:4000", map[string]string{"User-Agent": humanAgents["zalo-android"]}},
		{"rate limited", "GET", "gate", "127.0.0.1:4000", map[string]string{"User-Agent": humanAgents["zalo-android"], "X-Forwarded-For": "203.0.113.7"}},
		{"request id from the proxy", "GET", "gate", "127.0.0.1:4000", map[string]string{"User-Agent": humanAgents["zalo-android"], "X-Forwarded-For": "203.0.113.10", "X-Request-ID": "abc123", "X-Request-Start": "t=1795748460.123"}},
	}
	// Two handlers with the same secret and clock: the visit keys agree.
	mod := func(c *Config) {
		c.SaltSecret = []byte("0123456789abcdef0123456789abcdef")
		c.RateBurst = 2 // the third human visit of 203.0.113.7 is over it
		c.RequestIDHeader = "X-Request-ID"
	}
	slow := newHub(t, mod)
	fast := &hub{rec: &memRecorder{}}
	cfg := Config{PublicURL: "http://hub.example.vn", TrustedProxies: []string{"127.0.0.1"}, Now: slow.clock.Now}
	mod(&cfg)
	var err error
	if fast.h, err = NewHandler(cfg, slow.boards, fast.rec); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		req := httptest.NewRequest(c.method, "http://hub.example.vn/q/"+c.path, nil)
		req.RemoteAddr = c.peer
		for k, v := range c.hdr {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		mux := http.NewServeMux()
		slow.h.Register(mux)
		mux.ServeHTTP(rec, req)
		sres := rec.Result()
		sbody, _ := io.ReadAll(sres.Body)

		ctx := fastRequest(t, c.peer, c.method+" /q/"+c.path, c.hdr)
		ctx.Response.Header.SetNoDefaultContentType(true) // as hub/fastlane's server sets it
		if !fast.h.ServeFastBoard(ctx, string(ctx.Path()[len("/q/"):])) {
			t.Fatalf("%s: ServeFastBoard declined", c.name)
		}
		if sres.StatusCode != ctx.Response.StatusCode() {
			t.Errorf("%s: status net/http %d, fasthttp %d", c.name, sres.StatusCode, ctx.Response.StatusCode())
		}
		for _, k := range []string{"Location", "Cache-Control", "Content-Type", "Content-Security-Policy", "X-Content-Type-Options"} {
			if a, b := sres.Header.Get(k), string(ctx.Response.Header.Peek(k)); a != b {
				t.Errorf("%s: %s net/http %q, fasthttp %q", c.name, k, a, b)
			}
		}
		if fbody := ctx.Response.Body(); c.method != "HEAD" && string(sbody) != string(fbody) {
			t.Errorf("%s: body net/http %q, fasthttp %q", c.name, sbody, fbody)
		}
	}
	slow.rec.mu.Lock()
	fast.rec.mu.Lock()
	defer slow.rec.mu.Unlock()
	defer fast.rec.mu.Unlock()
	if len(slow.rec.scans) != len(cases) || !reflect.DeepEqual(slow.rec.scans, fast.rec.scans) {
		t.Fatalf("recorded scans differ:\nnet/http %+v\nfasthttp %+v", slow.rec.scans, fast.rec.scans)
	}
	want := []Class{ClassHuman, ClassHuman, ClassHuman, ClassHuman, ClassHuman, ClassHuman, ClassBot, ClassBot, ClassBot, ClassBot,
		ClassOrphan, ClassOrphan, ClassHuman, ClassRateLimited, ClassHuman}
	for i, s := range slow.rec.scans {
		if s.Class != want[i] {
			t.Errorf("%s: class %s, want %s", cases[i].name, s.Class, want[i])
		}
	}
	if s := slow.rec.scans[1]; s.Unique {
		t.Error("the same phone again was unique")
	}
	if s := slow.rec.scans[len(cases)-1]; s.request == (clientKey{}) || s.At.UnixMilli() != 1795748460123 {
		t.Errorf("the proxy's request id and start were not used: %+v", s)
	}
}
