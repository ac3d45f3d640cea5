package testenv

import (
	"context"
	"strings"
	"sync"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Toxiproxy is Shopify's fault-injecting TCP proxy run in this process
// (no API server): each Link stands for one village's WAN link.
type Toxiproxy struct {
	server *toxiproxy.ApiServer
}

// StartToxiproxy makes an in-process Toxiproxy; its links stop with the
// test.
func StartToxiproxy(t testing.TB) *Toxiproxy {
	t.Helper()
	return &Toxiproxy{server: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())}
}

// Link is one proxied TCP path: clients connect to Addr, Toxiproxy
// forwards to the upstream.
type Link struct {
	Addr  string
	proxy *toxiproxy.Proxy
	mu    sync.Mutex
	cut   bool
}

// Link starts a proxy on a free loopback port in front of upstream
// ("host:port").
func (x *Toxiproxy) Link(t testing.TB, name, upstream string) *Link {
	t.Helper()
	p := toxiproxy.NewProxy(x.server, name, FreeAddr(t), upstream)
	if err := x.server.Collection.Add(p, true); err != nil {
		t.Fatalf("testenv: toxiproxy link %s: %v", name, err)
	}
	t.Cleanup(func() { _ = x.server.Collection.Remove(name) })
	return &Link{Addr: p.Listen, proxy: p}
}

// Cut makes the link a black hole in both directions, as a dropped 4G
// link looks: connections are accepted (or stay open) but no byte passes
// until Restore. Clients see timeouts, not refusals.
func (l *Link) Cut(t testing.TB) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		return
	}
	for _, stream := range []string{"upstream", "downstream"} {
		js := `{"name":"cut_` + stream + `","type":"timeout","stream":"` + stream + `","toxicity":1,"attributes":{"timeout":0}}`
		if _, err := l.proxy.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			t.Fatalf("testenv: cutting link %s: %v", l.proxy.Name, err)
		}
	}
	l.cut = true
}

// Restore lets bytes through again. What was sent during the cut is lost;
// clients time out and reconnect, as after a real outage.
func (l *Link) Restore(t testing.TB) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.cut {
		return
	}
	for _, stream := range []string{"upstream", "downstream"} {
		if err := l.proxy.Toxics.RemoveToxic(context.Background(), "cut_"+stream); err != nil {
			t.Fatalf("testenv: restoring link %s: %v", l.proxy.Name, err)
		}
	}
	l.cut = false
}
