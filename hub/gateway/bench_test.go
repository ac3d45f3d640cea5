package gateway

import (
	"fmt"
	"github.com/valyala/fasthttp"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"villagehub/hub/testenv"
)

type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }

// BenchmarkGatewayScan is one counted human scan through a gateway's
// handler, by net/http and by fasthttp (the lane's /q/): classification,
// a journal line (fsync off here: the group commit is measured by
// scripts/bench-gateway.sh), metrics, the 302. Phones come from 100,000
// addresses, as in the script.
func BenchmarkGatewayScan(b *testing.B) {
	dir := b.TempDir()
	salt := filepath.Join(dir, "salt")
	os.WriteFile(salt, []byte("0123456789abcdef0123456789abcdef"), 0o600)
	f := false
	cfg := &Config{Listen: "127.0.0.1:0", PublicURL: "https://qr.example.org", DataDir: dir, TopicPrefix: "village",
		Instance: "bench", MaxBoards: 1000, JournalSync: &f, Broker: Broker{URL: "tcp://" + testenv.FreeAddr(b), ClientID: "b"},
		QR: QR{TrustedProxies: []string{"127.0.0.1"}, RatePerSecond: 1e9, SaltFile: salt}}
	g, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer g.ln.Close()
	defer g.journal.close()
	if err := g.targets.set("cho-ban", "sap-007", TargetMessage{Target: "https://example.vn/sap-7", Site: "cho-ban", Place: Place{Province: "thanh-hoa"}}); err != nil {
		b.Fatal(err)
	}
	const phones = 100000
	const agent = "Mozilla/5.0 (Linux; Android 13; SM-A536E) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/125.0 Mobile Safari/537.36 Zalo android/12100621 ZaloTheme/light ZaloLanguage/vi"
	phone := func(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255) }
	b.Run("net-http", func(b *testing.B) {
		reqs := make([]*http.Request, phones)
		for i := range reqs {
			r, _ := http.NewRequest("GET", "http://qr.example.org/q/cho-ban/sap-007", nil)
			r.RemoteAddr = "127.0.0.1:40000"
			r.Header.Set("User-Agent", agent)
			r.Header.Set("X-Forwarded-For", phone(i))
			reqs[i] = r
		}
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			clear(w.h)
			g.srv.Handler.ServeHTTP(w, reqs[i%phones])
			i++
		}
		if w.code != http.StatusFound {
			b.Fatalf("status %d", w.code)
		}
	})
	b.Run("fasthttp", func(b *testing.B) {
		ctxs := make([]*fasthttp.RequestCtx, phones)
		remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
		for i := range ctxs {
			var req fasthttp.Request
			req.SetRequestURI("/q/cho-ban/sap-007")
			req.Header.SetHost("qr.example.org")
			req.Header.SetUserAgent(agent)
			req.Header.Set("X-Forwarded-For", phone(i))
			ctxs[i] = &fasthttp.RequestCtx{}
			ctxs[i].Init(&req, remote, nil)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			ctx := ctxs[i%phones]
			ctx.Response.Reset()
			g.serveFast(ctx, "cho-ban/sap-007")
			if ctx.Response.StatusCode() != http.StatusFound {
				b.Fatalf("status %d", ctx.Response.StatusCode())
			}
			i++
		}
	})
	// fasthttp-parallel: the same scans from every CPU at once (-cpu 1,2):
	// what the handler's shared state (locks, caches, the journal's tail,
	// counters) costs when two connections are served at the same time,
	// as under wrk. Without contention ns/op halves from -cpu 1 to 2.
	b.Run("fasthttp-parallel", func(b *testing.B) {
		ips := make([][]byte, phones)
		for i := range ips {
			ips[i] = []byte(phone(i))
		}
		remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
		var next atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var req fasthttp.Request
			req.SetRequestURI("/q/cho-ban/sap-007")
			req.Header.SetHost("qr.example.org")
			req.Header.SetUserAgent(agent)
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, remote, nil)
			i := int(next.Add(phones / 7))
			for pb.Next() {
				ctx.Request.Header.SetBytesV("X-Forwarded-For", ips[i%phones])
				ctx.Response.Reset()
				g.serveFast(&ctx, "cho-ban/sap-007")
				if ctx.Response.StatusCode() != http.StatusFound {
					b.Errorf("status %d", ctx.Response.StatusCode())
					return
				}
				i++
			}
		})
	})
}
