package report

import (
	"testing"
	"time"

	"villagehub/hub/state"
	"villagehub/hub/store"
)

// hours is a Source holding fixed hourly counts; the store's own tests
// cover how hours are written and read.
type hours []store.HourCount

func (h hours) QRHours(_, _ string, from, to time.Time) ([]store.HourCount, error) {
	var out []store.HourCount
	for _, c := range h {
		if !c.Hour.Before(from) && c.Hour.Before(to) {
			out = append(out, c)
		}
	}
	return out, nil
}

var vn, _ = time.LoadLocation("Asia/Ho_Chi_Minh")

func TestSeriesBucketsInVillageTime(t *testing.T) {
	src := hours{
		// 23:00 UTC on the 26th is 06:00 on the 27th in Vietnam.
		{Hour: time.Date(2026, 11, 26, 23, 0, 0, 0, time.UTC), Source: state.SourceMQTT, N: 3},
		{Hour: time.Date(2026, 11, 26, 16, 0, 0, 0, time.UTC), Source: state.SourcePrinted, N: 2}, // 23:00 on the 26th VN
		{Hour: time.Date(2026, 11, 26, 16, 0, 0, 0, time.UTC), Source: store.CountUnique, N: 1},
		{Hour: time.Date(2026, 11, 26, 16, 0, 0, 0, time.UTC), Source: store.CountBots, N: 7},
	}
	from := time.Date(2026, 11, 26, 0, 0, 0, 0, vn)
	pts, err := Series(src, "s", "b", from, from.AddDate(0, 0, 2), Day, vn)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 || pts[0].Total != 2 || pts[0].Printed != 2 || pts[0].Unique != 1 || pts[0].Bots != 7 ||
		pts[1].Total != 3 || pts[1].MQTT != 3 || !pts[1].Time.Equal(time.Date(2026, 11, 27, 0, 0, 0, 0, vn)) {
		t.Fatalf("daily points: %+v", pts)
	}
	pts, _ = Series(src, "s", "b", from, from.AddDate(0, 0, 2), Hour, vn)
	if len(pts) != 48 || pts[23].Total != 2 || pts[30].Total != 3 {
		t.Fatalf("hourly points: %d, [23]=%+v [30]=%+v", len(pts), pts[23], pts[30])
	}
	if _, err := Series(src, "s", "b", from, from.AddDate(3, 0, 0), Hour, vn); err == nil {
		t.Fatal("a three-year hourly series was not refused")
	}
	if _, err := ParseStep("week"); err == nil {
		t.Fatal("step week accepted")
	}
}

func TestMonthRowsBusiest(t *testing.T) {
	at := func(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, vn) }
	src := hours{
		{Hour: at(3, 8), Source: state.SourceMQTT, N: 4},
		{Hour: at(3, 17), Source: state.SourceMQTT, N: 1},
		{Hour: at(9, 8), Source: state.SourcePrinted, N: 3},
		{Hour: at(9, 8), Source: store.CountUnique, N: 2},
		{Hour: at(9, 8), Source: store.CountBots, N: 50}, // bots never make a day busy
		{Hour: at(12, 20), Source: store.CountBots, N: 99},
	}
	rows, err := MonthRows(src, []Board{{Site: "s", ID: "b"}}, at(1, 0), vn)
	if err != nil {
		t.Fatal(err)
	}
	r := rows[0]
	if r.Total != 8 || r.MQTT != 5 || r.Printed != 3 || r.Unique != 2 || r.Bots != 149 ||
		!r.BusiestDay.Equal(at(3, 0)) || r.BusiestDayScans != 5 || r.BusiestHour != 8 || r.BusiestHourScans != 7 {
		t.Fatalf("row: %+v", r)
	}
}
