// Command villagesim simulates a village's devices against any MQTT broker,
// and benchmarks the hub end to end ("villagesim bench").
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"villagehub/devices/payload"
	"villagehub/devices/rtspcam"
	"villagehub/devices/sim"
)

const usage = `villagesim — simulated cameras and QR boards for villagehub.

Usage:
  villagesim [flags]         run simulated devices against a broker
  villagesim bench [flags]   end-to-end benchmark of the hub through real
                             brokers (see villagesim bench --help)

Example:
  villagesim --broker tcp://127.0.0.1:1883 --cameras 50 --boards 300 --rate 200

Flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "bench" {
		return runBench(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "bare-subscriber" { // bench --side-by-side's child
		return runBareSubscriber(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("villagesim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	var (
		broker   = fs.String("broker", "tcp://127.0.0.1:1883", "MQTT broker URL")
		user     = fs.String("username", "", "MQTT username for every device")
		pass     = fs.String("password", "", "MQTT password for every device")
		prefix   = fs.String("prefix", payload.DefaultPrefix, "topic prefix")
		cameras  = fs.Int("cameras", 5, "number of simulated cameras")
		boards   = fs.Int("boards", 10, "number of simulated QR boards")
		sites    = fs.Int("sites", 1, "spread devices over this many sites (site-1, site-2, ...); 1 uses site \"demo\"")
		rate     = fs.Float64("rate", 10, "messages per second across all devices (motion and scan reports)")
		qos      = fs.Int("qos", 1, "QoS of motion and scan reports (0 or 1)")
		pattern  = fs.String("pattern", "random", "how messages spread over devices: random, round-robin (steady per device) or burst (flurries)")
		reboot   = fs.Float64("reboot", 0.01, "chance a board reboots (new boot ID) before a report")
		repeat   = fs.Float64("repeat", 0.05, "chance a board re-sends an earlier report (as a QoS 1 redelivery would)")
		jsonMot  = fs.Bool("json-motion", false, "publish motion as JSON with ts, zone and score instead of ON/OFF")
		duration = fs.Duration("duration", 0, "stop after this long (0: until interrupted)")
		clientID = fs.String("client-prefix", "villagesim", "start of every MQTT client ID")
		rtspAddr = fs.String("rtsp-addr", "", "also serve every simulated camera as a real RTSP stream on this address (e.g. 127.0.0.1:8554) and print the hub config for them")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *qos < 0 || *qos > 1 {
		fmt.Fprintln(stderr, "villagesim: --qos must be 0 or 1")
		return 2
	}
	siteIDs := []string{"demo"}
	if *sites > 1 {
		siteIDs = siteIDs[:0]
		for i := 1; i <= *sites; i++ {
			siteIDs = append(siteIDs, fmt.Sprintf("site-%d", i))
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	fleet, err := sim.NewFleet(sim.Config{
		Broker: *broker, Username: *user, Password: *pass, Prefix: *prefix,
		Cameras: sim.Devices("cam", *cameras, siteIDs...), Boards: sim.Devices("board", *boards, siteIDs...),
		Rate: *rate, QoS: byte(*qos), Pattern: *pattern, RebootProb: *reboot, RepeatProb: *repeat, MotionJSON: *jsonMot,
		ClientPrefix: *clientID, Seed: uint64(time.Now().UnixNano()), Logger: log,
	})
	if err != nil {
		fmt.Fprintln(stderr, "villagesim:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *rtspAddr != "" {
		srv, err := rtspcam.New(rtspcam.Config{Addr: *rtspAddr, Logger: log})
		if err != nil {
			fmt.Fprintln(stderr, "villagesim:", err)
			return 1
		}
		defer srv.Close()
		fmt.Fprintln(stdout, "# RTSP cameras: add these under cameras: in the hub's config")
		fmt.Fprintln(stdout, "cameras:")
		for _, d := range sim.Devices("cam", *cameras, siteIDs...) {
			name := d.Site + "-" + d.ID
			if _, err := srv.AddCamera(name, rtspcam.CameraOptions{}); err != nil {
				fmt.Fprintln(stderr, "villagesim:", err)
				return 1
			}
			fmt.Fprintf(stdout, "  - { id: %s, site: %s, rtsp_url: %q, expected_fps: 10 }\n", d.ID, d.Site, srv.URL(name))
		}
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s := fleet.Stats()
				log.Info("progress", "published", s.Published, "errors", s.Errors, "skipped", s.Skipped)
			}
		}
	}()
	if err := fleet.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "villagesim:", err)
		return 1
	}
	s := fleet.Stats()
	var scans int64
	for _, n := range s.ExpectedScans {
		scans += n
	}
	fmt.Fprintf(stdout, "published %d reports (%d errors, %d skipped); motion events started: %d; QR scans the hub should count: %d\n",
		s.Published, s.Errors, s.Skipped, s.MotionStarts, scans)
	return 0
}
