package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// qr print warns when the codes would encode an address phones on mobile
// data cannot reach (the reference config's example host, the hub's
// loopback, a private LAN address), and counts boards in proper English.
func TestQRPrintWarnsAboutUnreachableURL(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "v.yaml")
	if err := os.WriteFile(cfgPath, []byte(`
data_dir: `+filepath.Join(dir, "data")+`
sites: [{ id: s1, name: "Thôn 1" }]
qr_boards:
  - { id: market-07, site: s1, name: "Chợ Bản, sạp 7" }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url  string
		warn bool
	}{{"http://hub.example.vn", true}, {"http://127.0.0.1:8080", true}, {"http://192.168.1.10:8080", true}, {"https://cho-ban.vn", false}} {
		var out, errb bytes.Buffer
		if code := run([]string{"qr", "print", "--config", cfgPath, "--out", dir, "--public-url", tc.url}, &out, &errb); code != 0 {
			t.Fatalf("%s: exit %d: %s", tc.url, code, errb.String())
		}
		if got := strings.Contains(errb.String(), "CẢNH BÁO / WARNING"); got != tc.warn {
			t.Errorf("%s: warning %v, want %v: %q", tc.url, got, tc.warn, errb.String())
		}
		if !strings.Contains(out.String(), ": 1 board of Thôn 1") {
			t.Errorf("%s: output %q", tc.url, out.String())
		}
	}
}
