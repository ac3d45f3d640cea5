package uplink_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"villagehub/hub/testenv"
)

// TestCentralStack checks deploy/central: the compose file loads with
// compose-go's validation (both profiles), every mounted file exists, the
// Alertmanagers form a cluster with each other, Prometheus runs the
// remote-write receiver, and promtool/amtool accept the configs and rules.
func TestCentralStack(t *testing.T) {
	opts, err := cli.NewProjectOptions([]string{"../../deploy/central/docker-compose.yml"},
		cli.WithWorkingDirectory("../../deploy/central"), cli.WithEnv([]string{}),
		cli.WithConsistency(true), cli.WithProfiles([]string{"victoriametrics"}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("loading deploy/central/docker-compose.yml: %v", err)
	}
	var names []string
	for n := range p.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{"alertmanager-1", "alertmanager-2", "grafana", "influxdb", "prometheus", "victoriametrics", "vmalert"}
	if !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	for n, s := range p.Services {
		if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 || s.Restart == "" {
			t.Errorf("%s: needs a healthcheck and a restart policy", n)
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s mounts %s: %v", n, v.Source, err)
				}
			}
		}
	}
	cmd := func(n string) string { return strings.Join(p.Services[n].Command, " ") }
	if !strings.Contains(cmd("alertmanager-1"), "--cluster.peer=alertmanager-2:9094") || !strings.Contains(cmd("alertmanager-2"), "--cluster.peer=alertmanager-1:9094") {
		t.Errorf("the Alertmanagers do not peer with each other: %q / %q", cmd("alertmanager-1"), cmd("alertmanager-2"))
	}
	if !strings.Contains(cmd("prometheus"), "--web.enable-remote-write-receiver") {
		t.Error("Prometheus without the remote-write receiver")
	}
	if !strings.Contains(cmd("vmalert"), "alertmanager-1") || !strings.Contains(cmd("vmalert"), "alertmanager-2") {
		t.Error("vmalert does not notify both Alertmanagers")
	}

	// promtool wants the rule file where the container has it.
	b, err := os.ReadFile("../../deploy/central/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("../../configs/prometheus/central-rules.yml")
	conf := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(conf, []byte(strings.ReplaceAll(string(b), "/etc/prometheus/central-rules.yml", abs)), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Promtool(t, "check", "config", conf)
	testenv.Promtool(t, "check", "web-config", "../../deploy/central/web-config.yml")
	if out, err := exec.Command("amtool", "check-config", "../../deploy/central/alertmanager.yml").CombinedOutput(); err != nil {
		t.Errorf("amtool check-config: %v\n%s", err, out)
	}
}

// TestCentralRules runs the promtool unit tests of the central rules.
func TestCentralRules(t *testing.T) {
	testenv.Promtool(t, "check", "rules", "../../configs/prometheus/central-rules.yml")
	testenv.Promtool(t, "test", "rules", "../../configs/prometheus/central-rules_test.yml")
}
