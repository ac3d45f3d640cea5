package app_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"villagehub/hub/config"
	"villagehub/hub/web"
)

// documentedBlock is the shell block of doc that contains marker, as
// commands: comment lines dropped, continuation lines joined.
func documentedBlock(t *testing.T, doc, marker string) []string {
	t.Helper()
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		if !strings.Contains(m[1], marker) {
			continue
		}
		var cmds []string
		cur := ""
		for _, line := range strings.Split(m[1], "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") || strings.TrimSpace(line) == "" {
				continue
			}
			if strings.HasSuffix(line, "\\") {
				cur += strings.TrimSuffix(line, "\\")
				continue
			}
			cmds = append(cmds, cur+line)
			cur = ""
		}
		return cmds
	}
	t.Fatalf("%s has no sh block with %q", doc, marker)
	return nil
}

// TestDocumentedSilenceCommands runs docs/alerting.md's silence commands
// with curl, as written, against a hub with an admin token: each succeeds
// (curl -f), the silences are what the comments say (2 hours from now; a
// window that starts in the future), and the delete ends one. The same
// request without the token is refused, as the doc says, and a body over
// the limit answers 413 (issue 17, item 11).
func TestDocumentedSilenceCommands(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl not found (apt-get install -y curl): %v", err)
	}
	token, sha := web.NewToken()
	h := startHub(t, func(c *config.Config) {
		c.HTTP.Auth.Tokens = []config.HTTPToken{{Name: "script", TokenSHA256: sha, Role: "admin"}}
	})
	cmds := documentedBlock(t, "../../docs/alerting.md", "/api/v1/silences")
	env := append(os.Environ(), "HUB="+h.URL, "TOKEN="+token, "LC_ALL=C.UTF-8")
	id := ""
	var outs []string
	for _, c := range cmds {
		if strings.HasPrefix(c, "HUB=") || strings.HasPrefix(c, "TOKEN=") {
			continue // the test's own values, from the environment
		}
		c, _, _ = strings.Cut(c, "   #") // a trailing comment
		cmd := exec.Command("bash", "-c", c)
		cmd.Env = append(env, "ID="+id)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("documented command failed: %s\n%v: %s", c, err, out)
		}
		outs = append(outs, string(out))
		if id == "" && strings.Contains(c, "-X POST") {
			var s struct{ ID string }
			if err := json.Unmarshal(out, &s); err != nil || s.ID == "" {
				t.Fatalf("POST answer %s: %v", out, err)
			}
			id = s.ID
		}
	}
	if len(outs) != 4 {
		t.Fatalf("ran %d commands, want 4 (POST, POST, GET, DELETE): %q", len(outs), cmds)
	}
	type sil struct {
		ID       string
		Matchers struct{ Device, Site string }
		EndsAt   time.Time `json:"ends_at"`
		State    string
	}
	var first, window sil
	json.Unmarshal([]byte(outs[0]), &first)
	json.Unmarshal([]byte(outs[1]), &window)
	now := time.Now()
	if first.Matchers.Device != "gate" || first.EndsAt.Sub(now) < 119*time.Minute || first.EndsAt.Sub(now) > 121*time.Minute {
		t.Errorf("the 2-hour silence: %s", outs[0])
	}
	var w struct {
		StartsAt time.Time `json:"starts_at"`
		EndsAt   time.Time `json:"ends_at"`
	}
	json.Unmarshal([]byte(outs[1]), &w)
	// The documented command runs `date` twice: a second may tick between.
	if d := w.EndsAt.Sub(w.StartsAt); window.Matchers.Site != "ban-chieng" || !w.StartsAt.After(now) || d < 4*time.Hour || d > 4*time.Hour+time.Second {
		t.Errorf("the maintenance window must start in the future and last 4 h: %s", outs[1])
	}
	if !strings.Contains(outs[2], first.ID) || !strings.Contains(outs[2], window.ID) {
		t.Errorf("GET lists %s", outs[2])
	}
	var list []sil
	if err := json.Unmarshal([]byte(getBody(t, h.URL+"/api/v1/silences", token)), &list); err != nil {
		var wrapped struct{ Silences []sil }
		if err2 := json.Unmarshal([]byte(getBody(t, h.URL+"/api/v1/silences", token)), &wrapped); err2 != nil {
			t.Fatalf("silences: %v", err)
		}
		list = wrapped.Silences
	}
	for _, s := range list {
		if s.ID == first.ID && s.State != "expired" {
			t.Errorf("after DELETE the silence is %q, want expired", s.State)
		}
	}

	// Without the token: refused (the hub has a token, so 401).
	plain := exec.Command(curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", h.URL+"/api/v1/silences",
		"-H", "Content-Type: application/json", "-d", `{"device":"gate","duration":"2h"}`)
	if out, _ := plain.Output(); string(out) != "401" && string(out) != "403" {
		t.Errorf("POST without the token: %s, want 401 or 403", out)
	}
	// Too big: 413, for the silence limit (16 KiB) and the hub's (1 MiB).
	for _, n := range []int{20 << 10, 2 << 20} {
		big := fmt.Sprintf(`{"device":"gate","duration":"2h","comment":"%s"}`, strings.Repeat("x", n))
		c := exec.Command(curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", h.URL+"/api/v1/silences",
			"-H", "Authorization: Bearer "+token, "-H", "Content-Type: application/json", "--data-binary", "@-")
		c.Stdin = strings.NewReader(big)
		if out, _ := c.Output(); string(out) != "413" {
			t.Errorf("silence body of %d bytes: %s, want 413", len(big), out)
		}
	}
	// Every other body over 1 MiB too (docs/security.md): the login form,
	// reload.
	for _, path := range []string{"/login", "/api/v1/reload"} {
		c := exec.Command(curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", h.URL+path,
			"-H", "Authorization: Bearer "+token, "-H", "Content-Type: application/x-www-form-urlencoded", "--data-binary", "@-")
		c.Stdin = strings.NewReader("username=x&password=" + strings.Repeat("x", 2<<20))
		if out, _ := c.Output(); string(out) != "413" {
			t.Errorf("POST %s with 2 MiB: %s, want 413", path, out)
		}
	}
}

func getBody(t *testing.T, url, token string) string {
	t.Helper()
	out, err := exec.Command("curl", "-fsS", url, "-H", "Authorization: Bearer "+token).Output()
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return string(out)
}
