package state

import (
	"fmt"
	"testing"
	"time"
)

type report struct {
	boot  string
	total int64
	ts    int // seconds after t0; -1 = no ts
}

var t0 = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

func run(reports []report) (sum int64, each []int64) {
	var c qrCounter
	for _, r := range reports {
		ts, has := time.Time{}, r.ts >= 0
		if has {
			ts = t0.Add(time.Duration(r.ts) * time.Second)
		}
		var boot []byte
		if r.boot != "" {
			boot = []byte(r.boot)
		}
		n := c.apply(boot, r.total, ts, has)
		sum += n
		each = append(each, n)
	}
	return sum, each
}

func TestQRCounterRules(t *testing.T) {
	cases := []struct {
		name    string
		reports []report
		want    int64
	}{
		{"increase within a boot", []report{{"a", 10, 1}, {"a", 15, 2}}, 15},
		{"duplicate adds nothing", []report{{"a", 10, 1}, {"a", 10, 1}, {"a", 10, 1}}, 10},
		{"smaller total in same boot is reordered", []report{{"a", 10, 1}, {"a", 15, 3}, {"a", 12, 2}}, 15},
		{"reordering never double counts", []report{{"a", 15, 3}, {"a", 10, 1}, {"a", 12, 2}, {"a", 16, 4}}, 16},
		{"new boot counts from zero", []report{{"a", 10, 1}, {"b", 3, 2}, {"b", 5, 3}}, 15},
		{"late message from earlier boot counts its increase", []report{{"a", 10, 1}, {"b", 3, 3}, {"a", 12, 2}}, 15},
		{"late duplicate from earlier boot adds nothing", []report{{"a", 10, 1}, {"b", 3, 3}, {"a", 10, 1}, {"a", 9, 1}}, 13},
		{"reboot to the same-looking total", []report{{"a", 5, 1}, {"b", 5, 2}}, 10},
		{"total zero", []report{{"a", 0, 1}, {"a", 0, 2}, {"a", 1, 3}}, 1},
		{"no boot: increases", []report{{"", 5, 1}, {"", 7, 2}}, 7},
		{"no boot: smaller with newer ts is a reset", []report{{"", 5, 1}, {"", 7, 2}, {"", 2, 3}}, 9},
		{"no boot: smaller with older ts adds nothing", []report{{"", 5, 1}, {"", 7, 3}, {"", 6, 2}}, 7},
		{"no boot: smaller with equal ts adds nothing", []report{{"", 7, 3}, {"", 6, 3}}, 7},
		{"no boot: smaller without ts adds nothing", []report{{"", 7, 3}, {"", 6, -1}}, 7},
		{"no boot: no ts at all", []report{{"", 3, -1}, {"", 5, -1}, {"", 5, -1}, {"", 4, -1}}, 5},
		{"no boot: late pre-reset report counts against its epoch",
			[]report{{"", 100, 1}, {"", 5, 3}, {"", 150, 2}}, 100 + 5 + 50},
		{"no boot: late report older than everything adds nothing", []report{{"", 10, 5}, {"", 20, 1}}, 10},
		{"no boot: replay of a whole sequence", []report{{"", 1, 1}, {"", 2, 2}, {"", 1, 3}, {"", 1, 1}, {"", 2, 2}, {"", 1, 3}}, 3},
	}
	for _, c := range cases {
		if got, each := run(c.reports); got != c.want {
			t.Errorf("%s: counted %d (%v), want %d", c.name, got, each, c.want)
		}
	}
}

func TestQRCounterRemembersEightBoots(t *testing.T) {
	var rs []report
	for i := range 8 {
		rs = append(rs, report{fmt.Sprintf("boot%d", i), 10, i})
	}
	// A late repeat of each of the 8 boots adds nothing.
	for i := range 8 {
		rs = append(rs, report{fmt.Sprintf("boot%d", i), 10, i})
	}
	if got, _ := run(rs); got != 80 {
		t.Fatalf("counted %d, want 80", got)
	}
	var c qrCounter
	for i := range 20 {
		c.apply([]byte(fmt.Sprintf("b%d", i)), 1, t0, true)
	}
	if len(c.Epochs) != maxBoots {
		t.Fatalf("kept %d epochs, want %d", len(c.Epochs), maxBoots)
	}
}
