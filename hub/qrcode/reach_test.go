package qrcode

import (
	"strings"
	"testing"
)

// TestURLWarnings: every kind of address phones on mobile data cannot
// reach is named (in Vietnamese, then English); public ones pass.
func TestURLWarnings(t *testing.T) {
	warn := map[string]string{
		"http://127.0.0.1:8080":    "loopback",
		"http://localhost:8080":    "this machine",
		"http://[::1]:8080":        "loopback",
		"http://0.0.0.0:8080":      "loopback",
		"http://192.168.1.10:8080": "private",
		"http://10.0.0.5":          "private",
		"http://172.16.4.1":        "private",
		"http://[fd00::1]":         "private",
		"http://169.254.10.1":      "link-local",
		"http://100.64.3.2":        "carrier-grade NAT",
		"http://100.127.255.1":     "carrier-grade NAT",
		"http://hub.example.vn":    "placeholder",
		"https://example.com":      "placeholder",
		"http://203.0.113.7":       "documentation",
		"http://villagehub":        "without a domain",
		"http://hub.local":         "local-network",
		"http://hub.lan:8080":      "local-network",
		"hub.tinh.gov.vn/q":        "not an absolute",
	}
	for u, want := range warn {
		got := URLWarnings(u)
		if len(got) == 0 || !strings.Contains(got[0], want) {
			t.Errorf("%s: warnings %q, want one saying %q", u, got, want)
		}
	}
	for _, u := range []string{"https://qr.thanhhoa.gov.vn", "http://14.160.32.5:8080", "https://100.128.0.1", "https://hub.tan-ngu.vn/"} {
		if got := URLWarnings(u); len(got) > 0 {
			t.Errorf("%s: unexpected warnings %q", u, got)
		}
	}
	for _, m := range URLWarnings("http://192.168.1.10:8080") {
		if !strings.Contains(m, "điện thoại dùng 4G") {
			t.Errorf("the warning is not Vietnamese first: %q", m)
		}
	}
}
