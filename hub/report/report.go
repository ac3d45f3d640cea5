// Package report turns hourly QR counts into the series and monthly tables
// the village head reads: scans per hour, day or month in the village's
// time zone, and per board the month's total, unique scans, bot visits and
// busiest day and hour.
package report

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"villagehub/hub/state"
	"villagehub/hub/store"
)

// Source gives a board's hourly counts with from <= hour < to. The
// embedded store implements it; so does the InfluxDB reader.
type Source interface {
	QRHours(site, board string, from, to time.Time) ([]store.HourCount, error)
}

// Step is a series' bucket size.
type Step string

const (
	Hour  Step = "hour"
	Day   Step = "day"
	Month Step = "month"
)

// ParseStep reads a step name.
func ParseStep(s string) (Step, error) {
	switch Step(s) {
	case Hour, Day, Month:
		return Step(s), nil
	case "":
		return Day, nil
	}
	return "", fmt.Errorf("step must be hour, day or month, not %q", s)
}

// MaxPoints bounds a series (a year of hours is 8,760).
const MaxPoints = 10000

// Point is one bucket of a series.
type Point struct {
	Time time.Time `json:"time"`
	// Total = MQTT + Printed: the scans counted.
	Total   uint64 `json:"total"`
	MQTT    uint64 `json:"mqtt"`
	Printed uint64 `json:"printed"`
	// Unique printed-code scans; link-preview/bot visits and rate-limited
	// visits, which are not in Total.
	Unique      uint64 `json:"unique"`
	Bots        uint64 `json:"bots"`
	RateLimited uint64 `json:"rate_limited"`
}

func (p *Point) add(h store.HourCount) {
	switch h.Source {
	case state.SourceMQTT:
		p.MQTT += h.N
		p.Total += h.N
	case state.SourcePrinted:
		p.Printed += h.N
		p.Total += h.N
	case store.CountUnique:
		p.Unique += h.N
	case store.CountBots:
		p.Bots += h.N
	case store.CountRateLimited:
		p.RateLimited += h.N
	}
}

// truncate is the start of t's bucket in loc.
func truncate(t time.Time, step Step, loc *time.Location) time.Time {
	t = t.In(loc)
	switch step {
	case Hour:
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, loc)
	case Month:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, loc)
	}
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
}

func next(t time.Time, step Step) time.Time {
	switch step {
	case Hour:
		return t.Add(time.Hour)
	case Month:
		return t.AddDate(0, 1, 0)
	}
	return t.AddDate(0, 0, 1)
}

// Series returns one point per bucket from from's bucket up to to, with
// empty buckets as zeros.
func Series(src Source, site, board string, from, to time.Time, step Step, loc *time.Location) ([]Point, error) {
	if !from.Before(to) {
		return nil, fmt.Errorf("from must be before to")
	}
	start := truncate(from, step, loc)
	var pts []Point
	idx := map[time.Time]int{}
	for t := start; t.Before(to); t = next(t, step) {
		if len(pts) == MaxPoints {
			return nil, fmt.Errorf("more than %d points: use a larger step or a shorter range", MaxPoints)
		}
		idx[t] = len(pts)
		pts = append(pts, Point{Time: t})
	}
	hours, err := src.QRHours(site, board, start, to)
	if err != nil {
		return nil, err
	}
	for _, h := range hours {
		if i, ok := idx[truncate(h.Hour, step, loc)]; ok {
			pts[i].add(h)
		}
	}
	return pts, nil
}

// WriteSeriesCSV writes a series as CSV with a header row.
func WriteSeriesCSV(w io.Writer, pts []Point) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"time", "total", "mqtt", "printed", "unique", "bots", "rate_limited"})
	for _, p := range pts {
		_ = cw.Write([]string{p.Time.Format(time.RFC3339), u(p.Total), u(p.MQTT), u(p.Printed), u(p.Unique), u(p.Bots), u(p.RateLimited)})
	}
	cw.Flush()
	return cw.Error()
}

func u(n uint64) string { return strconv.FormatUint(n, 10) }

// Board names a board in a report.
type Board struct{ Site, ID, Name string }

// Row is one board's month.
type Row struct {
	Board
	Total, MQTT, Printed, Unique, Bots, RateLimited uint64
	// BusiestDay is the date with the most scans (zero if none);
	// BusiestHour the hour of the day (0-23) with the most scans over the
	// month, -1 if none.
	BusiestDay       time.Time
	BusiestDayScans  uint64
	BusiestHour      int
	BusiestHourScans uint64
}

// MonthRows builds the month's row for every board, in board order.
func MonthRows(src Source, boards []Board, month time.Time, loc *time.Location) ([]Row, error) {
	from := time.Date(month.Year(), month.Month(), 1, 0, 0, 0, 0, loc)
	to := from.AddDate(0, 1, 0)
	rows := make([]Row, 0, len(boards))
	for _, b := range boards {
		hours, err := src.QRHours(b.Site, b.ID, from, to)
		if err != nil {
			return nil, fmt.Errorf("board %s/%s: %w", b.Site, b.ID, err)
		}
		r := Row{Board: b, BusiestHour: -1}
		var p Point
		days := map[time.Time]uint64{}
		var byHour [24]uint64
		for _, h := range hours {
			p.add(h)
			if h.Source == state.SourceMQTT || h.Source == state.SourcePrinted {
				days[truncate(h.Hour, Day, loc)] += h.N
				byHour[h.Hour.In(loc).Hour()] += h.N
			}
		}
		r.Total, r.MQTT, r.Printed, r.Unique, r.Bots, r.RateLimited = p.Total, p.MQTT, p.Printed, p.Unique, p.Bots, p.RateLimited
		for d, n := range days {
			if n > r.BusiestDayScans || (n == r.BusiestDayScans && d.Before(r.BusiestDay)) {
				r.BusiestDay, r.BusiestDayScans = d, n
			}
		}
		for h, n := range byHour {
			if n > r.BusiestHourScans {
				r.BusiestHour, r.BusiestHourScans = h, n
			}
		}
		rows = append(rows, r)
	}
	slices.SortStableFunc(rows, func(a, b Row) int { return cmp.Or(cmp.Compare(a.Site, b.Site), cmp.Compare(a.ID, b.ID)) })
	return rows, nil
}

// UniqueKnown tells whether the row's Unique means anything: unique
// scans are only measured for printed codes (phones opening /q/<board>);
// a board that counts its own scans (MQTT) cannot tell who scanned, so its
// unique figure is unknown, not zero.
func (r Row) UniqueKnown() bool { return r.Printed > 0 }

func uniqueText(r Row, unknown string) string {
	if !r.UniqueKnown() {
		return unknown
	}
	return u(r.Unique)
}

func busiestDay(r Row) string {
	if r.BusiestDayScans == 0 {
		return "-"
	}
	return fmt.Sprintf("%s (%d)", r.BusiestDay.Format("02/01/2006"), r.BusiestDayScans)
}

func busiestHour(r Row) string {
	if r.BusiestHour < 0 {
		return "-"
	}
	return fmt.Sprintf("%02d:00-%02d:00 (%d)", r.BusiestHour, (r.BusiestHour+1)%24, r.BusiestHourScans)
}

// Headings of the monthly report, in Vietnamese (the village head's
// language; docs/terms.md has the words and their English).
var (
	tableHead = []string{"thôn/bản", "mã bảng", "tên bảng", "tổng", "thiết bị đếm", "quét mã in", "người quét khác nhau", "bot", "ngày đông nhất", "giờ đông nhất"}
	csvHead   = []string{"Thôn/bản", "Mã bảng", "Tên bảng", "Tổng lượt quét", "Thiết bị đếm", "Quét mã in",
		"Người quét khác nhau (mã in)", "Bot, xem trước liên kết", "Quá giới hạn", "Ngày đông nhất", "Lượt ngày đông nhất",
		"Giờ đông nhất", "Lượt giờ đông nhất"}
	// Legend explains each figure in one line; the table, the PDF and the
	// dashboard say the same.
	Legend = []string{
		"Tổng = thiết bị đếm + quét mã in (lượt đã đếm).",
		"Thiết bị đếm: bảng tự đếm và gửi về qua MQTT; không biết ai quét.",
		"Quét mã in: điện thoại mở mã QR in trên giấy (/q/<bảng>).",
		"Người quét khác nhau: lượt quét mã in từ điện thoại chưa quét bảng này gần đây; \"—\" = bảng chỉ có thiết bị đếm, không đo được.",
		"Bot: xem trước liên kết và máy tự động, không tính vào tổng.",
	}
)

// WriteTable prints the rows as an aligned table, with a total line and
// the legend.
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(tableHead, "\t")+"\t")
	var sum Row
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%d\t%s\t%s\t\n", r.Site, r.ID, r.Name, r.Total, r.MQTT, r.Printed,
			uniqueText(r, "—"), r.Bots, busiestDay(r), busiestHour(r))
		sum.Total, sum.MQTT, sum.Printed, sum.Unique, sum.Bots = sum.Total+r.Total, sum.MQTT+r.MQTT, sum.Printed+r.Printed, sum.Unique+r.Unique, sum.Bots+r.Bots
	}
	fmt.Fprintf(tw, "\t\ttất cả các bảng\t%d\t%d\t%d\t%s\t%d\t\t\t\n", sum.Total, sum.MQTT, sum.Printed, uniqueText(sum, "—"), sum.Bots)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\n"+strings.Join(Legend, "\n"))
	return err
}

// BOM starts the CSV so that Excel reads it as UTF-8 ("Chợ Bản" and not
// "Chá»£ Báº£n"); other tools skip it.
const BOM = "\ufeff"

// WriteCSV writes the rows as CSV for a spreadsheet: a UTF-8 byte-order
// mark, Vietnamese headings, dates as YYYY-MM-DD, and an empty unique cell
// where unique scans are not measured.
func WriteCSV(w io.Writer, rows []Row) error {
	if _, err := io.WriteString(w, BOM); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	_ = cw.Write(csvHead)
	for _, r := range rows {
		day, hour := "", ""
		if r.BusiestDayScans > 0 {
			day = r.BusiestDay.Format("2006-01-02")
		}
		if r.BusiestHour >= 0 {
			hour = strconv.Itoa(r.BusiestHour)
		}
		_ = cw.Write([]string{r.Site, r.ID, r.Name, u(r.Total), u(r.MQTT), u(r.Printed), uniqueText(r, ""), u(r.Bots), u(r.RateLimited),
			day, u(r.BusiestDayScans), hour, u(r.BusiestHourScans)})
	}
	cw.Flush()
	return cw.Error()
}
