package dashboards_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// dashboard is the part of a Grafana dashboard JSON the tests read.
type dashboard struct {
	file          string
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Timezone      string `json:"timezone"`
	Time          struct{ From, To string }
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID       int                      `json:"id"`
	Type     string                   `json:"type"`
	Title    string                   `json:"title"`
	TimeFrom string                   `json:"timeFrom"`
	DS       *dsRef                   `json:"datasource"`
	Targets  []target                 `json:"targets"`
	Panels   []panel                  `json:"panels"` // a row's panels
	GridPos  struct{ X, Y, W, H int } `json:"gridPos"`
}

type target struct {
	RefID string `json:"refId"`
	DS    *dsRef `json:"datasource"`
	Expr  string `json:"expr"`  // PromQL
	Query string `json:"query"` // Flux
	Hide  bool   `json:"hide"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	DS         *dsRef          `json:"datasource"`
	Query      json.RawMessage `json:"query"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
	Options    []struct {
		Value string `json:"value"`
	} `json:"options"`
}

// promQuery is a query variable's PromQL (Grafana stores it as a string or
// as {"query": ...}).
func (v variable) promQuery() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct{ Query string }
	json.Unmarshal(v.Query, &o)
	return o.Query
}

func loadDashboards(t *testing.T) []*dashboard {
	t.Helper()
	files, err := filepath.Glob("*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards found (%v)", err)
	}
	var out []*dashboard
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d := &dashboard{file: f}
		if err := json.Unmarshal(b, d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, d)
	}
	return out
}

// allPanels flattens rows.
func (d *dashboard) allPanels() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// provisionedDatasources reads configs/grafana/provisioning/datasources:
// uid -> type.
func provisionedDatasources(t *testing.T) map[string]string {
	t.Helper()
	files, _ := filepath.Glob("../configs/grafana/provisioning/datasources/*.yml")
	if len(files) == 0 {
		t.Fatal("no datasource provisioning in configs/grafana/provisioning/datasources")
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			APIVersion  int `yaml:"apiVersion"`
			Datasources []struct {
				Name, UID, Type, URL string
				JSONData             map[string]any `yaml:"jsonData"`
			}
		}
		if err := yaml.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if c.APIVersion != 1 {
			t.Errorf("%s: apiVersion %d, want 1", f, c.APIVersion)
		}
		for _, ds := range c.Datasources {
			if ds.UID == "" || ds.Type == "" || ds.URL == "" {
				t.Errorf("%s: datasource %q needs uid, type and url", f, ds.Name)
			}
			if ds.Type == "influxdb" && ds.JSONData["version"] != "Flux" {
				t.Errorf("%s: the InfluxDB datasource must use Flux, has version %v", f, ds.JSONData["version"])
			}
			out[ds.UID] = ds.Type
		}
	}
	return out
}

// TestDashboardJSON checks that each file is a Grafana dashboard Grafana
// will load and that is consistent with the provisioning: schema version,
// unique dashboard uids and panel ids, datasources that exist, panels
// inside the 24-column grid and not overlapping, template variables for
// site and device.
func TestDashboardJSON(t *testing.T) {
	dss := provisionedDatasources(t)
	b, err := os.ReadFile("../configs/grafana/provisioning/dashboards/villagehub.yml")
	if err != nil {
		t.Fatal(err)
	}
	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string
			Options struct{ Path string }
		}
	}
	if err := yaml.Unmarshal(b, &prov); err != nil || prov.APIVersion != 1 || len(prov.Providers) != 1 || prov.Providers[0].Type != "file" || prov.Providers[0].Options.Path == "" {
		t.Fatalf("dashboard provider: %+v %v", prov, err)
	}
	uids := map[string]string{}
	for _, d := range loadDashboards(t) {
		t.Run(d.file, func(t *testing.T) {
			if d.UID == "" || d.Title == "" {
				t.Error("dashboard needs a uid and a title")
			}
			if len(d.UID) > 40 {
				t.Errorf("uid %q is longer than Grafana's 40 characters", d.UID)
			}
			if other, ok := uids[d.UID]; ok {
				t.Errorf("uid %q also in %s", d.UID, other)
			}
			uids[d.UID] = d.file
			if d.SchemaVersion < 36 {
				t.Errorf("schemaVersion %d: want 36 or later (datasource references by uid)", d.SchemaVersion)
			}
			if d.Timezone != "Asia/Ho_Chi_Minh" {
				t.Errorf("timezone %q: the village's days are Asia/Ho_Chi_Minh", d.Timezone)
			}
			checkDS := func(where string, ref *dsRef) {
				if ref == nil {
					t.Errorf("%s has no datasource", where)
					return
				}
				if typ, ok := dss[ref.UID]; !ok || typ != ref.Type {
					t.Errorf("%s uses datasource %+v, not provisioned (have %v)", where, *ref, dss)
				}
			}
			vars := map[string]bool{}
			for _, v := range d.Templating.List {
				vars[v.Name] = true
				if v.Type == "query" {
					checkDS("variable "+v.Name, v.DS)
					if v.promQuery() == "" {
						t.Errorf("variable %s has no query", v.Name)
					}
				}
			}
			want := []string{"site", "device"}
			if isProvince(d) { // many hubs' series by remote write (province_test.go)
				want = []string{"district", "commune", "village"}
			}
			for _, w := range want {
				if !vars[w] {
					t.Errorf("template variables %v: want %v", vars, want)
				}
			}
			ids := map[int]bool{}
			occupied := map[[2]int]int{}
			queries := 0
			for _, p := range d.allPanels() {
				where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
				if p.ID <= 0 || ids[p.ID] {
					t.Errorf("%s: id missing or not unique", where)
				}
				ids[p.ID] = true
				g := p.GridPos
				if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
					t.Errorf("%s: gridPos %+v outside the 24 columns", where, g)
				}
				for x := g.X; x < g.X+g.W; x++ {
					for y := g.Y; y < g.Y+g.H; y++ {
						if o, ok := occupied[[2]int{x, y}]; ok {
							t.Errorf("%s overlaps panel %d at column %d row %d", where, o, x, y)
						}
						occupied[[2]int{x, y}] = p.ID
					}
				}
				if p.Type == "row" {
					continue
				}
				if p.Title == "" {
					t.Errorf("panel %d has no title", p.ID)
				}
				if len(p.Targets) == 0 {
					t.Errorf("%s has no query", where)
				}
				checkDS(where, p.DS)
				refs := map[string]bool{}
				for _, tg := range p.Targets {
					ds := tg.DS
					if ds == nil {
						ds = p.DS
					}
					checkDS(where+" target "+tg.RefID, ds)
					if refs[tg.RefID] {
						t.Errorf("%s: refId %s twice", where, tg.RefID)
					}
					refs[tg.RefID] = true
					if (ds != nil && ds.Type == "prometheus" && tg.Expr == "") || (ds != nil && ds.Type == "influxdb" && tg.Query == "") {
						t.Errorf("%s target %s: empty query", where, tg.RefID)
					}
					queries++
					for _, m := range regexp.MustCompile(`\$\{?(\w+)`).FindAllStringSubmatch(tg.Expr+tg.Query, -1) {
						if !vars[m[1]] && !strings.HasPrefix(m[1], "__") {
							t.Errorf("%s target %s uses $%s, which is not a template variable", where, tg.RefID, m[1])
						}
					}
				}
			}
			if queries == 0 {
				t.Error("no queries")
			}
		})
	}
	var files []string
	for _, f := range uids {
		files = append(files, f)
	}
	for _, want := range []string{"security-cameras.json", "qr-usage.json", "hub-health.json"} {
		if !slices.Contains(files, want) {
			t.Errorf("missing dashboard %s", want)
		}
	}
}

// timeRange is the range Grafana would query for a panel at now: the
// panel's relative time (now/d, now/w, now/M, 30d) or the dashboard's.
func timeRange(t *testing.T, d *dashboard, p panel, now time.Time, loc *time.Location) time.Time {
	t.Helper()
	expr := d.Time.From
	if p.TimeFrom != "" {
		expr = p.TimeFrom
		if !strings.HasPrefix(expr, "now") {
			expr = "now-" + expr
		}
	}
	lt := now.In(loc)
	y, m, dd := lt.Date()
	switch expr {
	case "now/d":
		return time.Date(y, m, dd, 0, 0, 0, 0, loc)
	case "now/w": // weekStart monday
		off := (int(lt.Weekday()) + 6) % 7
		return time.Date(y, m, dd-off, 0, 0, 0, 0, loc)
	case "now/M":
		return time.Date(y, m, 1, 0, 0, 0, 0, loc)
	}
	rel, ok := strings.CutPrefix(expr, "now-")
	if !ok || len(rel) < 2 {
		t.Fatalf("time %q not understood", expr)
	}
	var n int
	var unit string
	if _, err := fmt.Sscanf(rel, "%d%s", &n, &unit); err != nil {
		t.Fatalf("time %q: %v", expr, err)
	}
	switch unit {
	case "m":
		return now.Add(-time.Duration(n) * time.Minute)
	case "h":
		return now.Add(-time.Duration(n) * time.Hour)
	case "d":
		return now.AddDate(0, 0, -n)
	}
	t.Fatalf("time unit %q in %q", unit, expr)
	return time.Time{}
}

// substitute replaces template variables and Grafana's built-ins the way
// Grafana would for this panel: vals holds each variable's value ("" for
// All), regex-escaped as Grafana's regex format does.
func substitute(q string, vals map[string]string, allValue map[string]string, from, now time.Time, flux bool) string {
	val := func(name string) string {
		if v, ok := vals[name]; ok && v != "" {
			if name == "bucket" {
				return v
			}
			return regexp.QuoteMeta(v)
		}
		return allValue[name]
	}
	rng := fmt.Sprintf("%ds", int(now.Sub(from).Seconds()))
	rep := []string{
		"$__rate_interval", "30s", "${__rate_interval}", "30s",
		"$__interval", "15s", "$__range", rng, "${__range}", rng,
	}
	if flux {
		rep = append(rep,
			"v.timeRangeStart", from.UTC().Format(time.RFC3339),
			"v.timeRangeStop", now.UTC().Add(time.Second).Format(time.RFC3339),
			"v.windowPeriod", "1m",
		)
	}
	q = strings.NewReplacer(rep...).Replace(q)
	return regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)`).ReplaceAllStringFunc(q, func(m string) string {
		sm := regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)`).FindStringSubmatch(m)
		name := sm[1] + sm[2]
		if _, ok := allValue[name]; !ok {
			return m
		}
		return val(name)
	})
}
