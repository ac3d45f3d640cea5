package scan

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// Two handlers that share a salt secret (two gateway instances) give the
// same phone on the same board the same visit key; another phone, another
// board or another secret gives another key; bots get none.
func TestSharedSaltGivesSameVisitKey(t *testing.T) {
	secret := bytes.Repeat([]byte("s"), 32)
	a := newHub(t, func(c *Config) { c.SaltSecret = secret })
	b := newHub(t, func(c *Config) { c.SaltSecret = secret })
	other := newHub(t, func(c *Config) { c.SaltSecret = bytes.Repeat([]byte("o"), 32) })
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, x := range []*hub{a, b, other} {
		x.scan(t, noFollow, "GET", "market-07", "203.0.113.10", humanAgents["zalo-android"], nil)
		x.scan(t, noFollow, "GET", "market-07", "203.0.113.11", humanAgents["zalo-android"], nil)
		x.scan(t, noFollow, "GET", "gate", "203.0.113.10", humanAgents["zalo-android"], nil)
		x.scan(t, noFollow, "GET", "market-07", "203.0.113.10", botAgents["facebookexternalhit"], nil)
	}
	key := func(x *hub, i int) [16]byte {
		t.Helper()
		s := x.rec.all()[i]
		k, ok := s.VisitKey()
		if !ok && s.Class == ClassHuman {
			t.Fatalf("human scan %d has no visit key", i)
		}
		return k
	}
	if key(a, 0) != key(b, 0) || key(a, 2) != key(b, 2) {
		t.Error("instances sharing the secret disagree on a phone's visit key")
	}
	if key(a, 0) == key(a, 1) || key(a, 0) == key(a, 2) || key(a, 0) == key(other, 0) {
		t.Error("visit keys of different phones, boards or secrets coincide")
	}
	if _, ok := a.rec.all()[3].VisitKey(); ok {
		t.Error("a bot visit carries a visit key")
	}
	if _, err := NewHandler(Config{PublicURL: "http://h", SaltSecret: []byte("short")}, a.boards, a.rec); err == nil {
		t.Error("a salt secret under 32 bytes was accepted")
	}
}

// fastRequest is a request as fasthttp hands it to ServeFast: from peer
// (ip:port), with the request line (method and path) and headers (empty
// values left out).
func fastRequest(t testing.TB, peer, line string, headers map[string]string) *fasthttp.RequestCtx {
	t.Helper()
	var raw strings.Builder
	raw.WriteString(line + " HTTP/1.1\r\nHost: hub.example.vn\r\n")
	for k, v := range headers {
		if v != "" {
			raw.WriteString(k + ": " + v + "\r\n")
		}
	}
	raw.WriteString("\r\n")
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(strings.NewReader(raw.String()))); err != nil {
		t.Fatal(err)
	}
	addr, err := net.ResolveTCPAddr("tcp", peer)
	if err != nil {
		t.Fatal(err)
	}
	ctx := new(fasthttp.RequestCtx)
	ctx.Init(&req, addr, nil)
	return ctx
}
