package qrcode

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-pdf/fpdf"
	"golang.org/x/text/unicode/norm"
)

// The sheet's font is DejaVu Sans (Debian fonts-dejavu-core 2.37), cut down to
// Latin and Vietnamese so the repository stays small; see fonts/README.md for
// how it was made and fonts/LICENSE for the (redistributable) licence. A font
// of our own is needed because the PDF core fonts have no Vietnamese glyphs:
// "Chợ Bản" would print as boxes.
var (
	//go:embed fonts/DejaVuSans.ttf
	fontRegular []byte
	//go:embed fonts/DejaVuSans-Bold.ttf
	fontBold []byte
)

const sheetFont = "DejaVuSans"

// Sheet is one site's printable page(s) of QR codes.
type Sheet struct {
	// Title is the site's name as villagers know it, e.g. "Thôn Tân Ngữ 2".
	Title string
	// PublicURL is the hub's public base URL; each code carries
	// <PublicURL>/q/<board id> (see BoardURL).
	PublicURL string
	// URLFor, if set, gives each board's printed URL instead (the QR
	// gateway's <public_url>/q/<village>/<board>: hub/gateway.PrintedURLs).
	URLFor func(board string) (string, error)
	// Boards are printed in the order given, six to a page.
	Boards []SheetBoard
	// Level is the error-correction level of the printed codes. Empty means
	// LevelQ: paper on a market stall gets dirty and torn, and Q still
	// decodes with a quarter of the code lost.
	Level Level
	// Created is stamped into the PDF metadata; zero means now.
	Created time.Time
}

// SheetBoard is one code on the sheet.
type SheetBoard struct {
	ID   string // the board's id, e.g. "market-07"
	Name string // the board's name, e.g. "Chợ Bản, sạp 7"; empty prints the id
}

// Page layout in millimetres: A4 portrait, a 2 × 3 grid of cut-out cards.
const (
	pageW, pageH    = 210.0, 297.0
	pageMargin      = 12.0
	headerH         = 22.0
	footerH         = 8.0
	cols, rows      = 2, 3
	perPage         = cols * rows
	qrSide          = 56.0 // ≈ 2.2 in: easy to scan from arm's length
	cardPad         = 4.0
	nameSize        = 13.0 // pt
	urlSize         = 8.5  // pt
	nameLineH       = 5.6
	urlLineH        = 4.0
	maxNameLines    = 2
	scanHintVI      = "Quét mã bằng camera điện thoại để mở trang của bảng tin."
	scanHintEN      = "Scan with your phone camera to open the board's page."
	pageLabelFormat = "Trang %d/%d · Page %d/%d"
)

// WriteSheetPDF writes sheet as an A4 PDF: the site's name on top of each
// page, then a card per board with its code (drawn as vectors), its name and
// the short URL it carries, so a code that no longer scans can still be typed.
func WriteSheetPDF(w io.Writer, sheet Sheet) error {
	if strings.TrimSpace(sheet.Title) == "" {
		return errors.New("sheet title (the site's name) is empty")
	}
	if len(sheet.Boards) == 0 {
		return fmt.Errorf("site %q has no boards to print", sheet.Title)
	}
	level := sheet.Level
	if level == "" {
		level = LevelQ
	}
	type card struct {
		name, url string
		m         Matrix
	}
	cards := make([]card, 0, len(sheet.Boards))
	for _, b := range sheet.Boards {
		u, err := BoardURL(sheet.PublicURL, b.ID)
		if sheet.URLFor != nil {
			u, err = sheet.URLFor(b.ID)
		}
		if err != nil {
			return fmt.Errorf("board %q: %w", b.ID, err)
		}
		m, err := Encode(u, level)
		if err != nil {
			return fmt.Errorf("board %q: %w", b.ID, err)
		}
		name := strings.TrimSpace(b.Name)
		if name == "" {
			name = b.ID
		}
		// Vietnamese typed with some keyboards arrives decomposed (o + horn
		// + dot below); the PDF writer does no mark positioning, so only the
		// precomposed letters the font carries print correctly.
		cards = append(cards, card{name: norm.NFC.String(name), url: u, m: m})
	}
	title := norm.NFC.String(strings.TrimSpace(sheet.Title))

	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetCompression(true)
	pdf.SetCatalogSort(true)
	created := sheet.Created
	if created.IsZero() {
		created = time.Now()
	}
	pdf.SetCreationDate(created)
	pdf.SetModificationDate(created)
	pdf.SetTitle("Mã QR – "+title, true)
	pdf.SetCreator("villagehub", true)
	pdf.SetLang("vi")
	pdf.AddUTF8FontFromBytes(sheetFont, "", fontRegular)
	pdf.AddUTF8FontFromBytes(sheetFont, "B", fontBold)
	pdf.SetMargins(pageMargin, pageMargin, pageMargin)
	pdf.SetAutoPageBreak(false, 0)

	pages := (len(cards) + perPage - 1) / perPage
	cardW := (pageW - 2*pageMargin) / cols
	cardH := (pageH - 2*pageMargin - headerH - footerH) / rows
	for p := 0; p < pages; p++ {
		pdf.AddPage()
		// Header: the site's name, and how to use the codes.
		pdf.SetTextColor(0, 0, 0)
		pdf.SetFont(sheetFont, "B", 20)
		pdf.SetXY(pageMargin, pageMargin)
		pdf.CellFormat(pageW-2*pageMargin, 9, title, "", 1, "L", false, 0, "")
		pdf.SetFont(sheetFont, "", 9.5)
		pdf.SetTextColor(60, 60, 60)
		pdf.CellFormat(pageW-2*pageMargin, 5, scanHintVI, "", 1, "L", false, 0, "")
		pdf.CellFormat(pageW-2*pageMargin, 5, scanHintEN, "", 1, "L", false, 0, "")

		for i := 0; i < perPage; i++ {
			idx := p*perPage + i
			if idx >= len(cards) {
				break
			}
			c := cards[idx]
			x := pageMargin + float64(i%cols)*cardW
			y := pageMargin + headerH + float64(i/cols)*cardH

			// Dashed cut line around the card.
			pdf.SetDrawColor(170, 170, 170)
			pdf.SetLineWidth(0.2)
			pdf.SetDashPattern([]float64{1.5, 1.5}, 0)
			pdf.Rect(x+1, y+1, cardW-2, cardH-2, "D")
			pdf.SetDashPattern(nil, 0)

			// The code, centred, as filled rectangles: one per run of dark
			// modules, with the standard 4-module quiet zone left white.
			n := float64(len(c.m) + 2*DefaultMargin)
			mod := qrSide / n
			qx := x + (cardW-qrSide)/2
			qy := y + cardPad
			pdf.SetFillColor(0, 0, 0)
			eachRun(c.m, func(mx, my, mw int) {
				// A hair of overlap so no white seams appear between
				// neighbouring rows when a viewer anti-aliases.
				pdf.Rect(qx+float64(mx+DefaultMargin)*mod, qy+float64(my+DefaultMargin)*mod,
					float64(mw)*mod, mod+0.01, "F")
			})

			// Name (up to two lines, bold), then the short URL.
			pdf.SetTextColor(0, 0, 0)
			pdf.SetFont(sheetFont, "B", nameSize)
			lines := pdf.SplitText(c.name, cardW-2*cardPad)
			if len(lines) > maxNameLines {
				lines = lines[:maxNameLines]
				lines[maxNameLines-1] = strings.TrimRight(lines[maxNameLines-1], " ") + "…"
			}
			ty := qy + qrSide + 1.5
			for _, l := range lines {
				pdf.SetXY(x+cardPad, ty)
				pdf.CellFormat(cardW-2*cardPad, nameLineH, l, "", 0, "C", false, 0, "")
				ty += nameLineH
			}
			pdf.SetFont(sheetFont, "", urlSize)
			pdf.SetTextColor(40, 40, 40)
			pdf.SetXY(x+cardPad, ty+0.5)
			pdf.CellFormat(cardW-2*cardPad, urlLineH, c.url, "", 0, "C", false, 0, "")
		}

		// Footer with page numbers, so a sheet that falls apart can be put
		// back in order.
		pdf.SetFont(sheetFont, "", 8)
		pdf.SetTextColor(90, 90, 90)
		pdf.SetXY(pageMargin, pageH-pageMargin-footerH+3)
		pdf.CellFormat(pageW-2*pageMargin, 4, fmt.Sprintf(pageLabelFormat, p+1, pages, p+1, pages), "", 0, "R", false, 0, "")
	}
	if err := pdf.Output(w); err != nil {
		return fmt.Errorf("writing PDF sheet for %q: %w", sheet.Title, err)
	}
	return nil
}

// Font is the embedded DejaVu Sans (regular and bold, Latin and
// Vietnamese), for other PDFs of the hub (the monthly QR report).
func Font() (regular, bold []byte) { return fontRegular, fontBold }
