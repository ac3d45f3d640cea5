package qrcode

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	zxmulti "github.com/makiuchi-d/gozxing/multi/qrcode"
	"golang.org/x/text/unicode/norm"
)

// popplerTool finds a poppler-utils program. The sheet tests need the real
// renderer (Debian's poppler-utils), so a missing one fails the test: a
// machine that can't prove the PDF renders must not report success.
func popplerTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (install Debian's poppler-utils: apt-get install -y --no-install-recommends poppler-utils): %v", name, err)
	}
	return p
}

var testSheet = Sheet{
	Title:     "Thôn Tân Ngữ 2",
	PublicURL: "http://hub.example.vn",
	Boards: []SheetBoard{
		{ID: "market-07", Name: "Chợ Bản, sạp 7"},
		{ID: "culture-house", Name: "Nhà văn hoá thôn"},
		{ID: "gate", Name: "Cổng làng"},
		{ID: "school", Name: "Trường mầm non Hoa Sen – điểm lẻ"},
		{ID: "clinic", Name: "Trạm y tế xã: lịch tiêm chủng, khám sức khoẻ định kỳ cho người cao tuổi"},
		{ID: "well", Name: ""},
		// The seventh board starts a second page; its name arrives
		// decomposed (NFD) as some Vietnamese keyboards type it.
		{ID: "pagoda", Name: norm.NFD.String("Đình làng Quảng Bá")},
	},
	Created: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC),
}

func writeTestSheet(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "sheet.pdf")
	var buf bytes.Buffer
	if err := WriteSheetPDF(&buf, testSheet); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte("%PDF-")) {
		t.Fatalf("output does not start like a PDF: %q", buf.Bytes()[:16])
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSheetPDFTextHasVietnameseNames(t *testing.T) {
	pdftotext := popplerTool(t, "pdftotext")
	path := writeTestSheet(t)
	out, err := exec.Command(pdftotext, "-layout", "-enc", "UTF-8", path, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		"Thôn Tân Ngữ 2",
		"Chợ Bản, sạp 7",
		"Nhà văn hoá thôn",
		"Cổng làng",
		// A name too wide for one line wraps at a space onto a second.
		"Trường mầm non Hoa Sen –",
		"điểm lẻ",
		"Đình làng Quảng Bá", // NFC, although it was given as NFD
		"http://hub.example.vn/q/market-07",
		"http://hub.example.vn/q/well",
		"well", // a board without a name prints its id
		"Quét mã bằng camera điện thoại",
		"Trang 1/2",
		"Trang 2/2",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("pdftotext output lacks %q:\n%s", want, text)
		}
	}
	// The long clinic name is cut to two lines with an ellipsis, never
	// spilling into the next card.
	if strings.Contains(text, "người cao tuổi") {
		t.Errorf("over-long name was not shortened:\n%s", text)
	}
	if !strings.Contains(text, "…") {
		t.Errorf("shortened name has no ellipsis:\n%s", text)
	}
}

func TestSheetPDFRendersAndCodesScan(t *testing.T) {
	pdftoppm := popplerTool(t, "pdftoppm")
	path := writeTestSheet(t)
	prefix := filepath.Join(filepath.Dir(path), "page")
	if out, err := exec.Command(pdftoppm, "-r", "100", "-png", path, prefix).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm failed to render the sheet: %v\n%s", err, out)
	}
	pages, _ := filepath.Glob(prefix + "*.png")
	sort.Strings(pages)
	if len(pages) != 2 {
		t.Fatalf("rendered %d pages, want 2 (7 boards, 6 per page): %v", len(pages), pages)
	}
	var got []string
	for i, p := range pages {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("page %d: %v", i+1, err)
		}
		// A4 at 100 dpi is 827 × 1170 px.
		if b := img.Bounds(); b.Dx() < 820 || b.Dx() > 835 || b.Dy() < 1160 || b.Dy() > 1175 {
			t.Fatalf("page %d is %v, not A4 at 100 dpi", i+1, b)
		}
		got = append(got, scanPage(t, img)...)
	}
	sort.Strings(got)
	var want []string
	for _, b := range testSheet.Boards {
		want = append(want, "http://hub.example.vn/q/"+b.ID)
	}
	sort.Strings(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("codes scanned from the rendered sheet:\n got %v\nwant %v", got, want)
	}
}

// scanPage decodes every QR code on a rendered page, card by card, the way a
// phone sees one card at a time.
func scanPage(t *testing.T, img image.Image) []string {
	t.Helper()
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := zxmulti.NewQRCodeMultiReader().DecodeMultiple(bmp, nil)
	if err != nil {
		t.Fatalf("no QR code found on the rendered page: %v", err)
	}
	var out []string
	for _, r := range res {
		out = append(out, r.GetText())
	}
	return out
}

func TestSheetPDFErrors(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSheetPDF(&buf, Sheet{Title: "X", PublicURL: "http://h"}); err == nil || !strings.Contains(err.Error(), "no boards") {
		t.Fatalf("want 'no boards' error, got %v", err)
	}
	if err := WriteSheetPDF(&buf, Sheet{Title: " ", PublicURL: "http://h", Boards: []SheetBoard{{ID: "a"}}}); err == nil {
		t.Fatal("empty title accepted")
	}
	if err := WriteSheetPDF(&buf, Sheet{Title: "X", PublicURL: "h", Boards: []SheetBoard{{ID: "a"}}}); err == nil || !strings.Contains(err.Error(), `board "a"`) {
		t.Fatalf("want a board-named error for a bad public URL, got %v", err)
	}
	if buf.Len() != 0 {
		t.Fatalf("failed calls wrote %d bytes", buf.Len())
	}
}
