package scan

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"strings"
)

// The pages a person sees when a code leads nowhere. They are read on a phone
// in the street, often by someone older: Vietnamese first, large type, one
// thing to do; an English line for visitors.
var pages = template.Must(template.New("notfound").Parse(`<!doctype html>
<html lang="vi"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Không tìm thấy bảng tin</title>
<style>body{font-family:system-ui,sans-serif;font-size:1.2rem;line-height:1.5;margin:2rem auto;max-width:32rem;padding:0 1rem;color:#222}h1{font-size:1.6rem}.en{color:#555;font-size:1rem}code{font-size:1rem}</style>
</head><body>
<h1>Không tìm thấy bảng tin này</h1>
<p>Mã QR bạn vừa quét không dẫn tới bảng tin nào của thôn. Có thể mã đã cũ hoặc in nhầm.</p>
<p>Xin báo cho trưởng thôn hoặc người quản lý bảng tin{{if .}} (mã bảng: <code>{{.}}</code>){{end}}. Cảm ơn bà con!</p>
<p class="en" lang="en">This QR code does not lead to any of the village's boards. Please let the village head know.</p>
</body></html>
`))

var _ = template.Must(pages.New("notarget").Parse(`<!doctype html>
<html lang="vi"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{.Name}}</title>
<style>body{font-family:system-ui,sans-serif;font-size:1.2rem;line-height:1.5;margin:2rem auto;max-width:32rem;padding:0 1rem;color:#222}h1{font-size:1.6rem}.en{color:#555;font-size:1rem}</style>
</head><body>
<h1>{{.Name}}</h1>
<p>Bảng tin này chưa có trang để xem. Bà con vui lòng quay lại sau, hoặc báo cho trưởng thôn.</p>
<p class="en" lang="en">This board has no page yet. Please try again later.</p>
</body></html>
`))

// pageCSP lets these self-contained pages keep their inline style: the
// hub's policy (style-src 'self') would block it, so they carry their own,
// allowing exactly their style blocks by hash and nothing else.
var pageCSP = func() string {
	csp := "default-src 'none'; style-src"
	for _, t := range pages.Templates() {
		src := t.Tree.Root.String()
		for {
			i := strings.Index(src, "<style>")
			j := strings.Index(src, "</style>")
			if i < 0 || j < i {
				break
			}
			sum := sha256.Sum256([]byte(src[i+len("<style>") : j]))
			csp += " 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
			src = src[j+len("</style>"):]
		}
	}
	return csp + "; frame-ancestors 'none'"
}()

// notFoundPage is the page for a code that leads to no board (id: the
// well-formed id asked for, or "").
func notFoundPage(id string) []byte {
	var b bytes.Buffer
	_ = pages.ExecuteTemplate(&b, "notfound", id) // fixed templates over a string: cannot fail
	return b.Bytes()
}

// noTargetPage answers a scan of a known board whose target is missing or
// malformed in the config: the scan still counted, the person is told kindly.
func noTargetPage(b Board) []byte {
	name := b.Name
	if name == "" {
		name = b.ID
	}
	var out bytes.Buffer
	_ = pages.ExecuteTemplate(&out, "notarget", struct{ Name string }{name})
	return out.Bytes()
}
