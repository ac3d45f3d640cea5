// Package dashboards holds the Grafana dashboards (the JSON files beside
// this one, provisioned by configs/grafana/) and the tests that prove them:
// every PromQL and Flux query of every panel runs against a real Prometheus
// scraping a hub fed by the device simulators and against the real
// InfluxDB the hub writes to, and docker-compose.yml at the repository root
// is loaded and checked with compose-go. The package has no code of its
// own; see docs/dashboards.md.
package dashboards
