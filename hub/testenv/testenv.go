// Package testenv starts the real servers that tests run against (Mosquitto,
// the hub itself as a process, and others in their own files), each on free
// loopback ports with its own temporary directories. A server that cannot
// start fails the test: nothing here skips.
package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// FreeAddr returns a loopback address with a port that was free a moment
// ago. The port is picked below the kernel's ephemeral range: a port from
// that range (what ":0" gives) can be taken by any outgoing connection on
// the machine as soon as it is released, and a server restarted on it in a
// test (after a SIGKILL, say) would then fail to bind.
func FreeAddr(t testing.TB) string {
	t.Helper()
	lo, hi := 20000, ephemeralStart()-1
	for range 200 {
		port := lo + rand.IntN(hi-lo+1)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	t.Fatalf("testenv: no free loopback port between %d and %d", lo, hi)
	return ""
}

// ephemeralStart is the first port of the kernel's ephemeral range.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 21000 {
				return n
			}
		}
	}
	return 32768
}

// FreePort returns a free loopback port.
func FreePort(t testing.TB) int {
	_, p, _ := net.SplitHostPort(FreeAddr(t))
	n, _ := strconv.Atoi(p)
	return n
}

// WaitFor polls cond every 20 ms until it is true, failing the test with
// msg after timeout.
func WaitFor(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitTCP waits until addr accepts connections.
func waitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting connections after %v: %w", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Metrics is a parsed /metrics exposition.
type Metrics map[string]*dto.MetricFamily

// Scrape fetches and parses baseURL + "/metrics".
func Scrape(t testing.TB, baseURL string) Metrics {
	t.Helper()
	m, err := TryScrape(baseURL)
	if err != nil {
		t.Fatalf("scraping %s/metrics: %v", baseURL, err)
	}
	return m
}

// ScrapeWith scrapes with a given client (HTTPS with a test CA, say).
func ScrapeWith(t testing.TB, baseURL string, c *http.Client) Metrics {
	t.Helper()
	m, err := tryScrape(baseURL, c)
	if err != nil {
		t.Fatalf("scraping %s/metrics: %v", baseURL, err)
	}
	return m
}

// TryScrape is Scrape returning its error.
func TryScrape(baseURL string) (Metrics, error) { return tryScrape(baseURL, http.DefaultClient) }

func tryScrape(baseURL string, c *http.Client) (Metrics, error) {
	resp, err := c.Get(baseURL + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	return Metrics(fams), nil
}

// Value returns the value of the series of name whose labels include all
// of labels ("k=v" pairs), summed over matching series; found says whether
// any matched.
func (m Metrics) Value(name string, labels ...string) (v float64, found bool) {
	f := m[name]
	if f == nil {
		return 0, false
	}
	for _, s := range f.Metric {
		if !matches(s, labels) {
			continue
		}
		found = true
		switch {
		case s.Counter != nil:
			v += s.Counter.GetValue()
		case s.Gauge != nil:
			v += s.Gauge.GetValue()
		case s.Untyped != nil:
			v += s.Untyped.GetValue()
		case s.Histogram != nil:
			v += float64(s.Histogram.GetSampleCount())
		}
	}
	return v, found
}

// Count is the number of series of name matching labels.
func (m Metrics) Count(name string, labels ...string) int {
	f := m[name]
	if f == nil {
		return 0
	}
	n := 0
	for _, s := range f.Metric {
		if matches(s, labels) {
			n++
		}
	}
	return n
}

func matches(s *dto.Metric, labels []string) bool {
	for _, kv := range labels {
		k, v, _ := strings.Cut(kv, "=")
		ok := false
		for _, lp := range s.Label {
			if lp.GetName() == k && lp.GetValue() == v {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

var httpClient = &http.Client{Timeout: 5 * time.Second}
