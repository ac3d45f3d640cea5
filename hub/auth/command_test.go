package auth_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"villagehub/hub/auth"
)

func run(path string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = auth.DeviceCommand(args, &out, &errb, path)
	return code, out.String(), errb.String()
}

// TestDeviceCommand: add prints a password once and stores only its
// bcrypt hash in a 0600 file; list never shows secrets; duplicates,
// bad IDs and unknown users are refused with a reason.
func TestDeviceCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "creds.yaml")
	user, pw := addUser(t, path, "camera", "tan-ngu-2", "gate")
	if len(pw) != 32 || strings.Trim(pw, "abcdefghijklmnopqrstuvwxyz234567") != "" {
		t.Errorf("password %q: want 32 base32 characters", pw)
	}
	addUser(t, path, "viewer", "homeassistant")
	addUser(t, path, "hub", "upstream")

	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("credentials file mode %v, want 0600", st.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte(pw)) {
		t.Fatal("the password is stored in the clear")
	}
	var f struct {
		Users []struct{ Username, Role, Bcrypt string }
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Users) != 3 || f.Users[0].Username != user || f.Users[0].Role != "device" ||
		f.Users[1].Username != "_homeassistant" || f.Users[1].Role != "viewer" || f.Users[2].Username != "_upstream" || f.Users[2].Role != "hub" {
		t.Fatalf("file users: %+v", f.Users)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(f.Users[0].Bcrypt), []byte(pw)); err != nil {
		t.Errorf("stored hash does not match the printed password: %v", err)
	}
	if cost, _ := bcrypt.Cost([]byte(f.Users[0].Bcrypt)); cost != auth.BcryptCost {
		t.Errorf("bcrypt cost %d, want %d", cost, auth.BcryptCost)
	}

	code, out, _ := run(path, "list")
	if code != 0 || !strings.Contains(out, "tan-ngu-2/camera/gate") || !strings.Contains(out, "_homeassistant") || !strings.Contains(out, "viewer") {
		t.Errorf("list: %d\n%s", code, out)
	}
	if strings.Contains(out, "$2") || strings.Contains(out, pw) {
		t.Errorf("list shows a hash or password:\n%s", out)
	}

	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"add", "camera", "tan-ngu-2", "gate"}, 1, "already exists"},
		{[]string{"add", "camera", "Tan", "gate"}, 1, "must match"},
		{[]string{"add", "camera", "s", "cổng"}, 1, "must match"},
		{[]string{"add", "door", "s", "x"}, 2, "unknown kind"},
		{[]string{"add", "camera", "s"}, 2, "unknown kind"},
		{[]string{"add", "viewer", "Bad Name"}, 1, "must be _<name>"},
		{[]string{"remove", "s/camera/none"}, 1, "no user"},
		{[]string{"passwd", "s/camera/none"}, 1, "no user"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{nil, 2, "usage"},
	} {
		code, out, errs := run(path, c.args...)
		if code != c.code || !strings.Contains(errs, c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errs, c.code, c.msg)
		}
		if out != "" {
			t.Errorf("%v printed to stdout: %q", c.args, out)
		}
	}

	code, out, _ = run(path, "passwd", "camera", "tan-ngu-2", "gate")
	_, pw2 := parseSecret(t, out)
	if code != 0 || pw2 == pw {
		t.Fatalf("passwd: %d, same password %v", code, pw2 == pw)
	}
	if code, _, errs := run(path, "remove", "_homeassistant"); code != 0 {
		t.Fatalf("remove: %s", errs)
	}
	_, out, _ = run(path, "list")
	if strings.Contains(out, "_homeassistant") {
		t.Error("removed user still listed")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".credentials-*")); len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

// TestDeviceCommandConcurrent: adds run at the same time all land (the
// lock keeps one from overwriting another's).
func TestDeviceCommandConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.yaml")
	const n = 8
	var wg sync.WaitGroup
	errs := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if code, _, e := run(path, "add", "qr", "s", fmt.Sprint("b", i)); code != 0 {
				errs[i] = e
			}
		}(i)
	}
	wg.Wait()
	for i, e := range errs {
		if e != "" {
			t.Errorf("add %d: %s", i, e)
		}
	}
	_, out, _ := run(path, "list")
	for i := 0; i < n; i++ {
		if !strings.Contains(out, fmt.Sprintf("s/qr/b%d ", i)) {
			t.Errorf("s/qr/b%d missing after concurrent adds:\n%s", i, out)
		}
	}
}

// TestCredentialsFileErrors: a hand-edited file with mistakes is refused
// by New with every problem and its line.
func TestCredentialsFileErrors(t *testing.T) {
	dir := t.TempDir()
	h, _ := bcrypt.GenerateFromPassword([]byte("x"), bcrypt.MinCost)
	content := fmt.Sprintf(`users:
  - username: s/camera/a
    role: device
    bcrypt: %s
  - username: s/door/b
    role: device
    bcrypt: %s
  - username: s/camera/a
    role: device
    bcrypt: %s
  - username: viewer
    role: viewer
    bcrypt: %s
  - username: _x
    role: admin
    bcrypt: %s
`, h, h, h, h, h)
	if err := os.WriteFile(filepath.Join(dir, auth.DefaultCredentialsFile), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := auth.New(auth.Config{DataDir: dir})
	if err == nil {
		t.Fatal("New accepted a broken credentials file")
	}
	for _, want := range []string{`:5: users[1]: kind "door"`, `:8: users[2]: "s/camera/a" is already listed at line 2`, `:11: users[3]: viewer username "viewer" must be _<name>`, `:14: users[4]: unknown role "admin"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, auth.DefaultCredentialsFile), []byte("users: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.New(auth.Config{DataDir: dir}); err == nil || !strings.Contains(err.Error(), "line") {
		t.Errorf("malformed YAML: %v, want an error with the line", err)
	}
}

// TestConfigProblems: each bad limit is reported under its own key.
func TestConfigProblems(t *testing.T) {
	c := auth.Config{MaxConnections: -1, PublishRate: 0.5, PublishBurst: -2, MaxPacketSize: 100, MaxInflight: 70000}
	c.SetDefaults()
	ps := c.Problems()
	keys := map[string]bool{}
	for _, p := range ps {
		keys[p.Key] = true
	}
	for _, k := range []string{"max_connections", "publish_rate", "publish_burst", "max_packet_size", "max_inflight"} {
		if !keys[k] {
			t.Errorf("no problem reported for %s (got %v)", k, ps)
		}
	}
	if _, err := auth.New(c); err == nil || !strings.Contains(err.Error(), "broker.publish_rate") {
		t.Errorf("New: %v, want the problems", err)
	}
	d := auth.Config{}
	d.SetDefaults()
	if ps := d.Problems(); len(ps) != 0 {
		t.Errorf("defaults have problems: %v", ps)
	}
	if d.PublishRate != auth.DefaultPublishRate || d.MaxConnections != auth.DefaultMaxConnections || d.MaxPacketSize != auth.DefaultMaxPacketSize {
		t.Errorf("defaults: %+v", d)
	}
	if got := d.CredentialsPath("/var/lib/villagehub"); got != "/var/lib/villagehub/mqtt-credentials.yaml" {
		t.Errorf("CredentialsPath = %s", got)
	}
	d.CredentialsFile = "/etc/villagehub/creds.yaml"
	if got := d.CredentialsPath("/data"); got != "/etc/villagehub/creds.yaml" {
		t.Errorf("absolute CredentialsPath = %s", got)
	}
}
