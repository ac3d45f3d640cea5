package report

import (
	"fmt"
	"io"
	"time"

	"github.com/go-pdf/fpdf"
	"golang.org/x/text/unicode/norm"

	"villagehub/hub/qrcode"
)

// MonthReport is one month's report as printed.
type MonthReport struct {
	// Title names the hub or village, e.g. "Thôn Tân Ngữ 2".
	Title    string
	Month    time.Time
	Location *time.Location
	Rows     []Row
	// Created is stamped into the PDF; zero means now.
	Created time.Time
}

// WriteMonthPDF writes the monthly QR report as an A4 landscape PDF with
// Vietnamese headings and the legend, in the font the QR sheets use (the
// PDF core fonts have no Vietnamese letters).
func WriteMonthPDF(w io.Writer, m MonthReport) error {
	regular, bold := qrcode.Font()
	pdf := fpdf.New("L", "mm", "A4", "")
	pdf.SetCompression(true)
	created := m.Created
	if created.IsZero() {
		created = time.Now()
	}
	pdf.SetCreationDate(created)
	pdf.SetModificationDate(created)
	title := fmt.Sprintf("Lượt quét mã QR tháng %s", m.Month.Format("01/2006"))
	pdf.SetTitle(title+" – "+m.Title, true)
	pdf.SetCreator("villagehub", true)
	pdf.SetLang("vi")
	pdf.AddUTF8FontFromBytes("DejaVuSans", "", regular)
	pdf.AddUTF8FontFromBytes("DejaVuSans", "B", bold)
	pdf.SetMargins(12, 12, 12)
	pdf.SetAutoPageBreak(true, 12)
	pdf.AddPage()
	pdf.SetFont("DejaVuSans", "B", 16)
	pdf.CellFormat(0, 8, title, "", 1, "L", false, 0, "")
	pdf.SetFont("DejaVuSans", "", 10)
	sub := norm.NFC.String(m.Title)
	if m.Location != nil {
		sub += " · giờ " + m.Location.String()
	}
	pdf.CellFormat(0, 6, sub, "", 1, "L", false, 0, "")
	pdf.Ln(2)

	widths := []float64{26, 26, 50, 16, 24, 22, 20, 14, 38, 37}
	pdf.SetFont("DejaVuSans", "B", 8.5)
	pdf.SetFillColor(230, 236, 245)
	// Short headings so each fits its column; the legend below says
	// what each means.
	for i, h := range []string{"thôn/bản", "mã bảng", "tên bảng", "tổng", "thiết bị đếm", "quét mã in", "khác nhau", "bot", "ngày đông nhất", "giờ đông nhất"} {
		pdf.CellFormat(widths[i], 7, h, "1", 0, "C", true, 0, "")
	}
	pdf.Ln(-1)
	pdf.SetFont("DejaVuSans", "", 8.5)
	var sum Row
	for _, r := range m.Rows {
		cells := []string{r.Site, r.ID, norm.NFC.String(r.Name), u(r.Total), u(r.MQTT), u(r.Printed), uniqueText(r, "—"), u(r.Bots), busiestDay(r), busiestHour(r)}
		for i, c := range cells {
			align := "L"
			if i >= 3 && i <= 7 {
				align = "R"
			}
			pdf.CellFormat(widths[i], 6, fitText(pdf, c, widths[i]-2), "1", 0, align, false, 0, "")
		}
		pdf.Ln(-1)
		sum.Total, sum.MQTT, sum.Printed, sum.Unique, sum.Bots = sum.Total+r.Total, sum.MQTT+r.MQTT, sum.Printed+r.Printed, sum.Unique+r.Unique, sum.Bots+r.Bots
	}
	pdf.SetFont("DejaVuSans", "B", 8.5)
	for i, c := range []string{"", "", "tất cả các bảng", u(sum.Total), u(sum.MQTT), u(sum.Printed), uniqueText(sum, "—"), u(sum.Bots), "", ""} {
		align := "L"
		if i >= 3 && i <= 7 {
			align = "R"
		}
		pdf.CellFormat(widths[i], 6, c, "1", 0, align, false, 0, "")
	}
	pdf.Ln(8)
	pdf.SetFont("DejaVuSans", "", 9)
	for _, l := range Legend {
		pdf.MultiCell(0, 5, l, "", "L", false)
	}
	if err := pdf.Output(w); err != nil {
		return fmt.Errorf("writing the report PDF: %w", err)
	}
	return nil
}

// fitText cuts s with "…" so it fits width mm in the current font.
func fitText(pdf *fpdf.Fpdf, s string, width float64) string {
	if pdf.GetStringWidth(s) <= width {
		return s
	}
	r := []rune(s)
	for len(r) > 1 && pdf.GetStringWidth(string(r)+"…") > width {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}
