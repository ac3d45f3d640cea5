package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"villagehub/hub/testenv"
)

// TestNotifyTestZalo: with no hub running, "villagehub notify test" sends
// a test message through the Zalo notifier from its own process and
// prints Zalo's exact answer (the token refresh, then the message's
// JSON), never a token; the message reached the fake group. A name not
// in the config is refused, naming the ones that are.
func TestNotifyTestZalo(t *testing.T) {
	z, first := testenv.NewFakeZalo(t)
	dir := t.TempDir()
	secret, rt := filepath.Join(dir, "secret"), filepath.Join(dir, "refresh")
	os.WriteFile(secret, []byte(z.Secret), 0o600)
	os.WriteFile(rt, []byte(first), 0o600)
	cfg := filepath.Join(dir, "villagehub.yaml")
	yaml := fmt.Sprintf(`http: { addr: %s }
data_dir: %s
alerts:
  notifiers:
    - { type: zalo, name: zalo-thon, app_id: %q, secret_key_file: %s, refresh_token_file: %s, group_id: g1, api_url: %s, oauth_url: %s }
`, testenv.FreeAddr(t), filepath.Join(dir, "data"), z.AppID, secret, rt, z.URL, z.URL)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"notify", "--config", cfg, "test", "zalo-thon"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	got := out.String()
	for _, want := range []string{"sending from this process", "notifier zalo-thon (zalo): OK", "answer: token refresh: ok",
		`answer: HTTP 200 OK {"data":{"message_id":"m1"},"error":0,"message":"Success"}`, "Tin nhắn thử từ villagehub"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, s := range z.Secrets() {
		if strings.Contains(got+errb.String(), s) {
			t.Errorf("a token or secret was printed")
		}
	}
	if m := z.Messages(); len(m) != 1 || m[0].Group != "g1" {
		t.Errorf("messages %+v", m)
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"notify", "--config", cfg, "test", "nope"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "zalo-thon") {
		t.Errorf("unknown notifier: exit %d %q", code, errb.String())
	}
}
