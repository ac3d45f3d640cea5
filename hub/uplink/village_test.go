package uplink_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"villagehub/devices/rtspcam"
	"villagehub/devices/sim"
	"villagehub/hub/app/apptest"
	"villagehub/hub/config"
)

// startTenCameraVillage runs the village the uplink's figures are quoted
// for: a hub with 10 RTSP cameras (probed at the default 10 s) and 10
// boards over two sites, its uplink: block given as uplinkYAML, and a
// simulated fleet publishing rate messages a second (scans and motion)
// until the test ends. It returns the hub, its config, and a stop that
// ends both before the test does.
func startTenCameraVillage(tb testing.TB, hubID, uplinkYAML string, rate float64) (h *apptest.Hub, cfg *config.Config, stop func()) {
	tb.Helper()
	cams, err := rtspcam.New(rtspcam.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cams.Close() })
	cfg, err = config.Parse(hubID+".yaml", []byte(`
hub_id: `+hubID+`
place: { province: thanh-hoa, district: ngoc-lac, commune: minh-son, village: ban-muong, lat: 20.09, lon: 105.37, names: { village: "Bản Mường" } }
sites: [ { id: cho, name: "Chợ" }, { id: cong, name: "Cổng làng" } ]
`+uplinkYAML))
	if err != nil {
		tb.Fatal(err)
	}
	apptest.Prepare(tb, cfg)
	var camDevs, boardDevs []sim.Device
	for i := range 10 {
		site := []string{"cho", "cong"}[i%2]
		cam, err := cams.AddCamera(fmt.Sprintf("cam%02d", i), rtspcam.CameraOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		cfg.Cameras = append(cfg.Cameras, config.Camera{ID: fmt.Sprintf("cam%02d", i), Site: site, RTSPURL: cam.URL()})
		cfg.Boards = append(cfg.Boards, config.Board{ID: fmt.Sprintf("board%02d", i), Site: site, TargetURL: "https://example.vn/b"})
		camDevs = append(camDevs, sim.Device{Site: site, ID: fmt.Sprintf("cam%02d", i)})
		boardDevs = append(boardDevs, sim.Device{Site: site, ID: fmt.Sprintf("board%02d", i)})
	}
	apptest.EnableProbe(cfg)
	cfg.Probe.Interval = config.Duration(10 * time.Second) // the default
	h = apptest.Start(tb, cfg, nil)
	fleet, err := sim.NewFleet(sim.Config{Broker: "tcp://" + h.BrokerAddr(), Cameras: camDevs, Boards: boardDevs, Rate: rate, QoS: 1,
		ClientPrefix: hubID, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	fctx, stopFleet := context.WithCancel(context.Background())
	tb.Cleanup(stopFleet) // before the hub's own cleanup: registered after it
	go func() { _ = fleet.Run(fctx) }()
	return h, cfg, func() { stopFleet(); h.Stop() }
}
