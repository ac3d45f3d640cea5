package ui_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestTermsTableMatchesDashboard: every word in docs/terms.md's tables is
// the dashboard's word for that key, in both languages, so the page, the
// alerts and the reports say the same thing (issue 17, item 4).
func TestTermsTableMatchesDashboard(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/terms.md")
	if err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile("assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	vi, en, _ := strings.Cut(string(js), "\n    en: {")
	row := regexp.MustCompile("(?m)^\\| `([a-zA-Z_0-9]+)` \\| ([^|]+) \\| ([^|]+) \\|")
	n := 0
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		key, wantVI, wantEN := m[1], strings.TrimSpace(m[2]), strings.TrimSpace(m[3])
		n++
		for _, c := range []struct{ lang, text, want string }{{"vi", vi, wantVI}, {"en", en, wantEN}} {
			got := regexp.MustCompile(`\b` + key + `: '((?:[^'\\]|\\.)*)'`).FindStringSubmatch(c.text)
			if got == nil {
				t.Errorf("%s: the dashboard has no %s text", key, c.lang)
				continue
			}
			if w := strings.ReplaceAll(got[1], `\'`, `'`); w != c.want {
				t.Errorf("%s (%s): dashboard says %q, docs/terms.md %q", key, c.lang, w, c.want)
			}
		}
	}
	if n < 40 {
		t.Fatalf("read only %d terms from docs/terms.md", n)
	}
	// The words that must never be mixed up are the ones the issue named.
	for key, want := range map[string]string{"st_down": "Mất hình", "st_offline": "Mất kết nối", "st_poor": "Hình kém"} {
		if !strings.Contains(vi, key+": '"+want+"'") {
			t.Errorf("%s is not %q", key, want)
		}
	}
}

// TestEveryPageTextTranslated: every data-i18n key of the page has a
// Vietnamese and an English text, so the toggle never leaves a heading in
// the other language.
func TestEveryPageTextTranslated(t *testing.T) {
	html, err := os.ReadFile("assets/index.html")
	if err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile("assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	vi, en, _ := strings.Cut(string(js), "\n    en: {")
	keys := regexp.MustCompile(`data-i18n(?:-aria)?="([a-z0-9_]+)"`).FindAllStringSubmatch(string(html), -1)
	if len(keys) < 50 {
		t.Fatalf("only %d data-i18n keys", len(keys))
	}
	for _, k := range keys {
		for lang, text := range map[string]string{"vi": vi, "en": en} {
			if !regexp.MustCompile(`\b` + k[1] + `: '`).MatchString(text) {
				t.Errorf("%s has no %s text", k[1], lang)
			}
		}
	}
}
