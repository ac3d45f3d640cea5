package dashboards_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads docker-compose.yml as `docker compose --profile demo`
// would, with compose-go's full validation (unknown keys, bad ports,
// undefined depends_on), and an environment that sets nothing, so the
// defaults in the file are what is checked.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{"../docker-compose.yml"},
		cli.WithWorkingDirectory(".."),
		cli.WithEnv([]string{}),
		cli.WithConsistency(true),
		cli.WithProfiles([]string{"demo"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("loading docker-compose.yml: %v", err)
	}
	return p
}

// TestCompose checks the whole stack is there and consistent: every
// service, restart policies and healthchecks, every mounted file present in
// the repository, no host port used twice, the hub and Grafana given the
// InfluxDB org, bucket and token that InfluxDB is initialised with, every
// variable the Grafana provisioning expands set for Grafana, and
// Prometheus's config (with its rules) accepted by promtool.
func TestCompose(t *testing.T) {
	p := loadCompose(t)
	want := []string{"alertmanager", "grafana", "influxdb", "mosquitto", "prometheus", "villagehub", "villagesim"}
	var got []string
	for name := range p.Services {
		got = append(got, name)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	if sim := p.Services["villagesim"]; !slices.Contains(sim.Profiles, "demo") {
		t.Errorf("villagesim runs without the demo profile (profiles %v)", sim.Profiles)
	}
	ports := map[string]string{}
	for name, s := range p.Services {
		if s.Restart == "" || s.Restart == "no" {
			t.Errorf("%s: no restart policy", name)
		}
		if name != "villagesim" && (s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 || s.HealthCheck.Disable) {
			t.Errorf("%s: no healthcheck", name)
		}
		if s.Image == "" && s.Build == nil {
			t.Errorf("%s: no image", name)
		}
		if s.Build != nil {
			df := filepath.Join(s.Build.Context, s.Build.Dockerfile)
			if _, err := os.Stat(df); err != nil {
				t.Errorf("%s: Dockerfile %s: %v", name, df, err)
			}
		}
		for _, v := range s.Volumes {
			switch v.Type {
			case types.VolumeTypeBind:
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s mounts %s, which is not in the repository: %v", name, v.Source, err)
				}
				if !v.ReadOnly {
					t.Errorf("%s mounts %s writable; configuration is mounted read-only", name, v.Source)
				}
			case types.VolumeTypeVolume:
				if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("%s uses volume %s, not declared", name, v.Source)
				}
			}
		}
		for _, pc := range s.Ports {
			if pc.Published == "" {
				continue
			}
			key := pc.HostIP + ":" + pc.Published + "/" + pc.Protocol
			if other, ok := ports[key]; ok {
				t.Errorf("host port %s used by %s and %s", key, other, name)
			}
			ports[key] = name
		}
	}

	env := func(svc, key string) string {
		v := p.Services[svc].Environment[key]
		if v == nil {
			t.Errorf("%s: %s not set", svc, key)
			return ""
		}
		return *v
	}
	for _, c := range [][3]string{
		{"VILLAGEHUB_INFLUX_ORG", "DOCKER_INFLUXDB_INIT_ORG", "INFLUXDB_ORG"},
		{"VILLAGEHUB_INFLUX_BUCKET", "DOCKER_INFLUXDB_INIT_BUCKET", "INFLUXDB_BUCKET"},
		{"VILLAGEHUB_INFLUX_TOKEN", "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN", "INFLUXDB_TOKEN"},
	} {
		hub, influx, grafana := env("villagehub", c[0]), env("influxdb", c[1]), env("grafana", c[2])
		if hub != influx || grafana != influx || influx == "" {
			t.Errorf("%s: hub %q, InfluxDB %q, Grafana %q differ", c[2], hub, influx, grafana)
		}
	}
	if v := env("villagehub", "VILLAGEHUB_MQTT_URL"); v != "tcp://mosquitto:1883" {
		t.Errorf("the hub's broker is %q", v)
	}

	// Every ${VAR} the Grafana provisioning expands is in Grafana's
	// environment.
	files, _ := filepath.Glob("../configs/grafana/provisioning/*/*.yml")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, m := range regexp.MustCompile(`\$\{(\w+)\}`).FindAllStringSubmatch(string(b), -1) {
			if v := env("grafana", m[1]); v == "" {
				t.Errorf("%s expands ${%s}, which Grafana's environment leaves empty", f, m[1])
			}
		}
	}

	// The dashboards select the hub's series with job="villagehub": the
	// scrape job must be called that and point at the hub's port.
	b, err := os.ReadFile("../configs/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "job_name: villagehub") || !strings.Contains(string(b), `"villagehub:8080"`) {
		t.Error("prometheus.yml does not scrape the hub as job villagehub at villagehub:8080")
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (%v): apt-get install -y --no-install-recommends prometheus", err)
	}
	out, err := exec.Command(promtool, "check", "config", "../configs/prometheus/prometheus.yml").CombinedOutput()
	if err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
	amtool, err := exec.LookPath("amtool")
	if err != nil {
		t.Fatalf("amtool not found (%v): apt-get install -y --no-install-recommends prometheus-alertmanager", err)
	}
	checked := 0
	for _, v := range p.Services["alertmanager"].Volumes {
		if v.Type == types.VolumeTypeBind && strings.HasSuffix(v.Source, ".yml") {
			checked++
			if out, err := exec.Command(amtool, "check-config", v.Source).CombinedOutput(); err != nil {
				t.Errorf("amtool check-config %s: %v\n%s", v.Source, err, out)
			}
		}
	}
	if checked != 1 {
		t.Errorf("alertmanager mounts %d config files, want its alertmanager.yml", checked)
	}
}
