package configs

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"villagehub/hub/config"
)

// keyLine is a line naming a key: "key:", "- key:", or the same behind a
// comment marker (a commented-out example, which shows a key without
// setting it).
var flowItem = regexp.MustCompile(`^(\s*)- (\{.*\})\s*(#.*)?$`)

var keyLine = regexp.MustCompile(`^(\s*)(- )?([a-z][a-z0-9_]*):(\s+(.*))?$`)

// shownKeys lists the key paths villagehub.yaml shows, set or commented
// out, as "http.auth.users[].name". Nesting comes from the column a key
// starts at; a comment's "# " is taken away, so an example commented out
// in place ("  # key: v" under "  other:") nests where it would if
// uncommented.
func shownKeys(t *testing.T, text string) map[string]bool {
	t.Helper()
	shown := map[string]bool{}
	type level struct {
		col  int
		path string
	}
	var stack []level
	parent := func(col int) string {
		for len(stack) > 0 && stack[len(stack)-1].col >= col {
			stack = stack[:len(stack)-1]
		}
		if len(stack) == 0 {
			return ""
		}
		return stack[len(stack)-1].path
	}
	join := func(p, k string) string {
		if p == "" {
			return k
		}
		return p + "." + k
	}
	var flow func(prefix string, v any)
	flow = func(prefix string, v any) {
		switch m := v.(type) {
		case map[string]any:
			for k, x := range m {
				shown[join(prefix, k)] = true
				flow(join(prefix, k), x)
			}
		case []any:
			for _, x := range m {
				flow(prefix+"[]", x)
			}
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if i := strings.Index(line, "#"); i >= 0 && strings.TrimSpace(line[:i]) == "" {
			line = line[:i] + strings.TrimPrefix(line[i+1:], " ")
		}
		if m := flowItem.FindStringSubmatch(line); m != nil {
			// "- { id: gate, site: ... }": a list item written on one line.
			parent(len(m[1]))
			for len(stack) > 0 && strings.HasSuffix(stack[len(stack)-1].path, "[]") {
				stack = stack[:len(stack)-1]
			}
			p := parent(len(m[1])) + "[]"
			var x any
			if err := yaml.Unmarshal([]byte(m[2]), &x); err == nil {
				flow(p, x)
			}
			continue
		}
		m := keyLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		col := len(m[1])
		p := parent(col)
		if m[2] != "" {
			// A list item: its parent is the list's key, not an item of
			// the same list indented slightly differently.
			for len(stack) > 0 && strings.HasSuffix(stack[len(stack)-1].path, "[]") {
				stack = stack[:len(stack)-1]
			}
			p = parent(col)
		}
		if m[2] != "" {
			p += "[]"
			stack = append(stack, level{col, p})
			col += 2
		}
		path := join(p, m[3])
		shown[path] = true
		stack = append(stack, level{col, path})
		if v := strings.TrimSpace(m[5]); strings.HasPrefix(v, "{") || strings.HasPrefix(v, "[") {
			var x any
			if err := yaml.Unmarshal([]byte(v), &x); err == nil {
				flow(path, x)
			}
		}
	}
	return shown
}

var unmarshaler = reflect.TypeFor[yaml.Unmarshaler]()

// typeKeys lists every key path of the config type. A struct type used
// at several paths (per-camera probe settings and probe:) is listed in
// full under each; typeOf tells which struct type a path's fields belong to.
func typeKeys(t reflect.Type, prefix string, out map[string]string, owner map[string]reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice:
		typeKeys(t.Elem(), prefix+"[]", out, owner)
		return
	case reflect.Struct:
	default:
		return
	}
	if reflect.PointerTo(t).Implements(unmarshaler) || t.Implements(unmarshaler) {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if strings.Contains(opts, "inline") {
			typeKeys(f.Type, prefix, out, owner)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		p := name
		if prefix != "" {
			p = prefix + "." + name
		}
		out[p] = f.Name
		owner[p] = t
		typeKeys(f.Type, p, out, owner)
	}
}

// TestReferenceConfigShowsEveryKey: villagehub.yaml calls itself the
// commented reference of every setting, so every key the config type
// reads must appear in it, set or as a commented-out example. A struct
// type used in several places (probe settings globally and per camera)
// needs its fields shown in one of them.
func TestReferenceConfigShowsEveryKey(t *testing.T) {
	b, err := os.ReadFile("villagehub.yaml")
	if err != nil {
		t.Fatal(err)
	}
	shown := shownKeys(t, string(b))
	keys, owner := map[string]string{}, map[string]reflect.Type{}
	typeKeys(reflect.TypeFor[config.Config](), "", keys, owner)
	// Which (type, field) pairs are shown somewhere.
	shownField := map[string]bool{}
	for p := range keys {
		if shown[p] {
			shownField[owner[p].String()+"."+keys[p]] = true
		}
	}
	var missing []string
	for p := range keys {
		if shown[p] {
			continue
		}
		// The field of a shared struct type, shown at another path; its
		// own key (the last element's parent) must still be shown.
		if shownField[owner[p].String()+"."+keys[p]] {
			parent := p[:max(0, strings.LastIndex(p, "."))]
			if parent == "" || shown[strings.TrimSuffix(parent, "[]")] || shown[parent] {
				continue
			}
		}
		missing = append(missing, p)
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("configs/villagehub.yaml does not show %d keys the hub reads (add each, set or as a commented-out example):\n  %s",
			len(missing), strings.Join(missing, "\n  "))
	}
}

// TestReferenceConfigListsEveryEnvironmentVariable: the header names the
// environment variables that override settings; it must name exactly the
// ones the hub reads.
func TestReferenceConfigListsEveryEnvironmentVariable(t *testing.T) {
	b, err := os.ReadFile("villagehub.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var read []string
	c := &config.Config{}
	if err := c.ApplyEnv(func(name string) string { read = append(read, name); return "" }); err != nil {
		t.Fatal(err)
	}
	header, _, _ := strings.Cut(string(b), "\n\n# This hub")
	listed := regexp.MustCompile(`VILLAGEHUB_[A-Z_]+`).FindAllString(header, -1)
	slices.Sort(read)
	slices.Sort(listed)
	listed = slices.Compact(listed)
	if !slices.Equal(read, listed) {
		t.Errorf("the header lists %v; the hub reads %v", listed, read)
	}
}

// TestReferenceConfigIsValid: the reference parses and validates as
// check-config does.
func TestReferenceConfigIsValid(t *testing.T) {
	if _, err := config.Load("villagehub.yaml", func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
}

// TestComposeConfigsAreValid: the configs docker-compose.yml mounts load
// as check-config loads them.
func TestComposeConfigsAreValid(t *testing.T) {
	for _, f := range []string{"compose/villagehub.yaml", "compose/demo.yaml"} {
		if _, err := config.Load(f, func(string) string { return "" }); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
