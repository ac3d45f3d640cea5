package dashboards_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"villagehub/devices/rtspcam"
	"villagehub/devices/sim"
	"villagehub/hub/alert"
	"villagehub/hub/app/apptest"
	"villagehub/hub/config"
	"villagehub/hub/testenv"
)

const village = `
hub_id: dashtest
sites:
  - { id: tan-ngu-2, name: "Thôn Tân Ngữ 2" }
  - { id: ban-chieng, name: "Bản Chiềng" }
qr_boards:
  - { id: market-07, site: tan-ngu-2, name: "Chợ Bản, sạp 7" }
  - { id: bus-stop, site: ban-chieng, name: "Điểm chờ xe buýt" }
  # Never reports: the "silent boards" panel must list it.
  - { id: quiet-corner, site: ban-chieng, name: "Góc yên tĩnh" }
`

var cameras = []struct{ site, id string }{
	{"tan-ngu-2", "gate"}, {"tan-ngu-2", "market"}, {"ban-chieng", "bridge"}, {"ban-chieng", "school"},
}

// TestDashboardQueries runs every query of every panel of every dashboard
// against a real Prometheus scraping a hub that the device simulators feed
// (with one camera stopped, so that outages, failures and alerts exist),
// and against the real InfluxDB the hub writes its history to. Each query
// must parse, run, and return at least one series with the variables at
// "All"; with the first value of each variable it must parse and run.
func TestDashboardQueries(t *testing.T) {
	dashboards := loadDashboards(t)
	loc, err := time.LoadLocation("Asia/Ho_Chi_Minh")
	if err != nil {
		t.Fatal(err)
	}
	influx := testenv.StartInflux(t)

	cams, err := rtspcam.New(rtspcam.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cams.Close() })
	cfg, err := config.Parse("dashboards-test.yaml", []byte(village))
	if err != nil {
		t.Fatal(err)
	}
	apptest.Prepare(t, cfg)
	var devs []sim.Device
	for _, c := range cameras {
		cam, err := cams.AddCamera(c.id, rtspcam.CameraOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Cameras = append(cfg.Cameras, config.Camera{ID: c.id, Site: c.site, RTSPURL: cam.URL(), ExpectedFPS: 10})
		devs = append(devs, sim.Device{Site: c.site, ID: c.id})
	}
	apptest.EnableProbe(cfg)
	cfg.Influx.URL = influx.URL()
	cfg.Influx.Bucket = testenv.InfluxBucket
	// A notifier, so the hub-health dashboard's notifier panels have series
	// (its webhook listens nowhere).
	cfg.Alerts.Notifiers = []alert.Notifier{{Type: "webhook", Name: "chat", URL: "http://" + testenv.FreeAddr(t) + "/hook"}}
	h := apptest.Start(t, cfg, nil)
	hubURL := h.URL

	fleet, err := sim.NewFleet(sim.Config{
		Broker: "tcp://" + h.BrokerAddr(), Cameras: devs,
		Boards: []sim.Device{{Site: "tan-ngu-2", ID: "market-07"}, {Site: "ban-chieng", ID: "bus-stop"}},
		Rate:   40, QoS: 1, RebootProb: 0.02, RepeatProb: 0.05, ClientPrefix: "dashtest", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	fctx, stopFleet := context.WithCancel(context.Background())
	fdone := make(chan error, 1)
	go func() { fdone <- fleet.Run(fctx) }()
	t.Cleanup(func() { stopFleet(); <-fdone })

	prom := testenv.StartPrometheus(t, fmt.Sprintf(`
global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: villagehub
    static_configs: [{ targets: [%q] }]
`, h.HTTPAddr()), nil)
	testenv.WaitFor(t, 15*time.Second, "Prometheus scraping the hub", func() bool {
		v, err := query(prom, `up{job="villagehub"} == 1`)
		return err == nil && seriesCount(v) == 1
	})

	// Bad messages, so rejections by reason exist.
	pub := testenv.MQTT(t, "tcp://"+h.BrokerAddr(), "dashtest-bad")
	testenv.Publish(t, pub, "village/tan-ngu-2/qr/market-07/scans", 1, false, `{"total":`)
	testenv.Publish(t, pub, "village/tan-ngu-2/qr/market-07/scans", 1, false, `{"total":-5}`)

	// Let every camera be seen up, then stop one: outage, failures by
	// reason and a CameraDown alert follow.
	testenv.WaitFor(t, 20*time.Second, "every camera probed up", func() bool {
		m, err := testenv.TryScrape(hubURL)
		if err != nil {
			return false
		}
		v, _ := m.Value("villagehub_camera_up")
		return int(v) == len(cameras)
	})
	// A few scrapes of every camera up before the stop, and a few after
	// it, so range functions see the change: waited for in Prometheus
	// itself, not by the clock.
	testenv.WaitFor(t, 30*time.Second, "three scrapes of every camera up", func() bool {
		v, err := query(prom, `count_over_time(villagehub_camera_up[5m]) >= 3`)
		return err == nil && seriesCount(v) == len(cameras)
	})
	cams.Camera("bridge").Stop()
	testenv.WaitFor(t, 20*time.Second, "bridge down in Prometheus", func() bool {
		v, err := query(prom, `villagehub_camera_up{camera="bridge"} == 0`)
		return err == nil && seriesCount(v) == 1
	})
	downAt := time.Now().Unix()
	testenv.WaitFor(t, 30*time.Second, "five more scrapes after the stop", func() bool {
		v, err := query(prom, fmt.Sprintf(`timestamp(villagehub_camera_up{camera="bridge"}) >= %d`, downAt+5))
		return err == nil && seriesCount(v) == 1
	})
	exposed := exposedMetrics(t, hubURL)

	now := time.Now()
	for _, d := range dashboards {
		if isProvince(d) {
			continue // fed by remote write from many hubs: province_test.go
		}
		t.Run(d.file, func(t *testing.T) {
			allValue := map[string]string{}
			concrete := map[string]string{}
			for _, v := range d.Templating.List {
				switch v.Type {
				case "query":
					allValue[v.Name] = v.AllValue
					vals := labelValues(t, prom, v.promQuery(), map[string]string{"site": concrete["site"]})
					if len(vals) == 0 {
						t.Errorf("variable %s: %s gives no values", v.Name, v.promQuery())
						continue
					}
					concrete[v.Name] = vals[0]
				case "custom":
					var opts []string
					for _, o := range v.Options {
						opts = append(opts, o.Value)
					}
					if v.Name == "bucket" {
						// The test's InfluxDB is 1.8: database/retention policy.
						if !slices.Contains(opts, testenv.InfluxBucket) {
							t.Fatalf("bucket variable has no %s option: %v", testenv.InfluxBucket, opts)
						}
						allValue[v.Name], concrete[v.Name] = testenv.InfluxBucket, testenv.InfluxBucket
					}
				}
			}
			for _, p := range d.allPanels() {
				from := timeRange(t, d, p, now, loc)
				for _, tg := range p.Targets {
					ds := tg.DS
					if ds == nil {
						ds = p.DS
					}
					name := fmt.Sprintf("panel %d %q %s", p.ID, p.Title, tg.RefID)
					for _, sel := range []struct {
						what string
						vals map[string]string
						need bool
					}{{"All", nil, true}, {fmt.Sprint(concrete), concrete, false}} {
						switch ds.Type {
						case "prometheus":
							q := substitute(tg.Expr, sel.vals, allValue, from, now, false)
							v, err := query(prom, q)
							if err != nil {
								t.Errorf("%s (%s): %s: %v", name, sel.what, q, err)
								continue
							}
							if n := seriesCount(v); n == 0 && sel.need {
								t.Errorf("%s (%s): no series from %s%s", name, sel.what, q, missing(q, exposed))
							}
						case "influxdb":
							q := substitute(tg.Query, sel.vals, allValue, from, now, true)
							rows, err := influx.Query(q)
							if err != nil {
								t.Errorf("%s (%s): %v\n%s", name, sel.what, err, q)
								continue
							}
							if len(rows) == 0 && sel.need {
								t.Errorf("%s (%s): no rows from InfluxDB (is the hub writing its history there? influx.url is set in this test)\n%s", name, sel.what, q)
							}
						default:
							t.Errorf("%s: datasource type %q", name, ds.Type)
						}
					}
				}
			}
		})
	}
}

// labelValues runs a label_values(metric{...}, label) variable query the
// way Grafana does: the label's values among the metric's series.
func labelValues(t *testing.T, prom *testenv.Prometheus, q string, vars map[string]string) []string {
	t.Helper()
	return runLabelValues(t, func(e string) (model.Value, error) { return query(prom, e) }, q, vars, map[string]string{"site": ".*"})
}

// runLabelValues runs label_values(selector, label) as Grafana does, with
// run answering the query; variables not in vars match all.
func runLabelValues(t *testing.T, run func(expr string) (model.Value, error), q string, vars, all map[string]string) []string {
	t.Helper()
	m := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`).FindStringSubmatch(strings.TrimSpace(q))
	if m == nil {
		t.Fatalf("variable query %q is not label_values(selector, label)", q)
	}
	sel := substitute(m[1], vars, all, time.Now(), time.Now(), false)
	v, err := run(fmt.Sprintf("count by (%s) (%s)", m[2], sel))
	if err != nil {
		t.Fatalf("variable query %q: %v", q, err)
	}
	var out []string
	for _, s := range v.(model.Vector) {
		out = append(out, string(s.Metric[model.LabelName(m[2])]))
	}
	slices.Sort(out)
	return out
}

// query runs an instant query now, returning its error (so that one bad
// panel does not hide the others).
func query(prom *testenv.Prometheus, expr string) (model.Value, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, _, _, err := prom.API.Query(ctx, expr, time.Now())
	return v, err
}

func seriesCount(v model.Value) int {
	switch v := v.(type) {
	case model.Vector:
		return len(v)
	case model.Matrix:
		return len(v)
	case *model.Scalar:
		return 1
	}
	return 0
}

// exposedMetrics is the set of metric names the hub exposes.
func exposedMetrics(t *testing.T, hubURL string) map[string]bool {
	t.Helper()
	resp, err := http.Get(hubURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			out[strings.Fields(name)[0]] = true
		}
	}
	return out
}

// missing names the metrics of q that the hub does not expose at all, to
// tell a wrong name or a component not wired into the hub from a query
// that merely matched nothing.
func missing(q string, exposed map[string]bool) string {
	var out []string
	for _, m := range regexp.MustCompile(`villagehub_[a-z0-9_]+|process_[a-z_]+`).FindAllString(q, -1) {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")
		if !exposed[m] && !exposed[base] && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return ""
	}
	return fmt.Sprintf("\n  the hub does not expose %s (not wired into cmd/villagehub yet, or a wrong name)", strings.Join(out, ", "))
}
