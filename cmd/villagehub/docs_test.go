package main

import (
	"bytes"
	"cmp"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"villagehub/hub/store"
	"villagehub/hub/testenv"
)

// documentedCommands finds every villagehub command the README and docs
// show, in shell blocks ("./villagehub check-config ...") and inline
// (`villagehub report qr --month 2026-11`), as argument lists.
func documentedCommands(t *testing.T) map[string][]string {
	t.Helper()
	files, _ := filepath.Glob("../../docs/*.md")
	files = append(files, "../../README.md")
	inline := regexp.MustCompile("`(?:\\./)?villagehub ([^`]+)`")
	block := regexp.MustCompile(`(?m)^\s*(?:\./)?villagehub ([a-z-][^#\n]*)`)
	out := map[string][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		var found []string
		for _, m := range inline.FindAllStringSubmatch(text, -1) {
			found = append(found, m[1])
		}
		// Shell blocks only: prose lines starting with "villagehub has" are
		// not commands.
		for _, blk := range regexp.MustCompile("(?s)```(?:sh|bash|console)?\n(.*?)```").FindAllStringSubmatch(text, -1) {
			for _, m := range block.FindAllStringSubmatch(blk[1], -1) {
				found = append(found, m[1])
			}
		}
		for _, c := range found {
			c = strings.TrimSpace(c)
			if c == "" || strings.ContainsAny(c, "<>|…") {
				continue // a placeholder, not a command to run as is
			}
			out[c] = strings.Fields(c)
		}
	}
	return out
}

// TestDocumentedCommandsRun: every villagehub command the docs show runs
// as shown (with a test config and temporary directories where it writes),
// except the ones that start a server or wait for input, which have their
// own tests.
func TestDocumentedCommandsRun(t *testing.T) {
	cmds := documentedCommands(t)
	if len(cmds) < 8 {
		t.Fatalf("found only %d documented commands: %v", len(cmds), cmds)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "v.yaml")
	// The reference config, with its data under the test's directory and a
	// public URL phones could reach.
	ref, err := os.ReadFile("../../configs/villagehub.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(ref), "data_dir: ./data", "data_dir: "+filepath.Join(dir, "data"), 1)
	cfg = strings.Replace(cfg, "public_url: http://hub.example.vn", "public_url: http://192.168.1.10:8080", 1)
	cfg = strings.Replace(cfg, "addr: 127.0.0.1:8080", "addr: "+testenv.FreeAddr(t), 1)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// The hub has run once: its store exists (report reads it).
	st, err := store.Open(store.Config{Dir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	// Adding a device comes before changing or removing it.
	order := func(c string) int {
		switch {
		case strings.HasPrefix(c, "device add"):
			return 0
		case strings.HasPrefix(c, "device remove"):
			return 2
		}
		return 1
	}
	keys := slices.Collect(maps.Keys(cmds))
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(cmp.Compare(order(a), order(b)), cmp.Compare(a, b)) })
	ran := 0
	for _, c := range keys {
		args := cmds[c]
		switch {
		case args[0] == "--demo", args[0] == "--config", args[0] == "probe-worker", args[0] == "hash-password":
			continue // servers and stdin readers: their own tests
		case args[0] == "cameras":
			// WS-Discovery multicasts: never on this machine's own
			// interfaces; TestCamerasDiscoverAdd runs it in a network
			// namespace of its own.
			continue
		case args[0] == "gateway" && (len(args) < 2 || args[1] != "salt"):
			continue // the gateway server: hub/gateway's tests run it
		case len(args) == 1 && (args[0] == "cert" || args[0] == "check-config"):
			continue // the command named in prose; its full form is shown elsewhere
		}
		run1 := append([]string(nil), args...)
		switch args[0] {
		case "check-config":
			for i, a := range run1 {
				if a == "configs/villagehub.yaml" {
					run1[i] = "../../configs/villagehub.yaml"
				}
			}
		case "qr":
			run1 = append(run1, "--config", cfgPath, "--out", t.TempDir())
		case "report":
			run1 = append(run1, "--config", cfgPath)
		case "gateway":
			run1 = []string{"gateway", "salt", filepath.Join(t.TempDir(), "salt")}
		case "device", "cert":
			run1 = append([]string{args[0], "--config", cfgPath}, args[1:]...)
		}
		var out, errb bytes.Buffer
		if code := run(run1, &out, &errb); code != 0 {
			t.Errorf("documented `villagehub %s` (run as %q) exits %d:\n%s%s", c, run1, code, out.String(), errb.String())
		}
		ran++
	}
	t.Logf("ran %d documented commands", ran)
}
