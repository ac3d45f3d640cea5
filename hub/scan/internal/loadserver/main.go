// Command loadserver serves /q/ with counting on, for measuring redirects per
// second with a load tool (wrk) over loopback. It listens on a loopback
// address only, stops by itself after -duration, and prints how every request
// was counted, so the figures can be checked against what wrk sent.
//
//	go run ./hub/scan/internal/loadserver -addr 127.0.0.1:18080 -duration 40s &
//	PHONES=5000 wrk -t2 -c64 -d15s --latency -s hub/scan/internal/loadserver/scan.lua http://127.0.0.1:18080/q/market-07
//
// scan.lua sends each request as one of $PHONES phones behind a trusted proxy
// (an X-Forwarded-For header; no traffic goes to those addresses).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"villagehub/hub/scan"
)

type boards struct{}

func (boards) Board(id string) (scan.Board, bool) {
	if id != "market-07" {
		return scan.Board{}, false
	}
	return scan.Board{ID: id, Site: "tan-ngu-2", Name: "Chợ Bản, sạp 7", TargetURL: "https://example.vn/cho-ban/sap-7"}, true
}

// counter stands in for the state pipeline's hand-off: one atomic add per
// scan, split the way reports need it.
type counter struct{ human, unique, bot, orphan, limited atomic.Int64 }

func (c *counter) RecordScan(s scan.Scan) {
	switch s.Class {
	case scan.ClassHuman:
		c.human.Add(1)
		if s.Unique {
			c.unique.Add(1)
		}
	case scan.ClassBot:
		c.bot.Add(1)
	case scan.ClassOrphan:
		c.orphan.Add(1)
	case scan.ClassRateLimited:
		c.limited.Add(1)
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "loopback address to listen on")
	duration := flag.Duration("duration", time.Minute, "stop after this long")
	ratePerSec := flag.Float64("rate", 0, "per-client rate limit in scans/s (0 = the package default)")
	burst := flag.Int("burst", 0, "per-client burst (0 = the package default)")
	bare := flag.Bool("bare", false, "answer /q/ with a bare 302 from net/http, nothing counted: the floor of any Go server here")
	bareFast := flag.Bool("bare-fasthttp", false, "answer every request with a bare 302 from fasthttp (what the hub's /q/ runs on), nothing counted")
	flag.Parse()
	if *bareFast {
		// The floor of the hub's own /q/ transport: fasthttp's server with
		// a handler that does nothing but answer.
		srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.Response.Header.Set("Location", "https://example.vn/cho-ban/sap-7")
			ctx.SetStatusCode(http.StatusFound)
		}}
		ln, err := net.Listen("tcp", *addr)
		if err == nil {
			time.AfterFunc(*duration, func() { ln.Close() })
			fmt.Printf("listening on http://%s\n", ln.Addr())
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, net.ErrClosed) {
			fmt.Fprintln(os.Stderr, "loadserver:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*addr, *duration, *ratePerSec, *burst, *bare); err != nil {
		fmt.Fprintln(os.Stderr, "loadserver:", err)
		os.Exit(1)
	}
}

func run(addr string, duration time.Duration, ratePerSec float64, burst int, bare bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("parsing -addr: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %s: load tests stay on loopback", addr)
	}
	c := &counter{}
	h, err := scan.NewHandler(scan.Config{
		PublicURL:      "http://hub.example.vn",
		TrustedProxies: []string{"127.0.0.1", "::1"},
		RatePerSecond:  ratePerSec,
		RateBurst:      burst,
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}, boards{}, c)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	if bare {
		mux.HandleFunc("GET /q/{board}", func(w http.ResponseWriter, _ *http.Request) {
			w.Header()["Location"] = []string{"https://example.vn/cho-ban/sap-7"}
			w.WriteHeader(http.StatusFound)
		})
	} else {
		h.Register(mux)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("listening on http://%s\n", ln.Addr())
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	shut, cancelShut := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShut()
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutting down: %w", err)
	}
	fmt.Printf("recorded: human=%d unique=%d bot=%d orphan=%d rate_limited=%d total=%d\n",
		c.human.Load(), c.unique.Load(), c.bot.Load(), c.orphan.Load(), c.limited.Load(),
		c.human.Load()+c.bot.Load()+c.orphan.Load()+c.limited.Load())
	return nil
}
