package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"villagehub/hub/app"
	"villagehub/hub/config"
	"villagehub/hub/testenv"
	"villagehub/hub/web"
)

// TestCertThenReportOverHTTPS (issue 12, Low): in the secure setup
// `villagehub cert --config` used to refuse a config naming the
// certificates it was about to make, and `villagehub report qr` called
// http:// on the HTTPS port with no way to pass a CA or a token. Now the
// config that names them makes them, and the report asks the HTTPS hub
// trusting the village CA with a viewer token; without the token the hub
// says 401 and the command fails rather than reading the wrong thing.
func TestCertThenReportOverHTTPS(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	httpAddr := testenv.FreeAddr(t)
	tok, sha := web.NewToken()
	cfgPath := filepath.Join(dir, "v.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`data_dir: %s
http:
  addr: %s
  tls: { cert_file: %s/tls/server.crt, key_file: %s/tls/server.key }
  auth: { anonymous: none, tokens: [{ name: report, token_sha256: %s, role: viewer }] }
broker: { addr: %s }
probe: { enabled: false }
sites: [{ id: s1, name: "Thôn 1" }]
qr_boards: [{ id: market-07, site: s1, name: "Chợ Bản" }]
`, data, httpAddr, data, data, sha, testenv.FreeAddr(t))), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"cert", "--config", cfgPath, "127.0.0.1"}, &out, &errb); code != 0 {
		t.Fatalf("cert --config with the files it makes: exit %d: %s", code, errb.String())
	}
	cfg, err := config.Load(cfgPath, func(string) string { return "" })
	if err != nil {
		t.Fatalf("the config after cert: %v", err)
	}
	h, err := app.New(cfg, app.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h.HTTPURL(), "https://") {
		t.Errorf("the startup URL %q is not https://", h.HTTPURL())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	testenv.WaitFor(t, 15*time.Second, "the HTTPS listener", func() bool { return h.HTTPAddr() != "" })
	tokFile := filepath.Join(dir, "token")
	os.WriteFile(tokFile, []byte(tok+"\n"), 0o600)
	month := time.Now().Format("2006-01")
	var rep bytes.Buffer
	errb.Reset()
	testenv.WaitFor(t, 15*time.Second, "the report through the HTTPS hub", func() bool {
		rep.Reset()
		errb.Reset()
		return run([]string{"report", "qr", "--config", cfgPath, "--token-file", tokFile, "--month", month}, &rep, &errb) == 0
	})
	if !strings.Contains(rep.String(), "market-07") {
		t.Errorf("report: %s", rep.String())
	}
	errb.Reset()
	if code := run([]string{"report", "qr", "--config", cfgPath, "--month", month}, &rep, &errb); code == 0 || !strings.Contains(errb.String(), "401") {
		t.Errorf("report without the token: exit %d, %s", code, errb.String())
	}
}

// TestUserAddGenerate: `villagehub user add --generate` prints the
// password once and keeps only its hash, in a 0600 file.
func TestUserAddGenerate(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "v.yaml")
	os.WriteFile(cfgPath, []byte("data_dir: "+dir+"\n"), 0o600)
	var out, errb bytes.Buffer
	if code := run([]string{"user", "--config", cfgPath, "add", "truong-thon", "--generate"}, &out, &errb); code != 0 {
		t.Fatalf("user add: %s", errb.String())
	}
	pw := strings.TrimSpace(strings.SplitN(strings.SplitN(out.String(), "password: ", 2)[1], "\n", 2)[0])
	st, err := os.Stat(filepath.Join(dir, web.DefaultUsersFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("users file: %v %v", st, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, web.DefaultUsersFile))
	if len(pw) < 16 || strings.Contains(string(b), pw) || !strings.Contains(string(b), "$2a$") {
		t.Errorf("users file holds %q (password %q)", b, pw)
	}
	us, err := web.ReadUsers(filepath.Join(dir, web.DefaultUsersFile))
	if err != nil || len(us) != 1 || us[0].Role != web.RoleAdmin {
		t.Errorf("users: %+v %v", us, err)
	}
}
