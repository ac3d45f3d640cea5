package web

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"villagehub/hub/fastlane"
)

// TestFastRoutes: on a plain listener the fast routes answer through
// fasthttp with the server's security headers, the rest through net/http;
// Run returns when ctx ends, and with an error, not a hang, when the
// listener is closed under it.
func TestFastRoutes(t *testing.T) {
	newSrv := func() *Server {
		return newTestServer(t, time.UTC, nil, func(c *Config) {
			c.Fast = []fastlane.Route{{Prefix: "/q/", Serve: func(ctx *fasthttp.RequestCtx, rest string) bool {
				ctx.Response.Header.Set("Location", "https://example.vn/"+rest)
				ctx.SetStatusCode(http.StatusFound)
				return true
			}}}
		})
	}
	srv := newSrv()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noFollow.Get(srv.URL() + "/q/gate")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 302 || res.Header.Get("Location") != "https://example.vn/gate" ||
		res.Header.Get("Referrer-Policy") != "no-referrer" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("fast route: %d %v", res.StatusCode, res.Header)
	}
	res, err = http.Get(srv.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("healthz: %d", res.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}

	srv = newSrv()
	go func() { done <- srv.Run(context.Background()) }()
	srv.ln.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run returned nil after its listener was closed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run hung after its listener was closed")
	}
}
