package app_test

import (
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"villagehub/hub/testenv"
)

// TestMetricsLint runs promlint over a live exposition with every kind of
// series present, and fails on any problem.
func TestMetricsLint(t *testing.T) {
	h := startHub(t, nil)
	pub := testenv.MQTT(t, "tcp://"+h.BrokerAddr(), "lint")
	testenv.Publish(t, pub, "village/tan-ngu-2/camera/gate/status", 1, true, "online")
	testenv.Publish(t, pub, "village/tan-ngu-2/camera/gate/motion", 1, false, "ON")
	testenv.Publish(t, pub, "village/tan-ngu-2/qr/market-07/scans", 1, false, `{"total":3,"boot":"a"}`)
	testenv.Publish(t, pub, "village/tan-ngu-2/qr/market-07/scans", 1, false, `{"total":-3}`)
	waitHandled(t, h.URL, 4)

	req, _ := http.NewRequest("GET", h.URL+"/metrics", nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	problems, err := promlint.New(resp.Body).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	m := testenv.Scrape(t, h.URL)
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "villagehub_ingest_latency_seconds",
		"villagehub_ingest_queue_length", "villagehub_ingest_queue_capacity", "villagehub_build_info"} {
		if _, ok := m[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}
