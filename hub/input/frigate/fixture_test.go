package frigate_test

import (
	"bufio"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

type msg struct {
	topic   string
	payload []byte
}

// fixtureEpoch is the last time in testdata/sequence.txt (the stats'
// last_updated); replays move every time so that it lands on now.
const fixtureEpoch = 1607123990

var unixRE = regexp.MustCompile(`\b16071239\d\d(\.\d+)?\b`)

// load reads testdata/<name>: "<topic> <payload>" lines, # comments. Times
// (unix seconds as Frigate writes them) move by now - fixtureEpoch whole
// seconds, keeping their digits.
func load(t testing.TB, name string, now time.Time) []msg {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	shift := now.Unix() - fixtureEpoch
	var out []msg
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		topic, payload, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("%s: bad line %q", name, line)
		}
		payload = unixRE.ReplaceAllStringFunc(payload, func(s string) string {
			whole, frac, _ := strings.Cut(s, ".")
			n, _ := strconv.ParseInt(whole, 10, 64)
			if frac != "" {
				frac = "." + frac
			}
			return strconv.FormatInt(n+shift, 10) + frac
		})
		out = append(out, msg{topic, []byte(payload)})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// fixtureTime is a fixture's time moved as load moves it.
func fixtureTime(sec float64, now time.Time) time.Time {
	shift := now.Unix() - fixtureEpoch
	return time.Unix(0, int64((sec+float64(shift))*1e9))
}
