package report

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"villagehub/hub/state"
	"villagehub/hub/store"
	"villagehub/hub/testenv"
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

func monthFixture(t *testing.T) []Row {
	t.Helper()
	at := func(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, vn) }
	src := map[string]hours{
		"market-07": {{Hour: at(3, 8), Source: state.SourceMQTT, N: 4}},
		"bus-stop": {
			{Hour: at(9, 8), Source: state.SourcePrinted, N: 3},
			{Hour: at(9, 8), Source: store.CountUnique, N: 2},
		},
	}
	rows, err := MonthRows(sourceFunc(func(_, b string, from, to time.Time) ([]store.HourCount, error) {
		return src[b].QRHours("", "", from, to)
	}), []Board{{Site: "tan-ngu-2", ID: "market-07", Name: "Chợ Bản, sạp 7"}, {Site: "ban-chieng", ID: "bus-stop", Name: "Điểm chờ xe buýt"}}, at(1, 0), vn)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

type sourceFunc func(site, board string, from, to time.Time) ([]store.HourCount, error)

func (f sourceFunc) QRHours(site, board string, from, to time.Time) ([]store.HourCount, error) {
	return f(site, board, from, to)
}

// The CSV opens in Excel with its Vietnamese intact (a UTF-8 BOM), has
// Vietnamese headings, and leaves unique empty for a board that only
// counts on the device (unique is not measured there), not "0".
func TestMonthCSVForSpreadsheets(t *testing.T) {
	var b bytes.Buffer
	if err := WriteCSV(&b, monthFixture(t)); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b.Bytes(), []byte{0xEF, 0xBB, 0xBF}) {
		t.Fatalf("CSV does not start with the UTF-8 BOM: % x", b.Bytes()[:8])
	}
	recs, err := csv.NewReader(bytes.NewReader(b.Bytes()[3:])).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if recs[0][0] != "Thôn/bản" || recs[0][6] != "Người quét khác nhau (mã in)" {
		t.Errorf("headings %q", recs[0])
	}
	byID := map[string][]string{}
	for _, r := range recs[1:] {
		byID[r[1]] = r
	}
	if r := byID["market-07"]; r[2] != "Chợ Bản, sạp 7" || r[3] != "4" || r[4] != "4" || r[6] != "" {
		t.Errorf("device-counted board row %q: want unique empty", r)
	}
	if r := byID["bus-stop"]; r[5] != "3" || r[6] != "2" {
		t.Errorf("printed-code board row %q", r)
	}
}

func TestMonthTableVietnamese(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, monthFixture(t)); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"thôn/bản", "người quét khác nhau", "tất cả các bảng", "Thiết bị đếm: bảng tự đếm"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// market-07 counts on the device: its unique cell is a dash.
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "market-07") && !strings.Contains(l, "—") {
			t.Errorf("device-counted row %q: want — for unique", l)
		}
	}
}

// The PDF renders (poppler) with the Vietnamese headings, names and legend.
func TestMonthPDFRenders(t *testing.T) {
	var b bytes.Buffer
	if err := WriteMonthPDF(&b, MonthReport{Title: "Thôn Tân Ngữ 2", Month: time.Date(2026, 11, 1, 0, 0, 0, 0, vn), Location: vn, Rows: monthFixture(t)}); err != nil {
		t.Fatal(err)
	}
	txt := testenv.PDFText(t, b.Bytes())
	for _, want := range []string{"Lượt quét mã QR tháng 11/2026", "Thôn Tân Ngữ 2", "Chợ Bản, sạp 7", "Điểm chờ xe buýt", "Người quét khác nhau:", "thiết bị đếm", "tất cả các bảng", "Bot: xem trước liên kết"} {
		if !strings.Contains(txt, want) {
			t.Errorf("PDF text lacks %q:\n%s", want, txt)
		}
	}
}
