package main

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime/debug"
	"time"

	"golang.org/x/sync/errgroup"

	"villagehub/devices/rtspcam"
	"villagehub/devices/sim"
	"villagehub/hub/app"
	"villagehub/hub/config"
)

//go:embed demo.yaml
var demoConfig []byte

// runDemo runs the hub with the demo village and simulated devices talking
// to its embedded broker.
func runDemo(ctx context.Context, cfg *config.Config, log *slog.Logger, stdout io.Writer) error {
	if !cfg.EmbeddedBroker() {
		return fmt.Errorf("--demo runs the embedded broker; unset mqtt.url / VILLAGEHUB_MQTT_URL")
	}
	if filepath.Clean(cfg.DataDir) == filepath.Clean(config.DefaultDataDir) {
		// Keep demo history apart from a real village's.
		cfg.DataDir = filepath.Join(cfg.DataDir, "demo")
	}
	// Simulated cameras with real RTSP streams, so the demo shows real
	// stream health; the market camera drops to a low frame rate now and
	// then, and the bridge camera flaps.
	cams, err := rtspcam.New(rtspcam.Config{Addr: "127.0.0.1:0", Logger: log.With("component", "rtsp-simulator")})
	if err != nil {
		return err
	}
	defer cams.Close()
	for i := range cfg.Cameras {
		c := &cfg.Cameras[i]
		cam, err := cams.AddCamera(c.ID, rtspcam.CameraOptions{})
		if err != nil {
			return err
		}
		switch c.ID {
		case "bridge":
			cam.Flap(90*time.Second, 40*time.Second)
		case "market":
			cam.SetFPS(4) // poor against the expected 10
		}
		c.RTSPURL, c.ExpectedFPS = cams.URL(c.ID), 10
	}
	h, err := app.New(cfg, app.Options{Logger: log})
	if err != nil {
		return err
	}
	fleet, err := sim.NewFleet(sim.Config{
		Broker:       "tcp://" + h.BrokerAddr(),
		Prefix:       cfg.TopicPrefix,
		Cameras:      simDevices(cfg.Cameras),
		Boards:       simBoards(cfg.Boards),
		Rate:         3,
		QoS:          1,
		RebootProb:   0.01,
		RepeatProb:   0.05,
		ClientPrefix: "demo",
		Logger:       log.With("component", "simulator"),
	})
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return h.Run(gctx) })
	g.Go(func() error { return fleet.Run(gctx) })
	bh, bp, _ := net.SplitHostPort(h.BrokerAddr())
	fmt.Fprintf(stdout, "\nvillagehub demo is running.\n  Dashboard:  http://%s/\n  Metrics:    http://%s/metrics\n  MQTT:       tcp://%s (try: mosquitto_sub -h %s -p %s -t 'village/#' -v)\n  Data:       %s\nPress Ctrl+C to stop.\n\n",
		h.HTTPAddr(), h.HTTPAddr(), h.BrokerAddr(), bh, bp, cfg.DataDir)
	return g.Wait()
}

func simDevices(cs []config.Camera) []sim.Device {
	out := make([]sim.Device, len(cs))
	for i, c := range cs {
		out[i] = sim.Device{Site: c.Site, ID: c.ID}
	}
	return out
}

func simBoards(bs []config.Board) []sim.Device {
	out := make([]sim.Device, len(bs))
	for i, b := range bs {
		out[i] = sim.Device{Site: b.Site, ID: b.ID}
	}
	return out
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
