package tlscert

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const certUsage = `usage: villagehub cert [-dir DIR] [-days N] [-ca-days N] [-ca-name NAME] HOST_OR_IP...

Makes a village CA (DIR/ca.crt, DIR/ca.key) unless DIR already has one,
then a server certificate for the given host names and IP addresses signed
by it (DIR/server.crt, DIR/server.key; replaced if present). Give ca.crt to
devices and browsers; point the hub's TLS settings at server.crt and
server.key, and send the hub SIGHUP to serve a new one without a restart.

Example: villagehub cert hub.lan 192.168.1.10 127.0.0.1
`

// CertCommand runs `villagehub cert`; args are what follows "cert" and
// defaultDir is where files go without -dir (the hub passes
// <data_dir>/tls). It returns 0 done, 1 failed, 2 usage.
func CertCommand(args []string, stdout, stderr io.Writer, defaultDir string) int {
	flags := flag.NewFlagSet("villagehub cert", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() { fmt.Fprint(stderr, certUsage); flags.PrintDefaults() }
	dir := flags.String("dir", defaultDir, "directory for the CA and server files")
	days := flags.Int("days", 825, "server certificate validity in days")
	caDays := flags.Int("ca-days", 3650, "CA validity in days (when a new CA is made)")
	caName := flags.String("ca-name", "Village hub CA", "CA common name (when a new CA is made)")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if flags.NArg() == 0 || *days < 1 || *caDays < 1 {
		flags.Usage()
		return 2
	}
	if err := makeCerts(stdout, *dir, *caName, flags.Args(), time.Duration(*days)*24*time.Hour, time.Duration(*caDays)*24*time.Hour); err != nil {
		fmt.Fprintf(stderr, "villagehub cert: %v\n", err)
		return 1
	}
	return 0
}

func makeCerts(w io.Writer, dir, caName string, hosts []string, validFor, caValidFor time.Duration) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	caCert, caKey := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	certPEM, err := os.ReadFile(caCert)
	var keyPEM []byte
	switch {
	case err == nil:
		if keyPEM, err = os.ReadFile(caKey); err != nil {
			return fmt.Errorf("%s exists but its key does not: %w", caCert, err)
		}
		fmt.Fprintf(w, "Using the existing CA %s\n", caCert)
	case errors.Is(err, fs.ErrNotExist):
		if certPEM, keyPEM, err = NewCA(caName, caValidFor); err != nil {
			return err
		}
		// Key first: a CA certificate without its key would be useless.
		if err := writeFile(caKey, keyPEM, 0o600); err != nil {
			return err
		}
		if err := writeFile(caCert, certPEM, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(w, "Made a new CA: %s (give this to devices) and %s (keep it secret, or offline)\n", caCert, caKey)
	default:
		return fmt.Errorf("reading %s: %w", caCert, err)
	}
	sc, sk, err := IssueServer(certPEM, keyPEM, hosts, validFor)
	if err != nil {
		return err
	}
	srvCert, srvKey := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	// Key, then certificate: a reload between the two sees a mismatched
	// pair, refuses it and keeps serving the old one until the next
	// SIGHUP.
	if err := writeFile(srvKey, sk, 0o600); err != nil {
		return err
	}
	if err := writeFile(srvCert, sc, 0o644); err != nil {
		return err
	}
	b, _ := pem.Decode(certPEM)
	fp := sha256.Sum256(b.Bytes)
	leaf, _ := pem.Decode(sc)
	c, _ := x509.ParseCertificate(leaf.Bytes)
	fmt.Fprintf(w, "Made a server certificate for %s, valid until %s (serial %s):\n  cert_file: %s\n  key_file: %s\n",
		strings.Join(hosts, ", "), c.NotAfter.Format("2006-01-02"), c.SerialNumber.Text(16), srvCert, srvKey)
	fmt.Fprintf(w, "CA SHA-256 fingerprint (check it on each device): %X\n", fp)
	fmt.Fprintf(w, "A running hub serves the new certificate after a reload: SIGHUP (kill -HUP <pid>) or POST /api/v1/reload.\n")
	return nil
}
