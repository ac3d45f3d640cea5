package dashboards_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"villagehub/devices/rtspcam"
	"villagehub/hub/app/apptest"
	"villagehub/hub/config"
	"villagehub/hub/testenv"
)

// isProvince tells the province dashboards (many hubs' series, pushed by
// remote write with place labels) from the single-hub ones.
func isProvince(d *dashboard) bool { return strings.HasPrefix(d.file, "province-") }

// receiver is a Prometheus-API engine the hubs push to.
type receiver struct {
	name  string
	api   promv1.API
	flush func()
}

// TestProvinceDashboardQueries runs every query of the province dashboards
// against a real Prometheus (remote-write receiver) and a real
// VictoriaMetrics single node, both fed by remote write from three hubs in
// different villages (probing real RTSP cameras, one of them stopped; QR
// boards reporting scans), one hub then stopped so that it is silent.
// Each query must run and return at least one series with the variables at
// "All", and run with the first value of each variable, on both engines.
func TestProvinceDashboardQueries(t *testing.T) {
	var dashboards []*dashboard
	for _, d := range loadDashboards(t) {
		if isProvince(d) {
			dashboards = append(dashboards, d)
		}
	}
	if len(dashboards) < 2 {
		t.Fatalf("province dashboards: %d", len(dashboards))
	}
	loc, err := time.LoadLocation("Asia/Ho_Chi_Minh")
	if err != nil {
		t.Fatal(err)
	}
	prom := testenv.StartPrometheus(t, `
storage: { tsdb: { out_of_order_time_window: 1h } }
`, nil, "--web.enable-remote-write-receiver")
	vm := testenv.StartVictoriaMetrics(t)
	engines := []receiver{
		{"prometheus", prom.API, func() {}},
		{"victoriametrics", vm.API, func() { vm.Flush(t) }},
	}

	cams, err := rtspcam.New(rtspcam.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cams.Close() })
	type hub struct {
		village, commune string
		h                *apptest.Hub
	}
	hubs := []*hub{{village: "ban-a", commune: "minh-son"}, {village: "ban-b", commune: "minh-son"}, {village: "ban-c", commune: "yen-lac"}}
	for i, v := range hubs {
		y := fmt.Sprintf(`
hub_id: hub-%[1]s
place: { province: thanh-hoa, district: ngoc-lac, commune: %[2]s, village: %[1]s, lat: %[3]f, lon: 105.3, names: { village: "Thôn %[1]s", commune: "Xã %[2]s" } }
uplink:
  interval: 1s
  remote_write:
    - { name: prometheus, url: "%[4]s/api/v1/write", batch_send_deadline: 0s, min_backoff: 100ms, max_backoff: 1s }
    - { name: vm, url: "%[5]s/api/v1/write", batch_send_deadline: 0s, min_backoff: 100ms, max_backoff: 1s }
sites: [ { id: cho, name: "Chợ" } ]
qr_boards:
  - { id: market-07, site: cho, name: "Chợ, sạp 7" }
  - { id: bus-stop, site: cho, name: "Điểm chờ xe buýt" }
`, v.village, v.commune, 20.0+float64(i)/10, prom.URL, vm.URL)
		cfg, err := config.Parse("province-"+v.village+".yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		apptest.Prepare(t, cfg)
		for _, name := range []string{"gate", "market"} {
			cam, err := cams.AddCamera(v.village+"-"+name, rtspcam.CameraOptions{})
			if err != nil {
				t.Fatal(err)
			}
			cfg.Cameras = append(cfg.Cameras, config.Camera{ID: name, Site: "cho", RTSPURL: cam.URL()})
		}
		apptest.EnableProbe(cfg)
		v.h = apptest.Start(t, cfg, nil)
		pub := testenv.MQTT(t, "tcp://"+v.h.BrokerAddr(), "province-"+v.village)
		for n := 1; n <= 5*(i+1); n++ {
			testenv.Publish(t, pub, "village/cho/qr/market-07/scans", 1, false, fmt.Sprintf(`{"total":%d,"boot":"b1"}`, n))
		}
		testenv.Publish(t, pub, "village/cho/qr/bus-stop/scans", 1, false, `{"total":1,"boot":"b1"}`)
	}
	cams.Camera("ban-a-gate").Stop()

	for _, e := range engines {
		testenv.WaitFor(t, 60*time.Second, e.name+": ban-a's gate camera down, three villages, scans counted", func() bool {
			e.flush()
			down, err1 := apiQuery(e.api, `villagehub_camera_up{village="ban-a",camera="gate"} == 0`)
			places, err2 := apiQuery(e.api, `villagehub_place_info`)
			scans, err3 := apiQuery(e.api, `sum by (village) (increase(villagehub_qr_scans_total[1m])) > 0`)
			return err1 == nil && err2 == nil && err3 == nil && seriesCount(down) == 1 && seriesCount(places) == 3 && seriesCount(scans) > 0
		})
	}
	// ban-c's hub stops: silent after the test's silence window.
	hubs[2].h.Stop()
	const silence = "4s"
	silentQ := `group by (hub) (present_over_time(villagehub_place_info[1d])) unless group by (hub) (present_over_time(villagehub_place_info[` + silence + `]))`
	for _, e := range engines {
		testenv.WaitFor(t, 30*time.Second, e.name+": ban-c silent", func() bool {
			e.flush()
			v, err := apiQuery(e.api, silentQ)
			return err == nil && seriesCount(v) == 1
		})
	}

	now := time.Now()
	for _, e := range engines {
		for _, d := range dashboards {
			t.Run(e.name+"/"+d.file, func(t *testing.T) {
				allValue := map[string]string{}
				concrete := map[string]string{}
				for _, v := range d.Templating.List {
					switch v.Type {
					case "query":
						allValue[v.Name] = v.AllValue
						vals := apiLabelValues(t, e.api, v.promQuery(), concrete)
						if len(vals) == 0 {
							t.Errorf("variable %s: %s gives no values", v.Name, v.promQuery())
							continue
						}
						concrete[v.Name] = vals[0]
					case "custom":
						if v.Name == "silence" {
							allValue[v.Name], concrete[v.Name] = silence, silence
						}
					}
				}
				for _, p := range d.allPanels() {
					from := timeRange(t, d, p, now, loc)
					for _, tg := range p.Targets {
						name := fmt.Sprintf("panel %d %q %s", p.ID, p.Title, tg.RefID)
						for _, sel := range []struct {
							what string
							vals map[string]string
							need bool
						}{{"All", nil, true}, {fmt.Sprint(concrete), concrete, false}} {
							q := substitute(tg.Expr, sel.vals, allValue, from, now, false)
							v, err := apiQuery(e.api, q)
							if err != nil {
								t.Errorf("%s (%s): %s: %v", name, sel.what, q, err)
								continue
							}
							if seriesCount(v) == 0 && sel.need {
								t.Errorf("%s (%s): no series from %s", name, sel.what, q)
							}
						}
					}
				}
			})
		}
	}

	// The map has coordinates for every village, and counts ban-a's
	// stopped camera.
	for _, e := range engines {
		v, err := apiQuery(e.api, `sum by (village) (villagehub_camera_up == bool 0) * on (village) group_left (lat, lon) max by (village, lat, lon) (villagehub_place_info)`)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, s := range v.(model.Vector) {
			got[string(s.Metric["village"])] = fmt.Sprintf("%s,%s=%v", s.Metric["lat"], s.Metric["lon"], s.Value)
		}
		if got["ban-a"] != "20,105.3=1" || got["ban-b"] != "20.1,105.3=0" {
			t.Errorf("%s: map data %v", e.name, got)
		}
	}
}

func apiQuery(api promv1.API, expr string) (model.Value, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, _, _, err := api.Query(ctx, expr, time.Now())
	return v, err
}

// apiLabelValues runs label_values(selector, label) as Grafana does.
func apiLabelValues(t *testing.T, api promv1.API, q string, vars map[string]string) []string {
	t.Helper()
	return runLabelValues(t, func(e string) (model.Value, error) { return apiQuery(api, e) }, q, vars,
		map[string]string{"district": ".*", "commune": ".*", "village": ".*"})
}
