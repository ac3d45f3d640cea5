// Package qrcode draws the printable QR codes that point at the hub: PNG and
// SVG images of one code, and an A4 PDF sheet of all boards of a site.
//
// The QR symbol itself (data encoding, Reed–Solomon error correction, mask
// choice) comes from github.com/skip2/go-qrcode: it is the most widely
// imported pure-Go QR encoder, has no dependencies and hands out the bare
// module matrix, so this package only decides how big the modules are and how
// much quiet zone surrounds them. Rendering the matrix ourselves is what lets
// the caller choose the margin (skip2 only knows "4 modules" or "none") and
// lets the PDF sheet draw codes as vectors that stay sharp at any print size.
package qrcode

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/url"
	"strconv"
	"strings"

	skip2 "github.com/skip2/go-qrcode"
)

// Level is a QR error-correction level. Higher levels survive more damage
// (dirt, rain, a torn corner) at the cost of a denser code.
type Level string

// The four levels of the QR standard, with the share of the code that may be
// lost and still decode.
const (
	LevelL Level = "L" // ~7 %
	LevelM Level = "M" // ~15 %
	LevelQ Level = "Q" // ~25 %
	LevelH Level = "H" // ~30 %
)

// Bounds and defaults for Options. The upper size bound keeps a single request
// from asking for a giant image: 4096 px is already a 35 cm print at 300 dpi.
const (
	DefaultSize   = 512
	DefaultMargin = 4 // the quiet zone the QR standard asks for
	DefaultLevel  = LevelM
	MinSize       = 64
	MaxSize       = 4096
	MaxMargin     = 16
)

// Options says how to draw one code.
type Options struct {
	// Size is the width and height of the image in pixels (for SVG: the
	// width/height attributes; the drawing itself is vector). Zero means
	// DefaultSize.
	Size int
	// Margin is the quiet zone around the code, in modules (QR "pixels").
	// Zero is taken literally (no quiet zone); use DefaultMargin for the
	// standard 4.
	Margin int
	// Level is the error-correction level. Empty means DefaultLevel.
	Level Level
}

// DefaultOptions returns the options used when a request gives none.
func DefaultOptions() Options {
	return Options{Size: DefaultSize, Margin: DefaultMargin, Level: DefaultLevel}
}

// withDefaults fills the zero values that mean "default" and validates.
func (o Options) withDefaults() (Options, error) {
	if o.Size == 0 {
		o.Size = DefaultSize
	}
	if o.Level == "" {
		o.Level = DefaultLevel
	}
	return o, o.Validate()
}

// Validate reports whether every field is within its bounds.
func (o Options) Validate() error {
	if o.Size < MinSize || o.Size > MaxSize {
		return fmt.Errorf("size %d px is out of range: allowed %d to %d", o.Size, MinSize, MaxSize)
	}
	if o.Margin < 0 || o.Margin > MaxMargin {
		return fmt.Errorf("margin %d modules is out of range: allowed 0 to %d", o.Margin, MaxMargin)
	}
	if _, err := o.Level.recovery(); err != nil {
		return err
	}
	return nil
}

// ParseLevel accepts L, M, Q or H in either case.
func ParseLevel(s string) (Level, error) {
	l := Level(strings.ToUpper(strings.TrimSpace(s)))
	if _, err := l.recovery(); err != nil {
		return "", err
	}
	return l, nil
}

func (l Level) recovery() (skip2.RecoveryLevel, error) {
	switch l {
	case LevelL:
		return skip2.Low, nil
	case LevelM:
		return skip2.Medium, nil
	case LevelQ:
		return skip2.High, nil // skip2 calls Q "High"
	case LevelH:
		return skip2.Highest, nil
	}
	return 0, fmt.Errorf("error-correction level %q is not one of L, M, Q, H", string(l))
}

// ParseOptions reads size, margin and ec from a request's query, starting
// from DefaultOptions. Other parameters are ignored (cache busters and the
// like); a parameter given twice is an error rather than a silent pick.
func ParseOptions(q url.Values) (Options, error) {
	o := DefaultOptions()
	get := func(name string) (string, bool, error) {
		vs, ok := q[name]
		if !ok {
			return "", false, nil
		}
		if len(vs) != 1 {
			return "", false, fmt.Errorf("%s is given %d times; give it once", name, len(vs))
		}
		return vs[0], true, nil
	}
	if v, ok, err := get("size"); err != nil {
		return Options{}, err
	} else if ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return Options{}, fmt.Errorf("size %q is not a whole number of pixels (allowed %d to %d)", v, MinSize, MaxSize)
		}
		o.Size = n
	}
	if v, ok, err := get("margin"); err != nil {
		return Options{}, err
	} else if ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return Options{}, fmt.Errorf("margin %q is not a whole number of modules (allowed 0 to %d)", v, MaxMargin)
		}
		o.Margin = n
	}
	if v, ok, err := get("ec"); err != nil {
		return Options{}, err
	} else if ok {
		l, err := ParseLevel(v)
		if err != nil {
			return Options{}, err
		}
		o.Level = l
	}
	if err := o.Validate(); err != nil {
		return Options{}, err
	}
	return o, nil
}

// BoardURL is the address a printed code for board carries:
// <publicURL>/q/<board>. publicURL must be an absolute http(s) URL; a path in
// it is kept (for a hub behind a reverse proxy under a prefix).
func BoardURL(publicURL, board string) (string, error) {
	if board == "" {
		return "", errors.New("board id is empty")
	}
	u, err := url.Parse(publicURL)
	if err != nil {
		return "", fmt.Errorf("parsing public URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("public URL %q must be an absolute http:// or https:// URL", publicURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("public URL %q must not have a query or fragment", publicURL)
	}
	return strings.TrimRight(u.String(), "/") + "/q/" + url.PathEscape(board), nil
}

// Matrix is a QR symbol without quiet zone: Matrix[y][x] is true for a dark
// module.
type Matrix [][]bool

// Encode builds the symbol for content at level.
func Encode(content string, level Level) (Matrix, error) {
	rl, err := level.recovery()
	if err != nil {
		return nil, err
	}
	q, err := skip2.New(content, rl)
	if err != nil {
		return nil, fmt.Errorf("encoding %d bytes as a QR code: %w", len(content), err)
	}
	q.DisableBorder = true // the margin is ours to choose
	return Matrix(q.Bitmap()), nil
}

// PNG draws the code for content as a black-on-white 1-bit PNG of exactly
// opts.Size pixels square. Modules are a whole number of pixels (so scanners
// see sharp edges); what does not divide evenly is added to the white border.
func PNG(content string, opts Options) ([]byte, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := Encode(content, opts.Level)
	if err != nil {
		return nil, err
	}
	n := len(m) + 2*opts.Margin
	scale := opts.Size / n
	if scale < 1 {
		return nil, fmt.Errorf("size %d px is too small for this code: it needs at least %d px (1 px per module)", opts.Size, n)
	}
	img := image.NewPaletted(image.Rect(0, 0, opts.Size, opts.Size), color.Palette{color.White, color.Black})
	// Index 0 (white) is the zero value, so only dark modules are written.
	off := (opts.Size-scale*n)/2 + opts.Margin*scale
	for y, row := range m {
		for x, dark := range row {
			if !dark {
				continue
			}
			x0, y0 := off+x*scale, off+y*scale
			for yy := y0; yy < y0+scale; yy++ {
				line := img.Pix[yy*img.Stride+x0 : yy*img.Stride+x0+scale]
				for i := range line {
					line[i] = 1
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("writing PNG: %w", err)
	}
	return buf.Bytes(), nil
}

// SVG draws the code for content as an SVG document whose viewBox counts
// modules ("0 0 N N" with N = modules + 2*margin) and whose width and height
// are opts.Size pixels. The dark modules are one path, merged into horizontal
// runs, so the file stays small and prints sharp at any scale.
func SVG(content string, opts Options) ([]byte, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := Encode(content, opts.Level)
	if err != nil {
		return nil, err
	}
	n := len(m) + 2*opts.Margin
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="%d" height="%d" viewBox="0 0 %d %d" shape-rendering="crispEdges">`+"\n",
		opts.Size, opts.Size, n, n)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", n, n)
	b.WriteString(`<path fill="#000000" d="`)
	eachRun(m, func(x, y, w int) {
		fmt.Fprintf(&b, "M%d %dh%dv1h-%dz", x+opts.Margin, y+opts.Margin, w, w)
	})
	b.WriteString(`"/>` + "\n</svg>\n")
	return b.Bytes(), nil
}

// eachRun calls fn for every horizontal run of dark modules: start x, row y,
// run length w.
func eachRun(m Matrix, fn func(x, y, w int)) {
	for y, row := range m {
		for x := 0; x < len(row); {
			if !row[x] {
				x++
				continue
			}
			start := x
			for x < len(row) && row[x] {
				x++
			}
			fn(start, y, x-start)
		}
	}
}
