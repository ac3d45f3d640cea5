package tlscert_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"villagehub/hub/testenv"
	"villagehub/hub/tlscert"
)

// startHTTPS serves HTTPS on a free loopback port with cfg.
func startHTTPS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestReload: an HTTPS server using the Reloader serves the new
// certificate after the files are replaced and Reload is called (the hub
// calls it on SIGHUP and POST /api/v1/reload alike, hub/app); a broken
// replacement is refused, counted, and the last good one stays.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	ca := testenv.NewTestCA(t, dir)
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	serial1 := ca.Issue(t, certFile, keyFile, "hub.lan", "127.0.0.1")
	rl, err := tlscert.New(tlscert.Config{CertFile: certFile, KeyFile: keyFile, Name: "http"})
	if err != nil {
		t.Fatal(err)
	}
	addr := startHTTPS(t, rl.TLSConfig())
	if got := ca.PeerSerial(t, addr, "hub.lan"); got.Cmp(serial1) != 0 {
		t.Fatalf("serial %x, want %x", got, serial1)
	}

	// TLS 1.2 is the floor.
	old := &tls.Config{RootCAs: ca.Pool(), ServerName: "hub.lan", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	if c, err := tls.Dial("tcp", addr, old); err == nil {
		c.Close()
		t.Error("TLS 1.1 accepted")
	} else if !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.1 client: %v, want a protocol version alert", err)
	}

	serial2 := ca.Issue(t, certFile, keyFile, "hub.lan", "127.0.0.1")
	if err := rl.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := ca.PeerSerial(t, addr, "hub.lan"); got.Cmp(serial2) != 0 {
		t.Fatalf("after Reload serial %x, want %x", got, serial2)
	}

	// A key that does not match the certificate: refused, old one served.
	other := testenv.NewTestCA(t, "")
	other.Issue(t, filepath.Join(dir, "other.crt"), filepath.Join(dir, "other.key"), "x")
	k, _ := os.ReadFile(filepath.Join(dir, "other.key"))
	if err := os.WriteFile(keyFile, k, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rl.Reload(); err == nil {
		t.Fatal("Reload accepted a key that does not match the certificate")
	}
	if got := ca.PeerSerial(t, addr, "hub.lan"); got.Cmp(serial2) != 0 {
		t.Fatalf("after a failed reload serial %x, want the previous %x", got, serial2)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(rl)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var failures, expiry float64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "villagehub_tls_reloads_total":
				for _, l := range m.GetLabel() {
					if l.GetName() == "result" && l.GetValue() == "failure" {
						failures = m.GetCounter().GetValue()
					}
				}
			case "villagehub_tls_certificate_expiry_timestamp_seconds":
				expiry = m.GetGauge().GetValue()
			}
		}
	}
	if failures != 1 {
		t.Errorf("reload failures = %v, want 1", failures)
	}
	if want := float64(rl.Certificate().Leaf.NotAfter.Unix()); expiry != want {
		t.Errorf("expiry = %v, want %v", expiry, want)
	}
}

func TestNewRefusesMissingFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := tlscert.New(tlscert.Config{CertFile: filepath.Join(dir, "no.crt"), KeyFile: filepath.Join(dir, "no.key")}); err == nil || !strings.Contains(err.Error(), "no.crt") {
		t.Errorf("missing files: %v, want an error naming them", err)
	}
	if _, err := tlscert.New(tlscert.Config{}); err == nil {
		t.Error("empty config accepted")
	}
}

// runCert runs `villagehub cert` and returns its output.
func runCert(t *testing.T, dir string, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := tlscert.CertCommand(args, &out, &errb, dir); code != 0 {
		t.Fatalf("cert %v: exit %d: %s", args, code, errb.String())
	}
	return out.String()
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := pem.Decode(b)
	if p == nil {
		t.Fatalf("%s is not PEM", path)
	}
	c, err := x509.ParseCertificate(p.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCertCommand: `villagehub cert` makes a CA and a server certificate
// that Go and OpenSSL verify for every name given, keeps keys private,
// and reuses the CA on a second run.
func TestCertCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	out := runCert(t, dir, "hub.lan", "192.168.1.10", "127.0.0.1")
	if !strings.Contains(out, "Made a new CA") || !strings.Contains(out, "fingerprint") {
		t.Errorf("output:\n%s", out)
	}
	for name, want := range map[string]os.FileMode{"ca.key": 0o600, "server.key": 0o600, "ca.crt": 0o644, "server.crt": 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), want)
		}
	}
	ca := readCert(t, filepath.Join(dir, "ca.crt"))
	srv := readCert(t, filepath.Join(dir, "server.crt"))
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, name := range []string{"hub.lan", "192.168.1.10", "127.0.0.1"} {
		if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("server certificate does not verify for %s: %v", name, err)
		}
	}
	if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, DNSName: "other.lan"}); err == nil {
		t.Error("server certificate verifies for a name it was not made for")
	}
	if o, err := exec.Command("openssl", "verify", "-CAfile", filepath.Join(dir, "ca.crt"), filepath.Join(dir, "server.crt")).CombinedOutput(); err != nil || !strings.Contains(string(o), ": OK") {
		t.Errorf("openssl verify: %v\n%s", err, o)
	}

	out = runCert(t, dir, "hub.lan")
	if !strings.Contains(out, "Using the existing CA") {
		t.Errorf("second run did not reuse the CA:\n%s", out)
	}
	if ca2 := readCert(t, filepath.Join(dir, "ca.crt")); !ca2.Equal(ca) {
		t.Error("second run replaced the CA")
	}
	if srv2 := readCert(t, filepath.Join(dir, "server.crt")); srv2.SerialNumber.Cmp(srv.SerialNumber) == 0 {
		t.Error("second run did not make a new server certificate")
	}

	var errb bytes.Buffer
	if code := tlscert.CertCommand(nil, &bytes.Buffer{}, &errb, dir); code != 2 {
		t.Errorf("no hosts: exit %d, want 2", code)
	}
}

// TestCertWithMosquitto: the files `villagehub cert` makes, served by real
// Mosquitto through the shipped tls.conf lines: a client trusting ca.crt
// connects; one that does not is refused.
func TestCertWithMosquitto(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil { // Mosquitto drops to user mosquitto
			t.Fatal(err)
		}
	}
	runCert(t, dir, "localhost", "127.0.0.1")
	// The key is 0600; Mosquitto reads it as user mosquitto, so it must
	// own it (as docs/security.md says: chown mosquitto server.key).
	mu, err := user.Lookup("mosquitto")
	if err != nil {
		t.Fatalf("the mosquitto package's user: %v", err)
	}
	uid, _ := strconv.Atoi(mu.Uid)
	if err := os.Chown(filepath.Join(dir, "server.key"), uid, -1); err != nil {
		t.Fatal(err)
	}
	snippet, err := os.ReadFile("../../configs/mosquitto/tls.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.ReplaceAll(string(snippet), "/etc/mosquitto/villagehub/", dir+"/")
	conf = strings.Replace(conf, "listener 8883", "listener {{PORT}} 127.0.0.1", 1)
	if !strings.Contains(conf, "listener {{PORT}}") {
		t.Fatalf("tls.conf has no `listener 8883` line:\n%s", snippet)
	}
	cfgFile := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(cfgFile, []byte("per_listener_settings false\nallow_anonymous true\nlog_dest stderr\n"+conf), 0o644); err != nil {
		t.Fatal(err)
	}
	m := testenv.StartMosquitto(t, testenv.MosquittoOptions{ConfigFile: cfgFile})

	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	try := func(cfg *tls.Config) error {
		c := paho.NewClient(paho.NewClientOptions().AddBroker("ssl://" + m.Addr).SetClientID("tls-check").
			SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetTLSConfig(cfg))
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			t.Fatal("no answer from Mosquitto")
		}
		if tok.Error() == nil {
			c.Disconnect(10)
		}
		return tok.Error()
	}
	if err := try(&tls.Config{RootCAs: roots}); err != nil {
		t.Errorf("client trusting ca.crt: %v", err)
	}
	if err := try(&tls.Config{RootCAs: roots, ServerName: "localhost"}); err != nil {
		t.Errorf("client trusting ca.crt, by name: %v", err)
	}
	if err := try(&tls.Config{RootCAs: x509.NewCertPool()}); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("client not trusting ca.crt: %v, want unknown authority", err)
	}
	// Mosquitto serves TLS 1.2 at least, as the snippet says.
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", m.Addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Error("Mosquitto accepted TLS 1.1")
	} else if !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.1 client: %v, want a protocol version alert", err)
	}
}

// TestOpenSSLRecipe runs the OpenSSL commands docs/security.md gives as an
// alternative to `villagehub cert`, and checks the hub serves the result
// and a client trusting the CA accepts it.
func TestOpenSSLRecipe(t *testing.T) {
	doc, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "<!-- openssl-recipe")
	if !ok {
		t.Fatal("docs/security.md has no openssl-recipe marker")
	}
	_, block, _ := strings.Cut(after, "```sh\n")
	script, _, ok := strings.Cut(block, "```")
	if !ok || !strings.Contains(script, "openssl x509 -req") {
		t.Fatalf("no recipe after the marker:\n%s", after[:min(len(after), 300)])
	}
	dir := t.TempDir()
	cmd := exec.Command("bash", "-e", "-c", script)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the recipe failed: %v\n%s", err, out)
	}
	rl, err := tlscert.New(tlscert.Config{CertFile: filepath.Join(dir, "server.crt"), KeyFile: filepath.Join(dir, "server.key")})
	if err != nil {
		t.Fatal(err)
	}
	addr := startHTTPS(t, rl.TLSConfig())
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.crt is not PEM")
	}
	for _, name := range []string{"hub.lan", "127.0.0.1"} {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: name})
		if err != nil {
			t.Errorf("client trusting the recipe's CA, server name %s: %v", name, err)
			continue
		}
		c.Close()
	}
}
