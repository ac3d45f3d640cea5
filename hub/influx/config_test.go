package influx

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidateNamesKeys(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("empty config (InfluxDB off) should be valid: %v", err)
	}
	ok := Config{URL: "http://127.0.0.1:8086", Bucket: "village/autogen"}
	if err := ok.Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
	cases := []struct {
		mutate func(*Config)
		key    string
	}{
		{func(c *Config) { c.URL = "ftp://x" }, "influx.url"},
		{func(c *Config) { c.URL = "http://user:secret@host:8086" }, "influx.url"},
		{func(c *Config) { c.Bucket = "" }, "influx.bucket"},
		{func(c *Config) { c.BatchSize = -5 }, "influx.batch_size"},
		{func(c *Config) { c.BatchSize = MaxBatchSize + 1 }, "influx.batch_size"},
		{func(c *Config) { c.FlushInterval = -time.Second }, "influx.flush_interval"},
		{func(c *Config) { c.Timeout = -time.Second }, "influx.timeout"},
		{func(c *Config) { c.SpoolMaxBytes = 1000 }, "influx.spool_max_bytes"},
		{func(c *Config) { c.TLS.CertFile = "/nonexistent.pem" }, "influx.tls"},
		{func(c *Config) { c.TLS.CAFile = "/nonexistent.pem" }, "influx.tls.ca_file"},
	}
	for _, tc := range cases {
		c := ok
		c.Token = "s3cr3t-token"
		tc.mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("want an error naming %s, got %v", tc.key, err)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "secret") {
			t.Errorf("error leaks a secret: %v", err)
		}
	}
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "influx.url") {
		t.Errorf("New without URL: %v", err)
	}
	if _, err := New(ok); err == nil || !strings.Contains(err.Error(), "influx.spool_dir") {
		t.Errorf("New without spool dir: %v", err)
	}
}

func TestConfigApplyEnvAndLogValue(t *testing.T) {
	c := Config{URL: "http://file:8086", Bucket: "file", Token: "t1"}
	env := map[string]string{"VILLAGEHUB_INFLUX_URL": "http://env:8086", "VILLAGEHUB_INFLUX_TOKEN": "envtoken", "VILLAGEHUB_INFLUX_ORG": ""}
	c.ApplyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if c.URL != "http://env:8086" || c.Token != "envtoken" || c.Org != "" || c.Bucket != "file" {
		t.Errorf("after ApplyEnv: %+v", c)
	}
	if s := c.LogValue().String(); strings.Contains(s, "envtoken") {
		t.Errorf("LogValue leaks the token: %s", s)
	}
}
