package qrcode

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"image/png"
	"io"
	"net/url"
	"strings"
	"testing"

	"villagehub/hub/testenv"
)

func TestPNGDecodesToExactURLAtEveryLevel(t *testing.T) {
	urls := []string{
		"http://hub.example.vn/q/market-07",
		"https://thon-tan-ngu-2.example.vn/village/hub/q/nha-van-hoa_thon-2",
		"http://192.168.1.10:8080/q/a",
	}
	for _, u := range urls {
		for _, lvl := range []Level{LevelL, LevelM, LevelQ, LevelH} {
			for _, margin := range []int{4, 1} {
				t.Run(fmt.Sprintf("%s/%s/m%d", u, lvl, margin), func(t *testing.T) {
					b, err := PNG(u, Options{Size: 300, Margin: margin, Level: lvl})
					if err != nil {
						t.Fatal(err)
					}
					img, err := png.Decode(bytes.NewReader(b))
					if err != nil {
						t.Fatalf("PNG does not decode: %v", err)
					}
					if got := img.Bounds().Dx(); got != 300 || img.Bounds().Dy() != 300 {
						t.Fatalf("image is %v, want 300×300", img.Bounds())
					}
					if got := testenv.DecodeQR(t, img); got != u {
						t.Fatalf("decoded %q, want %q", got, u)
					}
				})
			}
		}
	}
}

func TestHigherLevelMeansDenserCode(t *testing.T) {
	u := "http://hub.example.vn/q/market-07"
	prev := 0
	for _, lvl := range []Level{LevelL, LevelM, LevelQ, LevelH} {
		m, err := Encode(u, lvl)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) < prev {
			t.Fatalf("level %s gives %d modules, fewer than the previous level's %d", lvl, len(m), prev)
		}
		prev = len(m)
	}
	mL, _ := Encode(u, LevelL)
	mH, _ := Encode(u, LevelH)
	if len(mH) <= len(mL) {
		t.Fatalf("level H (%d modules) is not denser than L (%d): the level is not reaching the encoder", len(mH), len(mL))
	}
}

func TestPNGQuietZoneIsWhite(t *testing.T) {
	const size, margin = 290, 4
	u := "http://hub.example.vn/q/market-07"
	b, err := PNG(u, Options{Size: size, Margin: margin, Level: LevelM})
	if err != nil {
		t.Fatal(err)
	}
	img, _ := png.Decode(bytes.NewReader(b))
	m, _ := Encode(u, LevelM)
	n := len(m) + 2*margin
	scale := size / n
	border := (size-scale*n)/2 + margin*scale
	dark := func(x, y int) bool { r, _, _, _ := img.At(x, y).RGBA(); return r < 0x8000 }
	for i := 0; i < size; i++ {
		for _, p := range [][2]int{{i, 0}, {i, border - 1}, {0, i}, {border - 1, i}, {i, size - 1}, {size - border, i}} {
			if dark(p[0], p[1]) {
				t.Fatalf("pixel %v in the quiet zone is dark", p)
			}
		}
	}
	// The top-left finder pattern starts right after the quiet zone.
	if !dark(border, border) {
		t.Fatalf("pixel (%d,%d) should be the finder pattern's dark corner", border, border)
	}
}

func TestPNGTooSmallForCode(t *testing.T) {
	long := "https://hub.example.vn/" + strings.Repeat("x", 600)
	_, err := PNG(long, Options{Size: 64, Margin: 4, Level: LevelH})
	if err == nil || !strings.Contains(err.Error(), "too small") {
		t.Fatalf("want a 'too small' error, got %v", err)
	}
}

type svgDoc struct {
	XMLName xml.Name `xml:"svg"`
	ViewBox string   `xml:"viewBox,attr"`
	Width   string   `xml:"width,attr"`
	Height  string   `xml:"height,attr"`
	Paths   []struct {
		D string `xml:"d,attr"`
	} `xml:"path"`
}

func TestSVGIsValidXMLWithModuleViewBox(t *testing.T) {
	u := "http://hub.example.vn/q/market-07"
	for _, lvl := range []Level{LevelL, LevelM, LevelQ, LevelH} {
		for _, margin := range []int{0, 4, 10} {
			b, err := SVG(u, Options{Size: 256, Margin: margin, Level: lvl})
			if err != nil {
				t.Fatal(err)
			}
			// Strict parse of the whole document: any stray token fails.
			dec := xml.NewDecoder(bytes.NewReader(b))
			dec.Strict = true
			for {
				if _, err := dec.Token(); err == io.EOF {
					break
				} else if err != nil {
					t.Fatalf("SVG is not well-formed XML: %v\n%s", err, b)
				}
			}
			var doc svgDoc
			if err := xml.Unmarshal(b, &doc); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if doc.XMLName.Space != "http://www.w3.org/2000/svg" {
				t.Fatalf("namespace %q", doc.XMLName.Space)
			}
			m, _ := Encode(u, lvl)
			n := len(m) + 2*margin
			if want := fmt.Sprintf("0 0 %d %d", n, n); doc.ViewBox != want {
				t.Fatalf("level %s margin %d: viewBox %q, want %q", lvl, margin, doc.ViewBox, want)
			}
			if doc.Width != "256" || doc.Height != "256" {
				t.Fatalf("size %sx%s, want 256x256", doc.Width, doc.Height)
			}
			if len(doc.Paths) != 1 || !strings.HasPrefix(doc.Paths[0].D, fmt.Sprintf("M%d %d", margin, margin)) {
				t.Fatalf("path should start at the finder pattern (%d,%d): %+v", margin, margin, doc.Paths)
			}
			// Count the dark modules the path covers; it must equal the matrix.
			var want, got int
			for _, row := range m {
				for _, d := range row {
					if d {
						want++
					}
				}
			}
			for _, seg := range strings.Split(doc.Paths[0].D, "z")[:strings.Count(doc.Paths[0].D, "z")] {
				var x, y, w, w2 int
				if _, err := fmt.Sscanf(seg, "M%d %dh%dv1h-%d", &x, &y, &w, &w2); err != nil || w != w2 {
					t.Fatalf("bad path segment %q: %v", seg, err)
				}
				got += w
			}
			if got != want {
				t.Fatalf("path covers %d modules, matrix has %d dark", got, want)
			}
		}
	}
}

func TestParseOptions(t *testing.T) {
	ok := []struct {
		q    string
		want Options
	}{
		{"", Options{Size: 512, Margin: 4, Level: LevelM}},
		{"size=1024&margin=2&ec=h", Options{Size: 1024, Margin: 2, Level: LevelH}},
		{"ec=Q&cache=123", Options{Size: 512, Margin: 4, Level: LevelQ}},
		{"margin=0", Options{Size: 512, Margin: 0, Level: LevelM}},
		{"size=64", Options{Size: 64, Margin: 4, Level: LevelM}},
		{"size=4096&margin=16&ec=L", Options{Size: 4096, Margin: 16, Level: LevelL}},
	}
	for _, c := range ok {
		q, _ := url.ParseQuery(c.q)
		got, err := ParseOptions(q)
		if err != nil {
			t.Fatalf("%q: %v", c.q, err)
		}
		if got != c.want {
			t.Fatalf("%q: got %+v, want %+v", c.q, got, c.want)
		}
	}
	bad := []struct{ q, wantErr string }{
		{"size=100000", "size 100000 px is out of range"},
		{"size=63", "out of range"},
		{"size=-5", "out of range"},
		{"size=big", `size "big" is not a whole number`},
		{"size=1e3", "not a whole number"},
		{"margin=17", "margin 17 modules is out of range"},
		{"margin=-1", "out of range"},
		{"margin=x", "not a whole number"},
		{"ec=X", `"X" is not one of L, M, Q, H`},
		{"ec=", "not one of"},
		{"size=100&size=200", "size is given 2 times"},
	}
	for _, c := range bad {
		q, _ := url.ParseQuery(c.q)
		_, err := ParseOptions(q)
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Fatalf("%q: want error containing %q, got %v", c.q, c.wantErr, err)
		}
	}
}

func TestOptionsZeroMeansDefault(t *testing.T) {
	b, err := PNG("http://hub.example.vn/q/x", Options{Margin: 4})
	if err != nil {
		t.Fatal(err)
	}
	img, _ := png.Decode(bytes.NewReader(b))
	if img.Bounds().Dx() != DefaultSize {
		t.Fatalf("zero size gave %d px, want %d", img.Bounds().Dx(), DefaultSize)
	}
	if _, err := PNG("http://hub.example.vn/q/x", Options{Size: 5000}); err == nil {
		t.Fatal("size 5000 accepted")
	}
}

func TestBoardURL(t *testing.T) {
	cases := []struct{ base, board, want, wantErr string }{
		{"http://hub.example.vn", "market-07", "http://hub.example.vn/q/market-07", ""},
		{"https://hub.example.vn/", "market-07", "https://hub.example.vn/q/market-07", ""},
		{"https://example.vn/village/", "gate_1", "https://example.vn/village/q/gate_1", ""},
		{"hub.example.vn", "x", "", "absolute"},
		{"ftp://hub.example.vn", "x", "", "absolute"},
		{"http://hub.example.vn?a=1", "x", "", "query"},
		{"http://hub.example.vn", "", "", "empty"},
	}
	for _, c := range cases {
		got, err := BoardURL(c.base, c.board)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("%q %q: want error %q, got %v (%q)", c.base, c.board, c.wantErr, err, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Fatalf("%q %q: got %q, %v; want %q", c.base, c.board, got, err, c.want)
		}
	}
}

func BenchmarkPNG512(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := PNG("http://hub.example.vn/q/market-07", DefaultOptions()); err != nil {
			b.Fatal(err)
		}
	}
}
