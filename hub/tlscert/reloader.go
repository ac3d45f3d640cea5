// Package tlscert gives the hub's listeners (the embedded MQTT broker, the
// HTTP server) a certificate that can be replaced without a restart: a key
// pair loaded from files and loaded again by Reload (the hub calls it on
// SIGHUP and POST /api/v1/reload, one code path), served
// through tls.Config.GetCertificate. It also makes a small village CA and
// server certificates for `villagehub cert`.
package tlscert

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config names the key pair.
type Config struct {
	// CertFile is PEM: the server certificate first, then any
	// intermediates. KeyFile is its PEM private key.
	CertFile string
	KeyFile  string
	// Name says which listener(s) use it ("broker", "http") in logs and in
	// the metrics' listener label.
	Name   string
	Logger *slog.Logger
}

// Reloader holds the current certificate.
type Reloader struct {
	cfg  Config
	log  *slog.Logger
	cert atomic.Pointer[tls.Certificate]
	mu   sync.Mutex // one reload at a time

	reloadOK, reloadFailed atomic.Uint64
	descExpiry, descReload *prometheus.Desc
}

// New loads the key pair; a missing or mismatched pair is an error here,
// so the hub does not start with a listener that cannot serve.
func New(cfg Config) (*Reloader, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("TLS: cert_file and key_file are both required")
	}
	if cfg.Name == "" {
		cfg.Name = "default"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Reloader{cfg: cfg, log: cfg.Logger.With("component", "tls", "listener", cfg.Name)}
	// listener is a constant label, so that the broker's and the HTTP
	// server's reloaders register side by side.
	lb := prometheus.Labels{"listener": cfg.Name}
	r.descExpiry = prometheus.NewDesc("villagehub_tls_certificate_expiry_timestamp_seconds",
		"When the certificate being served expires (Unix time).", nil, lb)
	r.descReload = prometheus.NewDesc("villagehub_tls_reloads_total",
		"Certificate reloads, by result; a failed reload keeps the previous certificate.", []string{"result"}, lb)
	c, err := r.read()
	if err != nil {
		return nil, err
	}
	r.cert.Store(c)
	r.log.Info("TLS certificate loaded", "subject", c.Leaf.Subject.String(), "serial", c.Leaf.SerialNumber.Text(16), "not_after", c.Leaf.NotAfter.Format(time.RFC3339))
	return r, nil
}

func (r *Reloader) read() (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(r.cfg.CertFile, r.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS: loading %s and %s: %w", r.cfg.CertFile, r.cfg.KeyFile, err)
	}
	// LoadX509KeyPair fills Leaf since Go 1.23; parse if it did not.
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("TLS: parsing %s: %w", r.cfg.CertFile, err)
		}
	}
	return &c, nil
}

// Reload loads the files again. If they cannot be loaded (half-copied, key
// does not match) the certificate served so far stays, and the error says
// why.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.read()
	if err != nil {
		r.reloadFailed.Add(1)
		r.log.Error("TLS certificate not reloaded; still serving the previous one", "err", err)
		return err
	}
	r.cert.Store(c)
	r.reloadOK.Add(1)
	r.log.Info("TLS certificate reloaded", "subject", c.Leaf.Subject.String(), "serial", c.Leaf.SerialNumber.Text(16), "not_after", c.Leaf.NotAfter.Format(time.RFC3339))
	return nil
}

// Name is the listener(s) using the certificate ("broker", "http").
func (r *Reloader) Name() string { return r.cfg.Name }

// GetCertificate is for tls.Config.GetCertificate: every handshake gets
// the certificate loaded last.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// Certificate is the certificate being served (its Leaf is parsed).
func (r *Reloader) Certificate() *tls.Certificate { return r.cert.Load() }

// TLSConfig is a server configuration serving the reloadable certificate.
// TLS 1.2 is the floor: cheap cameras and ESP32 boards rarely speak 1.3.
// In TLS 1.2 only forward-secret AEAD suites are offered (Go's defaults
// also offer CBC with SHA-1, which is legacy); mbedTLS on an ESP32 and
// every current browser speak ECDHE with AES-GCM. TLS 1.3 suites are not
// configurable and all AEAD.
func (r *Reloader) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   CipherSuites,
		GetCertificate: r.GetCertificate,
	}
}

// CipherSuites are the TLS 1.2 suites the hub's listeners offer.
var CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Describe implements prometheus.Collector.
func (r *Reloader) Describe(ch chan<- *prometheus.Desc) {
	ch <- r.descExpiry
	ch <- r.descReload
}

// Collect implements prometheus.Collector.
func (r *Reloader) Collect(ch chan<- prometheus.Metric) {
	c := r.cert.Load()
	ch <- prometheus.MustNewConstMetric(r.descExpiry, prometheus.GaugeValue, float64(c.Leaf.NotAfter.Unix()))
	ch <- prometheus.MustNewConstMetric(r.descReload, prometheus.CounterValue, float64(r.reloadOK.Load()), "success")
	ch <- prometheus.MustNewConstMetric(r.descReload, prometheus.CounterValue, float64(r.reloadFailed.Load()), "failure")
}
