package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

// Command runs `villagehub gateway`: the gateway role, or
// `villagehub gateway salt FILE` to make the shared salt secret.
func Command(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "salt" {
		if len(args) != 2 {
			fmt.Fprintln(stderr, "usage: villagehub gateway salt FILE   (copy the same file to every instance)")
			return 2
		}
		return writeSalt(args[1], stdout, stderr)
	}
	fs := flag.NewFlagSet("villagehub gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "gateway.yaml", "the gateway's config file (docs/gateway.md)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile (go tool pprof) of the whole run to this file, for measuring (docs/performance.md)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "villagehub gateway — the province's QR gateway: /q/<village>/<board> for printed codes, counted centrally and sent down to the villages.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintln(stderr, "villagehub gateway: --log-level:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	cfg, err := LoadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, "villagehub gateway:", err)
		return 1
	}
	g, err := New(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "villagehub gateway:", err)
		return 1
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "villagehub gateway: --cpuprofile:", err)
			return 1
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("gateway listening", "addr", g.Addr(), "public_url", cfg.PublicURL)
	if err := g.Run(ctx); err != nil {
		fmt.Fprintln(stderr, "villagehub gateway:", err)
		return 1
	}
	return 0
}

func writeSalt(path string, stdout, stderr io.Writer) int {
	var b [32]byte
	_, _ = rand.Read(b[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		fmt.Fprintln(stderr, "villagehub gateway salt:", err)
		return 1
	}
	_, err = fmt.Fprintln(f, hex.EncodeToString(b[:]))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(stderr, "villagehub gateway salt:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: a new salt secret (mode 0600); copy the same file to every gateway instance\n", path)
	return 0
}
