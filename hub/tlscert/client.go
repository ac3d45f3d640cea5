package tlscert

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// ClientConfig builds the TLS settings of a client of the hub's (the
// external MQTT broker, InfluxDB) from files: caFile replaces the system's
// roots when set, certFile and keyFile are a client certificate for mutual
// TLS. keyPrefix names the settings in errors, e.g. "mqtt." gives
// "mqtt.ca_file: ...".
func ClientConfig(keyPrefix, caFile, certFile, keyFile string, insecure bool) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} //nolint:gosec // the operator's explicit choice, for testing
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%sca_file: %w", keyPrefix, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%sca_file: %s holds no PEM certificate", keyPrefix, caFile)
		}
		tc.RootCAs = pool
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%scert_file/key_file: %w", keyPrefix, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
